r"""The blur operator with its exact adjoint, and the random kernels of the training degradation."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from padm.unfolding.operators import LinearOperator


class FFTBlur(LinearOperator):
    r"""Blur by per-image kernels with periodic boundaries, computed with FFTs.

    :math:`A x = k \circledast x = \mathcal{F}^{-1}(\hat k \cdot \mathcal{F}x)` and the exact adjoint
    :math:`A^\top y = \mathcal{F}^{-1}(\overline{\hat k} \cdot \mathcal{F}y)` (correlation with k).
    ``kernels``: (N, 1, kh, kw), one per image, centred (its middle pixel is the origin), applied to
    every channel of images of size ``size = (H, W)``.
    """

    def __init__(self, kernels: Tensor, size: tuple[int, int]):
        super().__init__()
        n, _, kh, kw = kernels.shape
        h, w = size
        if kh > h or kw > w:
            raise ValueError(f"kernel {kh}x{kw} larger than the image {h}x{w}")
        padded = kernels.new_zeros(n, 1, h, w)
        padded[..., :kh, :kw] = kernels
        padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))  # centre at (0, 0)
        self.size = (h, w)
        self.register_buffer("otf", torch.fft.rfft2(padded), persistent=False)  # (N, 1, H, W//2+1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.fft.irfft2(self.otf * torch.fft.rfft2(x), s=self.size)

    def adjoint(self, y: Tensor) -> Tensor:
        return torch.fft.irfft2(self.otf.conj() * torch.fft.rfft2(y), s=self.size)


def random_kernels(n: int, size: int = 9, sigma: tuple[float, float] = (0.6, 2.4),
                   generator: torch.Generator | None = None) -> Tensor:
    """Anisotropic Gaussian blur kernels (N, 1, size, size), each summing to 1.

    Standard deviations uniform in ``sigma`` (px) along a random orientation.
    """
    lo, hi = sigma
    sig = lo + (hi - lo) * torch.rand(n, 2, generator=generator)
    theta = math.pi * torch.rand(n, generator=generator)
    c, s = torch.cos(theta), torch.sin(theta)
    r = torch.arange(size, dtype=torch.float32) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")  # (size, size)
    u = c[:, None, None] * xx + s[:, None, None] * yy
    v = -s[:, None, None] * xx + c[:, None, None] * yy
    k = torch.exp(-0.5 * ((u / sig[:, 0, None, None]) ** 2 + (v / sig[:, 1, None, None]) ** 2))
    return (k / k.sum(dim=(-2, -1), keepdim=True))[:, None]


__all__ = ["FFTBlur", "random_kernels"]
