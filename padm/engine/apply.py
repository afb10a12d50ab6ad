"""``padm restore``: image files in, restored image files out, nothing half-written.

Everything that can fail on user input is checked before the first file is written: the checkpoint
loads, every input image decodes, outputs do not land inside the input folder or on an input file, and
existing outputs are only replaced with ``overwrite``.  Each output is written atomically and keeps the
input's size and bit depth (a 16-bit PNG stays 16-bit).
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import numpy as np
from torch import nn
from tqdm.auto import tqdm

from padm.data.images import IMAGE_SUFFIXES, is_image_file, read_image, to_pixels, to_tensor, write_image
from padm.data.layouts import natural_key
from padm.engine.infer import restore
from padm.errors import UserError
from padm.fileio import atomic_write
from padm.unfolding.tasks import StageMap


@attrs.frozen
class Job:
    src: Path
    dst: Path


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def plan(input_path: str | os.PathLike, output: str | os.PathLike, *, overwrite: bool = False) -> list[Job]:
    """Pair every input image with its output path; :class:`UserError` for anything a user must fix."""
    src, dst = Path(input_path), Path(output)
    if not src.exists():
        raise UserError(f"{src}: input not found")
    if src.is_dir():
        images = sorted((p for p in src.iterdir() if is_image_file(p)), key=lambda p: natural_key(p.name))
        if not images:
            raise UserError(f"{src}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        if _inside(dst, src):
            raise UserError(f"{dst}: output folder is inside the input folder {src}; choose another place")
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: exists and is not a folder (input {src} is a folder)")
        jobs = [Job(p, dst / p.name) for p in images]
    else:
        if dst.suffix.lower() in IMAGE_SUFFIXES:
            target = dst
        elif dst.suffix and not dst.is_dir():
            raise UserError(f"{dst}: unknown image suffix {dst.suffix!r} (use one of {', '.join(sorted(IMAGE_SUFFIXES))})")
        else:
            target = dst / src.name
        if target.resolve() == src.resolve():
            raise UserError(f"{target}: output would replace the input image; choose another name")
        jobs = [Job(src, target)]
    if not overwrite:
        existing = [j.dst for j in jobs if j.dst.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise UserError(f"{existing[0]}: output already exists{more}; pass --overwrite to replace")
    return jobs


def check_inputs(jobs: list[Job]) -> None:
    """Decode every input once so an unreadable image stops the run before anything is written."""
    for job in jobs:
        read_image(job.src)


def _save_stages(maps: dict[str, StageMap], folder: Path, bit_depth: int) -> None:
    """Every stage's maps: images and layers as images (clipped to [0, 1]), step-size maps scaled by
    their maximum (their channel mean where they have more than 3 channels), plus all raw values in
    ``stages.npz``."""
    raw = {}
    for kind, tensors in maps.items():
        for k, t in enumerate(tensors):
            raw[f"{kind}_{k}"] = t[0].numpy().astype(np.float32)
    for name, tensors in maps.items():
        if tensors.kind == "step":
            views = [t[0] if t.shape[1] == 3 else t[0].mean(0, keepdim=True).expand(3, -1, -1) for t in tensors]
            top = max(float(v.max()) for v in views) or 1.0
            raw[f"{name}_display_scale"] = np.float32(top)
            for k, v in enumerate(views):
                write_image(folder / f"{name}_{k}.png", to_pixels(v / top, 8))
        else:
            for k, t in enumerate(tensors):
                write_image(folder / f"{name}_{k}.png", to_pixels(t[0], bit_depth))
    with atomic_write(folder / "stages.npz") as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **raw)


def run(model: nn.Module, jobs: list[Job], *, tile: int | None = None, overlap: int = 64, stages: bool = False,
        aux=None, progress: bool = True) -> list[Path]:
    """Restore each job's image into its output file; returns the written paths.  ``aux``: the extra
    input of the model's task (e.g. a kernel), the same for every image.

    A file that cannot be written (disk full, read-only, ...) stops the run with a :class:`UserError`
    naming it and how many outputs were complete before it; no half-written file is left.
    """
    device = next(model.parameters()).device
    written: list[Path] = []
    for job in tqdm(jobs, desc="restore", unit="img", disable=not progress or len(jobs) < 2):
        image = read_image(job.src)
        degraded = to_tensor(image.pixels)[None].to(device)
        result = restore(model, degraded, aux=aux, tile=tile, overlap=overlap, stages=stages, progress=progress)
        out = next(iter(result.values()))[-1].clamp(0, 1) if stages else result  # the first map: the estimate
        try:
            write_image(job.dst, to_pixels(out[0], image.bit_depth))
            if stages:
                _save_stages(result, job.dst.with_name(f"{job.dst.stem}_stages"), image.bit_depth)
        except UserError as err:
            if len(jobs) == 1:
                raise
            raise UserError(f"{err}; {len(written)} of {len(jobs)} images were written before it") from None
        written.append(job.dst)
    return written


__all__ = ["Job", "plan", "check_inputs", "run"]
