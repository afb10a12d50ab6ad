"""Non-blind deblurring: y = k ⊛ x + n with an exact FFT blur operator, on the generic image network."""

from padm.unfolding.tasks.deblur.operator import FFTBlur, random_kernels
from padm.unfolding.tasks.deblur.task import BlurSettings, DeblurConfig, DeblurTask

__all__ = ["FFTBlur", "random_kernels", "BlurSettings", "DeblurConfig", "DeblurTask"]
