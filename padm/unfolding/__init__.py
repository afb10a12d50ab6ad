"""Deep unfolding: operators with adjoints, the APGD and SFPM steps, the generic engine, the PADM network."""

from padm.unfolding.config import PRESETS, PADMConfig
from padm.unfolding.engine import StageParams, unroll
from padm.unfolding.model import PADM, DerainState, UnfoldingOutput, derain_stage, init_stage

__all__ = [
    "PADM",
    "PADMConfig",
    "PRESETS",
    "DerainState",
    "UnfoldingOutput",
    "StageParams",
    "unroll",
    "init_stage",
    "derain_stage",
]
