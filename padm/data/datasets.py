"""Paired datasets for training (random crops) and validation (whole images).

Items are dicts ``{"rain": Tensor (3, h, w), "clean": Tensor (3, h, w), "name": str}`` with float32
values in [0, 1]; the clean-image datasets (for tasks that degrade on the fly) yield
``{"clean": Tensor, "name": str, "seed": int}``, the seed a pure function of the sample (crops: of
``(seed, epoch, index)``; whole images: of the name alone) for the degradation to draw from.

``select``: 0-based positions (in natural name order) of the images to use, e.g. a train/validation
split of one folder; ``None``: all.

**Crops.**  Sample ``i`` of a patch dataset uses pair ``i mod N`` and draws, from a generator seeded
with ``(seed, epoch, i)``,

.. math::  t \\sim U\\{0, .., H - p\\}, \\quad l \\sim U\\{0, .., W - p\\}, \\quad g \\sim U(D_4)

(top, left, and one of the 8 flips/rotations of the square, identity when ``augment=False``).  The
crop of a sample therefore depends on nothing else: not the worker that loads it, not the order of
loading, not what was loaded before, so a resumed run sees the same crops.  Call
:meth:`set_epoch` before iterating each epoch; the epoch lives in shared memory, so persistent
``DataLoader`` workers see it too.

:class:`PairedPatchDataset` reads crops from a packed HDF5 file (only the chunks under the crop are
read); :class:`FolderPatchDataset` decodes image files instead and yields the very same crops, so
packing is optional.  :class:`FullImageDataset` yields whole pairs for validation.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from padm.data.h5 import PairsFile
from padm.data.images import from_float, image_size, read_image, to_8bit, to_float, to_tensor
from padm.data.layouts import Pair, find_pairs, list_images, load_pair, pair_size
from padm.errors import UserError

NUM_TRANSFORMS = 8  # the dihedral group D4: {identity, flips, rotations by 90 degrees, transposes}


def dihedral(pixels: np.ndarray, transform: int) -> np.ndarray:
    """Apply element ``transform`` (0..7) of D4 to an (h, w, C) array (a view, no copy).

    Bit 0: flip left-right, bit 1: flip up-down, bit 2: transpose (swap height and width).  E.g.
    ``5`` (flip then transpose) is a rotation by 90 degrees.
    """
    if transform & 1:
        pixels = pixels[:, ::-1]
    if transform & 2:
        pixels = pixels[::-1]
    if transform & 4:
        pixels = pixels.transpose(1, 0, 2)
    return pixels


def crop_plan(seed: int, epoch: int, index: int, height: int, width: int, patch: int,
              augment: bool) -> tuple[int, int, int]:
    """(top, left, transform) of sample ``index`` for an image of ``height x width``; a pure
    function of its arguments."""
    rng = np.random.default_rng([seed, epoch, index])
    top = int(rng.integers(0, height - patch + 1))
    left = int(rng.integers(0, width - patch + 1))
    transform = int(rng.integers(0, NUM_TRANSFORMS)) if augment else 0
    return top, left, transform


def _select(items: Sequence, select: Sequence[int] | None, where) -> list[int]:
    """Positions of the selected items (all when ``select`` is None); UserError when out of range."""
    if select is None:
        return list(range(len(items)))
    chosen = [int(i) for i in select]
    bad = [i for i in chosen if not 0 <= i < len(items)]
    if bad:
        raise UserError(f"{where}: has {len(items)} images, cannot select image {bad[0] + 1}")
    if not chosen:
        raise UserError(f"{where}: the selection is empty")
    return chosen


def name_seed(name: str) -> int:
    """Seed of a whole image's degradation: a function of its name only."""
    return zlib.crc32(str(name).encode())


def _item(rain: np.ndarray, clean: np.ndarray, name: str) -> dict[str, Any]:
    return {"rain": to_tensor(rain), "clean": to_tensor(clean), "name": name}  # any strides: one copy each


