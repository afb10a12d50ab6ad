"""Selective-scan throughput per backend, one thread.

Run:  pytest benchmarks/bench_scan.py --benchmark-only        (all shapes; the reference backend at
      L = 65536 takes about a minute and ~8 GB)
      python scripts/bench_scan.py                            (the README table: ratios in one run)

Shapes: batch 1, D in {80, 160}, N = 16, L in {4096, 16384, 65536}; float32; the Mamba block's call
(D skip, SiLU(z) gate, delta bias + softplus).  ``fwd`` is a forward pass without autograd, ``fwd+bwd``
a forward pass with all inputs requiring gradients plus the backward of ``out.sum()``.  The
``parallel`` backend materialises (L, D, N) tensors per scan level, so it is only run up to L = 16384.
"""

from __future__ import annotations

import pytest
import torch

from padm.ops import scan as S
from padm.ops._native import available

SHAPES = [(d, length) for d in (80, 160) for length in (4096, 16384, 65536)]


def make(dim: int, length: int, grad: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(1, dim, length, generator=g)
    delta = torch.randn(1, dim, length, generator=g) * 0.5 - 1.0
    A = -torch.exp(torch.randn(dim, 16, generator=g) * 0.3)
    B = torch.randn(1, 16, length, generator=g)
    C = torch.randn(1, 16, length, generator=g)
    D = torch.randn(dim, generator=g)
    z = torch.randn(1, dim, length, generator=g)
    bias = torch.randn(dim, generator=g) * 0.1
    args = [u, delta, A, B, C, D, z, bias]
    return [a.requires_grad_() for a in args] if grad else args


def run(backend: str, args, backward: bool):
    if not backward:
        with torch.no_grad():
            return S.selective_scan(*args, delta_softplus=True, backend=backend)
    for a in args:
        a.grad = None
    out = S.selective_scan(*args, delta_softplus=True, backend=backend)
    out.sum().backward()
    return out


@pytest.fixture(autouse=True)
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("dim,length", SHAPES, ids=[f"D{d}-L{n}" for d, n in SHAPES])
@pytest.mark.parametrize("backend", ["cpu", "reference", "parallel"])
def test_scan(benchmark, backend, dim, length, mode):
    if backend == "cpu" and not available():
        pytest.skip("fused kernel unavailable")
    if backend == "parallel" and length > 16384:
        pytest.skip("parallel scan materialises (L, D, N) per level: too much memory here")
    backward = mode == "fwd+bwd"
    args = make(dim, length, backward)
    slow = backend != "cpu" and length >= 16384
    benchmark.extra_info.update(backend=backend, D=dim, L=length, mode=mode)
    if slow:
        benchmark.pedantic(run, args=(backend, args, backward), rounds=1, iterations=1)
    else:
        benchmark.pedantic(run, args=(backend, args, backward), rounds=3, iterations=1, warmup_rounds=1)
