"""``scripts/bench_train.py --rounds``: a mode's ratio is the median of per-round ratios to that round's fp32."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
bench_train = pytest.importorskip("bench_train")


def _row(mode: str, rnd: int, it_s: float) -> dict:
    return {"preset": "small", "patch": 128, "batch": 2, "mode": mode, "round": rnd, "it_s": it_s,
            "it_s_min": it_s * 0.9, "it_s_max": it_s * 1.1, "kernels": "today"}


def test_ratio_is_per_round_not_of_pooled_rates():
    # the machine is twice as fast in round 1: pooled medians would mix rounds, per-round ratios do not
    rows = [_row("fp32", 0, 0.4), _row("fast", 0, 0.6), _row("fast", 1, 1.6), _row("fp32", 1, 0.8),
            _row("fp32", 2, 0.5), _row("fast", 2, 0.9)]
    summary = {r["mode"]: r for r in bench_train.summarise(rows)}
    assert summary["fast"]["ratios"] == pytest.approx([1.5, 2.0, 1.8])
    assert summary["fast"]["ratio"] == pytest.approx(1.8)
    assert summary["fast"]["ratio_text"] == "1.80x (1.50-2.00)"
    assert summary["fp32"]["ratio"] == pytest.approx(1.0)
    assert summary["fast"]["it_s"] == pytest.approx(0.9)  # median of the rounds' rates
    assert summary["fast"]["rounds"] == 3


def test_one_round_and_missing_baseline():
    summary = {r["mode"]: r for r in bench_train.summarise([_row("fast", 0, 0.7)])}
    assert summary["fast"]["ratio"] is None and summary["fast"]["ratio_text"] == "-"
