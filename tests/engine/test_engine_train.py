"""The training loop on a stand-in network (fast): outputs of a run, checkpoints, exact resume, errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from padm.engine.config import resolve_config
from padm.engine.train import train
from padm.errors import UserError


def _cfg(pairs_dir, out, **kw):
    base = dict(train_data=str(pairs_dir), val_data=str(pairs_dir), out_dir=str(out), preset="tiny",
                patch_size=16, batch_size=2, num_workers=0, iterations=6, log_every=1, ckpt_every=2,
                val_every=3, keep_last=2, progress=False, tensorboard=False, seed=3)
    base.update(kw)
    return resolve_config(None, base)


def _losses(run):
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())
            if r["kind"] == "train"}


def test_a_run_writes_config_logs_checkpoints_plot(standin, pairs_dir, tmp_path):
    out = tmp_path / "run"
    summary = train(_cfg(pairs_dir, out, ema_decay=0.9))
    assert summary["step"] == 6 and summary["best_step"] in (3, 6)
    assert resolve_config(out / "config.yaml").to_dict() == _cfg(pairs_dir, out, ema_decay=0.9).to_dict()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "step_00000004.pt",
                                                                      "step_00000006.pt"]
    assert (out / "curves.png").stat().st_size > 1000
    assert len(_losses(out)) == 6
    val = (out / "val.csv").read_text().splitlines()
    assert val[0].startswith("step,psnr,ssim") and len(val) == 3
    state = torch.load(out / "checkpoints" / "step_00000006.pt", weights_only=True)
    assert state["format"] == "padm-checkpoint" and state["step"] == 6 and state["ema"] is not None
    assert state["train_config"]["iterations"] == 6 and state["rng"]["torch"][0].dtype == torch.uint8
    lr = [json.loads(x)["lr"] for x in (out / "log.jsonl").read_text().splitlines() if '"train"' in x]
    assert lr[0] == 3e-4 and lr[-1] < lr[0]  # constant, then cosine


def test_resume_reproduces_the_uninterrupted_losses(standin, pairs_dir, tmp_path):
    full = tmp_path / "full"
    train(_cfg(pairs_dir, full, iterations=7, keep_last=0, grad_accum=2, ema_decay=0.5))
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_00000004.pt", part / "checkpoints")
    shutil.copy(full / "log.jsonl", part / "log.jsonl")  # includes steps 5..7, which must be dropped
    cfg = _cfg(pairs_dir, part, iterations=7, keep_last=0, grad_accum=2, ema_decay=0.5)
    train(cfg, resume=part / "checkpoints" / "step_00000004.pt")
    a, b = _losses(full), _losses(part)
    assert list(b) == list(range(1, 8))
    assert all(a[s] == b[s] for s in range(5, 8)), (a, b)
    wa = torch.load(full / "checkpoints" / "step_00000007.pt", weights_only=True)
    wb = torch.load(part / "checkpoints" / "step_00000007.pt", weights_only=True)
    for k in wa["model"]:
        assert torch.equal(wa["model"][k], wb["model"][k])
        assert torch.equal(wa["ema"][k], wb["ema"][k])


def test_run_folder_is_not_overwritten_and_bad_data_fails_before_writing(standin, pairs_dir, tmp_path):
    out = tmp_path / "run"
    train(_cfg(pairs_dir, out, iterations=2))
    with pytest.raises(UserError, match="already holds a run"):
        train(_cfg(pairs_dir, out, iterations=2))
    with pytest.raises(UserError, match="not found"):
        train(_cfg(tmp_path / "nodata", tmp_path / "run2"))
    assert not (tmp_path / "run2").exists()
    with pytest.raises(UserError, match="fewer than batch_size"):
        train(_cfg(pairs_dir, tmp_path / "run3", batch_size=5))


def test_resume_with_another_model_is_refused(standin, pairs_dir, tmp_path):
    out = tmp_path / "run"
    train(_cfg(pairs_dir, out, iterations=2))
    with pytest.raises(UserError, match="another model configuration"):
        train(_cfg(pairs_dir, out, iterations=4, model={"n_feat": 4}), resume=out / "checkpoints" / "step_00000002.pt")


def test_init_from_loads_weights(standin, pairs_dir, tmp_path):
    out = tmp_path / "run"
    train(_cfg(pairs_dir, out, iterations=2, val_data=None))
    cfg = _cfg(pairs_dir, tmp_path / "ft", iterations=1, init_from=str(out / "checkpoints" / "step_00000002.pt"),
               lr=0.0, weight_decay=0.0, val_data=None)
    train(cfg)
    a = torch.load(out / "checkpoints" / "step_00000002.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "ft" / "checkpoints" / "step_00000001.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_log_survives_a_line_cut_by_a_kill(tmp_path):
    from padm.engine.runlog import RunLog

    log = RunLog(tmp_path, tensorboard=False)
    for s in (1, 2, 3):
        log.write("train", s, loss=1.0 / s)
    with (tmp_path / "log.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 4, "lo')
    log.truncate_after(2)
    assert [r["step"] for r in log.records()] == [1, 2]
    assert (tmp_path / "train.csv").read_text().splitlines()[1:] == ["1,1.0", "2,0.5"]
    assert log.plot() is not None


def test_worker_processes_do_not_change_the_batches(standin, pairs_dir, tmp_path):
    a, b = tmp_path / "w0", tmp_path / "w2"
    train(_cfg(pairs_dir, a, iterations=3, val_data=None, num_workers=0))
    train(_cfg(pairs_dir, b, iterations=3, val_data=None, num_workers=2))
    assert _losses(a) == _losses(b)


def _clean_images(folder, n=3):
    import numpy as np

    from padm.data.images import write_image

    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        write_image(folder / f"c{i}.png", rng.integers(0, 256, (23 + 2 * i, 29, 3), dtype=np.uint8))
    return folder


def test_resume_with_pairs_made_on_the_fly_is_exact(standin, pairs_dir, tmp_path):
    """--synth-data mixes on-the-fly pairs into the real ones; a resume trains on the same pairs."""
    clean = _clean_images(tmp_path / "clean")
    kw = dict(synth_data=str(clean), synth_model="heavy", iterations=6, keep_last=0, val_data=None)
    full = tmp_path / "full"
    train(_cfg(pairs_dir, full, **kw))
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_00000002.pt", part / "checkpoints")
    train(_cfg(pairs_dir, part, **kw), resume=part / "checkpoints" / "step_00000002.pt")
    a, b = _losses(full), _losses(part)
    assert all(a[s] == b[s] for s in range(3, 7)), (a, b)
    wa = torch.load(full / "checkpoints" / "step_00000006.pt", weights_only=True)["model"]
    wb = torch.load(part / "checkpoints" / "step_00000006.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the synthetic pairs are used: another rain model gives other losses from the first step on
    other = tmp_path / "other"
    train(_cfg(pairs_dir, other, **{**kw, "synth_model": "light", "iterations": 2}))
    assert _losses(other)[1] != a[1] or _losses(other)[2] != a[2]
    # and without real pairs
    alone = tmp_path / "alone"
    train(_cfg("", alone, **{**kw, "iterations": 1}))
    assert list(_losses(alone)) == [1]


def test_synth_options_are_checked_before_anything_is_written(standin, pairs_dir, tmp_path):
    clean = _clean_images(tmp_path / "clean")
    with pytest.raises(UserError, match="go together"):
        _cfg(pairs_dir, tmp_path / "a", synth_data=str(clean))
    with pytest.raises(UserError, match="go together"):
        _cfg(pairs_dir, tmp_path / "a", synth_model="heavy")
    with pytest.raises(UserError, match="unknown preset 'drizzle'"):
        train(_cfg(pairs_dir, tmp_path / "b", synth_data=str(clean), synth_model="drizzle"))
    with pytest.raises(UserError, match="degrades clean images itself"):
        train(_cfg(clean, tmp_path / "c", task="denoise", synth_data=str(clean), synth_model="heavy"))
    assert not any((tmp_path / n).exists() for n in "abc")

