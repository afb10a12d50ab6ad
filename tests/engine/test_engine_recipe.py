"""Loss, learning-rate schedule and typed config: the official recipe."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from padm.engine.config import TrainConfig, parse_model_overrides, read_config_file, resolve_config
from padm.engine.losses import fft_l1, unfolding_loss
from padm.engine.schedule import lr_at
from padm.errors import UserError
from padm.unfolding.tasks import Sample, get_task


def test_loss_is_the_official_sum_over_stages():
    """The engine's loss over the derain task's supervision terms is the official objective."""
    g = torch.Generator().manual_seed(0)
    rainy, clean = torch.rand(2, 3, 9, 13, generator=g), torch.rand(2, 3, 9, 13, generator=g)
    B = [torch.rand(2, 3, 9, 13, generator=g) for _ in range(3)]
    R = [torch.rand(2, 3, 9, 13, generator=g) for _ in range(3)]
    task = get_task("derain")
    out = SimpleNamespace(B=tuple(B), R=tuple(R))
    total, parts = unfolding_loss(task.supervision(out, Sample(rainy, clean)))
    expect = 0.0
    for b, r in zip(B, R):
        d = torch.fft.fft2(b) - torch.fft.fft2(clean)
        expect += (b - clean).abs().mean() + (r - (rainy - clean)).abs().mean() + 0.01 * d.abs().mean()
    assert torch.allclose(total, expect, rtol=1e-6)
    assert set(parts) == {"l1_B", "l1_R", "fft"}
    assert fft_l1(clean, clean) == 0
    with pytest.raises(ValueError):
        unfolding_loss([("B", B, clean), ("R", R[:2], rainy - clean)])


def test_official_schedule_shape():
    kw = dict(lr=3e-4, min_lr=1e-6, iterations=300_000, constant_fraction=92_000 / 300_000)
    assert lr_at(0, **kw) == 3e-4 and lr_at(91_999, **kw) == 3e-4
    assert lr_at(92_000, **kw) == pytest.approx(3e-4)
    assert lr_at(92_000 + 104_000, **kw) == pytest.approx((3e-4 + 1e-6) / 2)
    assert lr_at(300_000, **kw) == pytest.approx(1e-6)
    lrs = [lr_at(s, **kw) for s in range(92_000, 300_000, 1000)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    # scaled run keeps the shape; warm-up ramps
    assert lr_at(30, lr=1.0, min_lr=0.0, iterations=100, constant_fraction=0.3) == 1.0
    assert lr_at(0, lr=1.0, min_lr=0.0, iterations=100, constant_fraction=0.3, warmup=4) == 0.25


def test_warm_restart_schedule():
    """``start`` runs the schedule again from the peak; equal to the constant-fraction arithmetic it replaces."""
    kw = dict(lr=2e-4, min_lr=1e-6, iterations=12_200)
    for step in (9800, 9850, 11_000, 12_199, 12_200):
        restart = lr_at(step, constant_fraction=0.0, start=9800, **kw)
        assert restart == pytest.approx(lr_at(step, constant_fraction=0.803279, **kw))
    assert lr_at(9800, constant_fraction=0.0, start=9800, **kw) == 2e-4
    assert lr_at(9799, constant_fraction=0.0, start=9800, **kw) == pytest.approx(1e-6, rel=1e-3)  # end of cycle 1
    assert lr_at(0, constant_fraction=0.0, start=9800, **kw) == 2e-4
    # warm-up and constant part restart too
    assert lr_at(60, lr=1.0, min_lr=0.0, iterations=100, constant_fraction=0.5, warmup=4, start=50) == 1.0
    assert lr_at(50, lr=1.0, min_lr=0.0, iterations=100, constant_fraction=0.5, warmup=4, start=50) == 0.25
    assert lr_at(80, lr=1.0, min_lr=0.0, iterations=100, constant_fraction=0.5, start=50) < 1.0
    with pytest.raises(UserError, match="restart_at"):
        resolve_config(None, {"iterations": 100, "restart_at": 100})
    assert resolve_config(None, {"iterations": 100, "restart_at": 99}).restart_at == 99


def test_defaults_are_the_official_recipe():
    c = TrainConfig()
    assert (c.lr, c.min_lr, c.weight_decay, c.beta1, c.beta2, c.grad_clip) == (3e-4, 1e-6, 1e-4, 0.9, 0.999, 0.01)
    assert c.iterations == 300_000 and round(c.constant_fraction * c.iterations) == 92_000
    assert c.patch_size == 256 and c.fft_weight == 0.01 and c.val_every == 1000 and c.val_protocol == "uint8Y"
    assert c.model.n_feat == 16  # preset small
    assert TrainConfig.from_dict(c.to_dict()) == c


def test_config_file_and_overrides(tmp_path):
    yml = tmp_path / "run.yaml"
    yml.write_text("preset: tiny\niterations: 1e3\nmodel:\n  n_feat: 12\nlr: 1\n")
    c = resolve_config(yml, {"lr": 0.5, "model": {"stages": 1}})
    assert c.iterations == 1000 and c.lr == 0.5 and c.model.n_feat == 12 and c.model.stages == 1
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "tiny"\nbatch_size = 2\n[model]\nn_feat = 6\n')
    c = resolve_config(toml)
    assert c.batch_size == 2 and c.model.n_feat == 6
    # a new preset on the command line replaces the stored network; field overrides merge
    base = resolve_config(None, {"preset": "tiny", "model": {"n_feat": 4}}).to_dict()
    assert resolve_config(None, {"preset": "small"}, base=base).model.n_feat == 16
    assert resolve_config(None, {"model": {"stages": 1}}, base=base).model.n_feat == 4
    assert parse_model_overrides(["n_feat=24", "share_stage_weights=true"]) == {"n_feat": 24,
                                                                                "share_stage_weights": True}


@pytest.mark.parametrize("text, needle", [
    ("lrr: 1\n", "unknown training option(s) lrr"),
    ("iterations: 1.5\n", "iterations must be an integer"),
    ("preset: huge\n", "unknown preset"),
    ("model:\n  width: 3\n", "unknown model field"),
    ("val_protocol: Y\n", "val_protocol"),
    ("- a\n", "must hold a mapping"),
    ("a: [\n", "not a valid config file"),
])
def test_config_errors_name_the_file(tmp_path, text, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(UserError) as err:
        resolve_config(f)
    assert needle in str(err.value) and "bad.yaml" in str(err.value)


def test_config_file_missing_or_wrong_suffix(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_config_file(tmp_path / "nope.yaml")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(UserError, match="yaml"):
        read_config_file(tmp_path / "c.json")
    assert math.isclose(TrainConfig().constant_fraction, 92 / 300)
