"""The packed-pairs HDF5 format (``padm pack`` writes it, the datasets read it).

Layout of format version 1::

    /                       attributes: format = "padm-pairs", format_version = 1, complete = 1,
                            num_pairs, num_clean, layout, description, source, rain_side,
                            skipped, notes (JSON {note: count}), padm_version, created (ISO time)
    /names        (N,)      utf-8 strings, the pair names (rainy file stems), unique
    /shapes       (N, 2)    int32 (height, width) of pair i
    /clean_index  (N,)      int32 index j of the clean image of pair i (DDN shares one clean image
                            between many rainy images, so clean images are stored once)
    /rain/000000  (H, W, 3) uint8, chunked (32, 32, 3), lzf-compressed by default
    /clean/000000 (H, W, 3) uint8, same chunking

Chunking means a random crop reads (and decompresses) only the chunks it overlaps, not the whole
image.  ``complete`` is written last; a file without it is an interrupted pack and is refused (``padm
pack`` also writes to a temporary name and renames it at the very end).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from padm.errors import UserError

FORMAT = "padm-pairs"
FORMAT_VERSION = 1
COMPRESSIONS = ("lzf", "gzip", "none")


def dataset_key(group: str, index: int) -> str:
    return f"{group}/{index:06d}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


class PairsFile:
    """Read access to a packed pairs file.

    The constructor validates the file and loads the small index arrays, then closes it.  Pixel
    reads open the file lazily, once per process: a ``DataLoader`` worker (forked or spawned) opens
    its own handle on first use, never sharing the parent's.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = None
        self._pid: int | None = None
        self._datasets: dict[str, Any] = {}
        meta = _read_index(self.path)
        self.attrs: dict[str, Any] = meta["attrs"]
        self.names: tuple[str, ...] = meta["names"]
        self.shapes: np.ndarray = meta["shapes"]  # (N, 2) int (height, width)
        self.clean_index: np.ndarray = meta["clean_index"]  # (N,) int

    def __len__(self) -> int:
        return len(self.names)

    @property
    def layout(self) -> str:
        return _text(self.attrs.get("layout", ""))

    # -- lazy per-process handle -------------------------------------------------------------------
    def _handle(self):
        import h5py

        if self._file is None or self._pid != os.getpid():
            self._datasets = {}
            try:
                # small chunk cache: crops are random, and one cache per open dataset adds up
                self._file = h5py.File(self.path, "r", rdcc_nbytes=256 * 1024)
            except OSError as err:
                raise UserError(f"cannot open {self.path}: {_one_line(err)}") from None
            self._pid = os.getpid()
        return self._file

    def _dataset(self, key: str):
        ds = self._datasets.get(key)
        if ds is None:
            ds = self._handle()[key]
            if len(self._datasets) > 4096:  # bound the number of open dataset objects
                self._datasets.clear()
            self._datasets[key] = ds
        return ds

    def _read(self, key: str, index: int, sel) -> np.ndarray:
        try:
            return self._dataset(key)[sel]
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"cannot read pair {self.names[index]!r} ({key}) from {self.path}: "
                            f"{_one_line(err)}") from None

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Whole pair ``index`` as (rain, clean) uint8 arrays (H, W, 3)."""
        rain = self._read(dataset_key("rain", index), index, ())
        clean = self._read(dataset_key("clean", int(self.clean_index[index])), index, ())
        return rain, clean

    def read_crop(self, index: int, top: int, left: int, height: int, width: int
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Region ``[top:top+height, left:left+width]`` of pair ``index``: two (h, w, 3) uint8 arrays."""
        sel = np.s_[top:top + height, left:left + width, :]
        rain = self._read(dataset_key("rain", index), index, sel)
        clean = self._read(dataset_key("clean", int(self.clean_index[index])), index, sel)
        return rain, clean

    def close(self) -> None:
        self._datasets = {}
        if self._file is not None and self._pid == os.getpid():
            try:
                self._file.close()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass
        self._file = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        state["_datasets"] = {}
        return state

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _read_index(path: Path) -> dict[str, Any]:
    import h5py

    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        raise UserError(f"expected an HDF5 file, got a folder: {path}")
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError as err:
        raise UserError(f"cannot open {path}: {_one_line(err)}") from None
    if not is_h5:
        raise UserError(f"{path} is not an HDF5 file (make one with `padm pack SRC {path.name}`)")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            fmt = _text(attrs.get("format", ""))
            if fmt != FORMAT:
                raise UserError(f"{path} is not a padm pairs file (no format={FORMAT!r} attribute); "
                                f"make one with `padm pack`")
            version = int(attrs.get("format_version", -1))
            if version > FORMAT_VERSION or version < 1:
                raise UserError(f"{path} has pairs format version {version}; this padm reads version "
                                f"{FORMAT_VERSION} (repack it or update padm)")
            if not int(attrs.get("complete", 0)):
                raise UserError(f"{path} is an incomplete pack (interrupted?); run `padm pack` again")
            n = int(attrs["num_pairs"])
            names = tuple(_text(x) for x in f["names"][()])
            shapes = np.asarray(f["shapes"][()], dtype=np.int64).reshape(-1, 2)
            clean_index = np.asarray(f["clean_index"][()], dtype=np.int64)
            n_rain, n_clean = len(f["rain"]), len(f["clean"])
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise UserError(f"cannot read {path}: truncated or corrupt pairs file ({_one_line(err)})") from None
    if not (len(names) == len(shapes) == len(clean_index) == n_rain == n) or n == 0:
        raise UserError(f"cannot read {path}: inconsistent pairs file ({n} pairs declared, {len(names)} "
                        f"names, {n_rain} rainy images)")
    if len(clean_index) and (clean_index.min() < 0 or clean_index.max() >= n_clean):
        raise UserError(f"cannot read {path}: inconsistent pairs file (clean index out of range)")
    return {"attrs": attrs, "names": names, "shapes": shapes, "clean_index": clean_index}


def notes_from_attrs(attrs: dict[str, Any]) -> dict[str, int]:
    try:
        return dict(json.loads(_text(attrs.get("notes", "{}"))))
    except ValueError:
        return {}
