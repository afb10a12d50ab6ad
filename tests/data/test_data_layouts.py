from __future__ import annotations

import numpy as np
import pytest

from padm.data.images import write_image
from padm.data.layouts import find_pairs, load_pair, pair_size
from padm.errors import UserError

from data_helpers import rainy, scene, write_pairs


def names(pl):
    return [p.name for p in pl.pairs]


def check_pixels(pl, pixels):
    for pair in pl.pairs:
        rain, clean = load_pair(pair)
        want_rain, want_clean = pixels[pair.name]
        np.testing.assert_array_equal(rain.pixels, want_rain)
        np.testing.assert_array_equal(clean.pixels, want_clean)


# ------------------------------------------------------------------------------------------ each layout


def test_jorder_same_names(jorder):
    root, pixels = jorder
    pl = find_pairs(root)
    assert pl.layout == "jorder" and names(pl) == ["1", "2", "3", "4"]
    assert pl.skipped == 2  # SOURCE.txt, mapping.csv
    assert pl.root == root and "rain/ + norain/" in pl.description
    check_pixels(pl, pixels)


def test_jorder_x2_names(tmp_path):
    pixels = write_pairs(tmp_path / "rain", tmp_path / "norain", 3, rain_name=lambda i: f"norain-{i}x2",
                         clean_name=lambda i: f"norain-{i}")
    pl = find_pairs(tmp_path)
    assert pl.layout == "jorder" and names(pl) == ["norain-1x2", "norain-2x2", "norain-3x2"]
    assert all(p.clean_path.name == p.name.replace("x2", "") + ".png" for p in pl.pairs)
    check_pixels(pl, pixels)


def test_jorder_rain_prefix_and_x2_subfolder(tmp_path):
    """Original JORDER releases: rain/X2/rain-1.png ... with norain/norain-1.png."""
    write_pairs(tmp_path / "rain" / "X2", tmp_path / "norain", 2, rain_name=lambda i: f"rain-{i}",
                clean_name=lambda i: f"norain-{i}")
    pl = find_pairs(tmp_path)
    assert pl.layout == "jorder" and names(pl) == ["rain-1", "rain-2"]
    assert pl.pairs[0].clean_path.name == "norain-1.png"


def test_restormer_input_target(tmp_path):
    write_pairs(tmp_path / "input", tmp_path / "target", 3, ext="jpg")
    pl = find_pairs(tmp_path)
    assert pl.layout == "restormer" and len(pl) == 3
    assert pl.pairs[0].rain_path.parent.name == "input"


def test_did_side_by_side_auto(tmp_path):
    want = {}
    for i in range(3):
        clean = scene(i, 37, 40)
        rain = rainy(clean, i)
        write_image(tmp_path / f"{i}.png", np.concatenate([rain, clean], axis=1))  # (37, 80, 3)
        want[str(i)] = (rain, clean)
    pl = find_pairs(tmp_path)
    assert pl.layout == "did" and len(pl) == 3 and pl.pairs[0].side == "left"
    assert pl.pairs[0].rain_path == pl.pairs[0].clean_path
    assert pair_size(pl.pairs[0]) == (37, 40)
    check_pixels(pl, want)
    swapped = find_pairs(tmp_path, rain_side="right")
    rain, clean = load_pair(swapped.pairs[0])
    np.testing.assert_array_equal(rain.pixels, want["0"][1])
    np.testing.assert_array_equal(clean.pixels, want["0"][0])


