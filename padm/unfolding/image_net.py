r"""An unfolded network for one image under a known linear operator: the generic restoration stage.

Degradation and objective, for any linear operator :math:`A` with an adjoint:

.. math::

    y = A x + n, \qquad \min_x \tfrac12 \lVert A x - y \rVert^2 + \phi(x)

Unfolded from the same pieces as PADM, with no stage code of its own beyond the wiring: the APGD step
(:func:`padm.unfolding.apgd.apgd_step`), the SFPM step (:func:`padm.unfolding.sfpm.sfpm_step` with a
:class:`padm.unfolding.sfpm.ProxUNet`), the step-size network and the engine
(:func:`padm.unfolding.engine.unroll`, :class:`padm.unfolding.engine.StageParams`):

.. math::

    \hat x = x - S_\beta(F_{dec}) \odot A^\top (A x - y), \qquad
    x = \hat x + \mathcal{U}_k(\hat x;\, F_{enc}, F_{dec})

The operator differs per image (a blur kernel) or not at all (the identity of denoising), so it
travels with the inputs (:class:`Measurement`), not with the parameters.  Tasks: deblurring
(:mod:`padm.unfolding.tasks.deblur`, :math:`A x = k \circledast x`) and denoising
(:mod:`padm.unfolding.tasks.denoise`, :math:`A = \mathrm{Id}`).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch.nn as nn
from torch import Tensor

from padm.ops.padding import crop_to, pad_to_multiple
from padm.unfolding.apgd import apgd_step
from padm.unfolding.blocks import ScalarStep, StepNet
from padm.unfolding.engine import StageParams, unroll
from padm.unfolding.operators import LinearOperator
from padm.unfolding.sfpm import BlockSpec, ProxUNet, UNetFeatures, sfpm_step
from padm.unfolding.configs import ConfigMixin, choice, flag, integer, number


@attrs.frozen(kw_only=True)
class ImageNetConfig(ConfigMixin):
    """Architecture of an :class:`ImageUnfolding` network."""

    in_channels: int = integer(3, 1, 64)
    n_feat: int = integer(8, 1, 512)  # width of the proximal U-Net
    stages: int = integer(2, 0, 20)  # K stages after the initial one
    depth: int = integer(3, 1, 6)
    d_state: int = integer(16, 1, 256)
    ffn_expansion: float = number(2.66, 0.5, 16)
    share_stage_weights: bool = flag(False)
    step: str = choice("pixel", ("pixel", "scalar"))
    fourier_fusion: bool = flag(True)
    ssm: bool = flag(True)

    LEGACY_FIELDS = ("scan_backend",)

    @property
    def padding_multiple(self) -> int:
        return 2 ** (self.depth - 1)


def task_config(cls: type) -> type:
    """Class decorator for a task's own subclass of :class:`ImageNetConfig` (a task is found by its
    config's class): frozen attrs, with the presets ``small`` (8 features, 2 + 1 stages; minutes of
    CPU training) and ``tiny`` (for tests)."""
    cls = attrs.frozen(kw_only=True)(cls)
    cls.PRESETS = {"small": cls(n_feat=8, stages=2), "tiny": cls(n_feat=4, stages=1, depth=2, d_state=4)}
    return cls


@attrs.frozen
class Measurement:
    """The network's input: the degraded batch and how to build its operator for a (padded) size."""

    y: Tensor  # degraded images (N, C, H, W)
    operator: Callable[[tuple[int, int]], LinearOperator]  # (H', W') -> A, with its adjoint


@attrs.frozen
class ImageState:
    x: Tensor  # current estimate (N, C, H, W)
    feats: UNetFeatures  # F_enc / F_dec of the proximal net
    eta: Tensor  # step sizes this stage used (N, C, H, W)


@attrs.frozen
class ImageInputs:
    y: Tensor  # padded degraded images (N, C, H', W')
    op: LinearOperator


@attrs.frozen
class ImageOutput:
    """All K+1 stage outputs, initial stage first, cropped to the input size."""

    x: tuple[Tensor, ...]  # (N, C, H, W) each; x[-1] is the restored image
    eta: tuple[Tensor, ...]  # (N, C, H, W): the APGD step sizes


class ImageStageModules(nn.Module):
    """Parameters of one stage: the step-size net (reads y at stage 0, F_dec later) and the prox net."""

    def __init__(self, cfg: ImageNetConfig, first: bool):
        super().__init__()
        n_in = cfg.in_channels if first else cfg.n_feat
        step = StepNet if cfg.step == "pixel" else ScalarStep
        self.eta = step(n_in, cfg.in_channels)
        spec = BlockSpec(d_state=cfg.d_state, ffn_expansion=cfg.ffn_expansion, ssm=cfg.ssm)
        self.prox = ProxUNet(cfg.n_feat, cfg.depth, spec, in_channels=cfg.in_channels,
                             fusion=cfg.fourier_fusion and not first)


def image_init(inp: ImageInputs, p: ImageStageModules) -> ImageState:
    """Stage 0 from x = y: one gradient step, one proximal step."""
    eta = p.eta(inp.y)
    x_hat = apgd_step(inp.y, inp.y, inp.op, eta)
    x, feats = sfpm_step(x_hat, p.prox, None)
    return ImageState(x=x, feats=feats, eta=eta)


def image_stage(s: ImageState, inp: ImageInputs, p: ImageStageModules) -> ImageState:
    """:math:`\\hat x = x - S_\\beta(F_{dec}) \\odot A^\\top(Ax - y)`, then :math:`x = \\hat x + \\mathcal{U}(\\hat x)`."""
    eta = p.eta(s.feats.dec[-1])
    x_hat = apgd_step(s.x, inp.y, inp.op, eta)
    x, feats = sfpm_step(x_hat, p.prox, s.feats)
    return ImageState(x=x, feats=feats, eta=eta)


class ImageUnfolding(nn.Module):
    """``ImageUnfolding(cfg)(Measurement(y, operator)) -> ImageOutput``; any (N, C, H, W)."""

    def __init__(self, config: ImageNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or ImageNetConfig()
        self.init = ImageStageModules(cfg, first=True)
        self.stages = StageParams(lambda k: ImageStageModules(cfg, first=False), cfg.stages,
                                  shared=cfg.share_stage_weights)

    def forward(self, m: Measurement) -> ImageOutput:
        y = m.y
        if not isinstance(y, Tensor) or y.dim() != 4 or y.shape[1] != self.config.in_channels or 0 in y.shape:
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"expected a batch (N, {self.config.in_channels}, H, W), got {shape}")
        yp, size = pad_to_multiple(y, self.config.padding_multiple)  # (N, C, H', W')
        inputs = ImageInputs(y=yp, op=m.operator(tuple(yp.shape[-2:])))
        outs = unroll(image_init, image_stage, inputs, self.init, self.stages,
                      lambda s: (crop_to(s.x, size), crop_to(s.eta, size)))
        x, eta = zip(*outs)
        return ImageOutput(x=x, eta=eta)


__all__ = ["ImageNetConfig", "task_config", "Measurement", "ImageInputs", "ImageState", "ImageOutput", "ImageStageModules",
           "image_init", "image_stage", "ImageUnfolding"]
