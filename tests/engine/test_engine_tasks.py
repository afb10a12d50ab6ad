"""The whole engine on tasks other than deraining: train (resume, EMA, validation, curves), eval,
restore, torchrun; and the checks that keep the engine task-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from padm.cli import main
from padm.data.images import read_image, write_image
from padm.engine.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[2]


def write_clean(folder: Path, n: int = 6, size=(27, 35), seed: int = 0) -> Path:
    """Smooth clean images with edges, odd sizes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = 0.5 + 0.3 * np.sin(xx[..., None] / (2 + i) + yy[..., None] / 4 + np.arange(3) + rng.uniform(0, 6))
        base[(xx + yy) % 11 < 3] *= 0.5
        write_image(folder / f"img{i + 1:02d}.png", (np.clip(base, 0, 1) * 255).round().astype(np.uint8))
    return folder


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def _train_args(task, data, out, iterations, *extra):
    return ["train", "--task", task, "--preset", "tiny", "--train-data", data, "--train-subset", "1-4",
            "--val-data", data, "--val-subset", "5-6", "--out-dir", out, "--patch-size", "16", "--batch-size", "2",
            "--iterations", iterations, "--ckpt-every", "2", "--val-every", "2", "--log-every", "1",
            "--ema-decay", "0.9", "--num-workers", "0", "--keep-last", "0", "--no-progress", "--no-tensorboard",
            "--seed", "3", *extra]


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())
            if r["kind"] == "train"}


@pytest.mark.parametrize("task", ["denoise", "deblur"])
def test_train_resume_ema_validation_curves(task, tmp_path):
    data = write_clean(tmp_path / "clean")
    full, part = tmp_path / "full", tmp_path / "part"
    code, out = run(*_train_args(task, data, full, 4))
    assert code == 0, out
    assert f"task {task}" not in out  # --no-progress: quiet
    val = [json.loads(x) for x in (full / "log.jsonl").read_text().splitlines() if '"val"' in x]
    assert [v["step"] for v in val] == [2, 4] and all(v["images"] == 2 and v["psnr"] > 10 for v in val)
    assert (full / "curves.png").is_file() and (full / "val.csv").is_file()
    ckpt = read_checkpoint(full / "checkpoints" / "step_00000004.pt")
    assert ckpt["task"] == task and ckpt["ema"] is not None
    assert ckpt["train_config"]["degradation"] and ckpt["train_config"]["val_protocol"] == "rgb"
    # stop after 2 steps, resume to 4: the same losses as the uninterrupted run (degradation seeded per crop)
    assert run(*_train_args(task, data, part, 2))[0] == 0
    code, out = run("train", "--resume", part, "--iterations", "4", "--no-progress")
    assert code == 0, out
    assert _losses(part) == _losses(full)


def test_degradation_options_are_typed_and_checked(tmp_path):
    data = write_clean(tmp_path / "clean")
    code, out = run(*_train_args("denoise", data, tmp_path / "r", 1), "--degradation", "sigma=50", "--print-config")
    assert code == 0 and "sigma: 50.0" in out
    code, out = run(*_train_args("denoise", data, tmp_path / "r", 1), "--degradation", "kernel_size=3")
    assert code != 0 and "unknown degradation field 'kernel_size'" in out and "Traceback" not in out
    code, out = run(*_train_args("denoise", data, tmp_path / "r", 1), "--train-subset", "3-1")
    assert code != 0 and "ranges count from 1" in out
    code, out = run(*_train_args("dehaze", data, tmp_path / "r", 1))
    assert code != 0 and "unknown task 'dehaze'" in out


def _two_step_checkpoint(task: str, data: Path, out: Path) -> Path:
    code, text = run(*_train_args(task, data, out, 2))
    assert code == 0, text
    return out / "checkpoints" / "step_00000002.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two-step denoise and deblur checkpoints on tiny images."""
    root = tmp_path_factory.mktemp("tasks")
    data = write_clean(root / "clean")
    return data, {task: _two_step_checkpoint(task, data, root / task) for task in ("denoise", "deblur")}


def test_eval_scores_a_clean_image_task_reproducibly(trained, tmp_path):
    data, ckpts = trained
    code1, out1 = run("eval", data, "--ckpt", ckpts["denoise"], "--quiet", "--csv", tmp_path / "a.csv")
    code2, out2 = run("eval", data, "--ckpt", ckpts["denoise"], "--quiet")
    assert code1 == code2 == 0 and out1 == out2 and "6 images, protocol rgb" in out1
    assert (tmp_path / "a.csv").read_text().count("\n") == 8  # header, 6 images, mean
    code3, out3 = run("eval", data, "--ckpt", ckpts["denoise"], "--quiet", "--degradation", "sigma=5")
    assert code3 == 0 and out3 != out1  # less noise, another score


def test_restore_with_and_without_aux(trained, tmp_path):
    data, ckpts = trained
    img = data / "img01.png"
    code, out = run("restore", img, tmp_path / "dn.png", "--ckpt", ckpts["denoise"], "--quiet", "--stages")
    assert code == 0, out
    assert read_image(tmp_path / "dn.png").pixels.shape == (27, 35, 3)
    assert (tmp_path / "dn_stages" / "eta_1.png").is_file()
    code, out = run("restore", img, tmp_path / "db.png", "--ckpt", ckpts["deblur"], "--quiet")
    assert code != 0 and "needs --aux FILE" in out and not (tmp_path / "db.png").exists()
    kernel = np.outer(np.hanning(7), np.hanning(7))[1:-1, 1:-1]
    np.save(tmp_path / "k.npy", kernel)
    code, out = run("restore", img, tmp_path / "db.png", "--ckpt", ckpts["deblur"], "--aux", tmp_path / "k.npy",
                    "--quiet")
    assert code == 0 and (tmp_path / "db.png").is_file(), out
    np.save(tmp_path / "bad.npy", -kernel)
    code, out = run("restore", img, tmp_path / "db2.png", "--ckpt", ckpts["deblur"], "--aux", tmp_path / "bad.npy")
    assert code != 0 and "non-negative" in out
    # the deraining alias refuses another task's checkpoint
    code, out = run("derain", img, tmp_path / "x.png", "--ckpt", ckpts["denoise"])
    assert code != 0 and "is for task 'denoise', not 'derain'" in out


DDP_WORKER = """
import os, sys, torch
from padm.engine.config import resolve_config
from padm.engine.train import train
cfg = resolve_config(None, dict(task="denoise", train_data={data!r}, out_dir={out!r}, preset="tiny", patch_size=16,
                     batch_size=1, num_workers=0, iterations=2, log_every=1, ckpt_every=1, val_every=0,
                     progress=False, tensorboard=False, plot=False, seed=1))
train(cfg)
"""


def test_torchrun_two_cpu_ranks_on_a_clean_image_task(tmp_path):
    data = write_clean(tmp_path / "clean", n=4, size=(20, 23))
    out = tmp_path / "run"
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER.format(data=str(data), out=str(out)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in (str(REPO),
                                                                                         os.environ.get("PYTHONPATH")) if p))
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    state = torch.load(out / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert state["task"] == "denoise" and len(state["rng"]["torch"]) == 2
    assert [r["step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())] == [1, 2]
