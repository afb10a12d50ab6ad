"""``padm eval``: PSNR/SSIM of saved predictions against ground truth, or of a checkpoint on a dataset.

A checkpoint is scored on its task's data: degraded/clean pairs, or clean images that the task
degrades with a seed per image name (the same degraded images in every run, as in validation).

Per-image rows (name, psnr, ssim, height, width) go to a CSV; the summary is the mean over images, as
the papers' MATLAB scripts average per-image values.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from torch import Tensor, nn
from tqdm.auto import tqdm

from padm.data.images import to_pixels, to_tensor, write_image
from padm.engine.infer import restore
from padm.engine.metrics import score
from padm.errors import UserError
from padm.fileio import atomic_write
from padm.unfolding.tasks import Task, task_of


@attrs.frozen
class Row:
    name: str
    psnr: float
    ssim: float
    height: int
    width: int


@attrs.frozen
class Summary:
    protocol: str
    images: int
    psnr: float
    ssim: float
    extra: dict = attrs.field(factory=dict)  # fid, kid, ...

    def line(self) -> str:
        text = f"{self.images} images, protocol {self.protocol}: PSNR {self.psnr:.4f} dB, SSIM {self.ssim:.4f}"
        return text + "".join(f", {k.upper()} {v:.4f}" for k, v in self.extra.items())


def score_pair(name: str, pred: np.ndarray, gt: np.ndarray, protocol: str) -> Row:
    """One row from two (H, W, 3) uint8/uint16 pixel arrays."""
    if pred.shape != gt.shape:
        raise UserError(f"{name}: prediction is {pred.shape[1]}x{pred.shape[0]} but ground truth is "
                        f"{gt.shape[1]}x{gt.shape[0]}")
    depth = 16 if np.uint16 in (pred.dtype, gt.dtype) else 8
    p, s = score(to_tensor(pred)[None], to_tensor(gt)[None], protocol, bit_depth=depth)
    return Row(name, float(p[0]), float(s[0]), int(gt.shape[0]), int(gt.shape[1]))


def summarize(rows: list[Row], protocol: str) -> Summary:
    if not rows:
        raise UserError("nothing to evaluate: no image pairs")
    return Summary(protocol, len(rows), float(np.mean([r.psnr for r in rows])), float(np.mean([r.ssim for r in rows])))


def write_csv(rows: list[Row], path: str | os.PathLike, summary: Summary | None = None) -> None:
    """Per-image CSV (atomically), with a final ``mean`` row when a summary is given."""
    with atomic_write(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "psnr", "ssim", "height", "width"])
        for r in rows:
            w.writerow([r.name, _fmt(r.psnr), _fmt(r.ssim), r.height, r.width])
        if summary is not None:
            w.writerow(["mean", _fmt(summary.psnr), _fmt(summary.ssim), "", ""])


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.6f}"


def prediction_pairs(pred: str | os.PathLike, gt: str | os.PathLike):
    """Prediction/ground-truth files matched by name (a pair of folders, or of files)."""
    from padm.data.layouts import Pair, PairList, find_folder_pairs

    pred, gt = Path(pred), Path(gt)
    for p in (pred, gt):
        if not p.exists():
            raise UserError(f"{p}: not found")
    if pred.is_file() and gt.is_file():
        return PairList("explicit", (Pair(pred.stem, pred, gt),))
    if pred.is_dir() != gt.is_dir():
        raise UserError(f"{pred} and {gt}: give two folders or two files")
    return find_folder_pairs(pred, gt)


def evaluate_predictions(pred: str | os.PathLike, gt: str | os.PathLike, protocol: str = "uint8Y",
                         progress: bool = True) -> tuple[list[Row], list[tuple[Path, Path]]]:
    """Score saved predictions; returns rows and the (pred, gt) file pairs (for FID/KID)."""
    from padm.data.layouts import load_pair

    pairs = prediction_pairs(pred, gt)
    rows = []
    for pair in tqdm(pairs.pairs, desc="eval", unit="img", disable=not progress):
        p, g = load_pair(pair)
        rows.append(score_pair(pair.degraded_path.name, p.pixels, g.pixels, protocol))
    return rows, [(pr.degraded_path, pr.clean_path) for pr in pairs.pairs]


@attrs.frozen
class EvalItem:
    name: str
    degraded: Tensor  # (1, C, H, W) float
    clean: np.ndarray  # (H, W, C) uint8/uint16 pixels
    aux: Any
    bit_depth: int


def task_items(task: Task, data: str | os.PathLike, degradation=None) -> Iterator[EvalItem]:
    """The degraded/clean images a task is scored on: pairs from disk, or clean images degraded with
    ``degradation`` (default: the task's defaults) and a seed per image name."""
    if task.data == "pairs":
        from padm.data.datasets import iter_pair_pixels

        for name, degraded, clean in iter_pair_pixels(data):
            yield EvalItem(name, to_tensor(degraded)[None], clean, None, 16 if degraded.dtype == np.uint16 else 8)
        return
    from padm.data.datasets import open_clean

    settings = degradation if degradation is not None else task.degradation_cls()
    ds = open_clean(data)
    for i in range(len(ds)):
        item = ds[i]
        sample = task.item_sample(item, settings)
        yield EvalItem(item["name"], sample.degraded, to_pixels(sample.clean[0], item["bit_depth"]), sample.aux,
                       item["bit_depth"])


def evaluate_model(model: nn.Module, data: str | os.PathLike, protocol: str | None = None, *,
                   tile: int | None = None, overlap: int = 64, save_dir: str | os.PathLike | None = None,
                   degradation=None, progress: bool = True) -> tuple[list[Row], list[tuple[Path, Path]]]:
    """Restore every degraded image of the model's task data and score it against its clean image.

    ``protocol``: None for the task's.  Predictions are quantised to the input's bit depth before
    scoring (as a saved file would be) and, with ``save_dir``, written there as PNG (with the clean
    images under ``save_dir/gt`` for FID).
    """
    device = next(model.parameters()).device
    task = task_of(model.config)
    protocol = protocol or task.protocol
    rows, files = [], []
    save = Path(save_dir) if save_dir else None
    items: Iterable = task_items(task, data, degradation)
    for it in tqdm(items, desc="eval", unit="img", disable=not progress):
        pred = restore(model, it.degraded.to(device), aux=it.aux, tile=tile, overlap=overlap)
        pred_px = to_pixels(pred[0], it.bit_depth)
        rows.append(score_pair(it.name, pred_px, it.clean, protocol))
        if save is not None:
            stem = Path(it.name).stem
            files.append((save / f"{stem}.png", save / "gt" / f"{stem}.png"))
            write_image(files[-1][0], pred_px)
            write_image(files[-1][1], it.clean)
    if not rows:
        raise UserError(f"{data}: no images to evaluate")
    return rows, files


__all__ = ["Row", "Summary", "EvalItem", "score_pair", "summarize", "write_csv", "prediction_pairs",
           "evaluate_predictions", "task_items", "evaluate_model"]
