"""Gaussian denoising on the generic image network (the walk-through of docs/tasks.md)."""

from padm.unfolding.tasks.denoise.task import DenoiseConfig, DenoiseTask, NoiseSettings

__all__ = ["DenoiseConfig", "DenoiseTask", "NoiseSettings"]
