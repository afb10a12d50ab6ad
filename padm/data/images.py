"""Reading and writing images as RGB arrays.

Every image enters the project through :func:`read_image`, which returns RGB pixels ``(H, W, 3)`` of
dtype ``uint8`` or ``uint16`` and a record of the conversions it made (grayscale expanded to RGB, alpha
dropped, palette resolved, EXIF rotation applied).  Values map to ``[0, 1]`` by

.. math::  x = p / (2^b - 1),  \\qquad  p = \\operatorname{round}(\\operatorname{clip}(x, 0, 1) \\cdot (2^b - 1))

with bit depth ``b`` in {8, 16} (:func:`to_float`, :func:`from_float`).

Pillow decodes most formats, but it reads 16-bit RGB(A) PNG files at 8-bit precision; those are
decoded exactly here by running Pillow's PNG decoder twice (high bytes, then low bytes).  TIFF goes
through ``tifffile`` (16-bit RGB), falling back to Pillow.  :func:`write_image` writes atomically
(temporary file, then rename), 16-bit PNG with a small built-in encoder and 16-bit TIFF with
``tifffile``.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

from padm.errors import UserError
from padm.fileio import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import torch

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}
_MAX = {8: 255, 16: 65535}


@attrs.frozen(eq=False)
class Image:
    """An RGB image as read from disk."""

    pixels: np.ndarray  # (H, W, 3) uint8 or uint16, C-contiguous
    bit_depth: int  # 8 or 16, matches pixels.dtype
    notes: tuple[str, ...] = ()  # conversions made while reading, e.g. "alpha channel dropped"

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a visible file whose suffix is an image suffix (case-insensitive)."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()


# --------------------------------------------------------------------------------------------- conversion


def bit_depth_of(pixels: np.ndarray) -> int:
    if pixels.dtype == np.uint8:
        return 8
    if pixels.dtype == np.uint16:
        return 16
    raise ValueError(f"pixels must be uint8 or uint16, got {pixels.dtype}")


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 / uint16 pixels -> float32 in [0, 1] (same shape)."""
    return pixels.astype(np.float32) / np.float32(_MAX[bit_depth_of(pixels)])


