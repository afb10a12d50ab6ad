"""Helpers shared by the engine tests (importable as ``engine_helpers``; pytest puts this folder on the path).

``StandIn`` has PADM's interface (``.config``, ``forward -> UnfoldingOutput``-like object with K+1
stage tuples ``B``, ``R``, ``eta_B``, ``eta_z``) but is a few local convolutions with dropout, so
training-loop tests run in a second, and tiling is exact for it.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch
from torch import nn

from padm.unfolding.tasks.derain.config import PADMConfig

@attrs.frozen
class Stages:
    B: tuple
    R: tuple
    eta_B: tuple
    eta_z: tuple


class StandIn(nn.Module):
    """Local (receptive radius 2) unrolled toy: each stage refines B with two 3x3 convolutions."""

    def __init__(self, config: PADMConfig):
        super().__init__()
        self.config = config
        c = config.n_feat
        self.body = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.GELU(), nn.Dropout(0.1), nn.Conv2d(c, 3, 3, padding=1))
            for _ in range(config.stages + 1))
        self.eta = nn.Parameter(torch.full((config.stages + 1,), 0.5))

    def forward(self, rainy):
        if rainy.dim() != 4 or rainy.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (N, {self.config.in_channels}, H, W), got {tuple(rainy.shape)}")
        B, Bs, Rs, eB, eR = rainy, [], [], [], []
        for k, body in enumerate(self.body):
            B = B + self.eta[k] * body(B)
            Bs.append(B)
            Rs.append(rainy - B)
            eB.append(self.eta[k].expand_as(B))
            eR.append(self.eta[k].expand(B.shape[0], self.config.n_feat, *B.shape[-2:]))
        return Stages(tuple(Bs), tuple(Rs), tuple(eB), tuple(eR))


def write_pairs(root: Path, n: int = 4, size=(21, 26), seed: int = 0) -> Path:
    """``root/rain/NNNN.png`` + ``root/norain/NNNN.png``: smooth clean images plus streaks."""
    from padm.data.images import write_image

    rng = np.random.default_rng(seed)
    h, w = size
    (root / "rain").mkdir(parents=True, exist_ok=True)
    (root / "norain").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = 0.5 + 0.3 * np.sin(xx[..., None] / (3 + i) + yy[..., None] / 5 + np.arange(3) + rng.uniform(0, 6))
        streaks = (((xx + 2 * yy + i) % 7) == 0)[..., None] * 0.35
        clean = (np.clip(base, 0, 1) * 255).round().astype(np.uint8)
        rain = (np.clip(base + streaks, 0, 1) * 255).round().astype(np.uint8)
        write_image(root / "norain" / f"{i + 1:04d}.png", clean)
        write_image(root / "rain" / f"{i + 1:04d}.png", rain)
    return root
