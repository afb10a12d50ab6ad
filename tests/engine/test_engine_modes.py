"""Training modes of the CPU throughput work: ``--procs`` (data-parallel ranks sharing the batch) and
``--cpu-bf16`` (bfloat16 autocast).  The real tiny PADM network, odd-sized images, CPU only."""

from __future__ import annotations

import json

import pytest
import torch

from padm.engine import checkpoint as ckpt_io
from padm.engine.config import resolve_config
from padm.engine.launch import resolve_procs
from padm.engine.infer import cpu_bf16_supported
from padm.engine.train import train
from padm.errors import UserError


def _cfg(pairs_dir, out, **kw):
    base = dict(train_data=str(pairs_dir), out_dir=str(out), preset="tiny", patch_size=16, batch_size=2,
                num_workers=0, iterations=6, log_every=1, ckpt_every=3, keep_last=0, progress=False,
                tensorboard=False, plot=False, seed=5, device="cpu", model={"dropout_step": 0.0})
    base.update(kw)
    return resolve_config(None, base)


def _losses(run):
    return [r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_two_ranks_sharing_the_batch_follow_the_one_process_run(pairs_dir, tmp_path, capsys):
    """Same crops in every global batch, mean loss, DDP's gradient average: without dropout the two
    runs differ only in the order of floating-point sums."""
    one = tmp_path / "one"
    two = tmp_path / "two"
    train(_cfg(pairs_dir, one, procs=1))
    summary = train(_cfg(pairs_dir, two, procs=2))
    assert "1 process(es) x" in capsys.readouterr().out  # the mode line (the ranks print theirs elsewhere)
    assert summary["step"] == 6 and summary["rank"] == 0
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-4)
    a, b = _weights(one / "checkpoints" / "step_00000006.pt"), _weights(two / "checkpoints" / "step_00000006.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5, msg=k)
    saved = resolve_config(two / "config.yaml")
    assert saved.batch_size == 2 and saved.procs == 2  # the user's config, not a rank's share


def test_two_ranks_resume_exactly(pairs_dir, tmp_path):
    """Resume the step-3 checkpoint with two ranks: bit-identical to the uninterrupted two-rank run
    (dropout on, so every rank's RNG state has to come back too)."""
    kw = dict(procs=2, model={"dropout_step": 0.1})
    full, part = tmp_path / "full", tmp_path / "part"
    train(_cfg(pairs_dir, full, **kw))
    train(_cfg(pairs_dir, part, **kw), resume=full / "checkpoints" / "step_00000003.pt")
    a, b = _weights(full / "checkpoints" / "step_00000006.pt"), _weights(part / "checkpoints" / "step_00000006.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(part) == _losses(full)[3:]


def test_a_rank_error_comes_back_as_one_user_error(pairs_dir, tmp_path):
    with pytest.raises(UserError, match="nowhere"):
        train(_cfg(pairs_dir, tmp_path / "run", procs=2, train_data=str(tmp_path / "nowhere")))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("batch, cores, want", [(8, 2, 2), (3, 2, 1), (6, 4, 3), (1, 16, 1)])
def test_auto_procs_divide_the_batch_within_the_cores(monkeypatch, batch, cores, want):
    import padm.engine.launch as launch

    monkeypatch.setattr(launch, "cpu_cores", lambda: cores)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_procs(resolve_config(None, dict(procs=0, batch_size=batch, device="cpu"))) == want


def test_procs_that_do_not_split_the_batch_are_refused(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match="does not split"):
        resolve_procs(resolve_config(None, dict(procs=2, batch_size=3, device="cpu")))
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun the processes exist already
    assert resolve_procs(resolve_config(None, dict(procs=2, batch_size=3, device="cpu"))) == 1


@pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no bfloat16 support in oneDNN")
def test_bf16_training_follows_the_float32_loss_curve(pairs_dir, tmp_path):
    """300 steps on tiny data: the bfloat16-autocast loss stays within 10 % of the float32 loss in every
    50-step window (the stated tolerance), the weights stay float32, and the checkpoint restores in
    float32."""
    kw = dict(iterations=300, ckpt_every=300, lr=2e-3, constant_fraction=0.0, log_every=1)
    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    train(_cfg(pairs_dir, fp32, **kw))
    train(_cfg(pairs_dir, bf16, cpu_bf16=True, **kw))
    a, b = _losses(fp32), _losses(bf16)
    assert len(a) == len(b) == 300
    windows = [(sum(a[i:i + 50]) / 50, sum(b[i:i + 50]) / 50) for i in range(0, 300, 50)]
    assert windows[-1][0] < 0.7 * windows[0][0]  # it learned something, so the comparison means something
    for wa, wb in windows:
        assert abs(wb - wa) <= 0.10 * wa, windows

    model, state = ckpt_io.load_model(bf16 / "checkpoints" / "step_00000300.pt")
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
    x = torch.rand(1, 3, 19, 23)
    with torch.no_grad():
        y = model(x).B[-1]
    assert y.dtype == torch.float32 and y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no bfloat16 support in oneDNN")
def test_derain_in_bf16_moves_the_output_by_a_few_grey_levels_only(tmp_path):
    """``--precision bf16`` really runs in bfloat16 (the output differs) and stays close to float32;
    an unknown precision is refused by the option."""
    import numpy as np
    from click.testing import CliRunner

    from padm.cli import main
    from padm.data.images import read_image, write_image
    from padm.unfolding.tasks.derain.config import PADMConfig
    from padm.unfolding.tasks.derain.model import PADM

    torch.manual_seed(0)
    cfg = PADMConfig.preset("tiny")
    ckpt = ckpt_io.atomic_save(ckpt_io.make_checkpoint(cfg, PADM(cfg).state_dict()), tmp_path / "tiny.pt")
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    write_image(src / "a.png", rng.integers(0, 255, (37, 53, 3), dtype=np.uint8))
    outs = {}
    for name in ("fp32", "bf16"):
        result = CliRunner().invoke(main, ["derain", str(src), str(tmp_path / name), "--ckpt", str(ckpt),
                                           "--precision", name, "--quiet"])
        assert result.exit_code == 0, result.output
        outs[name] = read_image(tmp_path / name / "a.png").pixels.astype(int)
    diff = np.abs(outs["fp32"] - outs["bf16"])
    assert 0 < diff.max() <= 8, diff.max()
    result = CliRunner().invoke(main, ["derain", str(src), str(tmp_path / "x"), "--ckpt", str(ckpt),
                                       "--precision", "fp16"])
    assert result.exit_code == 2 and "fp16" in result.output and not (tmp_path / "x").exists()
