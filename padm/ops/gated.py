r"""The gated depthwise convolution in the middle of the GDRSS feed-forward network.

.. math::

    [a, b] = \mathrm{DW}_{3\times3}(u), \qquad \text{out} = \operatorname{GELU}(a) \odot b

``u`` has 2h channels, ``out`` h.  :func:`gated_dwconv_ref` is the PyTorch definition (three passes over
large tensors: convolution, GELU, product, and as many again backward); the fused CPU kernels
(``csrc/selective_scan.cpp``, ``gated_dw3x3`` and ``gated_dw3x3_bwd``) work on channels-last
activations.  The backward recomputes :math:`a, b` from ``u`` (so nothing of 2h channels is stored
for it) and, with :math:`g = \partial L / \partial\,\text{out}`,

.. math::

    \frac{\partial L}{\partial a} = g\, b\, \operatorname{GELU}'(a), \quad
    \frac{\partial L}{\partial b} = g \operatorname{GELU}(a), \quad
    \frac{\partial L}{\partial u} = \mathrm{DW}^{\top}_{3\times3}\Big(\Big[\frac{\partial L}{\partial a},
    \frac{\partial L}{\partial b}\Big]\Big)

with :math:`\operatorname{GELU}'(a) = \Phi(a) + a\,\varphi(a)`, and the weight gradient summed over
pixels.  The run-time backend (:mod:`padm.ops.backend`) ``auto``/``cpu`` allows the kernels; any other
runs the reference.  In training they also need :func:`padm.ops.backend.training_kernels` (on by
default; ``padm train --no-fused-train-ops`` turns it off to measure against PyTorch's ops).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from padm.ops import _native
from padm.ops import backend as _backend


def gated_dwconv_ref(u: Tensor, weight: Tensor) -> Tensor:
    """(N, 2h, H, W) -> (N, h, H, W): depthwise 3×3 conv (zero padding, no bias), then GELU(a)·b."""
    a, b = F.conv2d(u, weight, padding=1, groups=u.shape[1]).chunk(2, dim=1)
    return F.gelu(a) * b


def _fused_ok(u: Tensor, weight: Tensor) -> bool:
    """Whether the fused kernels apply: CPU, float32/64, 3×3, the ``cpu`` backend, the library built, and
    (when a gradient is needed) training kernels allowed."""
    return (
        u.device.type == "cpu"
        and _backend.cpu_kernels_allowed(u, weight)
        and u.dtype in (torch.float32, torch.float64)
        and weight.dtype == u.dtype
        and weight.shape[-2:] == (3, 3)
        and u.shape[1] % 2 == 0
        and _native.available()
    )


def _taps(weight: Tensor) -> Tensor:
    """(2h, 1, 3, 3) -> (9, 2h) contiguous, tap-major: the kernels' weight layout."""
    return weight.reshape(weight.shape[0], 9).t().contiguous()


def _forward(u_cl: Tensor, w9: Tensor) -> Tensor:
    """u_cl (N, H, W, 2h) contiguous, w9 (9, 2h) -> (N, H, W, h)."""
    n, h, w, c = u_cl.shape
    out = u_cl.new_empty(n, h, w, c // 2)
    _native.kernel("gated_dw", u_cl)(
        u_cl.data_ptr(), w9.data_ptr(), out.data_ptr(), n, h, w, c // 2, torch.get_num_threads()
    )
    return out


class _GatedDW(torch.autograd.Function):
    """The fused kernels as one differentiable op: (N, 2h, H, W), (2h, 1, 3, 3) -> (N, h, H, W)."""

    @staticmethod
    def forward(ctx, u: Tensor, weight: Tensor) -> Tensor:
        u_cl = u.permute(0, 2, 3, 1).contiguous()  # (N, H, W, 2h); a view when u is channels-last
        w9 = _taps(weight)  # (9, 2h)
        ctx.save_for_backward(u_cl, w9)
        return _forward(u_cl, w9).permute(0, 3, 1, 2)  # (N, h, H, W) view, channels-last

    @staticmethod
    def backward(ctx, g: Tensor):
        u_cl, w9 = ctx.saved_tensors
        n, h, w, c = u_cl.shape
        threads = torch.get_num_threads()
        g_cl = g.permute(0, 2, 3, 1).contiguous()  # (N, H, W, h)
        du = torch.empty_like(u_cl)  # (N, H, W, 2h)
        dw_buf = u_cl.new_zeros(threads, 9, c)  # per-thread partial weight gradients
        _native.kernel("gated_dw_bwd", u_cl)(
            u_cl.data_ptr(), w9.data_ptr(), g_cl.data_ptr(), du.data_ptr(), dw_buf.data_ptr(),
            n, h, w, c // 2, threads,
        )
        dweight = dw_buf.sum(0).t().reshape(c, 1, 3, 3)  # (2h, 1, 3, 3)
        return du.permute(0, 3, 1, 2), dweight


def gated_dwconv(u: Tensor, weight: Tensor) -> Tensor:
    """:func:`gated_dwconv_ref`, fused on the CPU (forward, and backward when a gradient is needed)."""
    if not _fused_ok(u, weight):
        return gated_dwconv_ref(u, weight)
    if _backend.needs_grad(u, weight):
        return _GatedDW.apply(u, weight)
    if not u.is_contiguous(memory_format=torch.channels_last):
        return gated_dwconv_ref(u, weight)  # inference on NCHW: a copy would cost what the fusion saves
    return _forward(u.permute(0, 2, 3, 1), _taps(weight)).permute(0, 3, 1, 2)  # (N, h, H, W), channels-last


__all__ = ["gated_dwconv", "gated_dwconv_ref"]
