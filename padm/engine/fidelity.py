"""Optional FID/KID through torch-fidelity, with a local feature-extractor weights file only.

torch-fidelity downloads Inception weights when no path is given; padm never lets it: a weights file
is required.  torch-fidelity needs torchvision (``pip install 'padm[fid]'``); without it this module
still imports and :func:`fidelity_metrics` raises a clear :class:`UserError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from padm.data.images import read_image, to_8bit
from padm.errors import UserError

DEFAULT_EXTRACTOR = "inception-v3-compat"


class Uint8Images(Dataset):
    """Image files as uint8 tensors (3, H, W), the input torch-fidelity expects; 16-bit files are rounded."""

    def __init__(self, paths: Sequence[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        pixels = to_8bit(read_image(self.paths[i]).pixels)
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


def check_weights(weights: str | os.PathLike | None) -> Path:
    """The feature-extractor weights file, which must be given and exist."""
    if weights is None:
        raise UserError("FID/KID need --inception-weights FILE (a local weights file; padm never downloads)")
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"{weights}: feature-extractor weights file not found")
    return weights


def fidelity_kwargs(pred: Sequence[str | os.PathLike], gt: Sequence[str | os.PathLike],
                    weights: str | os.PathLike | None, *, kid: bool = True, cuda: bool = False,
                    feature_extractor: str = DEFAULT_EXTRACTOR) -> dict[str, Any]:
    """Arguments for ``torch_fidelity.calculate_metrics``: local weights, no cache, no downloads."""
    weights = check_weights(weights)
    if len(pred) < 2 or len(gt) < 2:
        raise UserError(f"FID/KID need at least 2 images per side, got {len(pred)} and {len(gt)}")
    return {
        "input1": Uint8Images(pred),
        "input2": Uint8Images(gt),
        "fid": True,
        "kid": kid,
        "kid_subset_size": min(1000, len(pred), len(gt)),
        "feature_extractor": feature_extractor,
        "feature_extractor_weights_path": str(weights),
        "batch_size": 1,  # images of different sizes; the extractor resizes each
        "cuda": cuda,
        "cache": False,
        "datasets_download": False,
        "verbose": False,
    }


def fidelity_metrics(pred: Sequence[str | os.PathLike], gt: Sequence[str | os.PathLike],
                     weights: str | os.PathLike | None, *, kid: bool = True, cuda: bool = False,
                     feature_extractor: str = DEFAULT_EXTRACTOR) -> dict[str, float]:
    """FID (and KID) between two image sets: ``{"fid": ..., "kid": ..., "kid_std": ...}``."""
    kwargs = fidelity_kwargs(pred, gt, weights, kid=kid, cuda=cuda, feature_extractor=feature_extractor)
    try:
        import torch_fidelity
    except ImportError as err:
        raise UserError(f"FID/KID need torch-fidelity and torchvision (pip install 'padm[fid]'): {err}") from None
    raw = torch_fidelity.calculate_metrics(**kwargs)
    out = {"fid": float(raw["frechet_inception_distance"])}
    if kid:
        out["kid"] = float(raw["kernel_inception_distance_mean"])
        out["kid_std"] = float(raw["kernel_inception_distance_std"])
    return out


__all__ = ["DEFAULT_EXTRACTOR", "Uint8Images", "check_weights", "fidelity_kwargs", "fidelity_metrics"]
