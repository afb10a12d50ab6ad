"""Untrusted checkpoints: every entry and network field is checked before any network is built.

A checkpoint whose config asks for an enormous network is refused from its fields (or, within them,
from its parameter count on the ``meta`` device) without the network ever being built for real; a
padm dict with missing or malformed entries names them all in one line; NaN weights are refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from padm.cli import main
from padm.data.images import write_image
from padm.engine import checkpoint as ck
from padm.errors import UserError
from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.tasks.derain.task import DerainTask

from engine_helpers import StandIn, assert_one_line_error, leftovers, write_pairs


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def good(standin, tmp_path):
    """A valid (stand-in) checkpoint dict of the tiny preset, and an input folder."""
    torch.manual_seed(0)
    cfg = PADMConfig.preset("tiny")
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", np.zeros((9, 11, 3), np.uint8))
    return ck.make_checkpoint(cfg, StandIn(cfg).state_dict()), src


@pytest.fixture
def builds(monkeypatch):
    """Every network build (``create_model``, and the task's ``build``) recorded with its default device."""
    seen = {"create_model": [], "build": []}
    real_create, real_build = ck.create_model, DerainTask.build

    def create(config):
        seen["create_model"].append(config)
        return real_create(config)

    def build(self, config):
        seen["build"].append(str(torch.get_default_device()))
        return real_build(self, config)

    monkeypatch.setattr(ck, "create_model", create)
    monkeypatch.setattr(DerainTask, "build", build)
    return seen


def _derain(ckpt_dict, src, tmp_path, name="bad.pt"):
    path = tmp_path / name
    ck.atomic_save(ckpt_dict, path)
    code, out = run("derain", src, tmp_path / "out", "--ckpt", path, "--quiet")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    return path, code, out


def test_an_absurd_network_is_refused_from_its_fields_without_building_anything(good, builds, tmp_path):
    state, src = good
    absurd = dict(state, model_config={**state["model_config"], "n_feat": 10**9})
    path, code, out = _derain(absurd, src, tmp_path)
    assert_one_line_error(code, out, f"{path}: checkpoint holds an invalid model config "
                                     "(n_feat must be an integer in 1..512, got 1000000000)")
    assert builds == {"create_model": [], "build": []}  # not even on the meta device


def test_every_malformed_config_field_is_named_in_one_line(good, builds, tmp_path):
    state, src = good
    bad = dict(state, model_config={**state["model_config"], "n_feat": 10**6, "stages": -1, "kernel_size": 4,
                                    "ssm": "yes", "depth": 2.5})
    _, code, out = _derain(bad, src, tmp_path)
    line = assert_one_line_error(code, out, "invalid model config")
    for phrase in ("n_feat must be an integer in 1..512, got 1000000", "stages must be an integer in 0..20, got -1",
                   "depth must be an integer in 1..6, got 2.5", "kernel_size must be an odd integer in 1..15, got 4",
                   "ssm must be true or false, got 'yes'"):
        assert phrase in line
    assert builds["create_model"] == [] and builds["build"] == []


def test_a_network_too_large_in_total_is_counted_on_the_meta_device_and_refused(good, builds, tmp_path):
    state, src = good
    big = dict(state, model_config={**state["model_config"], "n_feat": 512, "stages": 20, "depth": 6})
    path, code, out = _derain(big, src, tmp_path)
    assert_one_line_error(code, out, f"{path}: the network would have more than ")
    assert f"parameters, more than padm builds ({ck.MAX_PARAMETERS:,}); config n_feat 512, stages 20, depth 6" in out
    assert builds["create_model"] == [] and builds["build"] and set(builds["build"]) == {"meta"}


def test_counting_on_the_meta_device_draws_no_random_numbers_and_loads_no_compiler(tmp_path):
    """The count stays cheap (a fraction of a second, measured in the note) because the network's
    initialisation runs no op that needs torch's Python decompositions or the compiler on ``meta``
    (``torch._dynamo`` alone takes seconds to import), and it leaves the global RNG where it was."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from padm.engine import checkpoint as ck\n"
        "from padm.unfolding.tasks.derain.config import PADMConfig\n"
        "before = torch.get_rng_state()\n"
        "params, nbytes = ck.model_size(PADMConfig(n_feat=512, stages=20, depth=6))\n"
        "assert params > ck.MAX_PARAMETERS, params\n"
        "assert torch.equal(before, torch.get_rng_state()), 'the count drew random numbers'\n"
        "assert 'torch._dynamo' not in sys.modules, 'the count imported the compiler'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(ck.__file__).parents[2])})
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_network_larger_than_the_free_memory_is_refused(good, builds, tmp_path, monkeypatch):
    state, src = good
    monkeypatch.setattr(ck, "available_memory", lambda: 2**20)  # 1 MiB free
    odd = dict(state, model_config={**state["model_config"], "n_feat": 12})  # not a preset: counted
    _, code, out = _derain(odd, src, tmp_path)
    assert_one_line_error(code, out, "of memory to load (")
    assert "0.0 GiB is available" in out and builds["create_model"] == [] and set(builds["build"]) == {"meta"}


def test_the_same_bounds_hold_on_the_command_line(standin, tmp_path):
    data = write_pairs(tmp_path / "data", n=2)
    code, out = run("train", "--train-data", data, "--out-dir", tmp_path / "run", "--model", "n_feat=100000")
    assert_one_line_error(code, out, "n_feat must be an integer in 1..512, got 100000")
    assert not (tmp_path / "run").exists()


def test_a_padm_checkpoint_without_its_model_entry_names_what_is_missing(good, tmp_path):
    state, src = good
    no_model = {k: v for k, v in state.items() if k != "model"}
    path, code, out = _derain(no_model, src, tmp_path)
    assert_one_line_error(code, out, f"{path}: damaged padm checkpoint (missing 'model')")


def test_every_missing_or_malformed_entry_is_named_in_one_line(good, tmp_path):
    state, src = good
    bad = dict(state, ema=[1, 2], step="ten", rng={"torch": "x"}, best=None, optimizer={"state": {}, "param_groups": []})
    del bad["model_config"]
    _, code, out = _derain(bad, src, tmp_path)
    line = assert_one_line_error(code, out, "damaged padm checkpoint (")
    for phrase in ("missing 'model_config'", "missing 'best' (a training state needs it)",
                   "missing 'train_config' (a training state needs it)",
                   "'ema' is a list, expected empty or a mapping of names to tensors",
                   "'step' is a str, expected a step count", "'rng' is a dict, expected empty or {'torch'"):
        assert phrase in line, line
    state_bad = dict(state, model={"a": torch.zeros(1), 3: "not a tensor"})
    _, code, out = _derain(state_bad, src, tmp_path, "bad2.pt")
    assert_one_line_error(code, out, "'model' is a dict, expected a mapping of names to tensors")


@pytest.mark.parametrize("which", ["model", "ema"])
def test_non_finite_weights_are_refused_and_nothing_is_written(which, good, tmp_path):
    state, src = good
    weights = {k: v.clone() for k, v in state["model"].items()}
    name = next(iter(weights))
    weights[name].view(-1)[0] = float("nan")
    poisoned = dict(state, **{which: weights})
    path, code, out = _derain(poisoned, src, tmp_path)
    label = "weights" if which == "model" else "EMA weights"
    assert_one_line_error(code, out, f"{path}: the {label} hold NaN or infinite values (1 of {len(weights)} "
                                     f"tensors, e.g. {name!r}); the run that wrote it diverged")


def test_an_official_checkpoint_of_an_absurd_shape_is_refused_before_building(builds, tmp_path):
    path = tmp_path / "official.pth"
    torch.save({"params": {"get_z0.0.weight": torch.zeros(600, 3, 3, 3), "init_updateB.x": torch.zeros(1)}}, path)
    with pytest.raises(UserError, match=r"could not be converted \(n_feat must be an integer in 1\.\.512, got 600\)"):
        ck.load_model(path)
    assert builds == {"create_model": [], "build": []}


def test_a_training_state_whose_optimizer_does_not_fit_is_refused(standin, tmp_path):
    data = write_pairs(tmp_path / "data", n=2)
    out = tmp_path / "run"
    args = ["train", "--train-data", data, "--out-dir", out, "--preset", "tiny", "--patch-size", "16",
            "--batch-size", "2", "--num-workers", "0", "--iterations", "2", "--val-every", "0", "--no-progress",
            "--no-tensorboard", "--no-plot"]
    assert run(*args)[0] == 0
    path = out / "checkpoints" / "step_00000002.pt"
    state = torch.load(path, weights_only=True)
    state["optimizer"]["param_groups"] = []
    ck.atomic_save(state, path)
    code, text = run("train", "--resume", out, "--iterations", "3", "--no-progress")
    assert_one_line_error(code, text, f"{path}: the optimizer state does not fit the model")
    assert ck.latest_checkpoint(out) == path


class _RunsCode:
    """Pickles to "call write_marker(path)": what a malicious checkpoint would do on a plain torch.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (str(self.marker),))


def _write_marker(path):
    with open(path, "w") as f:
        f.write("code ran")


def test_a_pickle_that_would_run_code_is_refused_without_running_it(good, tmp_path):
    state, src = good
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save(dict(state, model_config=_RunsCode(marker)), path)
    code, out = run("derain", src, tmp_path / "out", "--ckpt", path, "--quiet")
    assert_one_line_error(code, out, f"{path}: not a readable checkpoint (")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_checkpoint_of_a_task_not_loaded_imports_nothing(good, tmp_path):
    import sys

    state, src = good
    path, code, out = _derain(dict(state, task="evil_module_xyz:Task"), src, tmp_path)
    assert_one_line_error(code, out, "checkpoint is for task 'evil_module_xyz:Task', which is neither one of")
    assert "evil_module_xyz" not in sys.modules
