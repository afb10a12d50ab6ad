"""Training throughput of the real engine per mode: eager float32 through PyTorch's ops (the baseline),
the fused gated-convolution kernels, ``--cpu-bf16``, ``--procs 0`` with the kernels (the CPU default).

Run:  pytest benchmarks/bench_train.py --benchmark-only
      python scripts/bench_train.py            (the README table: three cases, median of 20 steps)

One benchmark op is one short ``padm.engine.train.train`` run of the ``small`` preset on 64² x 8 crops
(``STEPS`` optimizer steps after ``WARMUP``; start-up included, so the per-step rate the run logs is
in ``extra_info["it_s"]``).  ``test_mode_ratios`` runs every mode in the same session and reports
each median per-step rate as a ratio to float32 in ``extra_info``; nothing is asserted about speed.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from padm.data.images import write_image
from padm.engine.config import resolve_config
from padm.engine.train import train

MODES = {"fp32": dict(procs=1, cpu_bf16=False, fused_train_ops=False),
         "fused": dict(procs=1, cpu_bf16=False, fused_train_ops=True),
         "bf16": dict(procs=1, cpu_bf16=True, fused_train_ops=False),
         "procs+fused": dict(procs=0, cpu_bf16=False, fused_train_ops=True)}
WARMUP, STEPS, PATCH, BATCH = 2, 8, 64, 8


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench-train")
    g = torch.Generator().manual_seed(0)
    for i in range(8):
        clean = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 96, 96, generator=g), 5, 1, 2)[0]
        rain = (clean + (torch.rand(1, 96, 96, generator=g) > 0.97) * 0.5).clamp(0, 1)
        for folder, img in (("norain", clean), ("rain", rain)):
            (root / folder).mkdir(exist_ok=True)
            write_image(root / folder / f"{i + 1:04d}.png", (img.permute(1, 2, 0) * 255).round().byte().numpy())
    return root


def _run(pairs: Path, out: Path, mode: str) -> float:
    """One training run; the median per-step rate after the warm-up."""
    cfg = resolve_config(None, dict(
        train_data=str(pairs), preset="small", patch_size=PATCH, batch_size=BATCH, iterations=WARMUP + STEPS,
        log_every=1, val_data=None, ckpt_every=10**9, keep_last=1, plot=False, progress=False, tensorboard=False,
        out_dir=str(out), num_workers=0, samples_per_epoch=BATCH * (WARMUP + STEPS), device="cpu", **MODES[mode]))
    train(cfg)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return statistics.median([r["it_s"] for r in rows if "it_s" in r][WARMUP:])


@pytest.mark.parametrize("mode", list(MODES))
def test_train_mode(benchmark, pairs, tmp_path, mode):
    runs = iter(range(10**6))
    rates = []
    benchmark.extra_info.update(mode=mode, preset="small", patch=PATCH, batch=BATCH, steps=STEPS)
    benchmark.pedantic(lambda: rates.append(_run(pairs, tmp_path / f"run{next(runs)}", mode)), rounds=2,
                       iterations=1)
    benchmark.extra_info["it_s"] = statistics.median(rates)


def test_mode_ratios(benchmark, pairs, tmp_path):
    """Every mode in alternating rounds of the same session; ratios of the median rates to fp32."""
    rates = {mode: [] for mode in MODES}
    count = iter(range(10**6))

    def round_():
        for mode in MODES:
            rates[mode].append(_run(pairs, tmp_path / f"r{next(count)}", mode))

    benchmark.pedantic(round_, rounds=2, iterations=1)
    base = statistics.median(rates["fp32"])
    benchmark.extra_info.update({f"{mode}_vs_fp32": statistics.median(r) / base for mode, r in rates.items()})
    print({mode: f"{statistics.median(r) / base:.2f}x" for mode, r in rates.items()})
