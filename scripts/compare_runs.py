"""Training runs side by side: training loss and validation PSNR of each run folder in one figure.

    python scripts/compare_runs.py float32=/runs/fp32 "2 processes=/runs/procs" \\
        --out docs/results/train_modes/curves.png --json docs/results/train_modes/summary.json

Each argument is ``LABEL=RUN_FOLDER`` (a folder ``padm train`` wrote: ``train.csv``, ``val.csv``).  The
JSON holds, per run, the final and best validation PSNR/SSIM, the steps, the median it/s the run
logged, and the difference of final validation PSNR to the first run.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import click

from padm.engine.figures import pyplot, save_figure


def _rows(path: Path) -> list[dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _smooth(values: list[float], window: int = 5) -> list[float]:
    return [statistics.mean(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="the figure (PNG)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="the numbers")
def main(runs, out, json_path):
    plt = pyplot()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    summary = {}
    for spec in runs:
        label, sep, folder = spec.partition("=")
        if not sep:
            raise click.BadParameter(f"{spec!r}: give LABEL=RUN_FOLDER")
        folder = Path(folder)
        train, val = _rows(folder / "train.csv"), _rows(folder / "val.csv")
        ax_loss.plot([r["step"] for r in train], _smooth([r["loss"] for r in train]), label=label)
        ax_val.plot([r["step"] for r in val], [r["psnr"] for r in val], marker="o", label=label)
        summary[label] = {"run": str(folder), "steps": int(train[-1]["step"]),
                          "final_val_psnr": val[-1]["psnr"], "final_val_ssim": val[-1]["ssim"],
                          "best_val_psnr": max(r["psnr"] for r in val),
                          "median_it_s": statistics.median(r["it_s"] for r in train),
                          "val": [{"step": int(r["step"]), "psnr": r["psnr"], "ssim": r["ssim"]} for r in val]}
    first = next(iter(summary.values()))["final_val_psnr"]
    for s in summary.values():
        s["final_val_psnr_minus_first"] = s["final_val_psnr"] - first
    ax_loss.set(xlabel="step", ylabel="training loss (mean of 5 logs)", title="training loss")
    ax_val.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out)
    for label, s in summary.items():
        print(f"{label:<16} final val {s['final_val_psnr']:.3f} dB / {s['final_val_ssim']:.4f} "
              f"({s['final_val_psnr_minus_first']:+.3f} dB), best {s['best_val_psnr']:.3f}, "
              f"median {s['median_it_s']:.3f} it/s (as logged)")
    if json_path:
        from padm.fileio import write_text

        write_text(json_path, json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
