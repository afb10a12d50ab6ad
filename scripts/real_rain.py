"""Real rain: the shipped models on real rainy photos, scored where a clean photo exists, and a figure.

    python scripts/real_rain.py docs/results/real_rain            # light and heavy (shipped)
    python scripts/real_rain.py OUT --model light --model heavy --model v2=runs/heavy_v2/checkpoints/best.pt

Data (``../shared/data``): ``RealRain_pairs`` (7 real pairs, 1024x512, light real rain: PSNR/SSIM on
Y, ``uint8Y``) and ``real/DID-MDN_facades`` (9 real photos, no ground truth).  Writes
``OUT/scores.json`` (every pair and the means, per model), ``OUT/real_rain.png`` (``--rows`` images of
each source: input | each model | clean) and nothing else (the restored images go to a temporary
folder).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from padm.data.images import read_image, to_float
from padm.data.layouts import find_pairs, list_images
from padm.engine.checkpoint import shipped_checkpoint_path
from padm.engine.demo import Sample, restore_samples, side_by_side
from padm.fileio import write_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _models(specs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for spec in specs or ("light", "heavy"):
        label, sep, path = spec.partition("=")
        out[label] = path if sep else str(shipped_checkpoint_path(label))
    return out


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "specs", multiple=True, help="light, heavy (shipped) or LABEL=CHECKPOINT; repeatable")
@click.option("--rows", type=click.IntRange(min=1), default=3, show_default=True,
              help="images of each source in the figure")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N images of each source")
def main(out: Path, specs: tuple[str, ...], rows: int, limit: int | None):
    models = _models(specs)
    pairs = find_pairs(SHARED / "RealRain_pairs").pairs[:limit]
    facades = list_images(SHARED / "real" / "DID-MDN_facades")[0][:limit]
    samples = ([Sample(f"realrain_{p.name}", p.degraded_path, p.clean_path) for p in pairs]
               + [Sample(f"facade_{p.stem}", p, None) for p in facades])
    inputs = [read_image(s.degraded) for s in samples]
    cleans = [read_image(s.clean) if s.clean else None for s in samples]
    results, restored = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, ckpt in models.items():
            results[label], restored[label] = restore_samples(samples, inputs, cleans, ckpt, Path(tmp) / label)
    scored = [i for i, s in enumerate(samples) if s.clean]
    summary = {"protocol": "uint8Y", "models": models, "pairs": {}, "mean": {}}
    first = results[next(iter(models))]
    summary["mean"]["input"] = {k: sum(getattr(first[i], f"{k}_in") for i in scored) / len(scored)
                                for k in ("psnr", "ssim")}
    for label in models:
        summary["mean"][label] = {k: sum(getattr(results[label][i], f"{k}_out") for i in scored) / len(scored)
                                  for k in ("psnr", "ssim")}
    for i in scored:
        summary["pairs"][samples[i].name] = {"input": [first[i].psnr_in, first[i].ssim_in],
                                             **{label: [results[label][i].psnr_out, results[label][i].ssim_out]
                                                for label in models}}
    write_text(out / "scores.json", json.dumps(summary, indent=2) + "\n")
    picks = scored[:rows] + [i for i in range(len(samples)) if i not in scored][:rows]
    figure_rows = [(samples[i].name, [to_float(inputs[i].pixels)] + [restored[label][i] for label in models]
                    + [to_float(cleans[i].pixels) if cleans[i] is not None else None]) for i in picks]
    side_by_side(figure_rows, ["input", *models, "clean"], out / "real_rain.png", width=2.6, dpi=72)
    for label, score in summary["mean"].items():
        print(f"{label:<10} RealRain pairs: {score['psnr']:.2f} dB / {score['ssim']:.4f}")


if __name__ == "__main__":
    main()
