r"""Denoising: :math:`y = x + n`, :math:`n \sim \mathcal{N}(0, \sigma^2)`; the operator is the identity.

The whole task is a config (the generic image network with presets of its own), the noise settings,
and the degradation; the network, loss terms and stage maps come from
:class:`~padm.unfolding.tasks.image.ImageTask`.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import torch
from torch import Tensor

from padm.unfolding.configs import ConfigMixin, number
from padm.unfolding.image_net import ImageNetConfig, task_config
from padm.unfolding.tasks.base import Sample
from padm.unfolding.tasks.image import ImageTask


@task_config
class DenoiseConfig(ImageNetConfig):
    """The denoising network: the generic image network, presets ``small`` and ``tiny``."""


@attrs.frozen(kw_only=True)
class NoiseSettings(ConfigMixin):
    """σ on the 8-bit scale (25 means 25/255); with ``sigma_max``, σ ~ U(sigma, sigma_max) per image."""

    sigma: float = number(25.0, 0, 255)
    sigma_max: float | None = number(None, 0, 255, optional=True)


class DenoiseTask(ImageTask):
    name = "denoise"
    summary = "Gaussian denoising: y = x + n, A = Id"
    config_cls = DenoiseConfig
    default_preset = "small"
    degradation_cls = NoiseSettings

    def degrade(self, clean: Tensor, seeds: Sequence[int], settings: NoiseSettings) -> Sample:
        noisy = []
        for x, g in zip(clean, self.generators(seeds)):  # (C, H, W), one generator per image
            sigma = settings.sigma
            if settings.sigma_max is not None:  # blind denoising: a noise level per image
                sigma += (settings.sigma_max - sigma) * float(torch.rand((), generator=g))
            noisy.append(x + sigma / 255.0 * torch.randn(x.shape, generator=g))
        return Sample(torch.stack(noisy), clean)
