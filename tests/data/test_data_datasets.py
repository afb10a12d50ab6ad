from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from padm.data.datasets import (
    FolderPatchDataset,
    FullImageDataset,
    PairedPatchDataset,
    crop_plan,
    dihedral,
    open_paired,
)
from padm.data.images import to_tensor
from padm.data.pack import pack
from padm.errors import UserError

from data_helpers import write_pairs

P = 16


@pytest.fixture
def packed(jorder, tmp_path):
    root, pixels = jorder
    out = tmp_path / "train.h5"
    pack(root, out, progress=False, log=lambda _m: None, chunk=16)
    return out, root, pixels


def same(a, b):
    return a["name"] == b["name"] and torch.equal(a["rain"], b["rain"]) and torch.equal(a["clean"], b["clean"])


# ------------------------------------------------------------------------------------------ crops


def test_items(packed):
    out, _, _ = packed
    ds = PairedPatchDataset(out, P)
    assert len(ds) == 4 and ds.num_pairs == 4
    item = ds[1]
    assert set(item) == {"rain", "clean", "name"} and item["name"] == "2"
    for key in ("rain", "clean"):
        t = item[key]
        assert t.shape == (3, P, P) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1


def test_crop_is_the_planned_region(packed):
    out, _, pixels = packed
    ds = PairedPatchDataset(out, P, seed=3)
    seen = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            pair, top, left, t = ds.plan(i)
            seen.add(t)
            rain, clean = pixels[ds.names[pair]]
            item = ds[i]
            assert torch.equal(item["rain"], to_tensor(np.ascontiguousarray(dihedral(rain[top:top + P, left:left + P], t))))
            assert torch.equal(item["clean"], to_tensor(np.ascontiguousarray(dihedral(clean[top:top + P, left:left + P], t))))
    assert len(seen) > 4  # augmentations are used


def test_reproducible_from_seed_epoch_index_only(packed):
    out, _, _ = packed
    a = PairedPatchDataset(out, P, seed=7)
    b = PairedPatchDataset(out, P, seed=7)
    forward = [a[i] for i in range(4)]
    backward = [b[i] for i in reversed(range(4))][::-1]
    assert all(same(x, y) for x, y in zip(forward, backward))
    a.set_epoch(1)
    assert not all(same(a[i], forward[i]) for i in range(4))
    a.set_epoch(0)
    assert all(same(a[i], forward[i]) for i in range(4))
    c = PairedPatchDataset(out, P, seed=8)
    assert not all(same(c[i], forward[i]) for i in range(4))


def test_plan_is_pure():
    assert crop_plan(1, 2, 3, 37, 53, P, True) == crop_plan(1, 2, 3, 37, 53, P, True)
    assert crop_plan(1, 2, 3, 37, 53, P, False)[2] == 0
    tops = {crop_plan(0, 0, i, 37, 53, P, True)[0] for i in range(200)}
    assert min(tops) == 0 and max(tops) == 37 - P  # the whole range is reachable


def test_dihedral_group():
    a = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    outs = [dihedral(a, t) for t in range(8)]
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    sq = np.arange(9).reshape(3, 3, 1)
    rotations = {np.rot90(sq, k).tobytes() for k in range(4)}
    assert rotations <= {dihedral(sq, t).tobytes() for t in range(8)}


def test_no_augment_and_num_samples(packed):
    out, _, pixels = packed
    ds = PairedPatchDataset(out, P, augment=False, num_samples=10)
    assert len(ds) == 10
    for i in range(10):
        pair, top, left, t = ds.plan(i)
        assert pair == i % 4 and t == 0
        assert ds[i]["name"] == str(pair + 1)
    with pytest.raises(IndexError):
        ds[10]


