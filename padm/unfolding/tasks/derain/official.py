"""Official PADMamba checkpoints <-> padm.

The authors' code (BasicSR layout) saves ``{"params": state_dict}`` with one flat namespace of module
names (``init_updateB``, ``proxNet_B.k``, ``etaB_S.k``, ...).  padm groups the same tensors by stage
(``init.*``, ``stages.params.k.*``) and by role.  The mapping is a list of name rules applied in order;
:func:`to_official` applies the inverse rules, so a round trip is the identity on names and tensors.

Everything is loaded with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from padm.errors import UserError
from padm.unfolding.tasks.derain.config import PADMConfig

# (official top-level prefix, padm prefix); "{k}" is a stage index
_TOP = [
    ("init_etaB.", "init.eta_B."),
    ("init_etaR.", "init.eta_z."),
    ("init_updateB.", "init.prox_B."),
    ("init_updateR.", "init.prox_z."),
    ("get_z0.", "init.to_z."),
    ("d0.", "init.op.d."),
    ("dt0.", "init.op.dt."),
    ("get_R0.", "init.to_R."),
    ("etaB_S.{k}.", "stages.params.{k}.eta_B."),
    ("etaR_S.{k}.", "stages.params.{k}.eta_z."),
    ("proxNet_B.{k}.", "stages.params.{k}.prox_B."),
    ("proxNet_R.{k}.", "stages.params.{k}.prox_z."),
    ("d_S.{k}.", "stages.params.{k}.op.d."),
    ("dt_S.{k}.", "stages.params.{k}.op.dt."),
    ("get_RS.{k}.", "stages.params.{k}.to_R."),
]
# inside a proximal U-Net; the official names differ between the initial stage and the others
def _unet_rules(enc: str, dec: str, head: str, tail: str) -> list[tuple[str, str]]:
    return [
        (head, "head."),
        (f"{enc}.body.{{k}}.RSSB.", "encoder.{k}.block."),
        (f"{enc}.body.{{k}}.", "encoder.{k}."),
        (f"{dec}.body.{{k}}.conv_block.RSSB.", "decoder.{k}.block."),
        (f"{dec}.body.{{k}}.conv.", "decoder.{k}.merge."),
        (f"{dec}.body.{{k}}.", "decoder.{k}."),
        (tail, "tail."),
    ]


_UNET_INIT = _unet_rules("init_encoder", "init_decoder", "shallow_encoder.", "shallow_decoder.")
_UNET_STAGE = _unet_rules("stage_encoder", "stage_decoder", "shallow_encoder1.", "shallow_decoder1.")
# inside encoder/decoder levels, GDRSS blocks, Fourier fusion and step nets
_INNER = [
    ("FFT_INT.", "fusion."),
    ("downsample.", "down."),
    ("x_amp_fuse.0.", "amp."),
    ("x_pha_fuse.0.", "pha."),
    ("patch_embed.norm.", "token_norm."),
    ("mamba.residual_group.blocks.0.mixer.", "mixer."),
    ("mamba.residual_group.blocks.0.norm.", "mixer_norm."),
    ("norm1.body.", "norm1."),
    ("norm2.body.", "norm2."),
    ("dwcon.", "local."),
    ("conv1.", "out."),
]


def _rx(prefix: str) -> str:
    return re.escape(prefix).replace(r"\{k\}", r"(?P<k>\d+)")


def _swap(name: str, rules, forward: bool) -> tuple[str, str] | None:
    """Match ``name`` against the rules' source prefixes; return (replaced prefix, rest)."""
    for official, ours in rules:
        src, dst = (official, ours) if forward else (ours, official)
        m = re.match(_rx(src), name)
        if m:
            k = m.groupdict().get("k")
            return (dst.replace("{k}", k) if k is not None else dst), name[m.end():]
    return None


def _convert_inner(rest: str, forward: bool) -> str:
    out = ""
    while True:
        hit = _swap(rest, _INNER, forward)
        if hit is None:
            # copy one dotted component (e.g. a level index or "body") and continue
            head, dot, tail = rest.partition(".")
            if not dot:
                return out + rest
            out, rest = out + head + ".", tail
            continue
        prefix, rest = hit
        out += prefix


def _convert(name: str, forward: bool) -> str:
    hit = _swap(name, _TOP, forward)
    if hit is None:
        raise KeyError(name)
    prefix, rest = hit
    is_unet = ("update" in prefix or "proxNet" in prefix) if not forward else (".prox_" in prefix)
    if is_unet:
        in_init = prefix.startswith("init") if forward else prefix.startswith("init_")
        rules = _UNET_INIT if in_init else _UNET_STAGE
        hit = _swap(rest, rules, forward)
        if hit is None:
            raise KeyError(name)
        prefix2, rest = hit
        prefix += prefix2
    return prefix + _convert_inner(rest, forward)


def official_to_padm_name(name: str) -> str:
    return _convert(name, forward=True)


def padm_to_official_name(name: str) -> str:
    return _convert(name, forward=False)


def is_official(state_dict: Mapping[str, Tensor]) -> bool:
    """True for a state dict in the official naming (``init_updateB.*`` ...)."""
    return any(k.startswith("init_updateB.") for k in state_dict)


def from_official(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official state dict -> padm state dict (same tensors, padm names)."""
    out = {}
    for name, value in state_dict.items():
        try:
            out[official_to_padm_name(name)] = value
        except KeyError:
            raise UserError(f"unexpected key in official checkpoint: {name}") from None
    return out


def to_official(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """padm state dict -> official naming (for use with the authors' code)."""
    return {padm_to_official_name(name): value for name, value in state_dict.items()}


def infer_official_config(state_dict: Mapping[str, Tensor]) -> PADMConfig:
    """Recover the official constructor arguments from tensor shapes."""
    try:
        n_feat, in_c, k, _ = state_dict["get_z0.0.weight"].shape
    except KeyError:
        raise UserError("not an official PADM state dict (no get_z0.0.weight)") from None
    stages = len({m.group(1) for key in state_dict if (m := re.match(r"proxNet_B\.(\d+)\.", key))})
    depth = len({m.group(1) for key in state_dict if (m := re.match(r"init_updateB\.init_encoder\.body\.(\d+)\.", key))})
    return PADMConfig.from_official(
        {"n_feat": n_feat, "in_c": in_c, "kernel_size": k, "nums_stage": stages, "n_depth": depth}
    )


def load_official(source: str | Path | Mapping[str, Tensor]) -> tuple[PADMConfig, dict[str, Tensor]]:
    """Read an official checkpoint (path, ``{"params": sd}`` or a bare state dict).

    Returns the equivalent :class:`PADMConfig` and the state dict in padm naming.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"checkpoint not found: {path}")
        try:
            source = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # corrupt file, pickle with code, ...
            raise UserError(f"cannot read checkpoint {path}: {err}") from None
    sd = source
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
            break
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if not is_official(sd):
        raise UserError("not an official PADM checkpoint (no init_updateB.* keys)")
    return infer_official_config(sd), from_official(sd)


def save_official(state_dict: Mapping[str, Tensor], path: str | Path) -> None:
    """Write a padm state dict as an official ``{"params": ...}`` checkpoint."""
    torch.save({"params": to_official(state_dict)}, path)


__all__ = [
    "official_to_padm_name",
    "padm_to_official_name",
    "is_official",
    "from_official",
    "to_official",
    "infer_official_config",
    "load_official",
    "save_official",
]
