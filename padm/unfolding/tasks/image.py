"""What every task on the generic image network (:mod:`padm.unfolding.image_net`) shares: the network,
its deep supervision (every stage's estimate against the clean image) and its per-stage maps.
A subclass names its config and degradation and, where the operator is not the identity, ``inputs``."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from padm.unfolding.image_net import ImageOutput, ImageUnfolding, Measurement
from padm.unfolding.operators import Identity
from padm.unfolding.tasks.base import Sample, StageMap, Task

IDENTITY = Identity()


class ImageTask(Task):
    data = "clean"

    def build(self, config) -> nn.Module:
        return ImageUnfolding(config)

    def inputs(self, degraded: Tensor, aux: Any = None) -> Measurement:
        return Measurement(degraded, lambda size: IDENTITY)  # A = Id unless a subclass says otherwise

    def supervision(self, out: ImageOutput, sample: Sample):
        return [("x", out.x, sample.clean.float())]

    def predict(self, out: ImageOutput) -> Tensor:
        return out.x[-1]

    def stage_maps(self, out: ImageOutput) -> list[StageMap]:
        return [StageMap("x", "x (estimate)", "image", tuple(out.x)),
                StageMap("eta", "step size on x", "step", tuple(out.eta))]


__all__ = ["ImageTask"]
