"""``padm demo``: restore the bundled sample images with the shipped model, score them, draw a figure.

The README's main command ends with this.  It needs nothing outside the repository: the samples live
in ``samples/`` (``pairs/`` in any paired layout :func:`padm.data.layouts.find_pairs` detects, with
ground truth; ``real/`` without) and the model in ``checkpoints/default.pt``.  It writes every
restored image, one side-by-side figure (input | restored | clean where known), and prints PSNR/SSIM
(the model's task protocol; ``uint8Y`` for the shipped model, the paper's) of the input and of the
result for every pair, and the elapsed time.
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
    """Restore every sample into ``out_dir``; returns per-image timings and scores."""
    from padm.data.images import read_image, to_float, to_pixels, to_tensor, write_image
    from padm.engine.checkpoint import load_model
    from padm.engine.infer import restore
    from padm.engine.metrics import score
    from padm.unfolding.tasks import task_of

    samples = find_samples(samples_dir)
    model, info = load_model(ckpt)
    protocol = task_of(model.config).protocol
    log(f"model: {ckpt or 'shipped default'} ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{model.config.stages + 1} stages, n_feat {model.config.n_feat}); {len(samples)} images")
    results, rows = [], []
    for s in samples:
        degraded = read_image(s.degraded)
        x = to_tensor(degraded.pixels)[None]  # (1, 3, H, W)
        start = time.perf_counter()
        y = restore(model, x)  # (1, 3, H, W) in [0, 1]
        seconds = time.perf_counter() - start
        write_image(out_dir / f"{s.name}.png", to_pixels(y[0], degraded.bit_depth))
        clean = read_image(s.clean) if s.clean else None
        res = DemoResult(s.name, seconds)
        if clean is not None:
            gt = to_tensor(clean.pixels)[None]
            (p_in,), (s_in,) = score(x, gt, protocol)
            (p_out,), (s_out,) = score(y, gt, protocol)
            res = attrs.evolve(res, psnr_in=float(p_in), ssim_in=float(s_in), psnr_out=float(p_out),
                               ssim_out=float(s_out))
        results.append(res)
        rows.append((to_float(degraded.pixels), y[0].permute(1, 2, 0).numpy(),
                     to_float(clean.pixels) if clean is not None else None, s.name))
    if figure:
        side_by_side(rows, out_dir / "comparison.png")
    return results


def side_by_side(rows, path: Path) -> None:
    """One figure: a row per image, columns input | restored | clean (blank where unknown)."""
    fig, axes = pyplot().subplots(len(rows), 3, figsize=(9, 2.1 * len(rows)), squeeze=False)
    for r, (degraded, restored, clean, name) in enumerate(rows):
        for c, (img, title) in enumerate(((degraded, "input"), (restored, "restored"), (clean, "clean"))):
            ax = axes[r, c]
            ax.axis("off")
            if img is not None:
                ax.imshow(np.clip(img, 0, 1))
            elif c == 2:
                ax.text(0.5, 0.5, "no ground truth\n(real photo)", ha="center", va="center", fontsize=8)
            if r == 0:
                ax.set_title(title, fontsize=10)
        axes[r, 0].text(-0.02, 0.5, name, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=7)
    save_figure(fig, path, dpi=80)


@click.command()
@click.option("--samples", "samples_dir", type=click.Path(file_okay=False, path_type=Path),
              default=REPO / "samples", show_default="samples/", help="folder with pairs/ and real/")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"),
              show_default=True, help="where restored images and comparison.png go")
@click.option("--ckpt", default=None, help="checkpoint (default: the shipped model, checkpoints/default.pt)")
@click.option("--model", "shipped", type=click.Choice(["light", "heavy"]), default=None,
              help="a shipped model instead of --ckpt (light: checkpoints/default.pt, heavy: checkpoints/heavy.pt)")
def demo(samples_dir: Path, out_dir: Path, ckpt: str | None, shipped: str | None) -> None:
    """Restore the bundled sample images with the shipped model; print PSNR/SSIM and the time."""
    from padm.engine.cli import _shipped_or_ckpt

    ckpt = _shipped_or_ckpt(shipped, ckpt)
    start = time.perf_counter()
    results = run_demo(samples_dir, out_dir, ckpt, log=click.echo)
    click.echo("")
    click.echo(f"{'image':<24} {'seconds':>8} {'PSNR in':>8} {'PSNR out':>9} {'SSIM in':>8} {'SSIM out':>9}")
    for r in results:
        if r.psnr_in is None:
            click.echo(f"{r.name:<24} {r.seconds:8.2f} {'(no ground truth)':>36}")
        else:
            click.echo(f"{r.name:<24} {r.seconds:8.2f} {r.psnr_in:8.2f} {r.psnr_out:9.2f} {r.ssim_in:8.4f} "
                       f"{r.ssim_out:9.4f}")
    click.echo("")
    click.echo("PSNR/SSIM with the model's task protocol (uint8Y for the shipped model: the paper's).")
    click.echo(f"Restored images and comparison.png in {out_dir}/; total {time.perf_counter() - start:.1f} s.")
