r"""What a restoration task tells the engine, and nothing more.

A **task** is one inverse problem solved by an unfolded network: deraining, deblurring, denoising, or
yours.  :mod:`padm.engine` (training, checkpoints, validation, ``padm eval``, ``padm restore``) takes a
:class:`Task` and knows nothing else about the problem.  A task says

=======================  =====================================================================
``config_cls``           the typed network config (an ``attrs`` class with :class:`ConfigMixin`)
``degradation_cls``      typed settings of the degradation (noise level, kernels, ...)
``data``                 ``"pairs"``: degraded/clean pairs from disk; ``"clean"``: clean images,
                         degraded on the fly by :meth:`Task.degrade` with a seeded generator
``build(config)``        the network; ``network(inputs) -> output`` with every stage's estimate
``inputs(y, aux)``       the network's input from a degraded batch (and its per-image ``aux``)
``supervision(out, s)``  what each stage is compared with: ``[(name, per-stage estimates, target)]``
``predict(out)``         the restored image (the last stage's estimate)
``stage_maps(out)``      every stage's maps, for ``--stages`` and ``padm explain``
``protocol``             the PSNR/SSIM protocol of validation and ``padm eval``
=======================  =====================================================================

The engine's loss is the deep-supervised L1 over ``supervision`` plus an FFT term on the first entry
(:func:`padm.engine.losses.unfolding_loss`), the same loop for every task.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor, nn

from padm.unfolding.configs import ConfigMixin


@attrs.frozen(kw_only=True)
class NoDegradation(ConfigMixin):
    """Degradation settings of a task that reads degraded/clean pairs from disk: none."""


@attrs.frozen
class Sample:
    """A batch the engine hands to a task: degraded images, their clean targets, per-image extras."""

    degraded: Tensor  # (N, C, H, W) in [0, 1]
    clean: Tensor | None  # (N, C, H, W), None where no ground truth exists
    aux: Any = None  # what the operator needs besides the image (e.g. blur kernels (N, 1, k, k))

    def to(self, device) -> "Sample":
        def move(t):
            return t.to(device, non_blocking=True) if isinstance(t, Tensor) else t

        return Sample(move(self.degraded), move(self.clean), move(self.aux))


@attrs.frozen
class StageMap:
    """One kind of per-stage map: ``kind`` is ``image`` (RGB), ``layer`` (signed, drawn grey) or
    ``step`` (non-negative step sizes, drawn with a colour bar)."""

    name: str  # file/key name, e.g. "B", "eta_z"
    label: str  # figure title, e.g. "B (background)"
    kind: str
    maps: tuple[Tensor, ...]  # K+1 maps (N, C, H, W), initial stage first

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, k):
        return self.maps[k]

    def __iter__(self):
        return iter(self.maps)


def sample_seeds(seed: int, names: Sequence[str]) -> list[int]:
    """One integer seed per image name: a pure function of (seed, name), independent of order."""
    return [(int(seed) * 1_000_003 + zlib.crc32(str(n).encode())) % 2**63 for n in names]


class Task:
    """Base class of a restoration task (see the module docstring); subclasses fill in the hooks."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_cls: ClassVar[type]
    default_preset: ClassVar[str]
    degradation_cls: ClassVar[type] = NoDegradation
    data: ClassVar[str] = "pairs"
    protocol: ClassVar[str] = "rgb"
    aux_help: ClassVar[str] = ""  # what `padm restore --aux FILE` reads for this task ("" = nothing)

    def build(self, config) -> nn.Module:
        raise NotImplementedError

    def degrade(self, clean: Tensor, seeds: Sequence[int], settings) -> Sample:
        """Degrade clean images (N, C, H, W); image i draws its randomness from ``seeds[i]`` alone."""
        raise NotImplementedError(f"task {self.name!r} reads degraded images from disk")

    def make_sample(self, batch: dict[str, Any], settings) -> Sample:
        """A :class:`Sample` from a data batch: ``{"rain", "clean"}`` pairs as they are, or ``{"clean",
        "seed"}`` images degraded here (one seed per image, so a resumed run degrades identically)."""
        if self.data == "pairs":
            return Sample(batch["rain"], batch["clean"])
        seeds = batch["seed"]
        return self.degrade(batch["clean"], seeds.tolist() if isinstance(seeds, Tensor) else list(seeds), settings)

    def item_sample(self, item: dict[str, Any], settings) -> Sample:
        """:meth:`make_sample` of one dataset item (a batch of one)."""
        return self.make_sample({k: v[None] if isinstance(v, Tensor) else [v] for k, v in item.items()}, settings)

    def inputs(self, degraded: Tensor, aux: Any = None) -> Any:
        """What the network takes for a degraded batch (default: the batch itself)."""
        return degraded

    def supervision(self, out, sample: Sample) -> list[tuple[str, Sequence[Tensor], Tensor]]:
        raise NotImplementedError

    def predict(self, out) -> Tensor:
        raise NotImplementedError

    def stage_maps(self, out) -> list[StageMap]:
        raise NotImplementedError

    def read_foreign(self, obj: Any) -> tuple[Any, dict[str, Tensor]] | None:
        """(config, state dict) of a checkpoint in another code base's format, or None if not one."""
        return None

    def read_aux(self, path) -> Any:
        """The per-image extra ``padm restore --aux FILE`` passes (tasks with ``aux_help`` only)."""
        raise ValueError(f"task {self.name!r} takes no --aux input")

    def needs_aux(self) -> bool:
        return bool(self.aux_help)

    # helpers for subclasses -----------------------------------------------------------------------------

    @staticmethod
    def generators(seeds: Sequence[int]) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(int(s)) for s in seeds]

__all__ = ["ConfigMixin", "NoDegradation", "Sample", "StageMap", "Task", "sample_seeds"]
