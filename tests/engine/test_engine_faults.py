"""File-system faults on every command that writes: one line naming the path and the cause, exit code 1,
no half-written file, and for training the last good checkpoint intact and resumable bit-exactly.

The faults are injected (``engine_helpers.inject_fault``), not real mounts: creating a file or folder
under a "mount" raises ``EROFS``/``EACCES``, or the flush that finishes each file raises ``ENOSPC``
after its data was written (the disk filled up midway).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from padm.cli import main
from padm.data.images import read_image, write_image
from padm.engine import checkpoint as ck
from padm.unfolding.tasks.derain.config import PADMConfig

from engine_helpers import FAULTS, assert_one_line_error, inject_fault, leftovers, write_pairs

CAUSE = {"read-only": "read-only file system", "missing-parent-read-only": "read-only file system",
         "permission-denied": "permission denied", "disk-full": "no space left on device"}
COMMANDS = ["derain", "restore", "pack", "train", "eval", "synth", "explain", "demo"]


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _images(folder, n=2):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        write_image(folder / f"{i}.png", rng.integers(0, 255, (13, 17, 3), dtype=np.uint8))
    return folder


def _command(name, tmp_path, ckpt, target, monkeypatch):
    """(arguments, how many files the command writes) for a command writing into ``target``."""
    data = write_pairs(tmp_path / "data", n=2, size=(20, 22))
    if name == "derain":
        return ["derain", data / "rain", target, "--ckpt", ckpt, "--quiet"], 2
    if name == "restore":
        return ["restore", data / "rain" / "0001.png", target / "one.png", "--ckpt", ckpt, "--quiet"], 1
    if name == "pack":
        return ["pack", data, target / "pairs.h5", "-q"], 1
    if name == "train":
        return ["train", "--train-data", data, "--out-dir", target, "--preset", "tiny", "--patch-size", "16",
                "--batch-size", "2", "--num-workers", "0", "--iterations", "2", "--val-every", "0",
                "--no-progress", "--no-tensorboard"], 5
    if name == "eval":
        return ["eval", data / "rain", data / "norain", "--csv", target / "scores.csv", "--quiet"], 1
    if name == "synth":
        return ["synth", _images(tmp_path / "clean"), target, "-q"], 5
    if name == "explain":  # the real network: the figure draws its step-size maps
        from padm.unfolding.tasks.derain.model import PADM

        monkeypatch.setattr(ck, "create_model", lambda config: PADM(config))
        cfg = PADMConfig(n_feat=4, stages=1, depth=2, d_state=4)
        real = ck.atomic_save(ck.make_checkpoint(cfg, PADM(cfg).state_dict()), tmp_path / "padm.pt")
        return ["explain", data / "rain" / "0001.png", "--out", target / "fig.png", "--ckpt", real], 1
    samples = tmp_path / "samples"
    shutil.copytree(data, samples / "pairs")
    return ["demo", "--samples", samples, "--out", target, "--ckpt", ckpt], 3


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_writing_command_reports_a_file_system_fault_in_one_line(command, fault, ckpt, tmp_path, monkeypatch):
    mount = tmp_path / "mnt"
    mount.mkdir()
    target = mount / "new" / "out" if fault == "missing-parent-read-only" else mount / "out"
    if fault != "missing-parent-read-only" and command not in ("synth", "train"):
        target.mkdir()  # the folder exists; creating a file in it fails
    args, writes = _command(command, tmp_path, ckpt, target, monkeypatch)
    # disk full: let the first file be written where there are several, so the fault hits midway
    after = 1 if fault == "disk-full" and writes > 1 and command != "train" else 0
    with pytest.MonkeyPatch.context() as mp:
        failed = inject_fault(mp, fault, mount, after=after)
        code, out = run(*args)

    line = assert_one_line_error(code, out, f"({CAUSE[fault]})")
    assert code == 1 and failed
    if fault == "missing-parent-read-only":
        assert f"{mount / 'new'}: cannot create folder" in line
        assert not (mount / "new").exists()
    else:
        assert str(mount) in line and ("cannot write" in line or "cannot create folder" in line)
    assert leftovers(tmp_path) == []
    # what is left: the files finished before the fault, whole (a staged folder or a run: nothing)
    written = _files(mount)
    assert len(written) == (after if command in ("derain", "demo") else 0), written
    for name in written:
        read_image(mount / name)
    if command == "derain" and after:
        assert "1 of 2 images were written before it" in line


# ------------------------------------------------------------------------------------------- training


def _train_args(data, out, iterations=6, **extra):
    args = ["train", "--train-data", data, "--out-dir", out, "--preset", "tiny", "--patch-size", "16",
            "--batch-size", "2", "--num-workers", "0", "--iterations", iterations, "--log-every", "1",
            "--ckpt-every", "2", "--val-every", "0", "--keep-last", "0", "--no-progress", "--no-tensorboard",
            "--seed", "4"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return args


def _losses(folder):
    return {r["step"]: r["loss"] for r in map(json.loads, (folder / "log.jsonl").read_text().splitlines())
            if r["kind"] == "train"}


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture
def reference(standin, tmp_path):
    """A six-step run nothing interrupts: the losses and final weights every resumed run must reproduce."""
    data = write_pairs(tmp_path / "data", n=4, size=(20, 22))
    full = tmp_path / "full"
    code, out = run(*_train_args(data, full))
    assert code == 0, out
    return data, full


@pytest.mark.parametrize("where", ["step_00000004.pt", "log.jsonl", "curves.png"])
def test_disk_full_during_training_keeps_the_last_good_checkpoint_and_resumes_exactly(where, reference, tmp_path,
                                                                                      monkeypatch):
    data, full = reference
    part = tmp_path / "part"
    # the checkpoint of step 4; the log record of step 3; the figure at the end
    with pytest.MonkeyPatch.context() as mp:
        inject_fault(mp, "disk-full", part, only=where, after=2 if where == "log.jsonl" else 0)
        code, out = run(*_train_args(data, part))
    failed = part / "checkpoints" / where if where.endswith(".pt") else part / where
    line = assert_one_line_error(code, out, f"{failed}: cannot write (no space left on device)")
    assert leftovers(tmp_path) == []
    good = {"step_00000004.pt": 2, "log.jsonl": 2, "curves.png": 6}[where]
    assert max(ck.checkpoint_step(p) for p in (part / "checkpoints").glob("step_*.pt")) == good
    if where != "curves.png":
        assert f"the last good checkpoint is {part / 'checkpoints' / f'step_{good:08d}.pt'}" in line
        assert not failed.exists() or where == "log.jsonl"
        code, out = run("train", "--resume", part, "--no-progress")  # the disk has room again
        assert code == 0, out
    assert _losses(part) == _losses(full)  # bit-identical losses, before and after the fault
    last = part / "checkpoints" / "step_00000006.pt"
    assert all(torch.equal(a, b) for a, b in zip(_weights(last).values(), _weights(full / last.relative_to(part)).values()))


def _poisoned(monkeypatch, at_call: int, what: str):
    """The loss (or the gradient) of the ``at_call``-th step becomes NaN."""
    import padm.engine.train as train_module

    calls = [0]
    if what == "loss":
        real = train_module.unfolding_loss

        def loss(*args, **kwargs):
            calls[0] += 1
            value, parts = real(*args, **kwargs)
            return (value * float("nan") if calls[0] == at_call else value), parts

        monkeypatch.setattr(train_module, "unfolding_loss", loss)
    else:
        real_clip = torch.nn.utils.clip_grad_norm_

        def clip(params, *args, **kwargs):
            params = list(params)
            calls[0] += 1
            if calls[0] == at_call:
                params[0].grad.fill_(float("inf"))
            return real_clip(params, *args, **kwargs)

        monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)


@pytest.mark.parametrize("what", ["loss", "gradient"])
def test_a_non_finite_step_stops_the_run_and_the_last_checkpoint_resumes_exactly(what, reference, tmp_path,
                                                                                  monkeypatch):
    data, full = reference
    part = tmp_path / "part"
    with pytest.MonkeyPatch.context() as mp:
        _poisoned(mp, 5, what)
        code, out = run(*_train_args(data, part))
    shown = "the loss is nan" if what == "loss" else "the gradient norm is inf"
    line = assert_one_line_error(code, out, f"step 5: {shown}; training stopped before logging or saving this step")
    assert f"the last good checkpoint is {part / 'checkpoints' / 'step_00000004.pt'}" in line
    assert sorted(p.name for p in (part / "checkpoints").iterdir()) == ["step_00000002.pt", "step_00000004.pt"]
    assert max(_losses(part)) == 4 and all(np.isfinite(list(_losses(part).values())))  # nothing of step 5 logged
    assert leftovers(tmp_path) == []
    code, out = run("train", "--resume", part, "--no-progress")
    assert code == 0, out
    assert _losses(part) == _losses(full)
    last = "checkpoints/step_00000006.pt"
    assert all(torch.equal(a, b) for a, b in zip(_weights(part / last).values(), _weights(full / last).values()))


def test_a_second_process_on_the_run_folder_is_refused(standin, tmp_path):
    """The lock as such (two real processes: ``test_engine_processes``); a stale lock file is no lock."""
    from padm.engine.guard import LOCK_NAME, RunLock

    data = write_pairs(tmp_path / "data", n=4, size=(20, 22))
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):
        code, text = run(*_train_args(data, out, iterations=2))
        assert_one_line_error(code, text, f"{out}: in use by another padm train (pid {os.getpid()} on ")
        assert _files(out) == [LOCK_NAME]  # the refused run wrote nothing
    # a lock file left by a process that died (no flock held) does not block
    (out / LOCK_NAME).write_text("pid 999999 on elsewhere, since 2020-01-01T00:00:00\n")
    code, text = run(*_train_args(data, out, iterations=2))
    assert code == 0, text
    assert str(os.getpid()) in (out / LOCK_NAME).read_text()


def test_a_refused_or_failed_start_leaves_no_run_folder(standin, tmp_path):
    from padm.engine.guard import RunLock

    out = tmp_path / "new" / "run"
    with RunLock(out):
        assert out.is_dir()
    assert not out.exists()  # made for the lock and used for nothing: removed again
    code, text = run(*_train_args(tmp_path / "nodata", out))
    assert code == 1 and not (tmp_path / "new").exists()
