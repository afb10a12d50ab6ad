r"""A second task on the same engine: non-blind image deblurring.

Degradation and objective:

.. math::

    y = k \circledast x + n, \qquad \min_x \tfrac12 \lVert y - k \circledast x \rVert^2 + \phi(x)

Unfolded exactly like deraining, from the same pieces and without copying any stage code: the blur
operator with its exact adjoint (:class:`padm.unfolding.operators.FFTBlur`), the APGD step
(:func:`padm.unfolding.apgd.apgd_step`), the SFPM step (:func:`padm.unfolding.sfpm.sfpm_step` with a
:class:`padm.unfolding.sfpm.ProxUNet`), the step-size network, and the engine
(:func:`padm.unfolding.engine.unroll`, :class:`padm.unfolding.engine.StageParams`):

.. math::

    \hat x = x - S_\beta(F_{dec}) \odot k^\top \circledast (k \circledast x - y), \qquad
    x = \hat x + \mathcal{U}_k(\hat x;\, F_{enc}, F_{dec})

Only the operator and the state differ: one image instead of a background/rain pair.  The blur kernel
differs per image, so it travels with the inputs, not with the parameters.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn as nn
from torch import Tensor

from padm.ops.padding import crop_to, pad_to_multiple
from padm.unfolding.apgd import apgd_step
from padm.unfolding.blocks import ScalarStep, StepNet
from padm.unfolding.engine import StageParams, unroll
from padm.unfolding.operators import FFTBlur, LinearOperator
from padm.unfolding.sfpm import BlockSpec, ProxUNet, UNetFeatures, sfpm_step


@attrs.frozen(kw_only=True)
class DeblurConfig:
    in_channels: int = 3
    n_feat: int = 8
    stages: int = 2
    depth: int = 3
    d_state: int = 16
    ffn_expansion: float = 2.66
    share_stage_weights: bool = False
    step: str = attrs.field(default="pixel", validator=attrs.validators.in_(("pixel", "scalar")))
    fourier_fusion: bool = True
    ssm: bool = True
    scan_backend: str = "auto"

    @property
    def padding_multiple(self) -> int:
        return 2 ** (self.depth - 1)


@attrs.frozen
class DeblurInputs:
    y: Tensor  # blurry, noisy image (N, C, H, W)
    op: LinearOperator  # A = k ⊛ ·, with its adjoint


@attrs.frozen
class DeblurState:
    x: Tensor  # current estimate (N, C, H, W)
    feats: UNetFeatures  # F_enc / F_dec of the proximal net
    eta: Tensor  # step sizes used (N, C, H, W)


def _spec(cfg: DeblurConfig) -> BlockSpec:
    return BlockSpec(d_state=cfg.d_state, ffn_expansion=cfg.ffn_expansion, ssm=cfg.ssm, scan_backend=cfg.scan_backend)


class DeblurStageModules(nn.Module):
    def __init__(self, cfg: DeblurConfig, first: bool):
        super().__init__()
        n_in = cfg.in_channels if first else cfg.n_feat  # stage 0 reads y, later stages F_dec
        step = StepNet if cfg.step == "pixel" else ScalarStep
        self.eta = step(n_in, cfg.in_channels)
        self.prox = ProxUNet(cfg.n_feat, cfg.depth, _spec(cfg), in_channels=cfg.in_channels,
                             fusion=cfg.fourier_fusion and not first)


def deblur_init(inp: DeblurInputs, p: DeblurStageModules) -> DeblurState:
    """Stage 0 from x = y."""
    eta = p.eta(inp.y)
    x_hat = apgd_step(inp.y, inp.y, inp.op, eta)
    x, feats = sfpm_step(x_hat, p.prox, None)
    return DeblurState(x=x, feats=feats, eta=eta)


def deblur_stage(s: DeblurState, inp: DeblurInputs, p: DeblurStageModules) -> DeblurState:
    eta = p.eta(s.feats.dec[-1])
    x_hat = apgd_step(s.x, inp.y, inp.op, eta)
    x, feats = sfpm_step(x_hat, p.prox, s.feats)
    return DeblurState(x=x, feats=feats, eta=eta)


class DeblurNet(nn.Module):
    """``DeblurNet(cfg)(y, kernels) -> tuple of K+1 estimates``; y (N, C, H, W), kernels (N, 1, kh, kw)."""

    def __init__(self, config: DeblurConfig | None = None):
        super().__init__()
        self.config = cfg = config or DeblurConfig()
        self.init = DeblurStageModules(cfg, first=True)
        self.stages = StageParams(lambda k: DeblurStageModules(cfg, first=False), cfg.stages,
                                  shared=cfg.share_stage_weights)

    def forward(self, y: Tensor, kernels: Tensor) -> tuple[Tensor, ...]:
        if y.dim() != 4 or y.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (N, {self.config.in_channels}, H, W), got {tuple(y.shape)}")
        # sizes that are not a multiple of the U-Net's are reflect-padded (training crops already are)
        yp, size = pad_to_multiple(y, self.config.padding_multiple, mode="reflect")
        inputs = DeblurInputs(y=yp, op=FFTBlur(kernels, yp.shape[-2:]).to(y.device))
        outs = unroll(deblur_init, deblur_stage, inputs, self.init, self.stages, lambda s: crop_to(s.x, size))
        return tuple(outs)


# ---------------------------------------------------------------------------------------------------------
# the degradation, for training and evaluation


def random_kernels(n: int, size: int = 9, generator: torch.Generator | None = None) -> Tensor:
    """Anisotropic Gaussian blur kernels (N, 1, size, size), each summing to 1.

    Standard deviations uniform in [0.6, 2.4] px along a random orientation.
    """
    sig = 0.6 + 1.8 * torch.rand(n, 2, generator=generator)
    theta = math.pi * torch.rand(n, generator=generator)
    c, s = torch.cos(theta), torch.sin(theta)
    r = torch.arange(size, dtype=torch.float32) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")  # (size, size)
    u = c[:, None, None] * xx + s[:, None, None] * yy
    v = -s[:, None, None] * xx + c[:, None, None] * yy
    k = torch.exp(-0.5 * ((u / sig[:, 0, None, None]) ** 2 + (v / sig[:, 1, None, None]) ** 2))
    return (k / k.sum(dim=(-2, -1), keepdim=True))[:, None]


def degrade(x: Tensor, kernels: Tensor, noise: float, generator: torch.Generator | None = None) -> Tensor:
    """y = k ⊛ x + n with periodic boundaries (the model's operator) and Gaussian noise of std ``noise``."""
    y = FFTBlur(kernels, x.shape[-2:])(x)
    return y + noise * torch.randn(y.shape, generator=generator).to(y)


__all__ = ["DeblurConfig", "DeblurNet", "DeblurInputs", "DeblurState", "deblur_init", "deblur_stage",
           "random_kernels", "degrade"]
