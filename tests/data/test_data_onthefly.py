"""Training pairs synthesised on the fly (``padm train --synth-data DIR --synth-model MODEL``).

The dataset's rain must be a pure function of (model seed, seed, epoch, index), like its crops, so
that a resumed run trains on the pairs of the uninterrupted one; the engine-level resume test is
``tests/engine/test_engine_train.py::test_resume_with_pairs_made_on_the_fly_is_exact``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from padm.data.datasets import SynthPatchDataset, open_paired, open_synth
from padm.data.streaks import StreakConfig, StreakSynth
from padm.data.synth import SynthConfig, load_model
from padm.errors import UserError

from data_helpers import write_pairs


def _same(a, b) -> bool:
    return torch.equal(a["rain"], b["rain"]) and torch.equal(a["clean"], b["clean"])


@pytest.mark.parametrize("model", ["light", "procedural:heavy", "streaks"])
def test_items_are_a_pure_function_of_seed_epoch_and_index(model, clean_dir, bank_dir):
    spec = f"streaks:heavy:{bank_dir}" if model == "streaks" else model
    ds = open_synth(clean_dir, 25, spec, seed=4, num_samples=7)
    assert len(ds) == 7 and ds.num_real == 0 and ds.num_synthetic == 3
    first = [ds[i] for i in range(7)]
    for item in first:
        assert item["rain"].shape == item["clean"].shape == (3, 25, 25)
        assert item["rain"].dtype == torch.float32
        assert (item["rain"] != item["clean"]).any()  # rain was added
    # the same sample again, in another order, from a fresh dataset: the same pair
    again = open_synth(clean_dir, 25, spec, seed=4, num_samples=7)
    assert all(_same(again[i], first[i]) for i in (6, 2, 0, 5))
    # another epoch or another seed: other crops and other rain
    ds.set_epoch(1)
    assert not _same(ds[0], first[0])
    ds.set_epoch(0)
    assert _same(ds[0], first[0])
    other = open_synth(clean_dir, 25, spec, seed=5, num_samples=7)
    assert not _same(other[0], first[0])


def test_the_clean_half_is_the_crop_and_the_rain_is_the_model_on_it(clean_dir):
    from padm.data.datasets import dihedral
    from padm.data.images import from_float, read_image, to_float

    model = SynthConfig.preset("heavy", seed=3)
    ds = SynthPatchDataset(clean_dir, 19, model, seed=2, augment=True)
    i = 1
    pair, top, left, transform = ds.plan(i)
    pixels = read_image(ds.paths[pair]).pixels[top:top + 19, left:left + 19]
    rng = np.random.default_rng([3, 2, 0, i])
    rainy = from_float(model.apply(to_float(pixels), rng), 8)
    item = ds[i]
    want_clean = torch.from_numpy(dihedral(pixels, transform).copy()).permute(2, 0, 1).float() / 255
    want_rain = torch.from_numpy(dihedral(rainy, transform).copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(item["clean"], want_clean) and torch.equal(item["rain"], want_rain)


def test_real_pairs_come_first_and_are_read_as_they_are(clean_dir, tmp_path):
    real = tmp_path / "pairs"
    write_pairs(real / "rain", real / "norain", 2)
    ds = open_synth(clean_dir, 17, "light", pairs=real, seed=1)
    assert len(ds) == 5 and ds.num_real == 2 and ds.names[:2] == open_paired(real, 17).names
    alone = open_paired(real, 17, seed=1)
    for i in range(2):  # sample i < 2 is the crop the paired dataset itself cuts
        assert _same(ds[i], alone[i])
    with pytest.raises(UserError, match="select image 3"):
        open_synth(clean_dir, 17, "light", pairs=real, pairs_select=[2])


def test_rain_models_by_name_and_json(bank_dir, tmp_path):
    assert load_model("heavy") == SynthConfig.preset("heavy")
    assert load_model("procedural:light") == SynthConfig.preset("light")
    streaks = load_model(f"streaks:light:{bank_dir}")
    assert isinstance(streaks, StreakSynth) and streaks.config == StreakConfig.preset("light")
    # a JSON file: the "config" of a synth.json, with a streak folder relative to the file
    (tmp_path / "m").mkdir()
    spec = {"model": "streaks", "streaks": "../streaks", "layers": [2, 3], "veil": [0, 0.1], "seed": 9}
    (tmp_path / "m" / "rain.json").write_text(json.dumps({"config": spec, "images": 3}))
    model = load_model(str(tmp_path / "m" / "rain.json"))
    assert model.config.layers == (2, 3) and model.seed == 9 and len(model.bank) == 4
    (tmp_path / "p.json").write_text(json.dumps(SynthConfig(density=0.01).to_dict()))
    assert load_model(str(tmp_path / "p.json")) == SynthConfig(density=0.01)


@pytest.mark.parametrize("spec, message", [
    ("", "no rain model"), ("drizzle", "unknown preset 'drizzle'"), ("snow:light", "unknown rain model 'snow'"),
    ("streaks:heavy", "needs a preset and a folder"), ("streaks:heavy:/no/such/dir", "streak folder not found"),
    ("missing.json", "not found"), ("bad.json", "not a JSON file"), ("list.json", "expected a mapping"),
    ("kind.json", "unknown rain model 'hail'"), ("field.json", "unexpected keyword"),
    ("nofolder.json", "needs \"streaks\""),
])
def test_bad_rain_models_are_one_line_user_errors(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "kind.json").write_text('{"model": "hail"}')
    (tmp_path / "field.json").write_text('{"density": 0.1, "sparkle": 2}')
    (tmp_path / "nofolder.json").write_text('{"model": "streaks"}')
    with pytest.raises(UserError, match=message) as err:
        load_model(spec)
    assert "\n" not in str(err.value)
