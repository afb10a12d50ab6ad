"""Checks on the real benchmark images in ../shared/data (slow; skipped when the folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from padm.cli import main
from padm.data.h5 import PairsFile
from padm.data.images import read_image
from padm.data.layouts import find_pairs
from padm.data.synth import SynthConfig, synthesize
from padm.errors import UserError

from data_helpers import SHARED, y_psnr

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}"),
]


def pack_cli(src, out):
    res = CliRunner().invoke(main, ["pack", str(src), str(out), "-q"])
    assert res.exit_code == 0, res.output
    return res.output


def assert_round_trip(src, out):
    pairs = find_pairs(src)
    f = PairsFile(out)
    assert f.names == tuple(p.name for p in pairs)
    for i, pair in enumerate(pairs):
        rain, clean = f.read(i)
        np.testing.assert_array_equal(rain, read_image(pair.rain_path).pixels, err_msg=pair.name)
        np.testing.assert_array_equal(clean, read_image(pair.clean_path).pixels, err_msg=pair.name)
    return f


def test_pack_rain100l_train(tmp_path):
    out = tmp_path / "train.h5"
    output = pack_cli(SHARED / "Rain100L_train", out)
    assert "Found 200 pairs" in output and "layout: jorder" in output and "Skipped 2 non-image" in output
    f = assert_round_trip(SHARED / "Rain100L_train", out)
    assert len(f) == 200 and {tuple(s) for s in f.shapes} == {(321, 481), (481, 321)}
    # the rainy-input PSNR the README quotes (26.71 dB) comes out of the packed file
    psnr = np.mean([y_psnr(*f.read(i)) for i in range(len(f))])
    assert psnr == pytest.approx(26.71, abs=0.02)


@pytest.mark.parametrize("split,count", [("train20", 20), ("test5", 5)])
def test_pack_rain200h_samples(tmp_path, split, count):
    out = tmp_path / f"{split}.h5"
    pack_cli(SHARED / "Rain200H_samples" / split, out)
    assert len(assert_round_trip(SHARED / "Rain200H_samples" / split, out)) == count


def test_rain200h_root_holds_two_splits():
    with pytest.raises(UserError, match=r"several datasets or splits \(test5/, train20/\)"):
        find_pairs(SHARED / "Rain200H_samples")


def test_real_photos_have_no_pairs():
    with pytest.raises(UserError, match="single images"):
        find_pairs(SHARED / "real" / "DID-MDN_facades")


def backgrounds():
    files = sorted((SHARED / "Rain100L_train" / "norain").glob("*.png"))[::10]
    files += sorted((SHARED / "Rain200H_samples").glob("*/norain/*.png"))
    return [(p.parent.parent.name + p.stem, read_image(p).pixels) for p in files]


@pytest.mark.parametrize("preset,low,high", [("light", 25.0, 30.0), ("heavy", 13.0, 17.0)])
def test_synth_presets_match_benchmark_psnr(preset, low, high):
    """light ~ Rain100L (26.7 dB), heavy ~ Rain200H (~14 dB): mean rainy-input Y-PSNR over 45
    shared clean backgrounds, for two seeds."""
    images = backgrounds()
    for seed in (0, 1):
        cfg = SynthConfig.preset(preset, seed=seed)
        psnr = float(np.mean([y_psnr(synthesize(px, cfg, name), px) for name, px in images]))
        assert low <= psnr <= high, f"{preset} seed {seed}: {psnr:.2f} dB"


@pytest.mark.parametrize("preset,low,high", [("light", 26.0, 28.0), ("heavy", 13.0, 16.0)])
def test_streak_presets_land_in_the_benchmarks_psnr_ranges(preset, low, high):
    """Real streak layers (streaks_Garg06) on the clean BSD300 photos: the mean rainy-input Y-PSNR
    over every 5th photo (42) is light ~ Rain100L (26-28 dB), heavy ~ Rain200H/Rain100H (13-16 dB),
    for two seeds."""
    from padm.data.images import to_8bit
    from padm.data.streaks import StreakBank, StreakConfig, StreakSynth

    bank = StreakBank(SHARED / "streaks_Garg06")
    photos = [(p.stem, to_8bit(read_image(p).pixels)) for p in sorted((SHARED / "BSD300_clean").glob("*.jpg"))[::5]]
    assert len(photos) >= 40
    for seed in (0, 1):
        model = StreakSynth(bank, StreakConfig.preset(preset, seed=seed))
        psnr = float(np.mean([y_psnr(model.synthesize(px, name), px) for name, px in photos]))
        assert low <= psnr <= high, f"{preset} seed {seed}: {psnr:.2f} dB"
