"""``padm demo``: restore the bundled sample images with the shipped models, score them, draw a figure.

The README's main command ends with this.  It needs nothing outside the repository: the samples live
in ``samples/`` (``pairs/`` in any paired layout :func:`padm.data.layouts.find_pairs` detects, with
ground truth; ``real/`` without) and the models in ``checkpoints/`` (light: ``default.pt``, heavy:
``heavy.pt``).  By default it runs every shipped model this checkout holds, each into its own folder
``OUT/light/``, ``OUT/heavy/``; one model (``--model`` or ``--ckpt``) writes into ``OUT/`` itself.  It
draws one side-by-side figure (input | each model | clean where known) and prints PSNR/SSIM (the
model's task protocol; ``uint8Y`` for the shipped models, the paper's) of the input and of each
model's result for every pair, and the elapsed time.
"""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import click
import numpy as np

from padm.engine.figures import pyplot, save_figure
from padm.errors import UserError

REPO = Path(__file__).resolve().parents[2]


@attrs.frozen
class Sample:
    name: str
    degraded: Path
    clean: Path | None


@attrs.frozen
class DemoResult:
    name: str
    seconds: float
    psnr_in: float | None = None
    ssim_in: float | None = None
    psnr_out: float | None = None
    ssim_out: float | None = None


def find_samples(root: Path) -> list[Sample]:
    from padm.data.images import is_image_file
    from padm.data.layouts import find_pairs

    samples = []
    if (root / "pairs").is_dir():
        samples += [Sample(Path(p.name).stem, p.degraded_path, p.clean_path) for p in find_pairs(root / "pairs").pairs]
    if (root / "real").is_dir():
        samples += [Sample(p.stem, p, None) for p in sorted((root / "real").iterdir()) if is_image_file(p)]
    if not samples:
        raise UserError(f"{root}: no sample images (expected pairs/ with ground truth and/or real/)")
    return samples


def run_demo(samples_dir: Path, out_dir: Path, ckpt: str | None = None, *, figure: bool = True,
             log=print) -> list[DemoResult]:
    """Restore every sample with one model into ``out_dir``; returns per-image timings and scores."""
    return run_demos(samples_dir, out_dir, {"restored": ckpt}, figure=figure, log=log)["restored"]


def run_demos(samples_dir: Path, out_dir: Path, models: dict[str, str | None], *, figure: bool = True,
              log=print) -> dict[str, list[DemoResult]]:
    """Restore every sample with each model of ``models`` (label -> checkpoint, None: the default),
    into ``out_dir/LABEL/`` when there are several; one ``comparison.png`` with a column per model."""
    from padm.data.images import read_image, to_float

    samples = find_samples(samples_dir)
    inputs = [read_image(s.degraded) for s in samples]
    cleans = [read_image(s.clean) if s.clean else None for s in samples]
    results, restored = {}, {}
    for label, ckpt in models.items():
        folder = out_dir if len(models) == 1 else out_dir / label
        results[label], restored[label] = restore_samples(samples, inputs, cleans, ckpt, folder, log=log)
    if figure:
        rows = [(s.name, [to_float(x.pixels)] + [restored[label][i] for label in models]
                 + [to_float(c.pixels) if c is not None else None])
                for i, (s, x, c) in enumerate(zip(samples, inputs, cleans))]
        side_by_side(rows, ["input", *models, "clean"], out_dir / "comparison.png")
    return results


def restore_samples(samples, inputs, cleans, ckpt: str | None, folder: Path, *, log=print):
    """One model on decoded samples: writes ``folder/NAME.png``; (results, restored (H, W, 3) floats)."""
    from padm.data.images import to_pixels, to_tensor, write_image
    from padm.engine.checkpoint import load_model
    from padm.engine.infer import restore
    from padm.engine.metrics import score
    from padm.unfolding.tasks import task_of

    model, info = load_model(ckpt)
    protocol = task_of(model.config).protocol
    log(f"model: {ckpt or 'shipped default'} ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{model.config.stages + 1} stages, n_feat {model.config.n_feat}); {len(samples)} images")
    results, restored = [], []
    for s, degraded, clean in zip(samples, inputs, cleans):
        x = to_tensor(degraded.pixels)[None]  # (1, 3, H, W)
        start = time.perf_counter()
        y = restore(model, x)  # (1, 3, H, W) in [0, 1]
        seconds = time.perf_counter() - start
        write_image(folder / f"{s.name}.png", to_pixels(y[0], degraded.bit_depth))
        res = DemoResult(s.name, seconds)
        if clean is not None:
            gt = to_tensor(clean.pixels)[None]
            (p_in,), (s_in,) = score(x, gt, protocol)
            (p_out,), (s_out,) = score(y, gt, protocol)
            res = attrs.evolve(res, psnr_in=float(p_in), ssim_in=float(s_in), psnr_out=float(p_out),
                               ssim_out=float(s_out))
        results.append(res)
        restored.append(y[0].permute(1, 2, 0).numpy())  # (H, W, 3)
    return results, restored


