r"""Fourier amplitude/phase fusion (the stage feature fusion of the SFPM encoder).

Two feature maps of the previous stage carry different information: the encoder features
:math:`F_{enc}` and the decoder features :math:`F_{dec}`.  The fusion keeps the *amplitude* spectrum of
one and the *phase* spectrum of the other, each refined by a learned map on the half-spectrum grid:

.. math::

    \mathcal{A} = \phi_A\big(|\mathcal{F}(F_{enc})|\big), \qquad
    \Phi = \phi_P\big(\angle\mathcal{F}(F_{dec})\big), \qquad
    x_{rec} = \mathcal{F}^{-1}\big(\mathcal{A}\, e^{i\Phi}\big)

with :math:`\mathcal{F}` the real 2-D FFT (``norm="backward"``) and :math:`\mathcal{F}^{-1}` its inverse at
the original size.  :class:`padm.unfolding.blocks.FourierFusion` then modulates the current features
with :math:`x_{rec}`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Map = Callable[[Tensor], Tensor]


def _identity(x: Tensor) -> Tensor:
    return x


def amplitude_phase_fuse(amp_source: Tensor, phase_source: Tensor, amp_map: Map | None = None,
                         phase_map: Map | None = None) -> Tensor:
    """Recombine the amplitude of ``amp_source`` with the phase of ``phase_source``.

    Both inputs are (N, C, H, W) of the same shape; ``amp_map``/``phase_map`` act on the (N, C, H, W//2+1)
    half spectra (identity when omitted).  Returns the real (N, C, H, W) image of the fused spectrum.
    With identity maps and one source for both, it returns that source (up to rounding).
    The FFTs run in at least float32 (there is no bfloat16 FFT, and half precision loses the
    spectrum); the result comes back in the input's dtype, so the fusion also works under autocast.
    """
    if amp_source.shape != phase_source.shape:
        raise ValueError(f"sources differ in shape: {tuple(amp_source.shape)} vs {tuple(phase_source.shape)}")
    h, w = amp_source.shape[-2:]
    dtype = amp_source.dtype
    work = torch.promote_types(dtype, torch.float32)
    amp = torch.fft.rfft2(amp_source.to(work), norm="backward").abs()  # (N, C, H, W//2+1)
    pha = torch.fft.rfft2(phase_source.to(work), norm="backward").angle()  # (N, C, H, W//2+1)
    amp = (amp_map or _identity)(amp).to(work)  # the maps may run in lower precision under autocast
    pha = (phase_map or _identity)(pha).to(work)
    # A e^{iΦ}, written out: the learned amplitude may be negative, which torch.polar does not allow
    spectrum = torch.complex(amp * torch.cos(pha), amp * torch.sin(pha))
    return torch.fft.irfft2(spectrum, s=(h, w), norm="backward").to(dtype)  # (N, C, H, W)


__all__ = ["amplitude_phase_fuse"]
