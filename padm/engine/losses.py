r"""The training objective: deep supervision over every stage, the same loop for every task.

The task says what each stage's estimates are compared with (:meth:`Task.supervision`: a list of
``(name, estimates of stages 0..K, target)``); the loss is

.. math::

    \mathcal{L} = \sum_{(n, \hat x, t)} \sum_{j=0}^{K} \lVert \hat x_j - t \rVert_1
    \;+\; w_{fft} \sum_{j=0}^{K} \operatorname{mean}\lvert \mathcal{F}\hat x_j - \mathcal{F} t \rvert

with the FFT term on the first entry (the image estimate).  For PADM the entries are ``B`` against the
clean image and ``R`` against the input minus the clean image, which is the official objective
``Σ_j [ L1(B_j, gt) + L1(R_j, I − gt) + 0.01 · mean|FFT2(B_j) − FFT2(gt)| ]``.  The model only
returns its stage outputs; the loss lives here, in the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def fft_l1(x: Tensor, y: Tensor) -> Tensor:
    """``mean |FFT2(x) − FFT2(y)|`` over all frequencies, channels and images (float32 FFT)."""
    d = torch.fft.fft2(x.float()) - torch.fft.fft2(y.float())
    return d.abs().mean()


def unfolding_loss(terms: Sequence[tuple[str, Sequence[Tensor], Tensor]],
                   fft_weight: float = 0.01) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss over all stages and its parts summed over stages (detached, for logging):
    ``l1_<name>`` per supervised entry and ``fft``."""
    if not terms or any(len(est) == 0 for _, est, _ in terms) or len({len(est) for _, est, _ in terms}) != 1:
        raise ValueError("need one or more supervised entries, each with the same number (>= 1) of stage outputs")
    parts: dict[str, Tensor] = {}
    for name, estimates, target in terms:  # every stage j = 0..K supervised
        target = target.float()
        parts[f"l1_{name}"] = sum(F.l1_loss(e.float(), target) for e in estimates)
    _, estimates, target = terms[0]
    parts["fft"] = sum(fft_l1(e, target) for e in estimates)
    total = sum(parts[f"l1_{name}"] for name, _, _ in terms) + fft_weight * parts["fft"]
    return total, {k: v.detach() for k, v in parts.items()}


__all__ = ["fft_l1", "unfolding_loss"]
