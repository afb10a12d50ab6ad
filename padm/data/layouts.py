"""Finding rainy/clean pairs in the folder layouts deraining datasets ship in.

:func:`find_pairs` looks at a folder and returns a :class:`PairList`.  Layouts it recognises
(``layout`` name in parentheses):

==============  =====================================================================================
``jorder``      Rain100L/H, Rain200L/H (JORDER): ``rain/`` + ``norain/``; rainy files named like their
                clean file (``norain-1.png``), or ``norain-1x2.png`` / ``rain-1.png``; a lone ``X2/``
                sub-folder inside ``rain/`` is entered.
``restormer``   Restormer / DRSformer: ``input/`` + ``target/`` with matching names.
``spa``         SPA-Data: clean names carry a ``gt`` suffix (``12_3gt.png`` for ``12_3.png``), either in
                the same folder as the rainy files or in a clean folder beside it.
``ddn``         DDN-Data (Rain1400 / Rain12600): ``rainy_image/N_k.jpg`` -> ``ground_truth/N.jpg``
                (many rainy images share one clean image).
``did``         DID-Data (Rain1200) and other pix2pix-style files: rainy and clean side by side in one
                picture, rainy on the left by default (``rain_side="right"`` for the other order).
``folders``     any other rainy/clean folder pair (``rainy|lq|...`` + ``clean|gt|ground_truth|...``).
``explicit``    folders given with ``rain=`` / ``clean=`` (``--rain`` / ``--clean``).
==============  =====================================================================================

Name matching, in order: identical file stems; then stems normalised by dropping a ``x2``-style
scale suffix after a digit, a ``rain-``/``norain-`` prefix and (clean side) a ``gt`` suffix; for
``ddn`` finally ``N_k -> N``.  Non-image files (``SOURCE.txt``, ``mapping.csv``, ...) are skipped
and counted.

**Splits.** When the folder itself holds no layout, its sub-folders (one and two levels down) are
searched.  Exactly one hit is used (e.g. ``Rain200H/`` holding only ``train/rain, train/norain``);
several hits (``train/`` *and* ``test/``) are refused with the list, so training and test images are
never mixed silently: point at one split.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import attrs
import numpy as np

from padm.data.images import IMAGE_SUFFIXES, Image, image_size, read_image, to_float
from padm.errors import UserError

LAYOUTS = ("auto", "jorder", "restormer", "spa", "ddn", "did", "folders")
RAIN_DIR_NAMES = ("rain", "rainy", "input", "inputs", "rainy_image", "rainy_images", "rain_image", "lq",
                  "degraded")
CLEAN_DIR_NAMES = ("norain", "no_rain", "clean", "target", "targets", "gt", "groundtruth", "ground_truth",
                   "label", "labels", "hq", "background")
# preferred folder pairs when a folder holds several candidates
_NAMED_PAIRS = {("rain", "norain"): "jorder", ("input", "target"): "restormer",
                ("rainy_image", "ground_truth"): "ddn"}
_SIDE_BY_SIDE_MIN_CORR = 0.15  # see _looks_side_by_side


@attrs.frozen
class Pair:
    """One rainy/clean pair.  For a side-by-side file ``rain_path == clean_path`` and ``side`` says
    which half holds the rainy image (``"left"`` or ``"right"``); otherwise ``side`` is None."""

    name: str
    rain_path: Path
    clean_path: Path
    side: str | None = None

    @property
    def degraded_path(self) -> Path:
        """The task-neutral name of :attr:`rain_path` (the degraded side of any paired dataset)."""
        return self.rain_path


@attrs.frozen
class PairList:
    """Pairs found in a folder, in natural name order."""

    layout: str  # one of LAYOUTS (not "auto") or "explicit"
    pairs: tuple[Pair, ...]
    skipped: int = 0  # non-image entries ignored
    root: Path | None = None  # the folder the layout was found in
    description: str = ""  # human-readable: which folders, which name rule

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)


def natural_key(text: str) -> tuple:
    """Sort key putting ``2`` before ``10``."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text) if t)


# ------------------------------------------------------------------------------------------- listing


@attrs.define
class _Folder:
    path: Path
    images: list[Path]
    skipped: int


def _list_folder(folder: Path) -> _Folder:
    """Images directly in ``folder`` (sorted) and the number of other entries."""
    images, skipped = [], 0
    try:
        entries = list(os.scandir(folder))
    except OSError as err:
        raise UserError(f"cannot list folder {folder}: {err.strerror or err}") from None
    for entry in entries:
        if entry.is_file() and not entry.name.startswith(".") and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
            images.append(Path(entry.path))
        else:
            skipped += 1
    images.sort(key=lambda p: natural_key(p.name))
    return _Folder(folder, images, skipped)


