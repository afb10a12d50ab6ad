"""FID/KID plumbing.

torch-fidelity imports torchvision at import time, and torchvision does not install beside the local
CPU torch, so the real library usually cannot run here: ``test_with_real_torch_fidelity`` runs it with
a tiny registered feature extractor when it is importable and is skipped otherwise.  Everything padm
owns (inputs as uint8 tensors, local weights only, no cache, no download, result mapping, the clear
error without the library) is tested against a stand-in module.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from padm.cli import main
from padm.data.images import write_image
from padm.engine import fidelity
from padm.errors import UserError

from engine_helpers import write_pairs


@pytest.fixture
def images(tmp_path):
    data = write_pairs(tmp_path / "d", n=3, size=(20, 24))
    return sorted((data / "rain").iterdir()), sorted((data / "norain").iterdir()), data


@pytest.fixture
def weights(tmp_path):
    p = tmp_path / "inception.pth"
    p.write_bytes(b"weights")
    return p


def test_kwargs_use_local_weights_and_uint8_tensors(images, weights):
    pred, gt, _ = images
    kw = fidelity.fidelity_kwargs(pred, gt, weights)
    assert kw["feature_extractor_weights_path"] == str(weights)
    assert kw["cache"] is False and kw["datasets_download"] is False and kw["kid_subset_size"] == 3
    item = kw["input1"][0]
    assert item.dtype == torch.uint8 and item.shape == (3, 20, 24)
    with pytest.raises(UserError, match="never downloads"):
        fidelity.fidelity_kwargs(pred, gt, None)
    with pytest.raises(UserError, match="not found"):
        fidelity.fidelity_kwargs(pred, gt, weights.with_name("missing.pth"))
    with pytest.raises(UserError, match="at least 2"):
        fidelity.fidelity_kwargs(pred[:1], gt, weights)


def test_16bit_images_are_rounded_to_uint8(tmp_path):
    write_image(tmp_path / "a.png", np.full((4, 5, 3), 65535, np.uint16))
    t = fidelity.Uint8Images([tmp_path / "a.png"])[0]
    assert t.dtype == torch.uint8 and int(t.max()) == 255


def test_cli_passes_through_a_stand_in_library(images, weights, monkeypatch):
    pred, gt, data = images
    seen = {}

    def calculate_metrics(**kw):
        seen.update(kw)
        return {"frechet_inception_distance": 12.5, "kernel_inception_distance_mean": 0.25,
                "kernel_inception_distance_std": 0.01}

    monkeypatch.setitem(sys.modules, "torch_fidelity", types.SimpleNamespace(calculate_metrics=calculate_metrics))
    res = CliRunner().invoke(main, ["eval", str(data / "rain"), str(data / "norain"), "--fid",
                                    "--inception-weights", str(weights), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "FID 12.5000, KID 0.2500" in res.output
    assert len(seen["input1"]) == 3 and seen["feature_extractor"] == "inception-v3-compat"


def test_missing_library_is_a_clear_error(images, weights, monkeypatch):
    pred, gt, _ = images
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails
    with pytest.raises(UserError, match="torch-fidelity"):
        fidelity.fidelity_metrics(pred, gt, weights)


def test_with_real_torch_fidelity(images, tmp_path):
    tf = pytest.importorskip("torch_fidelity")
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class TinyExtractor(FeatureExtractorBase):
        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            self.proj = torch.nn.Linear(3, 8)
            self.proj.load_state_dict(torch.load(feature_extractor_weights_path, weights_only=True))

        @staticmethod
        def get_provided_features_list():
            return ("feat",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "feat"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return None

        def forward(self, x):
            return (self.proj(x.float().mean((2, 3)) / 255).double(),)

    try:
        tf.register_feature_extractor("padm-test-tiny", TinyExtractor)
    except Exception:
        pass  # already registered in this process
    w = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(3, 8).state_dict(), w)
    pred, gt, _ = images
    out = fidelity.fidelity_metrics(pred, gt, w, feature_extractor="padm-test-tiny")
    assert np.isfinite(out["fid"]) and "kid" in out
