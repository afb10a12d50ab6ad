"""Typed configuration of the PADM network.

One frozen ``attrs`` class holds every architectural choice; presets are named instances.  The saved
config of a run is this object serialised (:func:`attrs.asdict`), and :meth:`PADMConfig.from_dict`
reads it back, rejecting unknown keys.  Run-time settings are not here: the scan backend is chosen
with :mod:`padm.ops.backend` (checkpoints written before that still carry a ``scan_backend`` key,
which is read and ignored).
"""

from __future__ import annotations

from typing import Any

import attrs

from padm.unfolding.configs import ConfigMixin, choice, flag, integer, number


@attrs.frozen(kw_only=True)
class PADMConfig(ConfigMixin):
    """Architecture of a PADM network.

    Field names map 1:1 onto the official constructor where one exists:
    ``n_feat``, ``stages`` (``nums_stage``), ``depth`` (``n_depth``), ``kernel_size``, ``in_channels`` (``in_c``).
    The bounds (:meth:`bounds`) are far beyond the paper's model and keep a config read from a file
    buildable; the parameter count of the whole network is checked apart.
    """

    in_channels: int = integer(3, 1, 64)
    n_feat: int = integer(40, 1, 512)  # C: feature width of z and of U-Net level 0
    stages: int = integer(4, 0, 20)  # K stages after the initial one
    depth: int = integer(3, 1, 6)  # U-Net levels; depth - 1 down-samplings
    kernel_size: int = integer(3, 1, 15, odd=True)
    # Mamba mixer (mamba_ssm.Mamba defaults used by the official code)
    d_state: int = integer(16, 1, 256)
    d_conv: int = integer(4, 1, 16)
    expand: int = integer(2, 1, 8)
    ffn_expansion: float = number(2.66, 0.5, 16)
    dropout_step: float = number(0.1, 0, 1)  # dropout rate grows by this per level (training only)
    # None: derive the smallest valid multiple, 2 ** (depth - 1).  Official checkpoints need 32.
    pad_multiple: int | None = integer(None, 1, 1024, optional=True)
    share_stage_weights: bool = flag(False)  # True: one parameter set reused by every stage k = 0..K-1
    # ablation switches (all True/"pixel" = the paper's model)
    step: str = choice("pixel", ("pixel", "scalar"))
    fourier_fusion: bool = flag(True)
    ssm: bool = flag(True)

    LEGACY_FIELDS = ("scan_backend",)
    RUNTIME_FIELDS = ("dropout_step", "pad_multiple")

    def __attrs_post_init__(self):
        if self.dropout_step * (self.depth - 1) > 1:
            raise ValueError(f"dropout_step x (depth - 1) must be at most 1 (the deepest level's dropout rate), "
                             f"got {self.dropout_step} x {self.depth - 1}")
        if self.pad_multiple is not None and self.pad_multiple % 2 ** (self.depth - 1):
            raise ValueError(f"pad_multiple must be a multiple of 2 ** (depth - 1) = {2 ** (self.depth - 1)}, "
                             f"got {self.pad_multiple}")

    @property
    def padding_multiple(self) -> int:
        """Spatial multiple inputs are padded to: the configured one, or ``2 ** (depth - 1)``."""
        return self.pad_multiple if self.pad_multiple is not None else 2 ** (self.depth - 1)

    @classmethod
    def from_official(cls, kwargs: dict[str, Any]) -> "PADMConfig":
        """Config equivalent to the official ``PADM(**kwargs)`` (``img_size`` is unused there)."""
        return cls(
            in_channels=int(kwargs.get("in_c", 3)),
            n_feat=int(kwargs.get("n_feat", 40)),
            stages=int(kwargs.get("nums_stage", 4)),
            depth=int(kwargs.get("n_depth", 3)),
            kernel_size=int(kwargs.get("kernel_size", 3)),
            pad_multiple=32,
        )

    def to_official(self) -> dict[str, Any]:
        return {
            "in_c": self.in_channels,
            "n_feat": self.n_feat,
            "nums_stage": self.stages,
            "n_depth": self.depth,
            "kernel_size": self.kernel_size,
        }


PRESETS: dict[str, PADMConfig] = {
    # the paper's model, 10,677,067 parameters; official padding so official checkpoints reproduce
    "paper": PADMConfig(n_feat=40, stages=4, depth=3, pad_multiple=32),
    # CPU-trainable default model (1.1 M parameters; chosen by measured training throughput, see checkpoints/)
    "small": PADMConfig(n_feat=16, stages=2, depth=3),
    # the golden fixture's shape; for tests
    "tiny": PADMConfig(n_feat=8, stages=2, depth=3),
}
PADMConfig.PRESETS = PRESETS