def list_images(folder: str | os.PathLike) -> tuple[list[Path], int]:
    """Image files directly inside ``folder`` in natural order, and the number of other entries
    (non-image files, hidden files, sub-folders).  Raises :class:`UserError` for duplicate stems."""
    listed = _list_folder(Path(folder))
    return list(_unique_stems(listed).values()), listed.skipped


def _role_folder(folder: Path) -> _Folder:
    """A rain or clean folder; a folder without images but a single sub-folder (JORDER ``rain/X2``)
    is entered."""
    listed = _list_folder(folder)
    if listed.images:
        return listed
    subdirs = _subdirs(folder)
    if len(subdirs) == 1:
        inner = _list_folder(subdirs[0])
        if inner.images:
            return _Folder(inner.path, inner.images, inner.skipped + listed.skipped - 1)
    raise UserError(f"no images found in {folder}")


def _subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders; ``__MACOSX`` (resource forks from macOS zip files) is ignored."""
    try:
        return sorted((p for p in folder.iterdir()
                       if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX"),
                      key=lambda p: natural_key(p.name))
    except OSError as err:
        raise UserError(f"cannot list folder {folder}: {err.strerror or err}") from None


def _unique_stems(folder: _Folder) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in folder.images:
        other = by_stem.get(path.stem)
        if other is not None:
            raise UserError(f"duplicate image name {path.stem!r} in {folder.path}: {other.name} and {path.name}")
        by_stem[path.stem] = path
    return by_stem


# ------------------------------------------------------------------------------------------- matching

_SCALE_SUFFIX = re.compile(r"(?<=\d)x\d+$", re.IGNORECASE)  # norain-12x2 -> norain-12
_RAIN_PREFIX = re.compile(r"^(?:no)?rain[-_]", re.IGNORECASE)  # rain-12 / norain-12 -> 12
_GT_SUFFIX = re.compile(r"[-_]?gt$", re.IGNORECASE)  # 12_3gt / 12_3_gt -> 12_3
_DDN_NAME = re.compile(r"^(.+)_(\d+)$")  # 901_14 -> 901


def _rain_key(stem: str) -> str:
    return _RAIN_PREFIX.sub("", _SCALE_SUFFIX.sub("", stem))


def _clean_key(stem: str) -> str:
    return _RAIN_PREFIX.sub("", _GT_SUFFIX.sub("", stem))


def _has_gt_suffix(stem: str) -> bool:
    return bool(_GT_SUFFIX.search(stem)) and _GT_SUFFIX.sub("", stem) != ""


@attrs.frozen
class _Match:
    pairs: list[Pair]
    many_to_one: bool
    gt_names: bool
    normalised: bool


def _match(rain: _Folder, clean: _Folder, *, ddn: str) -> _Match:
    """Pair every rainy image with one clean image.  ``ddn``: "no", "yes" (``N_k -> N`` allowed) or
    "fallback" (used only if no file matches one-to-one and every file matches ``N_k -> N``)."""
    rain_by_stem = _unique_stems(rain)
    clean_by_stem = _unique_stems(clean)
    clean_by_key: dict[str, list[Path]] = {}
    for stem, path in clean_by_stem.items():
        clean_by_key.setdefault(_clean_key(stem), []).append(path)

    def one_to_one(stem: str) -> tuple[Path | None, bool]:
        if stem in clean_by_stem:
            return clean_by_stem[stem], False
        hits = clean_by_key.get(_rain_key(stem), [])
        if len(hits) > 1:
            names = " and ".join(p.name for p in hits)
            raise UserError(f"duplicate image name in {clean.path}: {names} both match {rain.path / stem}")
        return (hits[0], True) if hits else (None, False)

    def many_to_one(stem: str) -> Path | None:
        m = _DDN_NAME.match(stem)
        if not m:
            return None
        base = m.group(1)
        if base in clean_by_stem:
            return clean_by_stem[base]
        hits = clean_by_key.get(_rain_key(base), [])
        return hits[0] if len(hits) == 1 else None

    found: dict[str, tuple[Path | None, bool]] = {s: one_to_one(s) for s in rain_by_stem}
    used_many = False
    if ddn == "yes" or (ddn == "fallback" and not any(p for p, _ in found.values())):
        alt = {s: many_to_one(s) for s in rain_by_stem if found[s][0] is None}
        if ddn == "yes" or (alt and all(alt.values())):
            for s, p in alt.items():
                if p is not None:
                    found[s] = (p, False)
                    used_many = True

    missing = [s for s, (p, _) in found.items() if p is None]
    if missing:
        first = rain_by_stem[missing[0]]
        more = f" ({len(missing)} rainy images without partner)" if len(missing) > 1 else ""
        raise UserError(f"no clean partner for {first} in {clean.path}{more}")

    users: dict[Path, list[str]] = {}
    for stem, (p, _) in found.items():
        users.setdefault(p, []).append(stem)
    if not used_many:
        for p, stems in users.items():
            if len(stems) > 1:
                names = " and ".join(rain_by_stem[s].name for s in stems)
                raise UserError(f"duplicate image name in {rain.path}: {names} both pair with {p}")
    unused = [p for p in clean_by_stem.values() if p not in users]
    if unused:
        more = f" ({len(unused)} clean images without partner)" if len(unused) > 1 else ""
        raise UserError(f"no rainy partner for {unused[0]} in {rain.path}{more}")

    pairs = [Pair(s, rain_by_stem[s], found[s][0]) for s in rain_by_stem]  # type: ignore[arg-type]
    pairs.sort(key=lambda pr: natural_key(pr.name))
    gt = any(_has_gt_suffix(p.clean_path.stem) and p.clean_path.stem != p.rain_path.stem for p in pairs)
    normalised = any(n for _, n in found.values())
    return _Match(pairs, used_many, gt, normalised)


def _rule_text(m: _Match) -> str:
    if m.many_to_one:
        return "names N_k matched to N (many-to-one)"
    if m.gt_names:
        return "clean names carry a 'gt' suffix"
    if m.normalised:
        return "names matched after dropping x2 / rain- / norain- decorations"
    return "identical names"


# ------------------------------------------------------------------------------------------- detection


def _pair_folders(folder: Path, forced: str) -> PairList | None:
    """A rain/clean folder pair directly inside ``folder``."""
    subdirs = {p.name.lower(): p for p in _subdirs(folder)}
    rains = [n for n in RAIN_DIR_NAMES if n in subdirs]
    cleans = [n for n in CLEAN_DIR_NAMES if n in subdirs]
    if not rains or not cleans:
        return None
    options = [(r, c) for r, c in _NAMED_PAIRS if r in rains and c in cleans]
    if not options:
        if len(rains) > 1 or len(cleans) > 1:
            names = ", ".join(subdirs[n].name + "/" for n in rains + cleans)
            raise UserError(f"ambiguous layout in {folder}: several rainy/clean folders ({names}); "
                            f"use --rain DIR --clean DIR")
        options = [(rains[0], cleans[0])]
    if forced in _NAMED_PAIRS.values():
        wanted = [rc for rc in options if _NAMED_PAIRS.get(rc) == forced]
        options = wanted or options[:1]
    r, c = options[0]
    rain_dir, clean_dir = subdirs[r], subdirs[c]
    named = _NAMED_PAIRS.get((r, c), "folders")
    ddn = "yes" if forced == "ddn" or named == "ddn" else "fallback"
    found = _pairs_from_folders(rain_dir, clean_dir, ddn=ddn, layout=None if forced == "auto" else forced,
                                named=named, root=folder)
    loose_files = sum(1 for p in folder.iterdir() if not p.is_dir())  # SOURCE.txt, mapping.csv, ...
    return attrs.evolve(found, skipped=found.skipped + loose_files)


def _pairs_from_folders(rain_dir: Path, clean_dir: Path, *, ddn: str, layout: str | None, named: str,
                        root: Path | None) -> PairList:
    rain = _role_folder(rain_dir)
    clean = _role_folder(clean_dir)
    m = _match(rain, clean, ddn=ddn)
    if layout is None:
        layout = "ddn" if m.many_to_one else "spa" if m.gt_names else named
    desc = f"{_rel(rain.path, root)}/ + {_rel(clean.path, root)}/, {_rule_text(m)}"
    return PairList(layout=layout, pairs=tuple(m.pairs), skipped=rain.skipped + clean.skipped, root=root,
                    description=desc)


def _rel(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _flat_folder(folder: Path, forced: str, rain_side: str) -> PairList | None:
    """SPA pairs in one folder (``X.png`` + ``Xgt.png``) or side-by-side (DID) files."""
    listed = _list_folder(folder)
    if not listed.images:
        return None
    gt = [p for p in listed.images if _has_gt_suffix(p.stem)]
    if forced in ("auto", "spa") and gt:
        rain = _Folder(folder, [p for p in listed.images if p not in set(gt)], 0)
        clean = _Folder(folder, gt, 0)
        if not rain.images:
            raise UserError(f"no rainy images in {folder}: every image name ends in 'gt'")
        m = _match(rain, clean, ddn="no")
        return PairList(layout="spa", pairs=tuple(m.pairs), skipped=listed.skipped, root=folder,
                        description=f"rainy X.png beside clean Xgt.png in {folder.name}/")
    if forced == "did" or (forced == "auto" and _looks_side_by_side(listed.images)):
        stems = _unique_stems(listed)
        pairs = tuple(Pair(s, p, p, side=rain_side) for s, p in stems.items())
        return PairList(layout="did", pairs=pairs, skipped=listed.skipped, root=folder,
                        description=f"side-by-side files in {folder.name}/, rainy half on the {rain_side}")
    return None


def _side_by_side_score(pixels: np.ndarray) -> float:
    """Correlation of the horizontal gradients of the two halves, after box-downsampling to about
    64 px: the halves of a rainy/clean pair share every edge (0.2 - 0.95 on Rain100L/Rain200H), the
    two halves of an ordinary photo do not (|r| < 0.05 on the DID-MDN real photos)."""
    gray = to_float(pixels).mean(axis=2)  # (H, W)
    h, w = gray.shape
    half = w // 2
    k = max(1, min(h, half) // 64)
    hk, wk = h // k * k, half // k * k
    if hk < 2 or wk < 3 * k:
        return 0.0

    def down(a: np.ndarray) -> np.ndarray:
        return a[:hk, :wk].reshape(hk // k, k, wk // k, k).mean(axis=(1, 3))

    gl = np.diff(down(gray[:, :half]), axis=1).ravel()
    gr = np.diff(down(gray[:, half:2 * half]), axis=1).ravel()
    gl, gr = gl - gl.mean(), gr - gr.mean()
    denom = float(np.sqrt((gl * gl).sum() * (gr * gr).sum()))
    return float((gl * gr).sum() / denom) if denom > 0 else 0.0


def _looks_side_by_side(images: list[Path]) -> bool:
    """Every width even, and up to three sampled files score as two views of one scene."""
    for p in images:
        h, w = image_size(p)
        if w % 2 or w < 4:
            return False
    picks = sorted({0, len(images) // 2, len(images) - 1})
    scores = [_side_by_side_score(read_image(images[i]).pixels) for i in picks]
    return float(np.median(scores)) >= _SIDE_BY_SIDE_MIN_CORR


def _detect_here(folder: Path, forced: str, rain_side: str) -> PairList | None:
    if forced != "did":
        found = _pair_folders(folder, forced)
        if found is not None:
            return found
    if forced in ("auto", "spa", "did"):
        return _flat_folder(folder, forced, rain_side)
    return None


def find_pairs(src: str | os.PathLike | None = None, rain: str | os.PathLike | None = None,
               clean: str | os.PathLike | None = None, *, layout: str = "auto",
               rain_side: str = "left") -> PairList:
    """Find rainy/clean pairs.

    Either ``src`` (a dataset folder; its layout is detected, or forced with ``layout``), or ``rain``
    and ``clean`` folders (relative to ``src`` when ``src`` is given).  ``rain_side`` says which half
    of a side-by-side (DID) file is rainy.  Raises :class:`UserError` naming the file or folder for
    missing partners, duplicate names, empty folders and unrecognised layouts.
    """
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if rain_side not in ("left", "right"):
        raise UserError(f"rain_side must be 'left' or 'right', got {rain_side!r}")
    if rain is not None or clean is not None:
        if rain is None or clean is None:
            raise UserError("give both --rain DIR and --clean DIR")
        base = Path(src) if src is not None else Path()
        rain_dir, clean_dir = base / rain, base / clean
        for d in (rain_dir, clean_dir):
            _check_dir(d)
        ddn = "yes" if layout == "ddn" else "fallback"
        found = _pairs_from_folders(rain_dir, clean_dir, ddn=ddn, layout="explicit", named="explicit",
                                    root=None)
        return _nonempty(found, rain_dir)

    if src is None:
        raise UserError("give a dataset folder (or --rain DIR --clean DIR)")
    src = Path(src)
    _check_dir(src)
    found = _detect_here(src, layout, rain_side)
    if found is not None:
        return _nonempty(found, src)
    if _list_folder(src).images:
        raise UserError(_no_pairs_message(src, layout, single_images=True))

    candidates: list[PairList] = []
    for sub in _subdirs(src):
        hit = _detect_here(sub, layout, rain_side)
        if hit is not None:
            candidates.append(hit)
            continue
        if _list_folder(sub).images:
            continue
        for subsub in _subdirs(sub):
            hit = _detect_here(subsub, layout, rain_side)
            if hit is not None:
                candidates.append(hit)
    if len(candidates) == 1:
        return _nonempty(candidates[0], src)
    if len(candidates) > 1:
        names = ", ".join(_rel(c.root, src) + "/" for c in candidates if c.root is not None)
        first = _rel(candidates[0].root, src) if candidates[0].root else ""
        raise UserError(f"{src} holds several datasets or splits ({names}); point at one of them, "
                        f"e.g. {src / first}")
    raise UserError(_no_pairs_message(src, layout, single_images=False))


def _nonempty(found: PairList, where: Path) -> PairList:
    if not found.pairs:
        raise UserError(f"no images found in {where}")
    return found


def _check_dir(path: Path) -> None:
    if not path.exists():
        raise UserError(f"folder not found: {path}")
    if not path.is_dir():
        raise UserError(f"expected a folder, got a file: {path}")


def _no_pairs_message(src: Path, layout: str, *, single_images: bool) -> str:
    if single_images:
        return (f"no rainy/clean pairs found in {src}: it holds single images (no *gt partners, not "
                f"side-by-side pairs); use --rain DIR --clean DIR, or --layout did for side-by-side files")
    if not any(True for _ in src.iterdir()):
        return f"no images found in {src} (the folder is empty)"
    wanted = "" if layout == "auto" else f" of layout {layout!r}"
    return (f"no rainy/clean pairs{wanted} found in {src} (looked for rain/norain, input/target, "
            f"rainy_image/ground_truth folders, *gt files and side-by-side images, also 1-2 levels down)")


# ------------------------------------------------------------------------------------------- loading


def split_side_by_side(image: Image, path: Path, rain_side: str) -> tuple[Image, Image]:
    """Split a side-by-side picture into (rainy, clean) halves."""
    w = image.width
    if w % 2:
        raise UserError(f"side-by-side image {path} has odd width {w}; cannot split it into two halves")
    left = Image(np.ascontiguousarray(image.pixels[:, : w // 2]), image.bit_depth, image.notes)
    right = Image(np.ascontiguousarray(image.pixels[:, w // 2:]), image.bit_depth, image.notes)
    return (left, right) if rain_side == "left" else (right, left)


def load_pair(pair: Pair) -> tuple[Image, Image]:
    """Decode a pair as (rainy, clean) images of equal size; :class:`UserError` on size mismatch."""
    if pair.side is not None:
        return split_side_by_side(read_image(pair.rain_path), pair.rain_path, pair.side)
    rain = read_image(pair.rain_path)
    clean = read_image(pair.clean_path)
    if rain.pixels.shape != clean.pixels.shape:
        raise UserError(_size_mismatch(pair, rain.pixels.shape[:2], clean.pixels.shape[:2]))
    return rain, clean


def _size_mismatch(pair: Pair, rain_hw, clean_hw) -> str:
    return (f"size mismatch: {pair.rain_path} is {rain_hw[1]}x{rain_hw[0]} but {pair.clean_path} is "
            f"{clean_hw[1]}x{clean_hw[0]} (width x height)")


def pair_size(pair: Pair) -> tuple[int, int]:
    """(height, width) of a pair from the file headers; checks sizes agree (and, for side-by-side
    files, that the width is even) without decoding pixels."""
    if pair.side is not None:
        h, w = image_size(pair.rain_path)
        if w % 2:
            raise UserError(f"side-by-side image {pair.rain_path} has odd width {w}; cannot split it into "
                            f"two halves")
        return h, w // 2
    rain_hw = image_size(pair.rain_path)
    clean_hw = image_size(pair.clean_path)
    if rain_hw != clean_hw:
        raise UserError(_size_mismatch(pair, rain_hw, clean_hw))
    return rain_hw


def find_folder_pairs(degraded: str | os.PathLike, clean: str | os.PathLike) -> PairList:
    """Pairs of a folder of degraded (or restored) images and a folder of clean ones, matched by name."""
    return find_pairs(rain=degraded, clean=clean)
