"""PSNR and SSIM exactly as the deraining papers' MATLAB scripts compute them.

Three protocols (see ``docs/engine.md``):

``uint8Y`` (default; the paper's table; ``evaluate_PSNR_SSIM.m`` of MPRNet/Restormer/DRSformer/PADM)
    Images as uint8; ``Y = rgb2ycbcr(uint8)`` rounded to uint8 (MATLAB rounds halves away from zero);
    PSNR with peak 255; SSIM of Wang et al. 2004 (``ssim_index.m``): 11×11 Gaussian window σ 1.5,
    K = (0.01, 0.03), L = 255, 'valid' filtering, mean of the map.
``doubleY`` (DID-Data, DDN-Data; ``statistic.m`` of PReNet/RCDNet)
    Images read as uint8 then ``im2double``; Y in double, **not rounded**, in [16, 235] / 255; PSNR with
    peak 1 (MATLAB ``psnr`` on double); SSIM on ``Y*255`` (values in [16, 235], unrounded) with the
    ``ssim_index.m`` settings above.  (``statistic.m`` calls ``ssim(Y*255, Yref*255)``; MATLAB's
    built-in ``ssim`` would use replicate padding and, for double input, ``DynamicRange = 1``, which
    gives far lower values (0.748 instead of 0.844 on the shipped training inputs) than the input
    SSIMs papers report, so the ``*255`` was written for Wang's L = 255 function.  The built-in variant
    stays available as ``ssim(..., padding="replicate", data_range=1)``.)
``rgb``
    PSNR over all RGB values (peak 255 on uint8 values), SSIM per channel (``ssim_index.m`` settings), averaged.

Every protocol scores *quantised* images: floats are rounded to the bit depth an image file would have,
because the published numbers score saved files.  All arithmetic is float64.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# MATLAB rgb2ycbcr, row Y, for RGB in [0, 1]: Y in [16, 235]
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


@attrs.frozen
class Protocol:
    """How one benchmark family scores an image pair."""

    name: str
    channel: str  # "y" or "rgb"
    round_y: bool  # Y rounded to uint8 (MATLAB rgb2ycbcr on uint8 images)
    psnr_peak: float  # peak in the unit the PSNR is computed in
    psnr_scale: float  # the scored values are Y (or RGB·255) divided by this before the PSNR
    ssim_padding: str  # "valid" (ssim_index.m) or "replicate" (MATLAB's built-in ssim)
    ssim_range: float  # L in C1 = (K1·L)², C2 = (K2·L)²


PROTOCOLS: dict[str, Protocol] = {
    "uint8Y": Protocol("uint8Y", "y", True, 255.0, 1.0, "valid", 255.0),
    "doubleY": Protocol("doubleY", "y", False, 1.0, 255.0, "valid", 255.0),
    "rgb": Protocol("rgb", "rgb", False, 255.0, 1.0, "valid", 255.0),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown metric protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None


def quantize(x: Tensor, bit_depth: int = 8) -> Tensor:
    """Round a float image in [0, 1] to the integer levels a ``bit_depth`` file holds, back in [0, 1] (float64)."""
    peak = float(2**bit_depth - 1)
    return torch.round(x.double().clamp(0, 1) * peak) / peak


def rgb_to_y(rgb: Tensor) -> Tensor:
    """MATLAB ``rgb2ycbcr`` luma of RGB in [0, 1] (..., 3, H, W) -> (..., 1, H, W) in [16, 235], float64."""
    rgb = rgb.double()
    w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=rgb.device).view(3, 1, 1)
    return _Y_OFFSET + (rgb * w).sum(dim=-3, keepdim=True)


def _matlab_round(x: Tensor) -> Tensor:
    """MATLAB ``round`` for non-negative values: halves go up (torch.round would go to even)."""
    return torch.floor(x + 0.5)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> Tensor:
    """``fspecial('gaussian', size, sigma)``: normalised 2-D Gaussian (size, size)."""
    r = (size - 1) / 2
    t = torch.arange(size, dtype=dtype, device=device) - r
    g = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_window_1d(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> Tensor:
    """The 1-D factor of :func:`gaussian_window` (its outer product with itself is the 2-D window)."""
    t = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: Tensor, b: Tensor, *, data_range: float = 255.0, padding: str = "valid",
         window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Mean SSIM of single-channel images ``a``, ``b`` (N, 1, H, W) -> (N,), float64.

    ``padding="valid"``: the map covers only windows inside the image (``ssim_index.m``); images smaller
    than the window give NaN (MATLAB returns -Inf).  ``"replicate"``: edge-replicated, the map has the
    image size (MATLAB's built-in ``ssim``).
    """
    a, b = a.double(), b.double()
    if padding not in ("valid", "replicate"):
        raise ValueError(f"unknown SSIM padding {padding!r}")
    if padding == "valid" and min(a.shape[-2:]) < window:
        return torch.full((a.shape[0],), math.nan, dtype=torch.float64)
    # the five local moments, filtered with the separable Gaussian (rows, then columns)
    n = a.shape[0]
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1).reshape(n * 5, 1, *a.shape[-2:])
    if padding == "replicate":
        p = window // 2
        stack = F.pad(stack, (p, p, p, p), mode="replicate")
    g1 = gaussian_window_1d(window, sigma, device=a.device)
    moments = F.conv2d(F.conv2d(stack, g1.view(1, 1, 1, window)), g1.view(1, 1, window, 1))
    moments = moments.view(n, 5, *moments.shape[-2:])
    mu_a, mu_b, aa, bb, ab = moments.unbind(1)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1)


