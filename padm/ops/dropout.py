r"""Dropout added to a residual, :math:`x + \mathrm{Drop}_p(y)`, the GDRSS blocks' two residual updates.

.. math::

    \text{out} = x + \frac{m \odot y}{1 - p}, \qquad m_i = [\,h(i) \ge p \cdot 2^{32}\,], \qquad
    \frac{\partial L}{\partial x} = g, \quad \frac{\partial L}{\partial y} = \frac{m \odot g}{1 - p}

On the CPU the keep mask :math:`m` comes from a counter-based hash :math:`h` of each element's memory
index (two rounds of MurmurHash3's 32-bit finaliser keyed by two 32-bit seeds drawn from PyTorch's
generator, so ``torch.manual_seed`` and a checkpointed RNG state reproduce it): P(keep) = 1 − p to
within 2⁻³², and the backward recomputes the mask instead of storing it.  :func:`dropout_mask` is that
hash in PyTorch and :func:`dropout_add_ref` the op with it (the reference, same signature as the
kernel's op :func:`dropout_add_seeded`); :func:`dropout_add` draws the seeds and falls back to
``x + F.dropout(y, p)`` wherever the kernel does not apply (GPU, other dtypes or layouts, the
``reference`` backend, training kernels off).  PyTorch's CPU dropout draws one Mersenne-twister
Bernoulli variable per element: 1.5–2 ms for one 16 × 128 × 128 map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from padm.ops import _native
from padm.ops import backend as _backend

_M32 = 0xFFFFFFFF


def _mul32(h: Tensor, c: int) -> Tensor:
    """(h · c) mod 2³² for int64 tensors h in [0, 2³²) (in 16-bit halves of c: no int64 overflow)."""
    return (h * (c & 0xFFFF) + ((h * (c >> 16)) & 0xFFFF) * 65536) & _M32


def _fmix32(h: Tensor) -> Tensor:
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def _threshold(p: float) -> int:
    return min(int(p * 2**32), _M32)


def dropout_mask(numel: int, p: float, s0: int, s1: int) -> Tensor:
    """The keep mask (numel,) bool of element memory indices 0 .. numel−1: ``h(i) >= p·2³²`` with
    ``h(i) = fmix32(fmix32(i ^ s0) + s1)`` (arithmetic mod 2³²)."""
    i = torch.arange(numel, dtype=torch.int64) & _M32
    h = _fmix32((_fmix32(i ^ s0) + s1) & _M32)
    return h >= _threshold(p)


def dropout_add_ref(x: Tensor, y: Tensor, p: float, s0: int, s1: int) -> Tensor:
    """``x + m ⊙ y / (1 − p)`` with ``m`` = :func:`dropout_mask` laid out in ``y``'s memory order."""
    keep = dropout_mask(y.numel(), p, s0, s1).to(y.dtype)
    keep = torch.as_strided(keep, y.shape, y.stride())  # element at memory offset i gets mask bit i
    return x + y * keep / (1.0 - p)


def _dense_same_layout(x: Tensor, y: Tensor) -> bool:
    if x.shape != y.shape or x.stride() != y.stride():
        return False
    return any(y.is_contiguous(memory_format=f) for f in (torch.contiguous_format, torch.channels_last))


def _fused_ok(x: Tensor, y: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and y.device.type == "cpu"
        and y.dtype in (torch.float32, torch.float64)
        and x.dtype == y.dtype
        and 0 < y.numel() < 2**32
        and _dense_same_layout(x, y)
        and _backend.cpu_kernels_allowed(x, y)
        and _native.has_kernel("dropout_add", y)
    )


def _kernel(x: Tensor | None, y: Tensor, p: float, s0: int, s1: int) -> Tensor:
    out = torch.empty_like(y)  # the same strides as y (dense)
    _native.kernel("dropout_add", y)(
        x.data_ptr() if x is not None else None, y.data_ptr(), out.data_ptr(), y.numel(), s0, s1, _threshold(p),
        1.0 / (1.0 - p), torch.get_num_threads(),
    )
    return out


class _DropoutAdd(torch.autograd.Function):
    """The kernel as one differentiable op; the backward recomputes the mask from the seeds."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, p: float, s0: int, s1: int) -> Tensor:
        ctx.p, ctx.seeds, ctx.stride = p, (s0, s1), y.stride()
        return _kernel(x, y, p, s0, s1)

    @staticmethod
    def backward(ctx, g: Tensor):
        gy = None
        if ctx.needs_input_grad[1]:
            if g.stride() != ctx.stride:  # the mask follows y's memory order: g in that layout
                g = g.new_empty_strided(g.shape, ctx.stride).copy_(g)
            gy = _kernel(None, g, ctx.p, *ctx.seeds)
        return g, gy, None, None, None


def dropout_add_seeded(x: Tensor, y: Tensor, p: float, s0: int, s1: int) -> Tensor:
    """:func:`dropout_add_ref` by the CPU kernel (x, y dense in one layout, as :func:`dropout_add` checks)."""
    return _DropoutAdd.apply(x, y, p, s0, s1)


def dropout_add(x: Tensor, y: Tensor, p: float, training: bool = True) -> Tensor:
    """``x + F.dropout(y, p, training)``: on the CPU, one pass with a hashed mask (see the module)."""
    if not training or p == 0.0:
        return x + y
    if not 0.0 < p < 1.0 or not _fused_ok(x, y):
        return x + F.dropout(y, p, training)
    s0, s1 = (int(v) for v in torch.randint(0, 2**32, (2,), dtype=torch.int64))  # PyTorch's generator
    return dropout_add_seeded(x, y, p, s0, s1)


__all__ = ["dropout_add", "dropout_add_ref", "dropout_add_seeded", "dropout_mask"]