class _PatchSampling(Dataset):
    """Crop bookkeeping shared by the patch datasets (subclasses set ``names`` and ``shapes``)."""

    names: Sequence[str]
    shapes: np.ndarray  # (N, 2) height, width

    def _init_sampling(self, patch_size: int, augment: bool, seed: int, num_samples: int | None,
                       where: Path) -> None:
        if int(patch_size) != patch_size or patch_size < 1:
            raise UserError(f"patch size must be a positive integer, got {patch_size}")
        if int(seed) != seed or seed < 0:
            raise UserError(f"seed must be a non-negative integer, got {seed}")
        if num_samples is not None and num_samples < 1:
            raise UserError(f"num_samples must be positive, got {num_samples}")
        self.patch_size = int(patch_size)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.num_samples = None if num_samples is None else int(num_samples)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        smallest = int(np.argmin(self.shapes.min(axis=1)))
        h, w = (int(v) for v in self.shapes[smallest])
        if min(h, w) < self.patch_size:
            raise UserError(f"patch size {self.patch_size} is larger than image {self.names[smallest]!r} "
                            f"({w}x{h}) in {where}; use a patch size <= {min(h, w)}")

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` (visible to DataLoader workers, persistent ones included)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    @property
    def num_pairs(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return self.num_samples if self.num_samples is not None else len(self.names)

    def plan(self, index: int) -> tuple[int, int, int, int]:
        """(pair index, top, left, transform) of sample ``index`` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range (0..{len(self) - 1})")
        pair = index % len(self.names)
        h, w = (int(v) for v in self.shapes[pair])
        return (pair, *crop_plan(self.seed, self.epoch, index, h, w, self.patch_size, self.augment))

    def _read_crop(self, pair: int, top: int, left: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(rainy, clean) uint8 (p, p, 3) crops of pair ``pair`` at (top, left) for sample ``index``."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair, top, left, transform = self.plan(index)
        rain, clean = self._read_crop(pair, top, left, index)
        return _item(dihedral(rain, transform), dihedral(clean, transform), self.names[pair])


class PairedPatchDataset(_PatchSampling):
    """Random ``patch_size`` crops from a packed HDF5 file (see the module docstring).

    ``num_samples``: length of an epoch (default: one crop per pair); sample ``i`` uses pair
    ``i mod N``.  Safe with DataLoader workers: each opens its own file handle lazily.
    """

    def __init__(self, path: str | os.PathLike, patch_size: int, *, augment: bool = True, seed: int = 0,
                 num_samples: int | None = None, select: Sequence[int] | None = None) -> None:
        self.path = Path(path)
        self.file = PairsFile(self.path)
        self.ids = _select(self.file.names, select, self.path)  # pair -> index in the file
        self.names = tuple(self.file.names[i] for i in self.ids)
        self.shapes = np.asarray(self.file.shapes)[self.ids].reshape(-1, 2)
        self._init_sampling(patch_size, augment, seed, num_samples, self.path)

    def _read_crop(self, pair: int, top: int, left: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.patch_size
        return self.file.read_crop(self.ids[pair], top, left, p, p)  # (p, p, 3) uint8 each


class FolderPatchDataset(_PatchSampling):
    """The same crops as :class:`PairedPatchDataset`, decoded from image files in any layout that
    :func:`padm.data.layouts.find_pairs` understands (so packing is optional, only slower)."""

    def __init__(self, src: str | os.PathLike | None, patch_size: int, *, rain: str | None = None,
                 clean: str | None = None, layout: str = "auto", rain_side: str = "left",
                 augment: bool = True, seed: int = 0, num_samples: int | None = None,
                 select: Sequence[int] | None = None) -> None:
        found = find_pairs(src, rain, clean, layout=layout, rain_side=rain_side)
        self.pairs: tuple[Pair, ...] = tuple(found.pairs[i] for i in _select(found.pairs, select, src or rain))
        self.layout = found.layout
        self.names = tuple(p.name for p in self.pairs)
        self.shapes = np.asarray([pair_size(p) for p in self.pairs], dtype=np.int64).reshape(-1, 2)
        self._init_sampling(patch_size, augment, seed, num_samples, Path(src or rain or "."))

    def _read_crop(self, pair: int, top: int, left: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        rain_img, clean_img = load_pair(self.pairs[pair])
        if rain_img.pixels.shape[:2] != tuple(self.shapes[pair]):
            raise UserError(f"{self.pairs[pair].rain_path} changed size since the dataset was opened")
        p = self.patch_size
        sel = np.s_[top:top + p, left:left + p]
        # same 8-bit values as a packed file holds (rounded from 16-bit sources)
        return to_8bit(rain_img.pixels[sel]), to_8bit(clean_img.pixels[sel])


class FullImageDataset(Dataset):
    """Whole pairs (for validation / evaluation), from a packed HDF5 file or a folder.

    Images differ in size: use ``batch_size=1`` (or a collate function that pads).  A packed file
    holds 8-bit pixels; read from a folder, 16-bit images keep their full precision.
    """

    def __init__(self, path: str | os.PathLike | None, *, rain: str | None = None, clean: str | None = None,
                 layout: str = "auto", rain_side: str = "left", select: Sequence[int] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.file: PairsFile | None = None
        self.pairs: tuple[Pair, ...] = ()
        if self.path is not None and self.path.is_file() and rain is None and clean is None:
            self.file = PairsFile(self.path)
            self.ids = _select(self.file.names, select, self.path)
            self.names = tuple(self.file.names[i] for i in self.ids)
            self.layout = self.file.layout
        else:
            found = find_pairs(path, rain, clean, layout=layout, rain_side=rain_side)
            self.pairs = tuple(found.pairs[i] for i in _select(found.pairs, select, path or rain))
            self.names = tuple(p.name for p in self.pairs)
            self.layout = found.layout

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} out of range (0..{len(self) - 1})")
        if self.file is not None:
            rain, clean = self.file.read(self.ids[index])
            return _item(rain, clean, self.names[index])
        rain_img, clean_img = load_pair(self.pairs[index])
        return _item(rain_img.pixels, clean_img.pixels, self.names[index])


def _existing(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path`, or the one-line error every data opener gives when it is absent."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data not found: {path}")
    return path