def psnr(a: Tensor, b: Tensor, peak: float) -> Tensor:
    """PSNR per image over all values of (N, C, H, W) -> (N,), float64 (inf for identical images)."""
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak**2 / mse)


def _scored(x: Tensor, protocol: Protocol, bit_depth: int) -> Tensor:
    """The values a protocol scores, from float RGB in [0, 1] (N, 3, H, W)."""
    depth = 8 if protocol.round_y else bit_depth  # uint8Y: outputs are saved as uint8 whatever the source
    x = quantize(x, depth)
    if protocol.channel == "rgb":
        return x * 255.0
    y = rgb_to_y(x)
    return _matlab_round(y) if protocol.round_y else y


def score(pred: Tensor, gt: Tensor, protocol: str | Protocol = "uint8Y", bit_depth: int = 8) -> tuple[Tensor, Tensor]:
    """PSNR and SSIM per image of float RGB batches in [0, 1] (N, 3, H, W) -> ((N,), (N,)), float64.

    Both images are first quantised to ``bit_depth`` (uint8 for ``uint8Y``), as saved files would be.
    """
    p = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if pred.shape != gt.shape or pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"pred and gt must both be (N, 3, H, W); got {tuple(pred.shape)} and {tuple(gt.shape)}")
    a, b = _scored(pred, p, bit_depth), _scored(gt, p, bit_depth)
    psnr_val = psnr(a / p.psnr_scale, b / p.psnr_scale, p.psnr_peak)
    n, c = a.shape[:2]
    per_channel = ssim(a.reshape(n * c, 1, *a.shape[-2:]), b.reshape(n * c, 1, *b.shape[-2:]),
                       data_range=p.ssim_range, padding=p.ssim_padding)
    return psnr_val, per_channel.view(n, c).mean(1)


def score_arrays(pred: np.ndarray, gt: np.ndarray, protocol: str = "uint8Y", bit_depth: int = 8) -> tuple[float, float]:
    """:func:`score` of one pair of float (H, W, 3) arrays in [0, 1]."""
    to_t = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).permute(2, 0, 1)[None]  # noqa: E731
    p, s = score(to_t(pred), to_t(gt), protocol, bit_depth)
    return float(p[0]), float(s[0])


__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "quantize", "rgb_to_y", "gaussian_window", "gaussian_window_1d", "ssim", "psnr",
           "score", "score_arrays"]
