"""From the command line, on tiny data: pack -> train -> resume -> eval -> derain.

Runs on the real PADM network (preset tiny) once ``padm.unfolding.tasks.derain.model`` exists, otherwise on the
stand-in; every step goes through ``padm`` subcommands, as a user would type them.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from padm.cli import main
from padm.data.images import read_image

from engine_helpers import write_pairs

REAL = importlib.util.find_spec("padm.unfolding.tasks.derain.model") is not None


@pytest.fixture
def network(request, monkeypatch):
    if not REAL:
        import padm.engine.checkpoint as ck
        from engine_helpers import StandIn

        monkeypatch.setattr(ck, "create_model", lambda config: StandIn(config))
    return "padm" if REAL else "stand-in"


def padm(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_pack_train_resume_eval_derain(network, tmp_path):
    data = write_pairs(tmp_path / "data", n=3, size=(24, 29))
    h5 = tmp_path / "pairs.h5"
    padm("pack", data, h5, "--quiet")
    run = tmp_path / "run"
    common = ["--preset", "tiny", "--patch-size", "16", "--batch-size", "1", "--num-workers", "0",
              "--log-every", "1", "--ckpt-every", "2", "--val-every", "2", "--val-data", data, "--no-progress",
              "--no-tensorboard", "--seed", "2"]
    padm("train", "--train-data", h5, "--out-dir", run, "--iterations", "2", *common)
    assert (run / "checkpoints" / "step_00000002.pt").is_file() and (run / "curves.png").is_file()
    # resume the run and extend it: the stored config is reused, --iterations overrides it
    out = padm("train", "--resume", run, "--iterations", "4")
    assert "done: 4 steps" in out
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines() if '"train"' in x]
    assert steps == [1, 2, 3, 4]
    ckpt = run / "checkpoints" / "step_00000004.pt"
    assert torch.load(ckpt, weights_only=True)["train_config"]["iterations"] == 4
    # evaluate the checkpoint on the pairs, then derain the rainy folder and score the files
    out = padm("eval", data, "--ckpt", ckpt, "--csv", tmp_path / "scores.csv", "--quiet")
    assert "3 images, protocol uint8Y" in out
    assert padm("eval", h5, "--ckpt", ckpt, "--quiet").split("PSNR")[1] == out.split("PSNR")[1]  # packed = folder
    padm("derain", data / "rain", tmp_path / "derained", "--ckpt", ckpt, "--quiet")
    outs = sorted((tmp_path / "derained").iterdir())
    assert [p.name for p in outs] == ["0001.png", "0002.png", "0003.png"]
    assert read_image(outs[0]).pixels.shape == (24, 29, 3)
    out2 = padm("eval", tmp_path / "derained", data / "norain", "--quiet")
    assert out2.split("PSNR")[1] == out.split("PSNR")[1]  # files score exactly as the in-memory eval
    assert np.isfinite(float(out.split("PSNR ")[1].split(" dB")[0]))
