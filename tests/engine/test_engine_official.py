"""Official checkpoints (BasicSR ``{"params": state_dict}``) load through the engine's loader and reproduce
the official network's outputs (golden fixture in ../shared/reference)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from padm.engine import checkpoint as ck
from padm.engine.infer import restore

GOLDEN = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "padm_official_small_f64.pt"


@pytest.mark.slow
def test_official_checkpoint_reproduces_the_golden_outputs(tmp_path):
    pytest.importorskip("padm.unfolding.tasks.derain.model")
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN} not present")
    gold = torch.load(GOLDEN, weights_only=True)
    path = tmp_path / "official.pth"
    torch.save({"params": gold["state_dict"]}, path)
    model, state = ck.load_model(path)
    assert state["optimizer"] is None and model.config.n_feat == 8 and model.config.stages == 2
    out = restore(model, gold["input"].float(), stages=True)
    for ours, theirs in zip(out["B"], gold["B"]):
        assert (ours - theirs.float()).abs().max() < 1e-4
    # a wrong preset is refused with a clear message
    from padm.errors import UserError
    from padm.unfolding.tasks.derain.config import PADMConfig

    with pytest.raises(UserError, match="another model configuration"):
        ck.load_model(path, expect=PADMConfig.preset("paper"))


def test_neither_format_is_refused(tmp_path):
    pytest.importorskip("padm.unfolding.tasks.derain.official")
    from padm.errors import UserError

    path = tmp_path / "other.pt"
    torch.save({"weights": {"a": torch.zeros(1)}}, path)
    with pytest.raises(UserError, match="neither a padm checkpoint nor an official"):
        ck.read_checkpoint(path)
