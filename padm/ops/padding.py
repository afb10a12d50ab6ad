"""One pad/crop helper, shared by the network, tiled inference and the tests.

PADM's U-Net halves the resolution ``depth - 1`` times and its scan runs over the *padded* image row by
row, so the padding reaches every output pixel: official checkpoints are only reproduced with the
official rule (reflect-pad bottom/right to a multiple of 32).  ``reflect`` padding in PyTorch fails when
the pad is as large as the image; :func:`pad_to_multiple` extends it by repeated reflection (period
``2(n-1)``, as ``numpy.pad(mode="reflect")``) and falls back to replication for a single row/column, so
any ``H, W >= 1`` works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def padded_size(size: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is ``>= size``."""
    return -(-size // multiple) * multiple


def _pad_last_dim(x: Tensor, pad: int, mode: str) -> Tensor:
    """Pad the last dimension of ``x`` (N, C, L) at the end by ``pad`` samples."""
    while pad > 0:
        n = x.shape[-1]
        if mode == "reflect" and n > 1:
            step = min(pad, n - 1)  # one reflection may not exceed n - 1 samples
            x = F.pad(x, (0, step), mode="reflect")
        elif mode in ("reflect", "replicate"):
            step = pad
            x = F.pad(x, (0, step), mode="replicate")
        elif mode == "constant":
            step = pad
            x = F.pad(x, (0, step))
        else:
            raise ValueError(f"unknown padding mode {mode!r}")
        pad -= step
    return x


def pad_bottom_right(x: Tensor, pad_h: int, pad_w: int, mode: str = "reflect") -> Tensor:
    """Pad an image batch (N, C, H, W) by ``pad_h`` rows at the bottom and ``pad_w`` columns at the right."""
    n, c, h, w = x.shape
    if pad_w:
        x = _pad_last_dim(x.reshape(n, c * h, w), pad_w, mode).reshape(n, c, h, w + pad_w)
    if pad_h:
        xt = x.transpose(-1, -2).reshape(n, c * x.shape[-1], h)  # (N, C*W', H)
        xt = _pad_last_dim(xt, pad_h, mode)
        x = xt.reshape(n, c, x.shape[-1], h + pad_h).transpose(-1, -2)
    return x.contiguous()


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "reflect") -> tuple[Tensor, tuple[int, int]]:
    """Pad (N, C, H, W) bottom/right so H and W are multiples of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` to hand to :func:`crop_to`.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    pad_h, pad_w = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    return pad_bottom_right(x, pad_h, pad_w, mode), (h, w)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop (..., H', W') back to the top-left ``size = (H, W)``."""
    h, w = size
    return x[..., :h, :w]


__all__ = ["padded_size", "pad_bottom_right", "pad_to_multiple", "crop_to"]

if __name__ == "__main__":  # pragma: no cover
    print(pad_to_multiple(torch.arange(3.0).view(1, 1, 1, 3), 8)[0])
