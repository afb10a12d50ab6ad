"""Fixtures for the engine tests: devices, tiny image pairs on disk, a fast stand-in network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine_helpers import StandIn, write_pairs

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture
def standin(monkeypatch):
    """Make the engine build ``StandIn`` instead of PADM; returns the class."""
    import padm.engine.checkpoint as ck

    monkeypatch.setattr(ck, "create_model", lambda config: StandIn(config))
    return StandIn


@pytest.fixture
def pairs_dir(tmp_path) -> Path:
    return write_pairs(tmp_path / "pairs")


@pytest.fixture
def ckpt(standin, tmp_path) -> Path:
    """A padm checkpoint file of the stand-in network (tiny preset), seeded."""
    from padm.engine import checkpoint as ck
    from padm.unfolding.tasks.derain.config import PADMConfig

    torch.manual_seed(0)
    cfg = PADMConfig.preset("tiny")
    path = tmp_path / "model.pt"
    ck.atomic_save(ck.make_checkpoint(cfg, StandIn(cfg).state_dict()), path)
    return path
