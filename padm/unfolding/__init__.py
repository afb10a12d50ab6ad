"""Deep unfolding, task-free: operators with adjoints, the APGD and SFPM steps, their blocks, the
generic unrolling engine and the generic single-image network.  Tasks (deraining with PADM,
deblurring, denoising) build on these in :mod:`padm.unfolding.tasks`.
"""

from padm.unfolding.apgd import apgd_step
from padm.unfolding.engine import StageParams, unroll
from padm.unfolding.operators import Conv2dOperator, Identity, LearnedPairConv, LinearOperator, l2_grad
from padm.unfolding.sfpm import ProxUNet, sfpm_step

__all__ = ["StageParams", "unroll", "apgd_step", "sfpm_step", "ProxUNet", "LinearOperator", "Identity",
           "Conv2dOperator", "LearnedPairConv", "l2_grad"]
