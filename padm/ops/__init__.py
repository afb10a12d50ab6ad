"""Numerical building blocks: the selective scan and causal conv1d (several backends), Fourier
amplitude/phase fusion, and the pad/crop helper."""