def test_single_photos_are_not_mistaken_for_side_by_side(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png", scene(i, 37, 80))  # even width, but one scene per file
    with pytest.raises(UserError, match="single images"):
        find_pairs(tmp_path)
    assert find_pairs(tmp_path, layout="did").layout == "did"  # forcing is possible


def test_ddn_many_to_one(tmp_path):
    (tmp_path / "rainy_image").mkdir()
    (tmp_path / "ground_truth").mkdir()
    for n in (1, 2):
        clean = scene(n)
        write_image(tmp_path / "ground_truth" / f"{n}.jpg", clean)
        for k in (1, 2, 14):
            write_image(tmp_path / "rainy_image" / f"{n}_{k}.jpg", rainy(clean, 10 * n + k))
    pl = find_pairs(tmp_path)
    assert pl.layout == "ddn" and names(pl) == ["1_1", "1_2", "1_14", "2_1", "2_2", "2_14"]
    assert {p.clean_path.name for p in pl.pairs} == {"1.jpg", "2.jpg"}
    assert "many-to-one" in pl.description


def test_ddn_names_under_other_folder_names(tmp_path):
    write_pairs(tmp_path / "rain", tmp_path / "norain", 2, rain_name=lambda i: f"{i}_3")
    pl = find_pairs(tmp_path)
    assert pl.layout == "ddn" and names(pl) == ["1_3", "2_3"]


def test_spa_same_folder(tmp_path):
    pixels = write_pairs(tmp_path / "rain", tmp_path / "rain", 3, rain_name=lambda i: f"00{i}_2",
                         clean_name=lambda i: f"00{i}_2gt")
    pl = find_pairs(tmp_path)  # the dataset root: rain/ alone is entered
    assert pl.layout == "spa" and names(pl) == ["001_2", "002_2", "003_2"]
    assert pl.pairs[0].clean_path.name == "001_2gt.png"
    check_pixels(pl, pixels)


def test_spa_gt_names_in_clean_folder(tmp_path):
    write_pairs(tmp_path / "rain", tmp_path / "norain", 2, clean_name=lambda i: f"{i}_gt")
    pl = find_pairs(tmp_path)
    assert pl.layout == "spa" and pl.pairs[1].clean_path.name == "2_gt.png"


def test_explicit_folders(tmp_path):
    pixels = write_pairs(tmp_path / "wet", tmp_path / "dry", 2)
    pl = find_pairs(rain=tmp_path / "wet", clean=tmp_path / "dry")
    assert pl.layout == "explicit" and len(pl) == 2
    check_pixels(pl, pixels)
    assert len(find_pairs(tmp_path, rain="wet", clean="dry")) == 2  # relative to src
    with pytest.raises(UserError, match="both --rain"):
        find_pairs(rain=tmp_path / "wet")


def test_other_folder_names(tmp_path):
    write_pairs(tmp_path / "rainy", tmp_path / "gt", 2)
    pl = find_pairs(tmp_path)
    assert pl.layout == "folders" and "rainy/ + gt/" in pl.description


def test_natural_order(tmp_path):
    write_pairs(tmp_path / "rain", tmp_path / "norain", 11)
    assert names(find_pairs(tmp_path))[:3] == ["1", "2", "3"]


# ------------------------------------------------------------------------------------------ splits


def test_single_split_is_entered(tmp_path):
    write_pairs(tmp_path / "train" / "rain", tmp_path / "train" / "norain", 2)
    pl = find_pairs(tmp_path)
    assert pl.root == tmp_path / "train" and len(pl) == 2


def test_restormer_nested_set(tmp_path):
    write_pairs(tmp_path / "train" / "Rain13K" / "input", tmp_path / "train" / "Rain13K" / "target", 2)
    assert find_pairs(tmp_path).root == tmp_path / "train" / "Rain13K"


def test_several_splits_are_refused(tmp_path):
    write_pairs(tmp_path / "train" / "rain", tmp_path / "train" / "norain", 2)
    write_pairs(tmp_path / "test" / "rain", tmp_path / "test" / "norain", 2)
    with pytest.raises(UserError, match=r"several datasets or splits \(test/, train/\); point at one"):
        find_pairs(tmp_path)
    assert len(find_pairs(tmp_path / "test")) == 2


# ------------------------------------------------------------------------------------------ bad input


def test_missing_clean_partner(jorder):
    root, _ = jorder
    (root / "norain" / "3.png").unlink()
    with pytest.raises(UserError, match=r"no clean partner for .*rain/3\.png in .*norain"):
        find_pairs(root)


def test_missing_rainy_partner(jorder):
    root, _ = jorder
    (root / "rain" / "2.png").unlink()
    with pytest.raises(UserError, match=r"no rainy partner for .*norain/2\.png"):
        find_pairs(root)


def test_duplicate_names(jorder):
    root, _ = jorder
    write_image(root / "rain" / "1.jpg", scene(1))
    with pytest.raises(UserError, match=r"duplicate image name '1' in .*rain: 1\.jpg and 1\.png"):
        find_pairs(root)


def test_duplicate_after_x2_normalisation(tmp_path):
    write_pairs(tmp_path / "rain", tmp_path / "norain", 2, rain_name=lambda i: f"norain-{i}x2",
                clean_name=lambda i: f"norain-{i}")
    write_image(tmp_path / "rain" / "norain-1.png", scene(1))
    with pytest.raises(UserError, match=r"duplicate image name .*norain-1\.png and norain-1x2\.png"):
        find_pairs(tmp_path)


def test_empty_folder(tmp_path):
    with pytest.raises(UserError, match="no images found in .*empty"):
        find_pairs(tmp_path)


def test_empty_rain_folder(tmp_path):
    (tmp_path / "rain").mkdir()
    write_pairs(tmp_path / "x", tmp_path / "norain", 1)
    with pytest.raises(UserError, match=r"no images found in .*rain"):
        find_pairs(tmp_path)


def test_only_non_image_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match="no rainy/clean pairs found"):
        find_pairs(tmp_path)


def test_non_images_skipped_and_counted(jorder):
    root, _ = jorder
    (root / "rain" / "Thumbs.db").write_bytes(b"x")
    (root / "norain" / ".DS_Store").write_bytes(b"x")
    (root / "norain" / "readme.md").write_text("x")
    assert find_pairs(root).skipped == 5


def test_size_mismatch_found_from_headers(jorder):
    root, _ = jorder
    write_image(root / "norain" / "2.png", scene(2, 37, 52))
    pl = find_pairs(root)
    with pytest.raises(UserError, match=r"size mismatch: .*rain/2\.png is 37x53 but .*norain/2\.png is 52x37"):
        pair_size(pl.pairs[1])
    with pytest.raises(UserError, match="size mismatch"):
        load_pair(pl.pairs[1])


def test_odd_side_by_side_width(tmp_path):
    write_image(tmp_path / "a.png", scene(1, 37, 53))
    pl = find_pairs(tmp_path, layout="did")
    with pytest.raises(UserError, match=r"a\.png has odd width 53"):
        pair_size(pl.pairs[0])


def test_bad_src(tmp_path):
    with pytest.raises(UserError, match="folder not found"):
        find_pairs(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(UserError, match="expected a folder"):
        find_pairs(tmp_path / "f.txt")
    with pytest.raises(UserError, match="unknown layout"):
        find_pairs(tmp_path, layout="rain800")


def test_macos_resource_folder_ignored(tmp_path):
    """Zips made on macOS add __MACOSX/ with ._name files mirroring the tree: not a second split."""
    write_pairs(tmp_path / "ds" / "rain", tmp_path / "ds" / "norain", 2)
    for sub in ("rain", "norain"):
        (tmp_path / "__MACOSX" / "ds" / sub).mkdir(parents=True)
        (tmp_path / "__MACOSX" / "ds" / sub / "._1.png").write_bytes(b"\0")
    assert find_pairs(tmp_path).root == tmp_path / "ds"
