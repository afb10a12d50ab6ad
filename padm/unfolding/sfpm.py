r"""SFPM: the stage-fusion proximal mapping, a learned proximal operator.

In proximal gradient descent the step after the gradient step is
:math:`x = \operatorname{prox}_{\eta\psi}(\hat x)`.  PADM replaces the proximal operator of the unknown
prior :math:`\psi` by a residual U-Net of CNN × SSM blocks:

.. math::

    x = \hat x + \mathcal{U}_k(\hat x;\; F^{k-1}_{enc}, F^{k-1}_{dec})

whose encoder fuses the previous stage's encoder features :math:`F_{enc}` (amplitude) and decoder
features :math:`F_{dec}` (phase) in the Fourier domain, so information flows between stages beyond the
image estimate itself.  The U-Net returns its own :math:`F_{enc}, F_{dec}` for the next stage.

Levels: level ``i`` has ``n_feat · 2^i`` channels at resolution ``H / 2^i``; ``depth`` levels.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn as nn
from torch import Tensor

from padm.unfolding.blocks import CAB, GDRSS, FourierFusion, conv


@attrs.frozen
class UNetFeatures:
    """Features a proximal U-Net hands to the next stage.

    ``enc[i]``: input of encoder level i (N, C·2^i, H/2^i, W/2^i), i = 0 .. depth-2  (F_enc)
    ``dec[j]``: output of decoder step j, coarse to fine: ``dec[-1]`` is level 0 (N, C, H, W)  (F_dec)
    """

    enc: tuple[Tensor, ...]
    dec: tuple[Tensor, ...]


@attrs.frozen(kw_only=True)
class BlockSpec:
    """Hyper-parameters shared by every GDRSS block of a network."""

    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    ffn_expansion: float = 2.66
    ssm: bool = True

    def block(self, c: int, dropout: float) -> GDRSS:
        return GDRSS(c, d_state=self.d_state, d_conv=self.d_conv, expand=self.expand,
                     ffn_expansion=self.ffn_expansion, dropout=dropout, ssm=self.ssm)


class EncoderLevel(nn.Module):
    """GDRSS, then (with a previous stage) Fourier fusion, then 4×4 stride-2 down-sampling to 2c."""

    def __init__(self, c: int, spec: BlockSpec, dropout: float, fusion: bool, down: bool):
        super().__init__()
        self.block = spec.block(c, dropout)
        self.fusion = FourierFusion(c) if fusion else None
        self.down = nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False) if down else None

    def forward(self, x: Tensor, enc_prev: Tensor | None, dec_prev: Tensor | None) -> Tensor:
        x = self.block(x)
        if self.fusion is not None and enc_prev is not None:
            x = self.fusion(x, enc_prev, dec_prev)
        return self.down(x) if self.down is not None else x


class DecoderLevel(nn.Module):
    """2× transposed-conv up-sampling c_in -> c_out, concatenation with the skip, 1×1 merge, GDRSS."""

    def __init__(self, c_in: int, c_out: int, spec: BlockSpec, dropout: float):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=True)
        self.merge = nn.Conv2d(2 * c_out, c_out, 1, bias=False)
        self.block = spec.block(c_out, dropout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = torch.cat([self.up(x), skip], dim=1)  # (N, 2 c_out, H, W)
        return self.block(self.merge(x))


class ProxUNet(nn.Module):
    r"""The learned proximal operator :math:`\mathcal{U}` of one stage.

    ``in_channels`` set: an image-domain net (the B-net): conv + CAB to ``n_feat`` channels first and a
    conv back to ``in_channels`` last.  ``in_channels=None``: a feature-domain net (the z-net) working on
    the ``n_feat``-channel coding map directly.  ``fusion``: fuse the previous stage's features (every
    stage but the initial one).

    Input (N, C_x, H, W) with H, W multiples of ``2^(depth-1)``; returns (residual, UNetFeatures).
    """

    def __init__(self, n_feat: int, depth: int, spec: BlockSpec, *, in_channels: int | None = None,
                 kernel_size: int = 3, fusion: bool = False, dropout_step: float = 0.1):
        super().__init__()
        self.depth = depth
        if in_channels is not None:
            self.head = nn.Sequential(conv(in_channels, n_feat, kernel_size), CAB(n_feat, kernel_size))
            self.tail = conv(n_feat, in_channels, kernel_size)
        else:
            self.head = self.tail = None
        widths = [n_feat * 2**i for i in range(depth)]
        self.encoder = nn.ModuleList(
            EncoderLevel(widths[i], spec, dropout_step * i, fusion=fusion and i < depth - 1, down=i < depth - 1)
            for i in range(depth)
        )
        self.decoder = nn.ModuleList(
            DecoderLevel(widths[depth - 1 - j], widths[depth - 2 - j], spec, dropout_step * j)
            for j in range(depth - 1)
        )

    def forward(self, x: Tensor, prev: UNetFeatures | None = None) -> tuple[Tensor, UNetFeatures]:
        if self.head is not None:
            x = self.head(x)  # (N, C, H, W)
        skips = []
        for i, level in enumerate(self.encoder):
            if i < self.depth - 1:
                skips.append(x)  # F_enc: the level's input
                x = level(x, prev.enc[i] if prev else None, prev.dec[-1 - i] if prev else None)
            else:
                x = level(x, None, None)  # bottom level: no fusion, no down-sampling
        outs = []
        for j, level in enumerate(self.decoder):
            x = level(x, skips[-1 - j])
            outs.append(x)  # F_dec, coarse to fine
        if not outs:  # depth 1: no decoder, the level-0 features are F_dec
            outs.append(x)
        out = self.tail(x) if self.tail is not None else x
        return out, UNetFeatures(enc=tuple(skips), dec=tuple(outs))


def sfpm_step(x_hat: Tensor, prox: ProxUNet, prev: UNetFeatures | None) -> tuple[Tensor, UNetFeatures]:
    r"""The proximal step :math:`x = \hat x + \mathcal{U}(\hat x; F_{enc}, F_{dec})`; returns (x, new features)."""
    residual, feats = prox(x_hat, prev)
    return x_hat + residual, feats
