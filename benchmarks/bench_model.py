"""PADM forward time per image: presets ``paper`` and ``small`` at 128² and 256², all CPU threads.

Run:  pytest benchmarks/bench_model.py --benchmark-only
      python scripts/bench_model.py             (median of several runs, the README numbers)
"""

from __future__ import annotations

import pytest
import torch

from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.tasks.derain.model import PADM


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: PADM(PADMConfig.preset(name)).eval() for name in ("paper", "small")}


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("preset", ["small", "paper"])
def test_padm_forward(benchmark, models, preset, size):
    model = models[preset]
    x = torch.rand(1, 3, size, size)
    benchmark.extra_info.update(preset=preset, size=size, threads=torch.get_num_threads())

    def forward():
        with torch.no_grad():
            return model(x).B[-1]

    benchmark.pedantic(forward, rounds=3, iterations=1, warmup_rounds=1)
