"""Measured results of the deblurring and denoising tasks, with classical baselines in the same run.

    python scripts/task_results.py --task denoise --ckpt runs/denoise/checkpoints/step_00000800.pt
    python scripts/task_results.py --task deblur --ckpt runs/deblur/checkpoints/step_00000800.pt

Test images: BSD300_clean positions 190-209 (20 images, never trained on: the configs train on
1-189), degraded exactly as ``padm eval`` and validation degrade them (a seed per image name).
Baselines, tuned on 10 *training* images (positions 180-189) and then applied to the test images:

* denoise: scikit-image ``denoise_nl_means`` (known σ, ``h`` = factor·σ, grid over the factor and the
  patch distance) and ``denoise_wavelet`` (BayesShrink / VisuShrink, σ scale grid, YCbCr);
* deblur: scikit-image ``restoration.wiener`` with the true kernel (periodic, as the degradation),
  grid over its balance.

PSNR/SSIM: ``rgb`` protocol on 8-bit values (predictions clipped and rounded, as a saved file).
Writes ``--out`` (JSON with per-image numbers and the chosen parameters) and prints a table.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import click
import numpy as np
import torch

from padm.engine.checkpoint import load_model
from padm.engine.evaluate import task_items
from padm.engine.infer import restore
from padm.engine.metrics import score
from padm.unfolding.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "BSD300_clean"


def _subset(folder: Path, positions: range, out: Path) -> Path:
    """A folder of symlinks to the images at 1-based ``positions`` of ``folder`` (name order)."""
    from padm.data.layouts import list_images

    images, _ = list_images(folder)
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():
        p.unlink()
    for i in positions:
        (out / images[i - 1].name).symlink_to(images[i - 1].resolve())
    return out


def _score(pred: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM), rgb protocol, of float (H, W, 3) arrays after 8-bit rounding."""
    p = torch.from_numpy(np.clip(pred, 0, 1).astype(np.float32)).permute(2, 0, 1)[None]
    c = torch.from_numpy(clean.astype(np.float32)).permute(2, 0, 1)[None]
    (ps,), (ss,) = score(p, c, "rgb")
    return float(ps), float(ss)


def _items(task, folder: Path, settings):
    out = []
    for it in task_items(task, folder, settings):
        clean = it.clean.astype(np.float32) / (2**it.bit_depth - 1)
        out.append((it.name, it.degraded, it.aux, clean))
    return out


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).double().numpy()


def _baselines(task_name: str, sigma: float):
    """name -> (parameter grid, function(degraded (H, W, 3) float, kernel or None, params) -> estimate)."""
    from skimage.restoration import denoise_nl_means, denoise_wavelet, wiener

    if task_name == "denoise":
        s = sigma / 255.0
        nlm = ({"factor": [0.6, 0.8, 1.0, 1.2], "patch_distance": [6, 9]},
               lambda y, k, p: denoise_nl_means(y, h=p["factor"] * s, sigma=s, patch_size=5,
                                                patch_distance=p["patch_distance"], fast_mode=True, channel_axis=-1))
        wav = ({"method": ["BayesShrink", "VisuShrink"], "scale": [0.5, 0.75, 1.0, 1.25]},
               lambda y, k, p: denoise_wavelet(y, sigma=p["scale"] * s, method=p["method"], mode="soft",
                                               convert2ycbcr=True, rescale_sigma=True, channel_axis=-1))
        return {"skimage denoise_nl_means": nlm, "skimage denoise_wavelet": wav}

    def wiener_rgb(y, k, p):
        psf = k[0, 0].double().numpy()
        return np.stack([wiener(y[..., c], psf, balance=p["balance"], clip=False) for c in range(3)], -1)

    return {"skimage wiener (true kernel)": ({"balance": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]}, wiener_rgb)}


def _grid(params: dict) -> list[dict]:
    return [dict(zip(params, values)) for values in itertools.product(*params.values())]


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows]))


@click.command()
@click.option("--task", "task_name", type=click.Choice(["denoise", "deblur"]), required=True)
@click.option("--ckpt", type=click.Path(dir_okay=False, exists=True), required=True)
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=DATA)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON report (default: docs/results/tasks/TASK.json)")
def main(task_name: str, ckpt: str, data: Path, out: Path | None):
    task = get_task(task_name)
    model, info = load_model(ckpt)
    settings = task.degradation_cls(**(info.get("train_config") or {}).get("degradation", {}))
    tmp = REPO / "runs" / "task_results"
    test = _items(task, _subset(data, range(190, 210), tmp / "test"), settings)
    tune = _items(task, _subset(data, range(180, 190), tmp / "tune"), settings)
    report = {"task": task_name, "checkpoint": str(ckpt), "degradation": settings.to_dict(),
              "test_images": [n for n, *_ in test], "tune_images": [n for n, *_ in tune], "methods": {}}

    rows = [dict(zip(("psnr", "ssim"), _score(_hwc(y), c)), name=n) for n, y, _, c in test]
    report["methods"]["degraded input"] = {"psnr": _mean(rows, "psnr"), "ssim": _mean(rows, "ssim"), "rows": rows}

    start, rows = time.perf_counter(), []
    for n, y, aux, c in test:
        pred = restore(model, y, aux=aux)
        rows.append(dict(zip(("psnr", "ssim"), _score(_hwc(pred), c)), name=n))
    report["methods"]["padm unfolding network"] = {"psnr": _mean(rows, "psnr"), "ssim": _mean(rows, "ssim"),
                                                   "seconds": time.perf_counter() - start, "rows": rows}

    for name, (params, fn) in _baselines(task_name, getattr(settings, "sigma", 0.0)).items():
        tuned = []
        for p in _grid(params):
            tuned.append((float(np.mean([_score(fn(_hwc(y), aux, p), c)[0] for _, y, aux, c in tune])), p))
        best_psnr, best = max(tuned, key=lambda t: t[0])
        start, rows = time.perf_counter(), []
        for n, y, aux, c in test:
            rows.append(dict(zip(("psnr", "ssim"), _score(fn(_hwc(y), aux, best), c)), name=n))
        report["methods"][name] = {"psnr": _mean(rows, "psnr"), "ssim": _mean(rows, "ssim"), "params": best,
                                   "tune_psnr": best_psnr, "grid": [{"psnr": t, **p} for t, p in tuned],
                                   "seconds": time.perf_counter() - start, "rows": rows}

    out = out or REPO / "docs" / "results" / "tasks" / f"{task_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(f"{task_name}: {len(test)} test images (BSD300_clean 190-209), rgb PSNR/SSIM on 8-bit values")
    for name, m in report["methods"].items():
        extra = f"  params {m['params']}" if "params" in m else ""
        click.echo(f"  {name:<32} {m['psnr']:7.2f} dB  {m['ssim']:.4f}{extra}")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
