"""Inference: whole images or overlapping tiles blended back together.

Tiling bounds memory: the network sees ``tile × tile`` windows (stride ``tile − overlap``); each tile's
output is weighted by a window that is 0 in the outer quarter of the overlap on sides shared with a
neighbour, ramps linearly across the middle half, and is 1 elsewhere (sides on the image border keep
weight 1); the weighted sum is divided by the summed weights.  Consequence: for a network whose
receptive field has radius ``r <= overlap // 4`` and that pads like the whole-image pass, the tiled
result equals the untiled one up to float rounding (a convex mix of exact values).  The unfolding
networks are *not* such networks: their scan runs over whole rows and their channel attention and
Fourier fusion pool over the whole (padded) input, so tiles differ from the whole image;
``docs/engine.md`` gives the measured difference.  Images no larger than one tile run untiled, exactly.

:func:`restore` works for every task: the task turns the degraded batch (and its per-image ``aux``,
such as a kernel) into the network's input and picks the restored image (or every stage's maps)
out of its output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from padm.ops.padding import padded_size
from padm.unfolding.tasks import StageMap, task_of


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``; the last tile is shifted to end at the border."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(n: int, overlap: int, device) -> Tensor:
    """Rising blend weights over the first ``overlap`` of ``n`` samples (then 1)."""
    d = torch.arange(n, dtype=torch.float32, device=device)
    if overlap <= 0:
        return torch.ones(n, device=device)
    margin = overlap // 4
    width = max(overlap - 2 * margin, 1)
    return ((d - margin + 0.5) / width).clamp(0, 1)


def _axis_weight(start: int, size: int, length: int, overlap: int, device) -> Tensor:
    w = torch.ones(size, device=device)
    if start > 0:  # a neighbour on the left/top
        w = w * _ramp(size, overlap, device)
    if start + size < length:  # a neighbour on the right/bottom
        w = w * _ramp(size, overlap, device).flip(0)
    return w


def tiled_apply(fn: Callable[[Tensor], Sequence[Tensor]], x: Tensor, tile: int, overlap: int,
                progress: bool = False) -> list[Tensor]:
    """Apply ``fn`` (image batch -> sequence of same-size maps (N, C_i, h, w)) tile by tile and blend.

    Outputs are accumulated in float32 on the CPU, so device memory only ever holds one tile.
    """
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile; got tile={tile}, overlap={overlap}")
    n, _, h, w = x.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    acc: list[Tensor] | None = None
    wsum = torch.zeros(1, 1, h, w)
    bar = tqdm(total=len(ys) * len(xs), desc="tiles", leave=False, disable=not progress)
    for y0 in ys:
        th = min(tile, h)
        wy = _axis_weight(y0, th, h, overlap, "cpu")
        for x0 in xs:
            tw = min(tile, w)
            weight = (wy[:, None] * _axis_weight(x0, tw, w, overlap, "cpu")[None, :])[None, None]
            outs = fn(x[..., y0:y0 + th, x0:x0 + tw])
            if acc is None:
                acc = [torch.zeros(n, o.shape[1], h, w) for o in outs]
            for a, o in zip(acc, outs):
                a[..., y0:y0 + th, x0:x0 + tw] += o.float().cpu() * weight
            wsum[..., y0:y0 + th, x0:x0 + tw] += weight
            bar.update()
    bar.close()
    assert acc is not None
    return [a / wsum for a in acc]


PRECISIONS = ("fp32", "bf16")


def cpu_bf16_supported() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX-512 bf16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision(name: str, device: str | torch.device = "cpu"):
    """Context in which the network runs at inference: ``fp32`` (exact) or ``bf16`` (autocast; the FFTs,
    the scan's state and the outputs stay float32).  On a device without bf16 support it is float32."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    device = torch.device(device)
    if name == "fp32" or (device.type == "cpu" and not cpu_bf16_supported()):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.inference_mode()
def restore(model: nn.Module, degraded: Tensor, *, aux: Any = None, tile: int | None = None, overlap: int = 64,
            stages: bool = False, progress: bool = False) -> Tensor | dict[str, StageMap]:
    """Restore a float batch (N, C, H, W) in [0, 1] on the model's device; result on the CPU, float32.

    ``aux``: what the task's operator needs besides the image (e.g. a kernel), the same for
    every tile.  ``tile``: tile size (rounded up to the model's padding multiple) or ``None`` for the
    whole image.  Returns the restored image clamped to [0, 1], or with ``stages`` the task's stage
    maps ``{name: StageMap}`` (each a sequence of stages 0..K, unclamped, on the CPU; for PADM ``B``,
    ``R``, ``eta_B``, ``eta_z``).
    """
    device = next(model.parameters()).device
    task = task_of(model.config)
    if aux is None and task.needs_aux():
        raise ValueError(f"task {task.name!r} needs {task.aux_help}")
    aux_dev = aux.to(device) if isinstance(aux, Tensor) else aux
    layout: list[StageMap] = []  # the task's maps of the last call, in the order fn returns them

    def fn(t: Tensor) -> list[Tensor]:
        out = model(task.inputs(t.to(device), aux_dev))
        if not stages:
            return [task.predict(out).float()]
        groups = task.stage_maps(out)
        layout[:] = groups
        return [m.float() for g in groups for m in g.maps]

    h, w = degraded.shape[-2:]
    if tile is not None and tile > 0:
        tile = padded_size(tile, model.config.padding_multiple)
    if tile is None or tile <= 0 or (h <= tile and w <= tile):
        maps = [m.float().cpu() for m in fn(degraded)]
    else:
        maps = tiled_apply(fn, degraded, tile, min(overlap, tile - 1), progress=progress)
    if not stages:
        return maps[0].clamp(0, 1)
    out, start = {}, 0
    for g in layout:
        out[g.name] = attrs.evolve(g, maps=tuple(maps[start:start + len(g)]))
        start += len(g)
    return out


__all__ = ["PRECISIONS", "cpu_bf16_supported", "precision", "tile_starts", "tiled_apply", "restore"]