def side_by_side(rows, columns: list[str], path: Path, *, width: float = 3.0, dpi: int = 80) -> None:
    """One figure: a row ``(name, [image or None per column])`` per image, columns titled ``columns``;
    a missing last-column image (the clean one) says "no ground truth"."""
    fig, axes = pyplot().subplots(len(rows), len(columns), figsize=(width * len(columns), 0.7 * width * len(rows)),
                                  squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c, (img, title) in enumerate(zip(images, columns)):
            ax = axes[r, c]
            ax.axis("off")
            if img is not None:
                ax.imshow(np.clip(img, 0, 1))
            elif c == len(columns) - 1:
                ax.text(0.5, 0.5, "no ground truth\n(real photo)", ha="center", va="center", fontsize=8)
            if r == 0:
                ax.set_title(title, fontsize=10)
        axes[r, 0].text(-0.02, 0.5, name, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=7)
    save_figure(fig, path, dpi=dpi)


def shipped_models() -> dict[str, str]:
    """label -> path of every shipped model this checkout holds (the light one at least)."""
    from padm.engine.checkpoint import SHIPPED_MODELS, shipped_checkpoint_path

    out = {}
    for name in SHIPPED_MODELS:
        try:
            out[name] = str(shipped_checkpoint_path(name))
        except UserError:
            continue
    if not out:
        raise UserError("no shipped model in this checkout (checkpoints/default.pt); pass --ckpt")
    return out


@click.command()
@click.option("--samples", "samples_dir", type=click.Path(file_okay=False, path_type=Path),
              default=REPO / "samples", show_default="samples/", help="folder with pairs/ and real/")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"),
              show_default=True, help="where restored images and comparison.png go")
@click.option("--ckpt", default=None, help="one checkpoint instead of the shipped models")
@click.option("--model", "shipped", type=click.Choice(["light", "heavy"]), default=None,
              help="one shipped model (light: checkpoints/default.pt, heavy: checkpoints/heavy.pt); "
                   "default: every shipped model, side by side")
def demo(samples_dir: Path, out_dir: Path, ckpt: str | None, shipped: str | None) -> None:
    """Restore the bundled sample images with the shipped models; print PSNR/SSIM and the time."""
    from padm.engine.cli import _shipped_or_ckpt

    one = _shipped_or_ckpt(shipped, ckpt)
    models = {shipped or "restored": one} if one is not None else shipped_models()
    start = time.perf_counter()
    results = run_demos(samples_dir, out_dir, models, log=click.echo)
    labels = list(results)
    click.echo("")
    click.echo(f"{'image':<24} {'seconds':>8} {'PSNR in':>8} {'SSIM in':>8}"
               + "".join(f" {label[:9] + ' PSNR':>14} {'SSIM':>7}" for label in labels))
    for i, first in enumerate(results[labels[0]]):
        seconds = sum(results[label][i].seconds for label in labels)
        if first.psnr_in is None:
            click.echo(f"{first.name:<24} {seconds:8.2f} {'(no ground truth)':>17}")
            continue
        click.echo(f"{first.name:<24} {seconds:8.2f} {first.psnr_in:8.2f} {first.ssim_in:8.4f}"
                   + "".join(f" {results[label][i].psnr_out:14.2f} {results[label][i].ssim_out:7.4f}"
                             for label in labels))
    click.echo("")
    click.echo("PSNR/SSIM with the model's task protocol (uint8Y for the shipped models: the paper's).")
    where = f"{out_dir}/" if len(labels) == 1 else ", ".join(f"{out_dir}/{label}/" for label in labels)
    click.echo(f"Restored images in {where}; comparison.png in {out_dir}/; total {time.perf_counter() - start:.1f} s.")