def test_folder_dataset_gives_the_same_crops(packed):
    out, root, _ = packed
    h5 = PairedPatchDataset(out, P, seed=5, num_samples=8)
    folder = FolderPatchDataset(root, P, seed=5, num_samples=8)
    for epoch in (0, 3):
        h5.set_epoch(epoch)
        folder.set_epoch(epoch)
        assert all(same(h5[i], folder[i]) for i in range(8))


def test_dataloader_workers_match_and_see_the_epoch(packed):
    out, _, _ = packed
    ds = PairedPatchDataset(out, P, seed=2, num_samples=8)
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        want = torch.stack([ds[i]["rain"] for i in range(8)])
        got = torch.cat([batch["rain"] for batch in loader])
        assert torch.equal(got, want), f"epoch {epoch}"


def test_full_images(packed):
    out, root, pixels = packed
    for ds in (FullImageDataset(out), FullImageDataset(root)):
        assert len(ds) == 4 and ds.layout == "jorder"
        item = ds[1]
        assert item["name"] == "2" and item["rain"].shape == (3, 53, 37)
        assert torch.equal(item["clean"], to_tensor(pixels["2"][1]))
    with pytest.raises(IndexError):
        FullImageDataset(out)[4]


def test_open_paired_picks_the_right_class(packed):
    out, root, _ = packed
    assert isinstance(open_paired(out, P), PairedPatchDataset)
    assert isinstance(open_paired(root, P), FolderPatchDataset)
    assert isinstance(open_paired(out), FullImageDataset)
    assert isinstance(open_paired(root), FullImageDataset)
    with pytest.raises(UserError, match="data not found"):
        open_paired(root / "nope.h5", P)


# ------------------------------------------------------------------------------------------ bad input


def test_patch_larger_than_an_image(packed):
    out, root, _ = packed
    with pytest.raises(UserError, match=r"patch size 40 is larger than image '1' \(53x37\) in .*use a patch size <= 37"):
        PairedPatchDataset(out, 40)
    with pytest.raises(UserError, match="patch size 40"):
        FolderPatchDataset(root, 40)
    with pytest.raises(UserError, match="seed"):
        PairedPatchDataset(out, P, seed=-1)


def test_truncated_h5(packed, tmp_path):
    out, _, _ = packed
    data = out.read_bytes()
    bad = tmp_path / "cut.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.h5") as err:
        PairedPatchDataset(bad, P)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"cut\.h5"):
        FullImageDataset(bad)


def test_foreign_h5(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros((4, 4))
    with pytest.raises(UserError, match=r"other\.h5 is not a padm pairs file"):
        PairedPatchDataset(tmp_path / "other.h5", P)


def test_not_hdf5_at_all(tmp_path):
    (tmp_path / "train.h5").write_text("hello")
    with pytest.raises(UserError, match=r"train\.h5 is not an HDF5 file"):
        open_paired(tmp_path / "train.h5", P)


def test_incomplete_and_future_files(packed, tmp_path):
    out, _, _ = packed
    with h5py.File(out, "a") as f:
        f.attrs["complete"] = 0
    with pytest.raises(UserError, match="incomplete pack"):
        PairedPatchDataset(out, P)
    with h5py.File(out, "a") as f:
        f.attrs["complete"] = 1
        f.attrs["format_version"] = 99
    with pytest.raises(UserError, match="format version 99"):
        PairedPatchDataset(out, P)


def test_damaged_chunk_names_the_pair(tmp_path):
    write_pairs(tmp_path / "rain", tmp_path / "norain", 1, sizes=[(64, 64)])
    out = tmp_path / "d.h5"
    pack(tmp_path, out, progress=False, log=lambda _m: None, chunk=16, compression="gzip")
    with h5py.File(out, "r") as f:
        offset = f["rain/000000"].id.get_chunk_info(0).byte_offset
    raw = bytearray(out.read_bytes())
    raw[offset:offset + 40] = b"\xff" * 40
    out.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"cannot read pair '1' \(rain/000000\) from .*d\.h5"):
        FullImageDataset(out)[0]

