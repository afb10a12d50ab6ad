from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from padm.cli import main
from padm.data import pack as pack_module
from padm.data.h5 import FORMAT, FORMAT_VERSION, PairsFile
from padm.data.images import write_image
from padm.data.pack import pack
from padm.errors import UserError

from data_helpers import leftovers, rainy, scene, write_pairs


def quiet_pack(src, out, **kw):
    return pack(src, out, progress=False, log=lambda _msg: None, **kw)


def run_cli(*args):
    return CliRunner().invoke(main, list(map(str, args)))


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("compression", ["lzf", "gzip", "none"])
def test_round_trip_pixel_exact(jorder, tmp_path, compression):
    root, pixels = jorder
    out = tmp_path / "train.h5"
    result = quiet_pack(root, out, compression=compression, chunk=16)
    assert result.num_pairs == 4 and result.layout == "jorder" and result.skipped == 2
    f = PairsFile(out)
    assert f.names == ("1", "2", "3", "4")
    assert [tuple(s) for s in f.shapes] == [(37, 53), (53, 37), (41, 45), (37, 53)]
    for i, name in enumerate(f.names):
        rain, clean = f.read(i)
        np.testing.assert_array_equal(rain, pixels[name][0])
        np.testing.assert_array_equal(clean, pixels[name][1])
        r, c = f.read_crop(i, 3, 5, 16, 17)
        np.testing.assert_array_equal(r, pixels[name][0][3:19, 5:22])
        np.testing.assert_array_equal(c, pixels[name][1][3:19, 5:22])
    assert leftovers(tmp_path) == []


def test_file_format(jorder, tmp_path):
    root, _ = jorder
    quiet_pack(root, tmp_path / "a.h5", chunk=64)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        a = f.attrs
        assert a["format"] == FORMAT and a["format_version"] == FORMAT_VERSION and a["complete"] == 1
        assert a["num_pairs"] == 4 and a["num_clean"] == 4 and a["layout"] == "jorder"
        assert a["skipped"] == 2 and str(root) in a["source"]
        ds = f["rain/000001"]
        assert ds.dtype == np.uint8 and ds.shape == (53, 37, 3) and ds.chunks == (53, 37, 3)
        assert f["rain/000000"].chunks == (37, 53, 3)  # chunk edge 64 > image: one chunk
        assert ds.compression == "lzf"
    quiet_pack(root, tmp_path / "b.h5")
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert f["clean/000000"].chunks == (32, 32, 3)  # the default


def test_ddn_clean_images_stored_once(tmp_path):
    (tmp_path / "rainy_image").mkdir()
    (tmp_path / "ground_truth").mkdir()
    cleans = {n: scene(n) for n in (1, 2)}
    for n, clean in cleans.items():
        write_image(tmp_path / "ground_truth" / f"{n}.png", clean)
        for k in (1, 2, 3):
            write_image(tmp_path / "rainy_image" / f"{n}_{k}.png", rainy(clean, 10 * n + k))
    result = quiet_pack(tmp_path, tmp_path / "ddn.h5")
    assert result.num_pairs == 6 and result.num_clean == 2 and result.layout == "ddn"
    f = PairsFile(tmp_path / "ddn.h5")
    assert list(f.clean_index) == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(f.read(4)[1], cleans[2])


def test_did_pack(tmp_path):
    src = tmp_path / "did"
    src.mkdir()
    clean = scene(1, 37, 40)
    rain = rainy(clean, 1)
    for i in range(3):
        write_image(src / f"{i}.png", np.concatenate([rain, clean], axis=1))
    quiet_pack(src, tmp_path / "did.h5")
    f = PairsFile(tmp_path / "did.h5")
    assert f.layout == "did" and len(f) == 3
    r, c = f.read(2)
    np.testing.assert_array_equal(r, rain)
    np.testing.assert_array_equal(c, clean)


def test_conversions_are_noted(jorder, tmp_path):
    root, pixels = jorder
    PILImage.fromarray(pixels["1"][1][..., 0]).save(root / "norain" / "1.png")  # grayscale
    rgba = np.concatenate([pixels["2"][0], np.full((53, 37, 1), 9, np.uint8)], axis=2)
    PILImage.fromarray(rgba).save(root / "rain" / "2.png")
    write_image(root / "rain" / "3.png", pixels["3"][0].astype(np.uint16) * 257)  # 16-bit, same values
    messages = []
    result = pack(root, tmp_path / "c.h5", progress=False, log=messages.append)
    assert result.notes == {"grayscale converted to RGB": 1, "alpha channel dropped": 1,
                            "16-bit converted to 8-bit": 1}
    assert any("Converted:" in m and "16-bit converted to 8-bit (1 images)" in m for m in messages)
    f = PairsFile(tmp_path / "c.h5")
    np.testing.assert_array_equal(f.read(2)[0], pixels["3"][0])  # 16-bit rounded back exactly
    np.testing.assert_array_equal(f.read(1)[0], pixels["2"][0])


# ------------------------------------------------------------------------------------------ bad input


