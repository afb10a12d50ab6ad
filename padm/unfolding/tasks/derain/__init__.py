"""Deraining: PADM (pixel-adaptive deep unfolding), its config, official checkpoints and task."""

from padm.unfolding.tasks.derain.config import PRESETS, PADMConfig
from padm.unfolding.tasks.derain.model import PADM, DerainState, UnfoldingOutput, derain_stage, init_stage
from padm.unfolding.tasks.derain.official import load_official

__all__ = ["PADM", "PADMConfig", "PRESETS", "DerainState", "UnfoldingOutput", "init_stage", "derain_stage",
           "load_official"]
