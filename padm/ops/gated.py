r"""The gated depthwise convolution in the middle of the GDRSS feed-forward network.

.. math::

    [a, b] = \mathrm{DW}_{3\times3}(u), \qquad \text{out} = \operatorname{GELU}(a) \odot b

``u`` has 2h channels, ``out`` h.  :func:`gated_dwconv_ref` is the PyTorch definition (three passes over
large tensors: convolution, GELU, product); the fused CPU kernel (``csrc/selective_scan.cpp``,
``gated_dw3x3``) does it in one pass over channels-last activations.  The kernel is forward-only:
it is used for inference (no gradient needed), and training takes the reference path.  The run-time
backend (:mod:`padm.ops.backend`) ``auto``/``cpu`` allows the kernel; any other runs the reference.
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
    return (
        u.device.type == "cpu"
        and _backend.resolve(None, False) == "cpu"
        and u.dtype in (torch.float32, torch.float64)
        and weight.dtype == u.dtype
        and weight.shape[-2:] == (3, 3)
        and u.shape[1] % 2 == 0
        and not (torch.is_grad_enabled() and (u.requires_grad or weight.requires_grad))
        and u.is_contiguous(memory_format=torch.channels_last)
        and _native.available()
    )


def gated_dwconv(u: Tensor, weight: Tensor) -> Tensor:
    """:func:`gated_dwconv_ref`, fused in one pass on the CPU when no gradient is needed."""
    if not _fused_ok(u, weight):
        return gated_dwconv_ref(u, weight)
    n, c, h, w = u.shape
    w9 = weight.reshape(c, 9).t().contiguous()  # (9, 2h), tap-major
    out = u.new_empty(n, h, w, c // 2)  # channels-last storage
    suffix = "f64" if u.dtype == torch.float64 else "f32"
    getattr(_native.load(), f"padm_gated_dw_{suffix}")(
        u.data_ptr(), w9.data_ptr(), out.data_ptr(), n, h, w, c // 2, torch.get_num_threads()
    )
    return out.permute(0, 3, 1, 2)  # (N, h, H, W) view, channels-last


__all__ = ["gated_dwconv", "gated_dwconv_ref"]
