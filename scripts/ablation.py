"""Equal-budget ablation of PADM's three ideas, with the project's own `padm train`.

    python scripts/ablation.py --train-data runs/data/rain100l_train.h5 --val-data runs/data/rain100l_val

Four runs with the same preset size, data, crops, seed and number of iterations; each switches one
component off (config fields ``step``, ``fourier_fusion``, ``ssm``):

    full        the paper's model (pixel-wise steps, Fourier stage fusion, CNN x SSM blocks)
    scalar-step one learned step size per stage instead of the step-size network (classic unfolding)
    no-fourier  no amplitude/phase stage fusion in the encoders
    cnn-only    GDRSS blocks without the state-space branch

Prints a Markdown table (validation PSNR/SSIM on Y, uint8, of the last step's EMA-free weights,
parameters, wall time) and writes it to ``<out>/ablation.md``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import click

VARIANTS = {
    "full": [],
    "scalar-step": ["--model", "step=scalar"],
    "no-fourier": ["--model", "fourier_fusion=false"],
    "cnn-only": ["--model", "ssm=false"],
}


@click.command()
@click.option("--train-data", required=True)
@click.option("--val-data", required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/ablation"), show_default=True)
@click.option("--iterations", default=300, show_default=True)
@click.option("--n-feat", default=8, show_default=True)
@click.option("--stages", default=2, show_default=True)
@click.option("--patch-size", default=64, show_default=True)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--only", multiple=True, type=click.Choice(list(VARIANTS)), help="run only these variants")
def main(train_data, val_data, out, iterations, n_feat, stages, patch_size, batch_size, lr, only):
    rows = []
    for name, extra in VARIANTS.items():
        if only and name not in only:
            continue
        run_dir = out / name
        cmd = [sys.executable, "-m", "padm.cli", "train", "--train-data", train_data, "--val-data", val_data,
               "--out-dir", str(run_dir), "--preset", "small", "--model", f"n_feat={n_feat}",
               "--model", f"stages={stages}", "--patch-size", str(patch_size), "--batch-size", str(batch_size),
               "--iterations", str(iterations), "--lr", str(lr), "--val-every", "0", "--ckpt-every", str(iterations),
               "--num-workers", "0", "--seed", "0", "--no-progress", "--no-plot", *extra]
        if not (run_dir / "val.csv").is_file():
            click.echo(" ".join(cmd[2:]), err=True)
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            (run_dir / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.0f}\n")
        with (run_dir / "val.csv").open() as fh:
            last = list(csv.DictReader(fh))[-1]
        params = _params(run_dir)
        wall = (run_dir / "wall_seconds.txt").read_text().strip() if (run_dir / "wall_seconds.txt").is_file() else "?"
        rows.append((name, params, float(last["psnr"]), float(last["ssim"]), wall, " ".join(extra) or "—"))
    lines = ["| variant | switch | parameters | val PSNR (dB) | val SSIM | wall (s) |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | `{e}` | {p:,} | {ps:.2f} | {ss:.4f} | {w} |" for n, p, ps, ss, w, e in rows]
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(table + "\n")
    click.echo(table)


def _params(run_dir: Path) -> int:
    import torch

    from padm.engine.checkpoint import latest_checkpoint

    ckpt = torch.load(latest_checkpoint(run_dir), map_location="cpu", weights_only=True)
    return sum(v.numel() for v in ckpt["model"].values())


if __name__ == "__main__":
    main()