def from_float(array: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Float values in [0, 1] -> uint8 (``bit_depth=8``) or uint16 (16): scale, round half to even, clip.

    NaN becomes 0.
    """
    if bit_depth not in _MAX:
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    top = _MAX[bit_depth]
    scaled = np.nan_to_num(np.asarray(array, dtype=np.float32), nan=0.0) * np.float32(top)
    out = np.clip(np.rint(scaled), 0, top)
    return out.astype(np.uint8 if bit_depth == 8 else np.uint16)


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """Any supported pixels -> uint8 (rounded, not truncated)."""
    if pixels.dtype == np.uint8:
        return pixels
    return from_float(to_float(pixels), 8)


def to_tensor(pixels: np.ndarray) -> "torch.Tensor":
    """(H, W, 3) uint8/uint16 pixels -> torch float32 tensor (3, H, W) in [0, 1]."""
    import torch

    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected pixels of shape (H, W, 3), got {pixels.shape}")
    chw = np.array(pixels.transpose(2, 0, 1), dtype=np.float32, order="C")  # (3, H, W), one fresh copy
    chw /= np.float32(_MAX[bit_depth_of(pixels)])
    return torch.from_numpy(chw)


def to_pixels(tensor: "torch.Tensor", bit_depth: int = 8) -> np.ndarray:
    """Float tensor (3, H, W) or (1, 3, H, W) in [0, 1] -> (H, W, 3) uint8/uint16 (rounded, clipped)."""
    t = tensor.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a tensor of shape (3, H, W), got {tuple(tensor.shape)}")
    array = t.to("cpu").float().permute(1, 2, 0).numpy()  # (H, W, 3)
    return from_float(array, bit_depth)


# --------------------------------------------------------------------------------------------- reading


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:200]


def read_image(path: str | os.PathLike) -> Image:
    """Decode an image file into RGB pixels ``(H, W, 3)``.

    Grayscale is expanded to RGB, alpha dropped, palettes and CMYK resolved and EXIF orientation
    applied; each such conversion is listed in :attr:`Image.notes`.  16-bit files stay 16-bit.

    Raises :class:`UserError` naming the file when it is missing, not an image, truncated or corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"image not found: {path}")
    if path.is_dir():
        raise UserError(f"expected an image file but found a folder: {path}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            pixels, notes = _read_tiff(path)
        else:
            pixels, notes = _read_pillow(path)
    except UserError:
        raise
    except MemoryError:
        raise
    except Exception as err:  # Pillow/tifffile raise many types (OSError, SyntaxError, ValueError, ...)
        raise UserError(f"cannot read image {path}: {_one_line(err)}") from None
    pixels = np.ascontiguousarray(pixels)
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise UserError(f"cannot read image {path}: it has no pixels")
    return Image(pixels=pixels, bit_depth=bit_depth_of(pixels), notes=tuple(notes))


def _read_pillow(path: Path) -> tuple[np.ndarray, list[str]]:
    from PIL import Image as PILImage

    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        with PILImage.open(path) as im:
            rawmode = _png_rawmode(im)
            orientation = _orientation(im)
            pixels = None
            if rawmode in ("RGB;16B", "RGBA;16B"):
                try:
                    pixels = _decode_png16(path, rawmode)
                    notes += ["alpha channel dropped"] if rawmode == "RGBA;16B" else []
                except Exception:  # Pillow internals changed: fall back to its 8-bit reading
                    pixels = None
            if pixels is None:
                im.load()
                pixels = _pil_to_rgb(im, notes)
                if rawmode and rawmode.endswith(";16B") and pixels.dtype == np.uint8:
                    notes.append("16-bit PNG read at 8-bit precision")
    if orientation not in (None, 1):
        pixels = _apply_orientation(pixels, int(orientation))
        notes.append("rotated according to EXIF orientation")
    return pixels, notes


def _orientation(im) -> int:
    """EXIF orientation tag (1 = upright).  For PNG only an eXIf chunk before the pixel data counts:
    Pillow's ``getexif()`` would decode the whole image to look for a later one."""
    try:
        if im.format == "PNG":
            raw = im.info.get("exif")
            if not raw:
                return 1
            from PIL import Image as PILImage

            exif = PILImage.Exif()
            exif.load(raw)
            return int(exif.get(0x0112, 1) or 1)
        if im.format in ("JPEG", "TIFF", "WEBP", "MPO"):
            return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block should not make the image unreadable
        return 1
    return 1


def _png_rawmode(im) -> str | None:
    if im.format != "PNG" or not im.tile:
        return None
    args = im.tile[0].args if hasattr(im.tile[0], "args") else im.tile[0][3]
    return args[0] if isinstance(args, tuple) else args


def _decode_png16(path: Path, rawmode: str) -> np.ndarray:
    """Exact 16-bit RGB(A) PNG decode: Pillow's decoder keeps the big-endian high byte for rawmode
    ``RGB;16B`` and the other byte of each sample for ``RGB;16L``; combining both gives the full value."""
    from PIL import Image as PILImage

    halves = []
    for mode in (rawmode, rawmode.replace("16B", "16L")):
        with PILImage.open(path) as im:
            tile = im.tile[0]
            im.tile = [tile._replace(args=mode) if hasattr(tile, "_replace") else (*tile[:3], mode)]
            im.load()
            halves.append(np.asarray(im))
    hi, lo = halves
    pixels = (hi.astype(np.uint16) << 8) | lo.astype(np.uint16)
    return pixels[..., :3]


def _pil_to_rgb(im, notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode == "RGBA":
        notes.append("alpha channel dropped")
        return np.asarray(im)[..., :3]
    if mode in ("L", "1"):
        notes.append("grayscale converted to RGB")
        return _gray3(np.asarray(im.convert("L")))
    if mode in ("LA", "La"):
        notes += ["grayscale converted to RGB", "alpha channel dropped"]
        return _gray3(np.asarray(im)[..., 0])
    if mode.startswith("I;16") or mode == "I":
        gray = np.asarray(im)
        notes.append("grayscale converted to RGB")
        if gray.dtype != np.uint16:
            if gray.min() < 0 or gray.max() > 65535:
                raise UserError(f"unsupported 32-bit integer image {im.filename}")
            gray = gray.astype(np.uint16)
        return _gray3(gray)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        notes.append("palette image converted to RGB")
        if has_alpha:
            notes.append("alpha channel dropped")
            return np.asarray(im.convert("RGBA"))[..., :3]
        return np.asarray(im.convert("RGB"))
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        notes.append(f"{mode} converted to RGB")
        return np.asarray(im.convert("RGB"))
    raise UserError(f"unsupported image mode {mode!r} in {im.filename}")


def _gray3(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    # EXIF orientation tag -> transform that displays the image upright
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(pixels)) if op else pixels


def _read_tiff(path: Path) -> tuple[np.ndarray, list[str]]:
    try:
        import tifffile

        data = tifffile.imread(path, key=0)
    except Exception:
        return _read_pillow(path)  # compression tifffile cannot decode without imagecodecs, etc.
    notes: list[str] = []
    if data.dtype not in (np.uint8, np.uint16):
        if data.dtype == bool:
            data = data.astype(np.uint8) * 255
        else:
            raise UserError(f"unsupported TIFF sample type {data.dtype} in {path} (use 8- or 16-bit)")
    if data.ndim == 2:
        notes.append("grayscale converted to RGB")
        data = _gray3(data)
    elif data.ndim == 3 and data.shape[2] in (1, 2):
        notes.append("grayscale converted to RGB")
        if data.shape[2] == 2:
            notes.append("alpha channel dropped")
        data = _gray3(data[..., 0])
    elif data.ndim == 3 and data.shape[2] >= 4:
        notes.append("alpha channel dropped")
        data = data[..., :3]
    elif data.ndim != 3 or data.shape[2] != 3:
        raise UserError(f"unsupported TIFF layout {data.shape} in {path} (expected one RGB or gray page)")
    return data, notes


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image from its header, as :func:`read_image` would return it (EXIF
    rotation included), without decoding the pixels.  Raises :class:`UserError` for non-images."""
    from PIL import Image as PILImage

    path = Path(path)
    try:
        with PILImage.open(path) as im:
            w, h = im.size
            orientation = _orientation(im)
    except Exception as err:
        if path.suffix.lower() in (".tif", ".tiff"):
            shape = read_image(path).pixels.shape
            return int(shape[0]), int(shape[1])
        if not path.exists():
            raise UserError(f"image not found: {path}") from None
        raise UserError(f"cannot read image {path}: {_one_line(err)}") from None
    if orientation in (5, 6, 7, 8):
        h, w = w, h
    return int(h), int(w)


# --------------------------------------------------------------------------------------------- writing


def write_image(path: str | os.PathLike, pixels: np.ndarray, *, quality: int = 95) -> tuple[str, ...]:
    """Write ``(H, W, 3)`` (or ``(H, W)``) uint8/uint16 pixels; the format comes from the suffix
    (png, jpg/jpeg, bmp, tif/tiff).  The file appears complete or not at all (temp file + rename).

    16-bit pixels are kept in PNG and TIFF; JPEG and BMP hold 8 bits only, so they are rounded to
    8-bit and a note says so.  Returns the notes (empty when nothing was converted).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UserError(f"cannot write {path}: unknown image suffix {path.suffix!r} "
                        f"(use one of {', '.join(sorted(IMAGE_SUFFIXES))})")
    pixels = np.asarray(pixels)
    bit_depth_of(pixels)
    if pixels.ndim == 2:
        pixels = _gray3(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected pixels of shape (H, W, 3), got {pixels.shape}")
    notes: tuple[str, ...] = ()
    if pixels.dtype == np.uint16 and suffix in (".jpg", ".jpeg", ".bmp"):
        pixels = to_8bit(pixels)
        notes = (f"16-bit reduced to 8-bit ({suffix[1:].upper()} holds 8 bits)",)
    pixels = np.ascontiguousarray(pixels)
    with atomic_write(path) as tmp:
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, pixels, photometric="rgb", compression="zlib")
        elif pixels.dtype == np.uint16:  # png, 16-bit
            tmp.write_bytes(encode_png16(pixels))
        else:
            from PIL import Image as PILImage

            kwargs = {"quality": quality, "subsampling": 0} if suffix in (".jpg", ".jpeg") else {}
            PILImage.fromarray(pixels).save(tmp, format=_PIL_FORMATS[suffix], **kwargs)
    return notes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(pixels: np.ndarray, *, filters: np.ndarray | None = None, level: int = 6) -> bytes:
    """Encode ``(H, W, 3)`` or ``(H, W, 4)`` uint16 pixels as a 16-bit RGB / RGBA PNG.

    ``filters`` optionally gives the PNG filter type (0 none, 1 sub, 2 up, 3 average, 4 Paeth) of each
    row; by default every row uses ``up`` (2).  All filters are computed on whole arrays (the filter
    inputs are raw bytes, so encoding needs no per-pixel loop).
    """
    h, w, c = pixels.shape
    if c not in (3, 4) or pixels.dtype != np.uint16:
        raise ValueError("encode_png16 expects (H, W, 3) or (H, W, 4) uint16 pixels")
    bpp = 2 * c
    raw = pixels.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int16)  # (H, bpp * W) bytes
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    up = np.zeros_like(raw)
    up[1:] = raw[:-1]
    upleft = np.zeros_like(raw)
    upleft[1:, bpp:] = raw[:-1, :-bpp]
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    predictors = [np.zeros_like(raw), left, up, (left + up) // 2, paeth]
    if filters is None:
        filters = np.full(h, 2, dtype=np.uint8)
    filters = np.asarray(filters, dtype=np.uint8)
    rows = np.empty((h, 1 + w * bpp), dtype=np.uint8)
    rows[:, 0] = filters
    for kind in range(5):
        sel = filters == kind
        if sel.any():
            rows[sel, 1:] = ((raw[sel] - predictors[kind][sel]) % 256).astype(np.uint8)
    header = struct.pack(">IIBBBBB", w, h, 16, 2 if c == 3 else 6, 0, 0, 0)  # colour type RGB / RGBA
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _png_chunk(b"IEND", b""))
