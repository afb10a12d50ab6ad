r"""LayerNorm over the last dimension, fused on the CPU: the GDRSS blocks' four norms per block.

.. math::

    \mu = \tfrac1C \textstyle\sum_c x_c, \qquad
    r = \big(\tfrac1C \textstyle\sum_c (x_c - \mu)^2 + \epsilon\big)^{-1/2}, \qquad
    y_c = (x_c - \mu)\, r\, w_c + b_c

and, with :math:`\hat x = (x - \mu) r` and :math:`g = \partial L/\partial y`,

.. math::

    \frac{\partial L}{\partial x} = r\Big(g w - \overline{g w} - \hat x\, \overline{g w \hat x}\Big), \qquad
    \frac{\partial L}{\partial w} = \textstyle\sum_{rows} g \hat x, \qquad
    \frac{\partial L}{\partial b} = \textstyle\sum_{rows} g

(:math:`\overline{\,\cdot\,}`: the mean over the C channels of a row).  :func:`layer_norm_ref` is the
definition (``F.layer_norm``); :func:`layer_norm` runs the C++ kernels (``layer_norm_rows`` and
``layer_norm_rows_bwd`` in ``csrc/selective_scan.cpp``) where they apply: CPU, float32/64, an affine
norm, the ``cpu`` backend, and in training :func:`padm.ops.backend.training_kernels`.  The rows are the
channels of channels-last pixels (``LayerNorm2d``) or of tokens (``(N, L, C)``); PyTorch's kernel spends
most of its time per row on set-up when a row is only the small model's 16 or 32 channels
(``python scripts/bench_step.py --variant reference-norm``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from padm.ops import _native
from padm.ops import backend as _backend


def layer_norm_ref(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    """(..., C) -> (..., C): LayerNorm over the last dimension (PyTorch's op)."""
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


def _fused_ok(x: Tensor, weight: Tensor | None, bias: Tensor | None) -> bool:
    if weight is None or bias is None:
        return False
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and weight.dtype == x.dtype
        and bias.dtype == x.dtype
        and x.numel() > 0
        and _backend.cpu_kernels_allowed(x, weight, bias)
        and _native.has_kernel("layer_norm", x)
    )


def _forward(x2: Tensor, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """x2 (rows, C) contiguous -> y (rows, C), mean (rows,), rstd (rows,)."""
    rows, c = x2.shape
    y = torch.empty_like(x2)
    mean, rstd = x2.new_empty(rows), x2.new_empty(rows)
    _native.kernel("layer_norm", x2)(
        x2.data_ptr(), weight.data_ptr(), bias.data_ptr(), y.data_ptr(), mean.data_ptr(), rstd.data_ptr(),
        rows, c, float(eps), torch.get_num_threads(),
    )
    return y, mean, rstd


class _LayerNormRows(torch.autograd.Function):
    """The fused kernels as one differentiable op: (..., C), (C,), (C,) -> (..., C)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        x2 = x.contiguous().view(-1, x.shape[-1])  # (rows, C); a view when x is row-contiguous
        w, b = weight.contiguous(), bias.contiguous()
        y, mean, rstd = _forward(x2, w, b, eps)
        ctx.save_for_backward(x2, w, mean, rstd)
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, g: Tensor):
        x2, w, mean, rstd = ctx.saved_tensors
        rows, c = x2.shape
        threads = torch.get_num_threads()
        g2 = g.contiguous().view(rows, c)  # (rows, C)
        dx = torch.empty_like(x2)
        dw_buf, db_buf = x2.new_zeros(threads, c), x2.new_zeros(threads, c)  # per-thread partial sums
        _native.kernel("layer_norm_bwd", x2)(
            x2.data_ptr(), w.data_ptr(), g2.data_ptr(), mean.data_ptr(), rstd.data_ptr(), dx.data_ptr(),
            dw_buf.data_ptr(), db_buf.data_ptr(), rows, c, threads,
        )
        return dx.view(g.shape), dw_buf.sum(0), db_buf.sum(0), None


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    """:func:`layer_norm_ref`, fused on the CPU (forward, and backward when a gradient is needed).

    The output is contiguous in ``x``'s shape, as ``F.layer_norm``'s."""
    if not _fused_ok(x, weight, bias):
        return layer_norm_ref(x, weight, bias, eps)
    if _backend.needs_grad(x, weight, bias):
        return _LayerNormRows.apply(x, weight, bias, eps)
    x2 = x.contiguous().view(-1, x.shape[-1])
    return _forward(x2, weight.contiguous(), bias.contiguous(), eps)[0].view(x.shape)


__all__ = ["layer_norm", "layer_norm_ref"]
