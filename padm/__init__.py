"""padm: PADMamba (pixel-adaptive deep unfolding with state-space models) for image deraining.

Package map
-----------
padm.ops        selective scan (reference / fused CPU / CUDA), causal conv1d, Fourier fusion, pad/crop
padm.unfolding  operators with adjoints, APGD step, SFPM proximal step, the generic unrolling engine,
                the PADM network and official-checkpoint conversion
padm.data       HDF5 packing, paired datasets, rain synthesis
padm.engine     training, evaluation, inference
"""

__version__ = "0.1.0"
