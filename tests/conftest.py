"""Shared fixtures: the device under test, paths to the shared benchmark data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_DEVICES)
def device(request) -> torch.device:
    """Every test that takes ``device`` runs on the CPU, and on CUDA as well where it is present."""
    return torch.device(request.param)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not available")
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """Test tensors are tiny: intra-op threads only add overhead (and stalls on a busy shared CPU).
    Tests that exercise threading set the count themselves."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _one_training_process(monkeypatch):
    """``padm train`` picks its number of CPU processes from the cores (``--procs 0``, the default);
    tests train in the test's own process (their monkeypatches must apply) unless they ask for
    ``procs`` themselves: one core as far as that choice is concerned."""
    import padm.engine.launch as launch

    monkeypatch.setattr(launch, "cpu_cores", lambda: 1)
