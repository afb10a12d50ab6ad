"""``padm explain IMAGE``: one figure that shows the unfolded algorithm at work.

One row per stage (the initial stage first): the background estimate ``B_k``, the rain estimate
``R_k``, and the pixel-wise step sizes of the APGD steps on B (``eta_B``, averaged over colour
channels) and on the rain map z (``eta_z``, averaged over its feature channels).  Bright step-size
pixels are where the stage moved its estimate most: on rain streaks, if the model learnt what the
paper claims.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from padm.engine.figures import pyplot, save_figure
from padm.errors import UserError


def stage_name(k: int) -> str:
    return "initial stage" if k == 0 else f"stage {k}"


def channel_mean(t: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) -> (H, W): the map the figure draws."""
    return t[0].mean(0).numpy()


def step_size_ranges(maps: dict[str, list[torch.Tensor]]) -> list[tuple[float, float, float, float]]:
    """Per stage ``(min eta_B, max eta_B, min eta_z, max eta_z)`` of the maps the figure draws.

    The maps are averaged over channels first (as in the figure), so these are the ends of the colour
    bars: the numbers ``docs/unfolding.md`` quotes.  ``maps``: lists of (1, C, H, W).
    """
    out = []
    for eta_B, eta_z in zip(maps["eta_B"], maps["eta_R"]):
        b, z = channel_mean(eta_B), channel_mean(eta_z)  # (H, W)
        out.append((float(b.min()), float(b.max()), float(z.min()), float(z.max())))
    return out


def stage_figure(rainy: np.ndarray, maps: dict[str, list[torch.Tensor]], path: Path, title: str = "") -> None:
    """Write the per-stage figure.  ``rainy``: (H, W, 3) in [0, 1]; ``maps``: lists of (1, C, H, W)."""
    stages = len(maps["B"])
    fig, axes = pyplot().subplots(stages + 1, 4, figsize=(12, 2.6 * (stages + 1)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(rainy)
    axes[0, 0].set_title("rainy input I", fontsize=10)
    if title:
        axes[0, 1].text(0.0, 0.5, title, fontsize=9, va="center", transform=axes[0, 1].transAxes)
    for k in range(stages):
        row = axes[k + 1]
        B = maps["B"][k][0].permute(1, 2, 0).clamp(0, 1).numpy()
        R = channel_mean(maps["R"][k])  # rain layer, averaged over colour channels
        eta_B = channel_mean(maps["eta_B"][k])
        eta_z = channel_mean(maps["eta_R"][k])
        name = stage_name(k)
        row[0].imshow(B)
        row[0].set_title(f"{name}: B (background)", fontsize=9)
        lo, hi = np.percentile(R, [1, 99])
        row[1].imshow(R, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6))
        row[1].set_title(f"{name}: R (rain)", fontsize=9)
        for ax, m, label in ((row[2], eta_B, "step size on B"), (row[3], eta_z, "step size on z")):
            im = ax.imshow(m, cmap="magma")
            ax.set_title(f"{name}: {label}", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
    save_figure(fig, path, dpi=90)


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="figure path (default: IMAGE's name + _stages.png in the current folder)")
@click.option("--ckpt", default=None, help="padm or official checkpoint (default: the shipped model)")
@click.option("--max-side", default=640, show_default=True,
              help="downscale larger images to this longest side first (0: never)")
def explain(image: Path, out_path: Path | None, ckpt: str | None, max_side: int) -> None:
    """Figure of every stage's B, R and pixel-wise step-size maps for IMAGE."""
    from padm.data.images import read_image, to_float, to_tensor
    from padm.engine.checkpoint import load_model
    from padm.engine.infer import derain

    if not image.is_file():
        raise UserError(f"{image}: no such file")
    out_path = out_path or Path(f"{image.stem}_stages.png")
    if out_path.suffix.lower() != ".png":
        raise UserError(f"{out_path}: the figure is written as PNG; use a .png name")
    model, _ = load_model(ckpt)
    pixels = read_image(image).pixels
    x = to_tensor(pixels)[None]  # (1, 3, H, W)
    h, w = x.shape[-2:]
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="area")
    maps = derain(model, x, stages=True)
    rainy = x[0].permute(1, 2, 0).numpy()
    title = (f"{image.name}\n{model.config.stages + 1} stages, n_feat {model.config.n_feat}\n"
             f"{x.shape[-1]}×{x.shape[-2]} px")
    stage_figure(rainy if x.shape[-2:] != (h, w) else to_float(pixels), maps, out_path, title)
    for k, (b_lo, b_hi, z_lo, z_hi) in enumerate(step_size_ranges(maps)):
        click.echo(f"{stage_name(k)}: step size on B {b_lo:.2f}–{b_hi:.2f}, on z {z_lo:.3f}–{z_hi:.3f} (min–max)")
    click.echo(f"wrote {out_path}")
