"""The deraining task: PADM on rainy/clean pairs, the official loss terms and checkpoints."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from padm.unfolding.tasks.base import Sample, StageMap, Task
from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.tasks.derain.model import PADM, UnfoldingOutput


class DerainTask(Task):
    name = "derain"
    summary = "remove rain streaks: I = B + R, PADM on rainy/clean pairs"
    config_cls = PADMConfig
    default_preset = "small"
    data = "pairs"
    protocol = "uint8Y"  # the paper's table (Rain200L/H, SPA)

    def build(self, config: PADMConfig) -> nn.Module:
        return PADM(config)

    def supervision(self, out: UnfoldingOutput, sample: Sample) -> list[tuple[str, Any, Tensor]]:
        """Official deep supervision: every B_j against the clean image, every R_j against I − B^gt."""
        clean = sample.clean.float()
        return [("B", out.B, clean), ("R", out.R, sample.degraded.float() - clean)]

    def predict(self, out: UnfoldingOutput) -> Tensor:
        return out.B[-1]

    def stage_maps(self, out: UnfoldingOutput) -> list[StageMap]:
        return [StageMap("B", "B (background)", "image", tuple(out.B)),
                StageMap("R", "R (rain)", "layer", tuple(out.R)),
                StageMap("eta_B", "step size on B", "step", tuple(out.eta_B)),
                StageMap("eta_z", "step size on z", "step", tuple(out.eta_z))]

    def read_foreign(self, obj: Any):
        """Official BasicSR checkpoints (``{"params": state_dict}``) -> (PADMConfig, padm state dict)."""
        from padm.unfolding.tasks.derain import official

        state = obj.get("params", obj.get("params_ema", obj)) if isinstance(obj, dict) else None
        if not isinstance(state, dict) or not state or not official.is_official(state):
            return None
        return official.load_official(obj)
