"""Equivalence with the official PADMamba code and checkpoints."""

from __future__ import annotations

import pytest
import torch

from padm.ops import backend as ops_backend

from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.tasks.derain.model import PADM, count_parameters
from padm.unfolding.tasks.derain.official import (
    from_official,
    infer_official_config,
    load_official,
    official_to_padm_name,
    padm_to_official_name,
    save_official,
    to_official,
)


@pytest.fixture
def golden(shared_dir):
    path = shared_dir / "reference" / "padm_official_small_f64.pt"
    if not path.is_file():
        pytest.skip("golden fixture missing")
    return torch.load(path, weights_only=True)


@pytest.fixture
def official_names(shared_dir):
    lines = (shared_dir / "reference" / "official_state_dict_paper_config.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")][1:]  # skip header
    return {name: tuple(int(x) for x in shape.split("x")) for name, shape, _ in rows}


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_golden_outputs_reproduced(golden, backend):
    cfg, sd = load_official(golden["state_dict"])
    assert cfg == PADMConfig.from_official(golden["config"])
    model = PADM(cfg).double().eval()
    model.load_state_dict(sd, strict=True)
    with torch.no_grad(), ops_backend.use(backend):
        out = model(golden["input"])
    assert len(out.B) == len(golden["B"]) == cfg.stages + 1
    for ours, theirs in zip(out.B + out.R, golden["B"] + golden["R"]):
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().max().item() <= 1e-6


def test_golden_state_dict_round_trip(golden, tmp_path):
    cfg, sd = load_official(golden["state_dict"])
    back = to_official(PADM(cfg).double().state_dict())
    assert set(back) == set(golden["state_dict"])
    assert all(back[k].shape == v.shape for k, v in golden["state_dict"].items())
    save_official(sd, tmp_path / "ckpt.pth")
    cfg2, sd2 = load_official(tmp_path / "ckpt.pth")  # {"params": ...} on disk, weights_only load
    assert cfg2 == cfg and all(torch.equal(sd2[k], sd[k]) for k in sd)


def test_paper_preset_matches_official_layout(official_names):
    model = PADM(PADMConfig.preset("paper"))
    assert count_parameters(model) == 10_677_067
    official = to_official(model.state_dict())
    assert len(official) == 1550
    assert {k: tuple(v.shape) for k, v in official.items()} == official_names
    assert sum(torch.Size(s).numel() for s in official_names.values()) == 10_677_067


def test_name_mapping_is_a_bijection(official_names):
    ours = [official_to_padm_name(n) for n in official_names]
    assert len(set(ours)) == len(ours)
    assert [padm_to_official_name(n) for n in ours] == list(official_names)


def test_infer_config_from_shapes(official_names):
    fake = {name: torch.empty(shape) for name, shape in official_names.items()}
    cfg = infer_official_config(fake)
    assert cfg == PADMConfig.preset("paper")
    padm_sd = from_official(fake)
    PADM(cfg).load_state_dict(padm_sd, strict=True)


def test_bad_official_checkpoints(tmp_path):
    from padm.errors import UserError

    with pytest.raises(UserError, match="not found"):
        load_official(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        load_official(tmp_path / "junk.pth")
    with pytest.raises(UserError, match="not an official"):
        load_official({"params": {"foo.weight": torch.zeros(1)}})
