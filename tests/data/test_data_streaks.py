"""Rain from real streak layers (``padm synth --streaks``), on a small generated streak bank.

The PSNR ranges of the presets on the shared BSD300 photos: ``test_data_shared.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from padm.cli import main
from padm.data.images import read_image
from padm.data.streaks import STREAK_PRESETS, StreakBank, StreakConfig, StreakSynth, add_streaks, streak_map
from padm.errors import UserError

from data_helpers import scene, y_psnr


def test_seeded_order_independent_and_a_different_seed_differs(bank_dir):
    bank = StreakBank(bank_dir)
    px = scene(0, 53, 71)
    cfg = StreakConfig.preset("heavy")
    a = StreakSynth(bank, cfg).synthesize(px, "a")
    StreakSynth(bank, cfg).synthesize(scene(1, 53, 71), "b")  # another image in between changes nothing
    assert np.array_equal(StreakSynth(StreakBank(bank_dir), cfg).synthesize(px, "a"), a)
    assert not np.array_equal(StreakSynth(bank, cfg).synthesize(px, "other name"), a)
    assert not np.array_equal(StreakSynth(bank, StreakConfig.preset("heavy", seed=1)).synthesize(px, "a"), a)


def test_streak_map_is_a_screen_sum_in_range_and_blends_only_brighten(bank_dir):
    bank = StreakBank(bank_dir)
    s = streak_map(bank, 33, 47, StreakConfig(layers=(3, 3)), np.random.default_rng(1))
    assert s.shape == (33, 47) and s.min() >= 0 and s.max() <= 1 and s.max() > 0.3
    clean = scene(2, 33, 47).astype(np.float32) / 255
    for blend in ("screen", "add"):
        rainy = add_streaks(clean, bank, StreakConfig(blend=blend), np.random.default_rng(1))
        assert rainy.shape == clean.shape and rainy.dtype == np.float32
        assert (rainy >= clean - 1e-6).all() and rainy.max() <= 1.0
    # the same draws: add is at least as bright as screen, B + S >= 1 - (1 - B)(1 - S)
    screen = add_streaks(clean, bank, StreakConfig(blend="screen"), np.random.default_rng(1))
    added = add_streaks(clean, bank, StreakConfig(blend="add"), np.random.default_rng(1))
    assert (added >= screen - 1e-6).all() and (added > screen + 1e-3).any()


def test_the_veil_pulls_towards_a_grey_airlight(bank_dir):
    bank = StreakBank(bank_dir)
    clean = np.zeros((21, 29, 3), np.float32)  # black: the veil lifts it to t * A
    cfg = StreakConfig(intensity=(0.0, 0.0), veil=(0.3, 0.3))
    rainy = add_streaks(clean, bank, cfg, np.random.default_rng(0))
    assert np.allclose(rainy, rainy[0, 0, 0]) and 0.3 * 0.75 - 1e-6 <= rainy[0, 0, 0] <= 0.3 * 0.95 + 1e-6


def test_heavy_is_much_heavier_than_light(bank_dir):
    bank = StreakBank(bank_dir)
    images = [(str(i), scene(i, 64, 96)) for i in range(4)]
    mean = {name: np.mean([y_psnr(StreakSynth(bank, StreakConfig.preset(name)).synthesize(px, n), px)
                           for n, px in images]) for name in STREAK_PRESETS}
    assert mean["heavy"] < mean["light"] - 5, mean


def test_settings_are_validated_with_clear_messages():
    assert StreakConfig(layers="2,4", intensity="0.1 0.2").layers == (2, 4)
    for bad, match in [(dict(layers=(3, 2)), "layers must be"), (dict(intensity=(0.5, 1.5)), "intensity must be"),
                       (dict(blend="multiply"), "blend"), (dict(scale="1"), "expected a range"),
                       (dict(angle=120), "angle must be in")]:
        with pytest.raises(ValueError, match=match):
            StreakConfig(**bad)
    with pytest.raises(ValueError, match="unknown setting"):
        StreakConfig.preset("light", density=3)


def test_a_missing_or_empty_streak_folder_is_one_error(tmp_path):
    with pytest.raises(UserError, match="streak folder not found"):
        StreakBank(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no streak images found"):
        StreakBank(tmp_path / "empty")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_synth_with_streaks_writes_pairs_and_its_settings(bank_dir, clean_dir, tmp_path):
    out = tmp_path / "pairs"
    code, output = run("synth", clean_dir, out, "--streaks", bank_dir, "--preset", "heavy", "--streak", "layers=2,3",
                       "--streak", "blend=add", "--seed", "7", "-q")
    assert code == 0, output
    saved = json.loads((out / "synth.json").read_text())["config"]
    assert saved["model"] == "streaks" and saved["layers"] == [2, 3] and saved["blend"] == "add"
    assert saved["seed"] == 7 and saved["veil"] == list(STREAK_PRESETS["heavy"].veil)
    for i in range(3):
        clean = read_image(out / "norain" / f"{i}.png").pixels
        rainy = read_image(out / "rain" / f"{i}.png").pixels
        assert rainy.shape == clean.shape and y_psnr(rainy, clean) < 30
    # the same command again gives the same pairs
    code, _ = run("synth", clean_dir, tmp_path / "again", "--streaks", bank_dir, "--preset", "heavy", "--streak",
                  "layers=2,3", "--streak", "blend=add", "--seed", "7", "-q")
    assert code == 0
    assert np.array_equal(read_image(tmp_path / "again" / "rain" / "0.png").pixels,
                          read_image(out / "rain" / "0.png").pixels)


@pytest.mark.parametrize("args, message", [
    (["--streak", "layers=2,3"], "--streak settings need --streaks DIR"),
    (["--streaks", "BANK", "--density", "0.1"], "--density sets the procedural model"),
    (["--streaks", "BANK", "--streak", "layers"], "expected FIELD=VALUE"),
    (["--streaks", "BANK", "--streak", "intensity=2,3"], "intensity must be"),
    (["--streaks", "NOWHERE"], "streak folder not found"),
])
def test_cli_synth_streak_errors_are_one_line(args, message, bank_dir, clean_dir, tmp_path):
    args = [str(bank_dir) if a == "BANK" else str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in args]
    code, output = run("synth", clean_dir, tmp_path / "out", *args, "-q")
    assert code == 1 and message in output and "Traceback" not in output, output
    assert not (tmp_path / "out").exists()
