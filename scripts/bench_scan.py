"""Print the selective-scan table of the README: fused CPU kernel vs the PyTorch reference, one thread.

    python scripts/bench_scan.py                 # D = 160, N = 16, L = 65536 (about a minute)
    python scripts/bench_scan.py --length 4096 --dim 80 --dim 160

Both backends run in this one process on the same inputs; the ratio column is reference / fused.  The
outputs and gradients of the two are compared as well (max relative difference).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_scan import make, run  # noqa: E402


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@click.command()
@click.option("--dim", "dims", multiple=True, type=int, default=[160], show_default=True)
@click.option("--length", "lengths", multiple=True, type=int, default=[65536], show_default=True)
@click.option("--threads", default=1, show_default=True)
@click.option("--repeats", default=3, show_default=True, help="runs of the fused kernel (median)")
def main(dims, lengths, threads, repeats):
    torch.set_num_threads(threads)
    print(f"threads={threads}, batch=1, N=16, float32, torch {torch.__version__}")
    print("| D | L | pass | reference (s) | fused cpu (s) | speed-up | max rel. diff |")
    print("|---|---|---|---|---|---|---|")
    for dim in dims:
        for length in lengths:
            for backward in (False, True):
                args = make(dim, length, backward)
                run("cpu", args, backward)  # warm-up (builds the kernel on first use)
                t_cpu = timed(lambda: run("cpu", args, backward), repeats)
                out_cpu = run("cpu", args, backward).detach()
                grads_cpu = [a.grad.clone() for a in args] if backward else []
                t_ref = timed(lambda: run("reference", args, backward), 1)
                out_ref = run("reference", args, backward).detach() if not backward else None
                if backward:
                    grads_ref = [a.grad.clone() for a in args]
                    diffs = [((a - b).abs().max() / b.abs().max()).item() for a, b in zip(grads_cpu, grads_ref)]
                else:
                    diffs = [((out_cpu - out_ref).abs().max() / out_ref.abs().max()).item()]
                name = "fwd+bwd" if backward else "fwd"
                print(f"| {dim} | {length} | {name} | {t_ref:.2f} | {t_cpu:.3f} | {t_ref / t_cpu:.1f}× | {max(diffs):.1e} |",
                      flush=True)


if __name__ == "__main__":
    main()
