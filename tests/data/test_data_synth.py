from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
from click.testing import CliRunner

from padm.cli import main
from padm.data import synth as synth_module
from padm.data.cli import synth as synth_command
from padm.data.images import read_image
from padm.data.layouts import find_pairs
from padm.data.synth import PRESETS, SynthConfig, add_rain, streak_kernel, synth_folder, synthesize
from padm.errors import UserError

from data_helpers import leftovers, scene, y_psnr


def test_kernel_geometry():
    k = streak_kernel(9, 0, 1)  # vertical, sharp
    assert k.max() == pytest.approx(1.0)
    c = k.shape[1] // 2
    assert k[:, c].sum() == pytest.approx(9, abs=1.01) and k[:, c + 2].sum() == 0
    h = streak_kernel(9, 90, 1)  # horizontal
    np.testing.assert_allclose(h, k.T, atol=1e-6)
    lean = streak_kernel(15, 30, 1)
    r = lean.shape[0] // 2
    assert lean[r - 5, r + 2:].sum() > 0 and lean[r - 5, : r - 1].sum() == 0  # top leans right
    soft = streak_kernel(9, 0, 1, blur=1.0)
    assert soft.max() < 1 and soft.sum() == pytest.approx(k.sum(), rel=0.05)


def test_screen_blend_only_brightens():
    clean = np.random.default_rng(0).random((37, 53, 3)).astype(np.float32)
    rainy = add_rain(clean, SynthConfig.preset("heavy"), np.random.default_rng(0))
    assert rainy.shape == clean.shape and rainy.dtype == np.float32
    assert (rainy >= clean - 1e-6).all() and rainy.max() <= 1.0
    ok = (clean < 0.9).all(axis=2)
    streak = (rainy - clean) / (1 - clean)  # S, the same in every channel: white rain
    np.testing.assert_allclose(streak[ok][:, 0], streak[ok][:, 1], atol=1e-4)


def test_seeded_and_order_independent():
    px = scene(1, 61, 83)
    cfg = SynthConfig.preset("light")
    a = synthesize(px, cfg, "a")
    assert a.dtype == np.uint8 and a.shape == px.shape
    np.testing.assert_array_equal(a, synthesize(px, cfg, "a"))
    assert not np.array_equal(a, synthesize(px, cfg, "b"))
    assert not np.array_equal(a, synthesize(px, attrs.evolve(cfg, seed=1), "a"))


def test_presets_order_and_knobs():
    px = scene(2, 97, 131)
    light = y_psnr(synthesize(px, SynthConfig.preset("light"), "x"), px)
    heavy = y_psnr(synthesize(px, SynthConfig.preset("heavy"), "x"), px)
    denser = y_psnr(synthesize(px, SynthConfig.preset("light", density=0.01), "x"), px)
    assert heavy < light and denser < light


def test_config_validation():
    with pytest.raises(ValueError, match="density"):
        SynthConfig(density=0)
    with pytest.raises(ValueError, match="brightness"):
        SynthConfig.preset("light", brightness=1.5)
    with pytest.raises(ValueError, match="unknown preset"):
        SynthConfig.preset("drizzle")
    assert set(PRESETS) == {"light", "heavy"}


def test_cli_options_map_onto_fields():
    options = {p.name for p in synth_command.params}
    fields = {f.name for f in attrs.fields(SynthConfig)}
    assert fields <= options


def test_synth_folder(clean_dir, tmp_path):
    out = tmp_path / "pairs"
    messages = []
    result = synth_folder(clean_dir, out, SynthConfig.preset("heavy", seed=4), progress=False,
                          log=messages.append)
    assert result.count == 3 and result.skipped == 1
    assert any("PSNR" in m for m in messages)
    meta = json.loads((out / "synth.json").read_text())
    assert meta["config"]["seed"] == 4 and meta["images"] == 3
    pl = find_pairs(out)
    assert pl.layout == "jorder" and len(pl) == 3 and pl.skipped == 1  # synth.json
    np.testing.assert_array_equal(read_image(out / "norain" / "1.png").pixels, scene(1, 61, 83))
    rain = read_image(out / "rain" / "1.png").pixels
    np.testing.assert_array_equal(rain, synthesize(scene(1, 61, 83), SynthConfig.preset("heavy", seed=4), "1"))


def test_synth_refuses_existing_output(clean_dir, tmp_path):
    out = tmp_path / "pairs"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match=r"output folder already exists: .*pairs \(use --overwrite"):
        synth_folder(clean_dir, out, SynthConfig(), progress=False, log=lambda _m: None)
    assert (out / "mine.txt").read_text() == "keep"
    synth_folder(clean_dir, out, SynthConfig(), overwrite=True, progress=False, log=lambda _m: None)
    assert not (out / "mine.txt").exists() and len(list((out / "rain").iterdir())) == 3
    assert leftovers(tmp_path) == []


def test_synth_interrupted_leaves_nothing(clean_dir, tmp_path, monkeypatch):
    calls = []
    real = synth_module.synthesize

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth_module, "synthesize", flaky)
    with pytest.raises(KeyboardInterrupt):
        synth_folder(clean_dir, tmp_path / "pairs", SynthConfig(), progress=False, log=lambda _m: None)
    assert not (tmp_path / "pairs").exists() and leftovers(tmp_path) == []


def test_synth_bad_inputs(tmp_path, clean_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images found in .*empty"):
        synth_folder(tmp_path / "empty", tmp_path / "o", SynthConfig(), progress=False)
    with pytest.raises(UserError, match="folder not found"):
        synth_folder(tmp_path / "nope", tmp_path / "o", SynthConfig(), progress=False)
    (clean_dir / "bad.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"cannot read image .*bad\.png"):
        synth_folder(clean_dir, tmp_path / "o", SynthConfig(), progress=False, log=lambda _m: None)
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []


def test_cli_synth(clean_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["synth", str(clean_dir), str(tmp_path / "o"), "--preset", "heavy", "--seed", "3",
                               "--angle", "-5", "-q"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "o" / "synth.json").read_text())["config"]
    assert cfg == attrs.asdict(SynthConfig.preset("heavy", seed=3, angle=-5))
    bad = runner.invoke(main, ["synth", str(clean_dir), str(tmp_path / "p"), "--density", "2"])
    assert bad.exit_code == 1 and bad.output.strip().splitlines() == [bad.output.strip()]
    assert bad.output.startswith("Error: density must be in (0, 1]")
    again = runner.invoke(main, ["synth", str(clean_dir), str(tmp_path / "o")])
    assert again.exit_code == 1 and "already exists" in again.output