def test_output_exists_is_refused(jorder, tmp_path):
    root, _ = jorder
    out = tmp_path / "x.h5"
    out.write_bytes(b"precious")
    with pytest.raises(UserError, match=r"output file already exists: .*x\.h5 \(use --overwrite"):
        quiet_pack(root, out)
    assert out.read_bytes() == b"precious"
    quiet_pack(root, out, overwrite=True)
    assert len(PairsFile(out)) == 4


def test_size_mismatch_leaves_nothing(jorder, tmp_path):
    root, _ = jorder
    write_image(root / "norain" / "3.png", scene(3, 41, 44))
    out = tmp_path / "out" / "m.h5"
    with pytest.raises(UserError, match=r"size mismatch: .*rain/3\.png is 45x41 but .*norain/3\.png is 44x41"):
        quiet_pack(root, out)
    assert not out.exists() and leftovers(tmp_path) == []
    assert not out.parent.exists()


def test_corrupt_image_leaves_nothing(jorder, tmp_path):
    """Header fine, pixel data cut: found while packing, after earlier pairs were written."""
    root, _ = jorder
    data = (root / "rain" / "3.png").read_bytes()
    (root / "rain" / "3.png").write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "new" / "dirs" / "c.h5"
    with pytest.raises(UserError, match=r"cannot read image .*rain/3\.png"):
        quiet_pack(root, out)
    assert not out.exists() and leftovers(tmp_path) == []
    assert not (tmp_path / "new").exists()  # folders made for the output are removed again


def test_interrupt_leaves_old_output_untouched(jorder, tmp_path, monkeypatch):
    root, _ = jorder
    out = tmp_path / "keep.h5"
    quiet_pack(root, out)
    before = out.read_bytes()
    calls = []

    def interrupted(pair):
        calls.append(pair)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(pair)

    real = pack_module.load_pair
    monkeypatch.setattr(pack_module, "load_pair", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quiet_pack(root, out, overwrite=True)
    assert out.read_bytes() == before and leftovers(tmp_path) == []


def test_output_is_a_folder(jorder, tmp_path):
    root, _ = jorder
    with pytest.raises(UserError, match="output path is a folder"):
        quiet_pack(root, tmp_path)


# ------------------------------------------------------------------------------------------ CLI


def test_cli_pack(jorder, tmp_path):
    root, _ = jorder
    res = run_cli("pack", root, tmp_path / "t.h5", "-q")
    assert res.exit_code == 0, res.output
    assert "layout: jorder" in res.output and "Skipped 2 non-image" in res.output
    assert "Wrote" in res.output and (tmp_path / "t.h5").exists()


def test_cli_explicit_folders(tmp_path):
    write_pairs(tmp_path / "a", tmp_path / "b", 2)
    res = run_cli("pack", "--rain", tmp_path / "a", "--clean", tmp_path / "b", tmp_path / "e.h5", "-q")
    assert res.exit_code == 0, res.output
    assert PairsFile(tmp_path / "e.h5").layout == "explicit"


@pytest.mark.parametrize("case", ["exists", "missing_partner", "empty", "split", "usage", "duplicate",
                                  "size", "corrupt", "not_a_folder"])
def test_cli_errors_are_one_line(jorder, tmp_path, case):
    root, _ = jorder
    out = tmp_path / "o.h5"
    args = ["pack", root, out, "-q"]
    if case == "exists":
        out.write_bytes(b"x")
        expect = "already exists"
    elif case == "missing_partner":
        (root / "norain" / "4.png").unlink()
        expect = "no clean partner for"
    elif case == "empty":
        (tmp_path / "void").mkdir()
        args = ["pack", tmp_path / "void", out]
        expect = "no images found"
    elif case == "split":
        write_pairs(tmp_path / "two" / "train" / "rain", tmp_path / "two" / "train" / "norain", 1)
        write_pairs(tmp_path / "two" / "test" / "rain", tmp_path / "two" / "test" / "norain", 1)
        args = ["pack", tmp_path / "two", out]
        expect = "several datasets or splits"
    elif case == "duplicate":
        write_image(root / "norain" / "2.bmp", scene(2))
        expect = "duplicate image name '2'"
    elif case == "size":
        write_image(root / "norain" / "4.png", scene(4, 36, 53))
        expect = "size mismatch"
    elif case == "corrupt":
        data = (root / "norain" / "4.png").read_bytes()
        (root / "norain" / "4.png").write_bytes(data[:200])
        expect = "cannot read image"
    elif case == "not_a_folder":
        args = ["pack", root / "SOURCE.txt", out]
        expect = "expected a folder"
    else:
        args = ["pack", out]
        expect = "give SRC and OUT.h5"
    res = run_cli(*args)
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()  # "Found N pairs ..." may come first
    errors = [line for line in lines if line.startswith("Error")]
    assert errors == [lines[-1]] and expect in lines[-1], res.output
    assert "Traceback" not in res.output
    if case != "exists":
        assert not out.exists()
    assert leftovers(tmp_path) == []
