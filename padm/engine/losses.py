"""The official training objective with deep supervision over every stage.

``Σ_j [ L1(B_j, gt) + L1(R_j, I − gt) + 0.01 · mean|FFT2(B_j) − FFT2(gt)| ]`` for j = 0..K
(``B_j``/``R_j``: background and rain layer after stage j, ``I``: the rainy input; ``|·|`` the modulus
of the complex difference of unnormalised 2-D FFTs).  The model only returns its stage outputs; the
loss lives here, in the engine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def fft_l1(x: Tensor, y: Tensor) -> Tensor:
    """``mean |FFT2(x) − FFT2(y)|`` over all frequencies, channels and images (float32 FFT)."""
    d = torch.fft.fft2(x.float()) - torch.fft.fft2(y.float())
    return d.abs().mean()


def unfolding_loss(B: tuple[Tensor, ...] | list[Tensor], R: tuple[Tensor, ...] | list[Tensor], rainy: Tensor,
                   clean: Tensor, fft_weight: float = 0.01) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss over all stages and its three parts summed over stages (detached, for logging)."""
    if len(B) != len(R) or not B:
        raise ValueError(f"need as many B as R stage outputs (>= 1); got {len(B)} and {len(R)}")
    rain = rainy.float() - clean.float()
    l_b = sum(F.l1_loss(b.float(), clean.float()) for b in B)
    l_r = sum(F.l1_loss(r.float(), rain) for r in R)
    l_f = sum(fft_l1(b, clean) for b in B)
    total = l_b + l_r + fft_weight * l_f
    return total, {"l1_B": l_b.detach(), "l1_R": l_r.detach(), "fft": l_f.detach()}


__all__ = ["fft_l1", "unfolding_loss"]