def open_paired(path: str | os.PathLike, patch_size: int | None = None, *, augment: bool = True,
                seed: int = 0, num_samples: int | None = None, layout: str = "auto",
                rain_side: str = "left", select: Sequence[int] | None = None) -> Dataset:
    """Open paired data for training or validation.

    ``path`` is a packed ``.h5`` file or a dataset folder.  With ``patch_size`` you get random crops
    (:class:`PairedPatchDataset` / :class:`FolderPatchDataset`), without it whole images
    (:class:`FullImageDataset`).
    """
    path = _existing(path)
    if patch_size is None:
        return FullImageDataset(path, layout=layout, rain_side=rain_side, select=select)
    if path.is_file():
        return PairedPatchDataset(path, patch_size, augment=augment, seed=seed, num_samples=num_samples,
                                  select=select)
    return FolderPatchDataset(path, patch_size, layout=layout, rain_side=rain_side, augment=augment,
                              seed=seed, num_samples=num_samples, select=select)


# ------------------------------------------------------------------------------------------ clean images


def _clean_images(folder: Path, select: Sequence[int] | None) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: clean images are read from a folder")
    images, _ = list_images(folder)
    if not images:
        raise UserError(f"{folder}: no images found")
    return [images[i] for i in _select(images, select, folder)]


def _decoded(cache: dict[int, np.ndarray], paths: Sequence[Path], k: int) -> np.ndarray:
    """Image ``k`` of ``paths`` as 8-bit (H, W, 3), decoded once per process and kept in ``cache``."""
    if k not in cache:
        cache[k] = to_8bit(read_image(paths[k]).pixels)
    return cache[k]


class CleanPatchDataset(_PatchSampling):
    """Random crops of clean images (a folder), for tasks that degrade them on the fly.

    The crops follow the same plan as the paired datasets; ``seed`` of an item is drawn from
    ``(seed, epoch, index)`` too, so the degradation of a resumed run is the uninterrupted run's.
    Decoded images are kept in memory (each worker its own copy).
    """

    def __init__(self, folder: str | os.PathLike, patch_size: int, *, augment: bool = True, seed: int = 0,
                 num_samples: int | None = None, select: Sequence[int] | None = None) -> None:
        self.folder = Path(folder)
        self.paths = _clean_images(self.folder, select)
        self.names = tuple(p.name for p in self.paths)
        self.shapes = np.asarray([image_size(p) for p in self.paths], dtype=np.int64).reshape(-1, 2)
        self._cache: dict[int, np.ndarray] = {}
        self._init_sampling(patch_size, augment, seed, num_samples, self.folder)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair, top, left, transform = self.plan(index)
        p = self.patch_size
        crop = dihedral(_decoded(self._cache, self.paths, pair)[top:top + p, left:left + p], transform)
        degrade_seed = int(np.random.default_rng([self.seed, self.epoch, index, 1]).integers(2**62))
        return {"clean": to_tensor(crop), "name": self.names[pair], "seed": degrade_seed}


