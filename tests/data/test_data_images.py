from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageOps

from padm.data.images import (
    IMAGE_SUFFIXES,
    encode_png16,
    from_float,
    image_size,
    read_image,
    to_float,
    to_pixels,
    to_tensor,
    write_image,
)
from padm.errors import UserError

from data_helpers import leftovers, scene


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_round_trip_8bit(tmp_path, suffix):
    px = scene(1)
    write_image(tmp_path / f"a{suffix}", px)
    img = read_image(tmp_path / f"a{suffix}")
    assert img.bit_depth == 8 and img.notes == () and img.pixels.shape == (37, 53, 3)
    np.testing.assert_array_equal(img.pixels, px)


def test_jpeg_round_trip_is_close(tmp_path):
    px = scene(2)
    write_image(tmp_path / "a.JPG", px)
    img = read_image(tmp_path / "a.JPG")
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == px.shape
    assert np.abs(img.pixels.astype(int) - px).mean() < 6


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_round_trip_exact(tmp_path, suffix):
    px = np.random.default_rng(0).integers(0, 65536, (37, 53, 3)).astype(np.uint16)
    write_image(tmp_path / f"a{suffix}", px)
    img = read_image(tmp_path / f"a{suffix}")
    assert img.bit_depth == 16 and img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, px)


def test_16bit_png_every_filter_type(tmp_path):
    """The decoder must undo all five PNG row filters (sub, up, average, Paeth), not just 'none'."""
    rng = np.random.default_rng(3)
    px = (scene(3).astype(np.uint16) * 257 + rng.integers(0, 257, (37, 53, 3))).astype(np.uint16)
    (tmp_path / "f.png").write_bytes(encode_png16(px, filters=np.arange(37) % 5))
    np.testing.assert_array_equal(read_image(tmp_path / "f.png").pixels, px)
    # Pillow alone would have read the high bytes only
    with PILImage.open(tmp_path / "f.png") as im:
        assert np.asarray(im).dtype == np.uint8


def test_16bit_to_jpeg_is_reduced_with_note(tmp_path):
    px = np.full((5, 7, 3), 65535, np.uint16)
    notes = write_image(tmp_path / "a.jpg", px)
    assert notes and "8-bit" in notes[0]
    assert read_image(tmp_path / "a.jpg").pixels.min() >= 250


def test_grayscale_converted_with_note(tmp_path):
    gray = scene(4)[..., 0]
    PILImage.fromarray(gray).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.pixels.shape == (37, 53, 3) and "grayscale converted to RGB" in img.notes
    assert all(np.array_equal(img.pixels[..., c], gray) for c in range(3))


def test_grayscale_16bit(tmp_path):
    gray = np.random.default_rng(1).integers(0, 65536, (37, 53)).astype(np.uint16)
    PILImage.fromarray(gray).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    assert img.bit_depth == 16 and "grayscale converted to RGB" in img.notes
    np.testing.assert_array_equal(img.pixels[..., 1], gray)


def test_rgba_alpha_dropped_with_note(tmp_path):
    rgba = np.concatenate([scene(5), np.full((37, 53, 1), 7, np.uint8)], axis=2)
    PILImage.fromarray(rgba).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert "alpha channel dropped" in img.notes
    np.testing.assert_array_equal(img.pixels, rgba[..., :3])


def test_palette_image(tmp_path):
    PILImage.fromarray(scene(6)).convert("P").save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.pixels.shape == (37, 53, 3) and "palette image converted to RGB" in img.notes


def test_exif_orientation_applied(tmp_path):
    pil = PILImage.fromarray(scene(7))
    exif = pil.getexif()
    exif[0x0112] = 6
    pil.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=100)
    img = read_image(tmp_path / "o.jpg")
    ref = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "o.jpg")))
    assert img.pixels.shape == (53, 37, 3) and image_size(tmp_path / "o.jpg") == (53, 37)
    np.testing.assert_array_equal(img.pixels, ref)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_unreadable_file_names_the_file(tmp_path, content):
    bad = tmp_path / "broken.png"
    bad.write_bytes(content)
    with pytest.raises(UserError, match=r"cannot read image .*broken\.png") as err:
        read_image(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="broken.png"):
        image_size(bad)


def test_truncated_png(tmp_path):
    write_image(tmp_path / "t.png", scene(8))
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cannot read image .*t\.png"):
        read_image(tmp_path / "t.png")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(UserError, match="image not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(UserError, match="folder"):
        read_image(tmp_path)


def test_write_is_atomic_and_leaves_no_temp(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png", scene(1))
    before = (tmp_path / "a.png").read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PILImage.Image, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "a.png", scene(2))
    assert (tmp_path / "a.png").read_bytes() == before
    assert leftovers(tmp_path) == []


def test_write_unknown_suffix(tmp_path):
    with pytest.raises(UserError, match="unknown image suffix"):
        write_image(tmp_path / "a.gif", scene(1))
    assert ".png" in IMAGE_SUFFIXES and ".gif" not in IMAGE_SUFFIXES


def test_float_conversions():
    px8 = np.array([[[0, 128, 255]]], np.uint8)
    f = to_float(px8)
    assert f.dtype == np.float32 and f.max() == 1.0 and f.min() == 0.0
    np.testing.assert_array_equal(from_float(f, 8), px8)
    px16 = np.array([[[0, 32768, 65535]]], np.uint16)
    np.testing.assert_array_equal(from_float(to_float(px16), 16), px16)
    clipped = from_float(np.array([[[-0.5, np.nan, 1.7]]]), 8)
    np.testing.assert_array_equal(clipped, [[[0, 0, 255]]])
    assert from_float(np.array([0.5 / 255]), 8)[0] in (0, 1)  # rounding, not truncation of 0.5


def test_tensor_helpers():
    px = scene(9)
    t = to_tensor(px)
    assert t.shape == (3, 37, 53) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    np.testing.assert_array_equal(to_pixels(t), px)
    np.testing.assert_array_equal(to_pixels(t[None]), px)
    px16 = (px.astype(np.uint16) * 257)
    np.testing.assert_array_equal(to_pixels(to_tensor(px16), 16), px16)
    with pytest.raises(ValueError):
        to_pixels(torch.zeros(2, 3, 4, 4))


def test_16bit_rgba_png_alpha_dropped(tmp_path):
    px = np.random.default_rng(4).integers(0, 65536, (37, 53, 4)).astype(np.uint16)
    (tmp_path / "a.png").write_bytes(encode_png16(px, filters=np.arange(37) % 5))
    img = read_image(tmp_path / "a.png")
    assert img.bit_depth == 16 and img.notes == ("alpha channel dropped",)
    np.testing.assert_array_equal(img.pixels, px[..., :3])


@pytest.mark.parametrize("side", [12_000, 30_000])  # past Pillow's warning limit, and past its error limit
def test_decompression_bomb_is_refused_before_decoding(tmp_path, side):
    """A tiny file whose header claims a huge image: refused from the header, nothing is allocated."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    with pytest.raises(UserError, match=r"cannot read image .*bomb\.png: Image size \(\d+ pixels\) exceeds limit"):
        read_image(bomb)
