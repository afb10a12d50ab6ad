r"""The deblurring task: :math:`y = k \circledast x + n`, clean images blurred on the fly."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Sequence

import attrs
import numpy as np
import torch
from torch import Tensor

from padm.unfolding.configs import ConfigMixin, integer, number
from padm.unfolding.image_net import ImageNetConfig, Measurement, task_config
from padm.unfolding.tasks.base import Sample
from padm.unfolding.tasks.deblur.operator import FFTBlur, random_kernels
from padm.unfolding.tasks.image import ImageTask


@task_config
class DeblurConfig(ImageNetConfig):
    """The deblurring network: the generic image network, presets ``small`` and ``tiny``."""


@attrs.frozen(kw_only=True)
class BlurSettings(ConfigMixin):
    """Training degradation: a random anisotropic Gaussian kernel per image, then Gaussian noise."""

    kernel_size: int = integer(9, 1, 99)
    sigma_min: float = number(0.6, 0.01, 50)  # kernel std range, px
    sigma_max: float = number(2.4, 0.01, 50)
    noise: float = number(0.01, 0, 1)  # noise std, images in [0, 1]


class DeblurTask(ImageTask):
    name = "deblur"
    summary = "non-blind deblurring: y = k * x + n, kernels known"
    config_cls = DeblurConfig
    default_preset = "small"
    degradation_cls = BlurSettings
    aux_help = "the blur kernel: a .npy array or a greyscale image, normalised to sum 1"

    def degrade(self, clean: Tensor, seeds: Sequence[int], settings: BlurSettings) -> Sample:
        ys, ks = [], []
        for x, g in zip(clean, self.generators(seeds)):
            k = random_kernels(1, settings.kernel_size, (settings.sigma_min, settings.sigma_max), generator=g)
            y = FFTBlur(k, x.shape[-2:])(x[None].float())
            ys.append(y + settings.noise * torch.randn(y.shape, generator=g))
            ks.append(k)
        return Sample(torch.cat(ys), clean, torch.cat(ks))  # (N, C, H, W), (N, C, H, W), (N, 1, k, k)

    def inputs(self, degraded: Tensor, aux: Tensor) -> Measurement:
        return Measurement(degraded, partial(FFTBlur, aux.to(degraded)))

    def read_aux(self, path: str | Path) -> Tensor:
        path = Path(path)
        if path.suffix.lower() == ".npy":
            k = np.load(path, allow_pickle=False).astype(np.float32)
        else:
            from PIL import Image

            k = np.asarray(Image.open(path).convert("F"), dtype=np.float32)
        if k.ndim != 2 or min(k.shape) < 1 or not np.isfinite(k).all() or k.min() < 0 or k.sum() <= 0:
            raise ValueError(f"{path}: a blur kernel is a 2-D array of non-negative values, not all zero")
        return torch.from_numpy(k / k.sum())[None, None]  # (1, 1, kh, kw)
