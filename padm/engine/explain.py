"""``padm explain IMAGE``: one figure that shows the unfolded algorithm at work, for any task.

One row per stage (the initial stage first), one column per map the task reports
(:meth:`Task.stage_maps`): estimates drawn as images, signed layers in grey, and the pixel-wise step
sizes of the APGD steps with a colour bar (averaged over channels); ``docs/unfolding.md`` §9 reads
the figure of the shipped model.  Bright step-size pixels are where the stage moved its estimate most.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from padm.engine.figures import pyplot, save_figure
from padm.errors import UserError
from padm.unfolding.tasks import StageMap


def stage_name(k: int) -> str:
    return "initial stage" if k == 0 else f"stage {k}"


def channel_mean(t: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) -> (H, W): the map the figure draws."""
    return t[0].mean(0).numpy()


def step_size_ranges(maps: dict[str, StageMap]) -> list[dict[str, tuple[float, float]]]:
    """Per stage ``{label: (min, max)}`` of every step-size map, as the figure draws it.

    The maps are averaged over channels first (as in the figure), so these are the ends of the colour
    bars: the numbers ``docs/unfolding.md`` quotes.
    """
    steps = [m for m in maps.values() if m.kind == "step"]
    stages = len(next(iter(maps.values())))
    out = []
    for k in range(stages):
        ranges = {}
        for m in steps:
            mean = channel_mean(m[k])  # (H, W)
            ranges[m.label] = (float(mean.min()), float(mean.max()))
        out.append(ranges)
    return out


def stage_figure(degraded: np.ndarray, maps: dict[str, StageMap], path: Path, title: str = "") -> None:
    """Write the per-stage figure.  ``degraded``: (H, W, 3) in [0, 1]; ``maps``: the task's stage maps."""
    columns = list(maps.values())
    stages = len(columns[0])
    fig, axes = pyplot().subplots(stages + 1, len(columns), figsize=(3 * len(columns), 2.6 * (stages + 1)),
                                  squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(degraded)
    axes[0, 0].set_title("input", fontsize=10)
    if title and len(columns) > 1:
        axes[0, 1].text(0.0, 0.5, title, fontsize=9, va="center", transform=axes[0, 1].transAxes)
    for k in range(stages):
        name = stage_name(k)
        for ax, m in zip(axes[k + 1], columns):
            ax.set_title(f"{name}: {m.label}", fontsize=9)
            if m.kind == "image":
                ax.imshow(m[k][0].permute(1, 2, 0).clamp(0, 1).numpy())
            elif m.kind == "layer":  # signed, averaged over channels, robust grey range
                layer = channel_mean(m[k])
                lo, hi = np.percentile(layer, [1, 99])
                ax.imshow(layer, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6))
            else:
                im = ax.imshow(channel_mean(m[k]), cmap="magma")
                fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
    save_figure(fig, path, dpi=90)


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="figure path (default: IMAGE's name + _stages.png in the current folder)")
@click.option("--ckpt", default=None, help="padm or foreign checkpoint (default: the shipped model)")
@click.option("--aux", "aux_path", type=click.Path(dir_okay=False), default=None,
              help="the extra input the checkpoint's task needs, as for `padm restore`")
@click.option("--max-side", default=640, show_default=True,
              help="downscale larger images to this longest side first (0: never)")
def explain(image: Path, out_path: Path | None, ckpt: str | None, aux_path: str | None, max_side: int) -> None:
    """Figure of every stage's estimates and pixel-wise step-size maps for IMAGE."""
    from padm.data.images import read_image, to_float, to_tensor
    from padm.engine.checkpoint import checkpoint_task, default_checkpoint_path, load_model
    from padm.engine.cli import _read_aux
    from padm.engine.infer import restore

    if not image.is_file():
        raise UserError(f"{image}: no such file")
    out_path = out_path or Path(f"{image.stem}_stages.png")
    if out_path.suffix.lower() != ".png":
        raise UserError(f"{out_path}: the figure is written as PNG; use a .png name")
    model, info = load_model(ckpt)
    aux = _read_aux(checkpoint_task(ckpt or default_checkpoint_path(), info), aux_path)
    pixels = read_image(image).pixels
    x = to_tensor(pixels)[None]  # (1, 3, H, W)
    h, w = x.shape[-2:]
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="area")
    maps = restore(model, x, aux=aux, stages=True)
    degraded = x[0].permute(1, 2, 0).numpy()
    title = (f"{image.name}\n{model.config.stages + 1} stages, n_feat {model.config.n_feat}\n"
             f"{x.shape[-1]}×{x.shape[-2]} px")
    stage_figure(degraded if x.shape[-2:] != (h, w) else to_float(pixels), maps, out_path, title)
    for k, ranges in enumerate(step_size_ranges(maps)):
        text = ", ".join(f"{label} {lo:.3f}–{hi:.3f}" for label, (lo, hi) in ranges.items())
        click.echo(f"{stage_name(k)}: {text} (min–max)")
    click.echo(f"wrote {out_path}")
