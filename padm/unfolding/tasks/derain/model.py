r"""PADM: the pixel-adaptive deep unfolding network for deraining, assembled from pure stages.

Model and objective.  A rainy image is :math:`I = B + R` with rain :math:`R = \mathcal{D}(z)`;
PADM unfolds block-coordinate proximal gradient descent on

.. math::

    \min_{B, z}\; \tfrac12 \lVert I - B - \mathcal{D}(z) \rVert^2 + \phi(B) + \psi(z)

Each stage k = 1 .. K updates the background, then the rain map (the released code's order):

.. math::

    \hat B &= B - \eta_B \odot (B - (I - R)),  &\eta_B &= S^k_{\beta,B}(F^{B}_{dec})    &\text{(APGD)}\\
    B &= \hat B + \mathcal{U}^k_B(\hat B; F^B_{enc}, F^B_{dec})                          &&&\text{(SFPM)}\\
    \hat z &= z - \eta_z \odot \mathcal{D}_k^\top(\mathcal{D}_k z - (I - B)), &\eta_z &= S^k_{\beta,z}(F^{z}_{dec}) &\text{(APGD)}\\
    z &= \hat z + \mathcal{U}^k_z(\hat z; F^z_{enc}, F^z_{dec}), \quad R = G_k(z)         &&&\text{(SFPM)}

Note the two convolutions on z, as in the official model: :math:`\mathcal{D}_k` (``op``, with its
learned transpose) appears only inside the z-gradient step, while the rain layer handed to the next
stage and to the loss is read out by a separate convolution :math:`G_k` (``to_R``).  The model
:math:`R = \mathcal{D}(z)` motivates the step; the network does not tie :math:`G_k` to
:math:`\mathcal{D}_k`.

The initial stage starts from :math:`B = I, R = 0`, takes its step sizes from the images themselves
and initialises :math:`z_0 = \mathrm{PReLU}(\mathrm{conv}(I - B))`.  The network returns every stage's
B, R and step-size maps; losses live in :mod:`padm.engine`.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn as nn
from torch import Tensor

from padm.ops.padding import crop_to, pad_to_multiple
from padm.unfolding.apgd import apgd_step
from padm.unfolding.blocks import ScalarStep, StepNet
from padm.unfolding.engine import StageParams, unroll
from padm.unfolding.operators import Identity, LearnedPairConv
from padm.unfolding.sfpm import BlockSpec, ProxUNet, UNetFeatures, sfpm_step
from padm.unfolding.tasks.derain.config import PADMConfig

IDENTITY = Identity()


@attrs.frozen
class DerainState:
    """Everything one stage hands to the next.  Shapes for batch N, C = n_feat, 3 image channels."""

    B: Tensor  # background estimate (N, 3, H, W)
    z: Tensor  # rain coding map (N, C, H, W)
    R: Tensor  # rain estimate G(z) (N, 3, H, W)
    feats_B: UNetFeatures  # F_enc / F_dec of the B proximal net
    feats_z: UNetFeatures  # F_enc / F_dec of the z proximal net
    eta_B: Tensor  # step sizes this stage used for B (N, 3, H, W)
    eta_z: Tensor  # step sizes this stage used for z (N, C, H, W)


@attrs.frozen
class UnfoldingOutput:
    """All K+1 stage outputs, initial stage first, cropped to the input size."""

    B: tuple[Tensor, ...]  # (N, 3, H, W) each; B[-1] is the derained image
    R: tuple[Tensor, ...]  # (N, 3, H, W)
    eta_B: tuple[Tensor, ...]  # (N, 3, H, W)
    eta_z: tuple[Tensor, ...]  # (N, C, H, W): the step sizes of the rain map z

    @property
    def eta_R(self) -> tuple[Tensor, ...]:
        """The old name of :attr:`eta_z` (it holds z's step sizes, not R's); kept for old callers."""
        return self.eta_z


# ------------------------------------------------------------------------------------------------------------
# parameters of one stage


def _step_net(cfg: PADMConfig, n_in: int, n_out: int) -> nn.Module:
    return StepNet(n_in, n_out) if cfg.step == "pixel" else ScalarStep(n_in, n_out)


def _block_spec(cfg: PADMConfig) -> BlockSpec:
    return BlockSpec(d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand, ffn_expansion=cfg.ffn_expansion,
                     ssm=cfg.ssm)


class StageModules(nn.Module):
    """Parameters of one unfolding stage (k >= 1)."""

    def __init__(self, cfg: PADMConfig, fusion: bool):
        super().__init__()
        c, k, spec = cfg.n_feat, cfg.kernel_size, _block_spec(cfg)
        self.eta_B = _step_net(cfg, c, cfg.in_channels)  # S_beta for B, from F_dec^B
        self.prox_B = ProxUNet(c, cfg.depth, spec, in_channels=cfg.in_channels, kernel_size=k, fusion=fusion,
                               dropout_step=cfg.dropout_step)
        self.eta_z = _step_net(cfg, c, c)  # S_beta for z, from F_dec^z
        self.op = LearnedPairConv(c, cfg.in_channels, k)  # D and its learned transpose: the z-gradient step only
        self.prox_z = ProxUNet(c, cfg.depth, spec, kernel_size=k, fusion=fusion, dropout_step=cfg.dropout_step)
        self.to_R = nn.Conv2d(c, cfg.in_channels, k, padding=k // 2, bias=False)  # R = G(z), not tied to D


class InitModules(StageModules):
    """Parameters of the initial stage: step nets read images, z is initialised from I - B, no fusion."""

    def __init__(self, cfg: PADMConfig):
        super().__init__(cfg, fusion=False)
        c, k, ch = cfg.n_feat, cfg.kernel_size, cfg.in_channels
        self.eta_B = _step_net(cfg, ch, ch)  # from I
        self.eta_z = _step_net(cfg, ch, c)  # from R_0 = I - B
        self.to_z = nn.Sequential(nn.Conv2d(ch, c, k, padding=k // 2, bias=False), nn.PReLU())


# ------------------------------------------------------------------------------------------------------------
# the two pure stage functions


def init_stage(I: Tensor, p: InitModules) -> DerainState:
    """Stage 0 from B = I, R = 0 (the APGD step on B is then the identity, kept for symmetry)."""
    eta_B = p.eta_B(I)
    B_hat = apgd_step(I, I, IDENTITY, eta_B)  # y = I - R = I
    B, feats_B = sfpm_step(B_hat, p.prox_B, None)
    R0 = I - B
    z0 = p.to_z(R0)
    eta_z = p.eta_z(R0)
    z_hat = apgd_step(z0, R0, p.op, eta_z)  # y = I - B
    z, feats_z = sfpm_step(z_hat, p.prox_z, None)
    return DerainState(B=B, z=z, R=p.to_R(z), feats_B=feats_B, feats_z=feats_z, eta_B=eta_B, eta_z=eta_z)


def derain_stage(s: DerainState, I: Tensor, p: StageModules) -> DerainState:
    """One APGD + SFPM stage on B, then on z (see the module docstring)."""
    eta_B = p.eta_B(s.feats_B.dec[-1])
    B_hat = apgd_step(s.B, I - s.R, IDENTITY, eta_B)
    B, feats_B = sfpm_step(B_hat, p.prox_B, s.feats_B)
    eta_z = p.eta_z(s.feats_z.dec[-1])
    z_hat = apgd_step(s.z, I - B, p.op, eta_z)
    z, feats_z = sfpm_step(z_hat, p.prox_z, s.feats_z)
    return DerainState(B=B, z=z, R=p.to_R(z), feats_B=feats_B, feats_z=feats_z, eta_B=eta_B, eta_z=eta_z)


# ------------------------------------------------------------------------------------------------------------
# the network


class PADM(nn.Module):
    """The PADM network: ``PADM(config)(rainy) -> UnfoldingOutput`` for any (N, in_channels, H, W)."""

    def __init__(self, config: PADMConfig | None = None):
        super().__init__()
        self.config = cfg = config if config is not None else PADMConfig()
        self.init = InitModules(cfg)
        self.stages = StageParams(lambda k: StageModules(cfg, fusion=cfg.fourier_fusion), cfg.stages,
                                  shared=cfg.share_stage_weights)

    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` with a clear message for input the network cannot take."""
        if not isinstance(x, Tensor):
            raise ValueError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D batch (N, {self.config.in_channels}, H, W), got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        if c != self.config.in_channels:
            raise ValueError(f"expected {self.config.in_channels} channels, got {c} (shape {tuple(x.shape)})")
        if n < 1 or h < 1 or w < 1:
            raise ValueError(f"empty input of shape {tuple(x.shape)}")
        dtype = next(self.parameters()).dtype
        if x.dtype != dtype:
            raise ValueError(f"input dtype {x.dtype} does not match the model's {dtype}; convert with .to({dtype})")

    def forward(self, rainy: Tensor) -> UnfoldingOutput:
        self.check_input(rainy)
        I, size = pad_to_multiple(rainy, self.config.padding_multiple)  # (N, 3, H', W')
        if I.dtype != torch.float64:  # (float64 convolutions have no fast channels-last kernels)
            # channels-last activations: faster convolutions, and the pixel sequence of the SSM blocks
            # ("b c h w -> b (h w) c") becomes a view instead of a copy
            I = I.contiguous(memory_format=torch.channels_last)

        def readout(s: DerainState) -> tuple[Tensor, ...]:
            return tuple(crop_to(t, size) for t in (s.B, s.R, s.eta_B, s.eta_z))

        outs = unroll(init_stage, derain_stage, I, self.init, self.stages, readout)
        B, R, eta_B, eta_z = zip(*outs)
        return UnfoldingOutput(B=B, R=R, eta_B=eta_B, eta_z=eta_z)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["PADM", "DerainState", "UnfoldingOutput", "init_stage", "derain_stage", "count_parameters"]