class SynthPatchDataset(_PatchSampling):
    r"""Training pairs made on the fly: crops of clean images with rain from ``model`` (anything with
    ``apply(clean, rng)`` and ``seed``: :func:`padm.data.synth.load_model`), optionally mixed with the
    real pairs of ``pairs`` (a paired patch dataset of the same crop size).

    The sources are the pairs first, then the clean images; sample ``i`` uses source ``i mod N`` and
    the crop plan of the paired datasets.  A clean crop :math:`B` (uint8, then float) becomes the pair

    .. math::  (\mathrm{round}(255\, \mathrm{model}(B, g_i)) / 255, B), \qquad
               g_i = \mathrm{rng}(\mathrm{model\ seed}, \mathrm{seed}, \mathrm{epoch}, i)

    so the rain of a sample is a pure function of those four numbers, as its crop is: a resumed run
    trains on the very pairs of the uninterrupted one, whichever worker loads them.  The rain is
    drawn on the crop, before the flip/rotation (the streak sizes are those of whole images).
    """

    def __init__(self, folder: str | os.PathLike, patch_size: int, model, *, pairs: _PatchSampling | None = None,
                 augment: bool = True, seed: int = 0, num_samples: int | None = None,
                 select: Sequence[int] | None = None) -> None:
        self.folder = Path(folder)
        self.paths = _clean_images(self.folder, select)
        self.model = model
        self.pairs = pairs
        self.num_real = 0 if pairs is None else len(pairs.names)
        if pairs is not None and pairs.patch_size != patch_size:
            raise ValueError(f"the pairs are cut at {pairs.patch_size}, not {patch_size}")
        clean_shapes = np.asarray([image_size(p) for p in self.paths], dtype=np.int64).reshape(-1, 2)
        self.names = (tuple(pairs.names) if pairs is not None else ()) + tuple(p.name for p in self.paths)
        self.shapes = clean_shapes if pairs is None else np.concatenate([pairs.shapes, clean_shapes])
        self._cache: dict[int, np.ndarray] = {}
        self._init_sampling(patch_size, augment, seed, num_samples, self.folder)

    def _read_crop(self, pair: int, top: int, left: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        if pair < self.num_real:
            return self.pairs._read_crop(pair, top, left, index)
        k = pair - self.num_real
        p = self.patch_size
        clean = np.ascontiguousarray(_decoded(self._cache, self.paths, k)[top:top + p, left:left + p])  # (p, p, 3) uint8
        rng = np.random.default_rng([int(self.model.seed), self.seed, self.epoch, index])
        return from_float(self.model.apply(to_float(clean), rng), 8), clean

    @property
    def num_synthetic(self) -> int:
        return len(self.paths)


def open_synth(folder: str | os.PathLike, patch_size: int, model: str, *, pairs: str | os.PathLike | None = None,
               augment: bool = True, seed: int = 0, num_samples: int | None = None,
               select: Sequence[int] | None = None, pairs_select: Sequence[int] | None = None) -> SynthPatchDataset:
    """:class:`SynthPatchDataset` of the clean images in ``folder`` with the rain model named by
    ``model`` (:func:`padm.data.synth.load_model`), mixed with the pairs at ``pairs`` when given."""
    from padm.data.synth import load_model

    path = _existing(folder)
    real = None
    if pairs:
        real = open_paired(pairs, patch_size, augment=augment, seed=seed, select=pairs_select)
    return SynthPatchDataset(path, patch_size, load_model(model), pairs=real, augment=augment, seed=seed,
                             num_samples=num_samples, select=select)


class CleanImageDataset(Dataset):
    """Whole clean images (a folder), for validation of tasks that degrade on the fly; ``seed`` is a
    function of the image name, so every run validates on the same degraded images."""

    def __init__(self, folder: str | os.PathLike, *, select: Sequence[int] | None = None) -> None:
        self.folder = Path(folder)
        self.paths = _clean_images(self.folder, select)
        self.names = tuple(p.name for p in self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"image {index} out of range (0..{len(self) - 1})")
        image = read_image(self.paths[index])
        return {"clean": to_tensor(image.pixels), "name": self.names[index], "seed": name_seed(self.names[index]),
                "bit_depth": image.bit_depth}


def open_clean(path: str | os.PathLike, patch_size: int | None = None, *, augment: bool = True, seed: int = 0,
               num_samples: int | None = None, select: Sequence[int] | None = None) -> Dataset:
    """Clean images of a folder: random crops with ``patch_size``, whole images without."""
    path = _existing(path)
    if patch_size is None:
        return CleanImageDataset(path, select=select)
    return CleanPatchDataset(path, patch_size, augment=augment, seed=seed, num_samples=num_samples, select=select)


def iter_pair_pixels(path: str | os.PathLike):
    """(name, degraded pixels, clean pixels) of every pair of a paired dataset: a folder in any layout
    :func:`find_pairs` knows, or a packed HDF5 file (stored at 8 bits)."""
    path = Path(path)
    if path.is_file():
        ds = FullImageDataset(path)
        for i in range(len(ds)):
            rain, clean = ds.file.read(ds.ids[i])
            yield ds.names[i], rain, clean
        return
    for pair in find_pairs(path).pairs:
        rain_img, clean_img = load_pair(pair)
        yield pair.name, rain_img.pixels, clean_img.pixels
