"""How far ``padm derain --precision bf16`` moves the output, and how fast it is, on the bundled samples.

    python scripts/measure_precision.py                         # samples/, the shipped model
    python scripts/measure_precision.py --json docs/results/precision.json

For each image both precisions run in the same process, alternately (the machine's load affects both
alike); differences are in 8-bit grey levels of the saved images; the times are medians of ``--repeat``
whole-image forwards.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import click
import numpy as np
import torch

from padm.data.images import is_image_file, read_image, to_pixels, to_tensor
from padm.engine.checkpoint import load_model
from padm.engine.infer import cpu_bf16_supported, precision, restore

ROOT = Path(__file__).resolve().parents[1]


@click.command()
@click.option("--samples", type=click.Path(exists=True, file_okay=False), default=str(ROOT / "samples"),
              show_default=True)
@click.option("--ckpt", type=click.Path(exists=True, dir_okay=False), default=None, help="default: the shipped model")
@click.option("--repeat", default=3, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(samples, ckpt, repeat, json_path):
    model, _ = load_model(ckpt, device="cpu")
    rows = []
    inputs = sorted(p for p in Path(samples).rglob("*") if is_image_file(p) and "norain" not in p.parts)
    for path in inputs:
        x = to_tensor(read_image(path).pixels)[None]  # (1, 3, H, W)
        outs, times = {}, {"fp32": [], "bf16": []}
        for _ in range(repeat):
            for name in ("fp32", "bf16"):
                t = time.perf_counter()
                with torch.no_grad(), precision(name):
                    outs[name] = to_pixels(restore(model, x))
                times[name].append(time.perf_counter() - t)
        diff = np.abs(outs["fp32"].astype(int) - outs["bf16"].astype(int))
        row = {"image": str(Path(path).relative_to(samples)), "size": f"{x.shape[-1]}x{x.shape[-2]}",
               "max_grey_levels": int(diff.max()), "mean_grey_levels": float(diff.mean()),
               "pixels_differing": float((diff > 0).mean()),
               "fp32_s": statistics.median(times["fp32"]), "bf16_s": statistics.median(times["bf16"])}
        rows.append(row)
        print(f"{row['image']:<40} {row['size']:>9}  max {row['max_grey_levels']:3d}  mean {row['mean_grey_levels']:.3f}"
              f"  fp32 {row['fp32_s']:.2f} s  bf16 {row['bf16_s']:.2f} s", flush=True)
    summary = {"cpu_bf16": cpu_bf16_supported(), "threads": torch.get_num_threads(),
               "max_grey_levels": max(r["max_grey_levels"] for r in rows),
               "mean_grey_levels": statistics.mean(r["mean_grey_levels"] for r in rows),
               "bf16_over_fp32_time": statistics.median(r["bf16_s"] / r["fp32_s"] for r in rows)}
    print(f"over {len(rows)} images: max difference {summary['max_grey_levels']} grey levels, mean "
          f"{summary['mean_grey_levels']:.3f}; bf16 takes {summary['bf16_over_fp32_time']:.2f}x the fp32 time")
    if json_path:
        from padm.fileio import write_text

        write_text(json_path, json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
