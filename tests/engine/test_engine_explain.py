"""``padm explain``: the per-stage figure, and clear errors."""

from __future__ import annotations

import numpy as np
import torch
from click.testing import CliRunner

from padm.cli import main
from padm.data.images import write_image
from padm.engine.checkpoint import atomic_save, make_checkpoint
from padm.engine.explain import step_size_ranges
from padm.unfolding.tasks import StageMap
from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.tasks.derain.model import PADM


def tiny_checkpoint(path):
    cfg = PADMConfig(n_feat=4, stages=1, depth=2, d_state=4)
    atomic_save(make_checkpoint(cfg, PADM(cfg).state_dict()), path)
    return path


def test_explain_writes_figure(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    img = tmp_path / "rainy.png"
    write_image(img, (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8))
    out = tmp_path / "fig.png"
    result = CliRunner().invoke(main, ["explain", str(img), "--ckpt", str(ckpt), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*.tmp.png"))
    assert "initial stage: step size on B" in result.output and "stage 1: step size on B" in result.output


def test_step_size_ranges_average_channels_first():
    eta_B = torch.tensor([[1.0, 3.0], [2.0, 2.0]]).expand(1, 3, 2, 2)  # same map in every channel
    eta_z = torch.stack([torch.zeros(2, 2), torch.full((2, 2), 0.5)])[None]  # channel mean 0.25 everywhere
    maps = {"eta_B": StageMap("eta_B", "step size on B", "step", (eta_B,)),
            "eta_z": StageMap("eta_z", "step size on z", "step", (eta_z,)),
            "B": StageMap("B", "B", "image", (eta_B,))}  # not a step size: no range
    assert step_size_ranges(maps) == [{"step size on B": (1.0, 3.0), "step size on z": (0.25, 0.25)}]


def test_explain_downscales_large_images(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    img = tmp_path / "big.png"
    write_image(img, np.zeros((90, 120, 3), np.uint8))
    out = tmp_path / "fig.png"
    result = CliRunner().invoke(main, ["explain", str(img), "--ckpt", str(ckpt), "--out", str(out), "--max-side", "40"])
    assert result.exit_code == 0, result.output
    assert out.is_file()


def test_explain_bad_input(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    runner = CliRunner()
    missing = runner.invoke(main, ["explain", str(tmp_path / "nope.png"), "--ckpt", str(ckpt)])
    assert missing.exit_code != 0 and "no such file" in missing.output and "Traceback" not in missing.output
    (tmp_path / "broken.png").write_bytes(b"not an image")
    broken = runner.invoke(main, ["explain", str(tmp_path / "broken.png"), "--ckpt", str(ckpt),
                                  "--out", str(tmp_path / "f.png")])
    assert broken.exit_code != 0 and "broken.png" in broken.output and "Traceback" not in broken.output
    assert not (tmp_path / "f.png").exists()
