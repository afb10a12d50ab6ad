"""Real processes: SIGKILL mid-run then resume; SIGINT/SIGTERM stop with a checkpoint; one process per run
folder; data-parallel training under torchrun (gloo, 2 CPU ranks)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine_helpers import write_pairs

RUNNER = Path(__file__).with_name("run_train.py")


def _env(standin: bool) -> dict:
    root = str(Path(__file__).resolve().parents[2])  # the checkout, whether or not padm is installed
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PADM_TEST_STANDIN="1" if standin else "0", PYTHONPATH=path)
    env.pop("WORLD_SIZE", None)
    return env


def _args(data, out, iterations, **extra):
    args = ["--train-data", data, "--out-dir", out, "--preset", "tiny", "--patch-size", "16", "--batch-size", "2",
            "--num-workers", "0", "--iterations", iterations, "--log-every", "1", "--ckpt-every", "2",
            "--val-every", "0", "--keep-last", "0", "--no-progress", "--no-plot", "--no-tensorboard", "--seed", "5"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return [str(a) for a in args]


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())
            if r["kind"] == "train"}


def _sigkill_resume(tmp_path: Path, standin: bool, iterations: int):
    data = write_pairs(tmp_path / "data", n=4, size=(24, 31))
    cmd = [sys.executable, str(RUNNER)]
    full, part = tmp_path / "full", tmp_path / "part"
    subprocess.run(cmd + _args(data, full, iterations), env=_env(standin), check=True, timeout=600)

    proc = subprocess.Popen(cmd + _args(data, part, iterations), env=_env(standin))
    first = part / "checkpoints" / "step_00000002.pt"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = sorted(p.name for p in (part / "checkpoints").glob("step_*.pt"))
    assert done and done[-1] != f"step_{iterations:08d}.pt"
    assert not list((part / "checkpoints").glob(".*.tmp"))  # atomic writes: no half checkpoint left visible

    subprocess.run(cmd + ["--resume", str(part)], env=_env(standin), check=True, timeout=600)
    a, b = _losses(full), _losses(part)
    assert sorted(b) == list(range(1, iterations + 1))
    assert a == b  # bit-identical losses, including every step after the resume


def test_sigkill_then_resume_gives_the_uninterrupted_losses_standin(tmp_path):
    _sigkill_resume(tmp_path, standin=True, iterations=40)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_losses_real_padm(tmp_path):
    pytest.importorskip("padm.unfolding.tasks.derain.model")
    _sigkill_resume(tmp_path, standin=False, iterations=8)


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _train_records(run: Path) -> int:
    log = run / "log.jsonl"
    return log.read_text().count('"kind": "train"') if log.is_file() else 0


def test_sigint_and_sigterm_write_a_final_checkpoint_and_resume_exactly_and_a_second_run_is_refused(tmp_path):
    """Each signal: the run finishes its step, writes that step's checkpoint, says so in one line and
    exits with 128 + the signal; resumed, it computes the uninterrupted run's losses bit for bit.  While
    the first run holds its folder, a second ``padm train`` on it is refused (and writes nothing)."""
    data = write_pairs(tmp_path / "data", n=4, size=(24, 31))
    cmd = [sys.executable, str(RUNNER)]
    # constant lr: the schedule does not depend on --iterations, so the runs can be cut anywhere
    endless = dict(constant_fraction=1, ckpt_every=100000)
    slow = dict(_env(standin=True), PADM_TEST_STEP_DELAY="0.05")
    stopped = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        part = tmp_path / sig.name
        proc = subprocess.Popen(cmd + _args(data, part, 100000, **endless), env=slow, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: _train_records(part) >= 3, proc, "three logged steps")
            if sig == signal.SIGTERM:
                before = sorted(p.name for p in part.iterdir())
                second = subprocess.run(cmd + _args(data, part, 4), env=_env(standin=True), capture_output=True,
                                        text=True, timeout=300)
                lines = [ln for ln in (second.stdout + second.stderr).splitlines() if ln.startswith("Error")]
                assert second.returncode == 1 and len(lines) == 1, second.stdout + second.stderr
                assert f"{part}: in use by another padm train (pid {proc.pid} on " in lines[0]
                assert "Traceback" not in second.stderr
                assert sorted(p.name for p in part.iterdir()) == before  # the refused run wrote nothing
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 128 + sig, out + err
        assert "Traceback" not in err, err
        found = re.search(r"stopped by (SIG\w+) after step (\d+): wrote (\S+); continue with padm train --resume",
                          out)
        assert found and found.group(1) == sig.name, out + err
        step = int(found.group(2))
        assert Path(found.group(3)) == part / "checkpoints" / f"step_{step:08d}.pt"
        assert sorted(p.name for p in (part / "checkpoints").iterdir()) == [f"step_{step:08d}.pt"]
        assert max(_losses(part)) == step and not list(part.rglob(".*.tmp"))
        stopped[sig] = (part, step)

    total = max(step for _, step in stopped.values()) + 2
    full = tmp_path / "full"
    subprocess.run(cmd + _args(data, full, total, **endless), env=_env(standin=True), check=True, timeout=600)
    for part, step in stopped.values():
        subprocess.run(cmd + ["--resume", str(part), "--iterations", str(total)], env=_env(standin=True),
                       check=True, timeout=600)
        assert _losses(part) == _losses(full)  # bit-identical, before and after the stop


def test_torchrun_two_cpu_ranks_stay_in_sync(tmp_path):
    _torchrun(tmp_path, standin=True)


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_stay_in_sync_real_padm(tmp_path):
    pytest.importorskip("padm.unfolding.tasks.derain.model")
    _torchrun(tmp_path, standin=False)


def _torchrun(tmp_path, standin: bool):
    data = write_pairs(tmp_path / "data", n=4, size=(20, 20))
    out = tmp_path / "run"
    dump = tmp_path / "dump"
    dump.mkdir()
    script = tmp_path / "ddp_worker.py"
    script.write_text(DDP_WORKER.format(here=str(RUNNER.parent), data=str(data), out=str(out), dump=str(dump),
                                        standin=standin))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script)]
    res = subprocess.run(cmd, env=_env(standin), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    w0, w1 = (torch.load(dump / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert w0["step"] == w1["step"] == 2
    for k in w0["model"]:
        assert torch.equal(w0["model"][k], w1["model"][k]), k
    # and they moved: the step did something
    init = torch.load(dump / "rank0_init.pt", weights_only=True)
    assert any(not torch.equal(init[k], w0["model"][k]) for k in init)
    # the checkpoint holds both ranks' RNG states (different dropout streams)
    state = torch.load(out / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert len(state["rng"]["torch"]) == 2 and not torch.equal(*state["rng"]["torch"])
    losses = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses if r["kind"] == "train"] == [1, 2]


DDP_WORKER = """
import os, sys, torch
sys.path.insert(0, {here!r})
import padm.engine.checkpoint as ck
from engine_helpers import StandIn
rank = int(os.environ["RANK"])
dump = {dump!r}
built = []

def make(config):
    if {standin}:
        m = StandIn(config)
    else:
        from padm.unfolding.tasks.derain.model import PADM
        m = PADM(config)
    built.append(m)
    if rank == 0:
        torch.save(m.state_dict(), os.path.join(dump, "rank0_init.pt"))
    return m

ck.create_model = make
from padm.engine.config import resolve_config
from padm.engine.train import train

cfg = resolve_config(None, dict(train_data={data!r}, out_dir={out!r}, preset="tiny", patch_size=16, batch_size=1,
                     num_workers=0, iterations=2, log_every=1, ckpt_every=1, val_every=0, progress=False,
                     tensorboard=False, plot=False, seed=1))
summary = train(cfg)
# the module DDP trained in place on this rank
torch.save({{"step": summary["step"], "model": built[0].state_dict()}}, os.path.join(dump, f"rank{{rank}}.pt"))
"""
