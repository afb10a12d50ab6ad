"""Packing rainy/clean pairs into one HDF5 file (the format is described in :mod:`padm.data.h5`).

:func:`pack` finds the pairs (:func:`padm.data.layouts.find_pairs`), checks every file header first
(sizes agree, side-by-side widths are even) so that most mistakes surface before anything is written,
then decodes each pair, converts it to 8-bit RGB and writes it to a temporary file beside the output.
Only a complete file is renamed onto the output path; on any error or Ctrl-C the temporary file is
deleted and an existing output is left untouched.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import attrs
import numpy as np

from padm.data.h5 import COMPRESSIONS, FORMAT, FORMAT_VERSION, dataset_key
from padm.data.images import to_8bit
from padm.fileio import atomic_write
from padm.data.layouts import PairList, find_pairs, load_pair, pair_size
from padm.errors import UserError


@attrs.frozen
class PackResult:
    path: Path
    num_pairs: int
    num_clean: int
    layout: str
    skipped: int
    notes: dict[str, int]  # conversion note -> number of images
    bytes: int


def check_output(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise UserError(f"output path is a folder: {out}")
    if out.exists() and not overwrite:
        raise UserError(f"output file already exists: {out} (use --overwrite to replace it)")


def pack(src: str | os.PathLike | None, out: str | os.PathLike, *, rain: str | os.PathLike | None = None,
         clean: str | os.PathLike | None = None, layout: str = "auto", rain_side: str = "left",
         compression: str = "lzf", chunk: int = 32, overwrite: bool = False, progress: bool = True,
         log: Callable[[str], None] = print) -> PackResult:
    """Pack the pairs found in ``src`` (or ``rain``/``clean`` folders) into the HDF5 file ``out``.

    ``compression``: ``lzf`` (fast, h5py's built-in filter; default), ``gzip`` (portable, smaller,
    slower to read) or ``none``.  ``chunk``: chunk edge in pixels.  ``log`` receives progress
    messages (layout found, files skipped, conversions made).
    """
    out = Path(out)
    if compression not in COMPRESSIONS:
        raise UserError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    if chunk < 8:
        raise UserError(f"chunk must be at least 8 pixels, got {chunk}")
    check_output(out, overwrite)
    pairs = find_pairs(src, rain, clean, layout=layout, rain_side=rain_side)
    where = pairs.root if pairs.root is not None else Path(rain or "")
    log(f"Found {len(pairs)} pairs in {where} (layout: {pairs.layout}; {pairs.description})")
    if pairs.skipped:
        log(f"Skipped {pairs.skipped} non-image entries (e.g. SOURCE.txt, mapping.csv, sub-folders)")
    shapes = [pair_size(p) for p in _bar(pairs.pairs, "checking", progress)]
    return _write(pairs, shapes, out, compression=compression, chunk=chunk, overwrite=overwrite,
                  progress=progress, log=log, source=src)


def _bar(items, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="pair", disable=not enabled or len(items) < 2, leave=False,
                dynamic_ncols=True)


def _write(pairs: PairList, shapes: list[tuple[int, int]], out: Path, *, compression: str, chunk: int,
           overwrite: bool, progress: bool, log: Callable[[str], None], source) -> PackResult:
    import h5py

    import padm

    filters: dict = {} if compression == "none" else {"compression": compression}
    if compression == "gzip":
        filters["compression_opts"] = 4
    notes: Counter[str] = Counter()
    clean_ids: dict[tuple[Path, str | None], int] = {}
    clean_index = np.zeros(len(pairs), dtype=np.int32)

    def store(f, key: str, pixels: np.ndarray) -> None:
        h, w, _ = pixels.shape
        f.create_dataset(key, data=pixels, chunks=(min(chunk, h), min(chunk, w), 3), **filters)

    with atomic_write(out, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["complete"] = 0
            f.create_group("rain")
            f.create_group("clean")
            for i, pair in enumerate(_bar(pairs.pairs, f"packing {out.name}", progress)):
                rain_img, clean_img = load_pair(pair)
                if rain_img.pixels.shape[:2] != tuple(shapes[i]):
                    raise UserError(f"{pair.rain_path} decodes to {rain_img.width}x{rain_img.height}, "
                                    f"not the {shapes[i][1]}x{shapes[i][0]} its header says")
                clean_key = (pair.clean_path, None if pair.side is None else pair.side + ":" + pair.name)
                new_clean = clean_key not in clean_ids
                for img, counts in ((rain_img, True), (clean_img, new_clean)):
                    if counts:
                        notes.update(img.notes)
                        if img.bit_depth == 16:
                            notes["16-bit converted to 8-bit"] += 1
                store(f, dataset_key("rain", i), to_8bit(rain_img.pixels))
                if new_clean:
                    clean_ids[clean_key] = len(clean_ids)
                    store(f, dataset_key("clean", clean_ids[clean_key]), to_8bit(clean_img.pixels))
                clean_index[i] = clean_ids[clean_key]
            f.create_dataset("names", data=np.array([p.name for p in pairs.pairs], dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            f.create_dataset("shapes", data=np.asarray(shapes, dtype=np.int32).reshape(-1, 2))
            f.create_dataset("clean_index", data=clean_index)
            f.attrs.update({
                "num_pairs": len(pairs), "num_clean": len(clean_ids), "layout": pairs.layout,
                "description": pairs.description, "source": str(Path(source).resolve()) if source else "",
                "rain_side": next((p.side for p in pairs.pairs if p.side), ""), "skipped": pairs.skipped,
                "notes": json.dumps(dict(notes)), "padm_version": padm.__version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            })
            f.attrs["complete"] = 1  # last: marks the file as whole
    if notes:
        log("Converted: " + "; ".join(f"{note} ({n} images)" for note, n in sorted(notes.items())))
    size = out.stat().st_size
    log(f"Wrote {out} ({len(pairs)} pairs, {len(clean_ids)} clean images, {size / 1e6:.1f} MB)")
    return PackResult(out, len(pairs), len(clean_ids), pairs.layout, pairs.skipped, dict(notes), size)
