"""The shipped default model and the README's main command (``padm demo``)."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

from padm.cli import main
from padm.engine.checkpoint import default_checkpoint_path
from padm.engine.demo import REPO, find_samples, run_demo

pytestmark = pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")


def test_checkpoint_loads_with_weights_only():
    obj = torch.load(default_checkpoint_path(), map_location="cpu", weights_only=True)
    assert obj["model_config"]["n_feat"] > 0


def test_shipped_model_improves_bundled_pairs(tmp_path):
    """Regression guard: on the two bundled Rain100L validation pairs (light rain, never trained on) the
    model must gain clearly over its rainy input; on the heavy-rain Rain200H pairs it must not make
    things worse.  (Margins well below the measured gains, listed in checkpoints/README.md.)"""
    results = {r.name: r for r in run_demo(REPO / "samples", tmp_path, figure=False, log=lambda *_: None)}
    light = [r for name, r in results.items() if name.startswith("rain100l")]
    heavy = [r for name, r in results.items() if name.startswith("rain200h")]
    assert len(light) == 2 and len(heavy) == 3
    gain_light = sum(r.psnr_out - r.psnr_in for r in light) / len(light)
    gain_heavy = sum(r.psnr_out - r.psnr_in for r in heavy) / len(heavy)
    assert gain_light > 2.0, gain_light
    assert gain_heavy > 0.0, gain_heavy
    assert all(r.ssim_out > r.ssim_in for r in light)


def test_demo_command(tmp_path):
    """The README's main command, end to end (fast: 8 small images)."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = {s.name for s in find_samples(REPO / "samples")}
    assert {p.stem for p in out.glob("*.png")} == names | {"comparison"}
    assert re.search(r"rain100l_0181\s+[\d.]+\s+[\d.]+\s+[\d.]+", result.output)
    assert "total" in result.output and "(no ground truth)" in result.output


def test_demo_bad_samples_folder(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--samples", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "no sample images" in result.output and "Traceback" not in result.output
