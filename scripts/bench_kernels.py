"""Today's fused-kernel library against the one of an earlier git revision, alternating in one process.

    python scripts/bench_kernels.py --rev 7fd524b                         # all workloads
    python scripts/bench_kernels.py --rev 7fd524b --workload step2 --repeats 8

Both libraries are built from ``padm/ops/csrc/selective_scan.cpp`` (today's working tree, and ``git show
REV:...``) and loaded side by side; each repeat runs the workload once with each, so the VM's drift
over minutes does not enter the ratio.  What differs is only the C++ kernels (the scan, the causal
conv1d, the gated convolution's forward); the Python around them is today's, and the gated
convolution trains through PyTorch's ops in both (``--no-fused-train-ops``), so a training-step ratio
is the kernels' alone.  Workloads:

==========  ===========================================================================================
``step1``   one training step of ``small`` at 128² x 1 on one thread (the per-process work of ``--procs``)
``step2``   the same step on two threads (one process, ``--procs 1``)
``paper``   the ``paper`` forward at 256², all threads (inference)
``scan``    the selective scan alone, forward and backward, one thread, as the ``small`` level-0 mixer
            calls it in training (batch 1, D = 32, L = 128² = 16384, N = 16, gate and softplus)
``gated``   the gated depthwise convolution alone, fused forward and backward, one thread, as the ``small``
            level-0 feed-forward network trains it (batch 1, 84 -> 42 channels, 128², channels-last)
==========  ===========================================================================================
"""

from __future__ import annotations

import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import torch

from padm.ops import _native

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "padm/ops/csrc/selective_scan.cpp"


def build(source: str, out: Path, openmp: bool) -> ctypes.CDLL:
    (out.with_suffix(".cpp")).write_text(source)
    cxx = _native._compiler()
    if cxx is None:
        raise click.UsageError("needs a C++ compiler (g++ or clang++)")
    flags = [*_native._FLAGS, *(_native._OPENMP if openmp else [])]
    proc = subprocess.run([cxx, *flags, str(out.with_suffix(".cpp")), "-o", str(out)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise click.UsageError(f"build of {out.name} failed: {proc.stderr.strip()[-300:]}")
    lib = ctypes.CDLL(str(out))
    _native._declare(lib, strict=False)
    return lib


def library_at(rev: str, work: Path) -> ctypes.CDLL:
    """The kernel library as of git revision ``rev``: its source, today's flags, and OpenMP where that source
    uses it (as padm built it then: before OpenMP the kernels started their own threads; built without
    ``-fopenmp`` a later source would run its parallel loops on one thread)."""
    old = subprocess.run(["git", "show", f"{rev}:{SOURCE}"], cwd=ROOT, capture_output=True, text=True, check=False)
    if old.returncode != 0:
        raise click.UsageError(f"git revision {rev!r}: {old.stderr.strip() or 'git failed'}")
    return build(old.stdout, work / f"kernels_{rev}.so", openmp="#pragma omp" in old.stdout)


def workload(name: str):
    if name in ("step1", "step2"):
        sys.path.insert(0, str(ROOT / "scripts"))
        from bench_step import make_step

        threads = 1 if name == "step1" else 2
        step = make_step("pytorch-ops", "small", 128, 1)  # the gated convolution through PyTorch's ops

        def run():
            torch.set_num_threads(threads)
            step()

        return run
    if name == "scan":
        from padm.ops.scan import selective_scan_cpu

        g = torch.Generator().manual_seed(0)
        d, length, n = 32, 128 * 128, 16
        u, z = (torch.randn(1, length, d, generator=g).transpose(1, 2) for _ in range(2))  # (1, D, L) views
        delta = 0.5 * torch.randn(1, length, d, generator=g).transpose(1, 2)
        B, C = (torch.randn(1, length, n, generator=g).transpose(1, 2) for _ in range(2))  # (1, N, L)
        A = -torch.rand(d, n, generator=g).add(0.5)
        D, bias = torch.ones(d), torch.zeros(d)
        leaves = [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]
        dout = torch.randn(1, d, length, generator=g)

        def run():
            torch.set_num_threads(1)
            for t in leaves:
                t.grad = None
            out = selective_scan_cpu(u, delta, A, B, C, D, z, bias, delta_softplus=True)
            out.backward(dout)

        return run
    if name == "gated":
        from padm.ops.gated import gated_dwconv

        g = torch.Generator().manual_seed(0)
        u = torch.randn(1, 84, 128, 128, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_()
        weight = (0.3 * torch.randn(84, 1, 3, 3, generator=g)).requires_grad_()
        dout = torch.randn(1, 42, 128, 128, generator=g).contiguous(memory_format=torch.channels_last)

        def run():
            torch.set_num_threads(1)
            u.grad = weight.grad = None
            gated_dwconv(u, weight).backward(dout)

        return run
    from padm.unfolding.tasks import get_task

    task = get_task("derain")
    torch.manual_seed(0)
    model = task.build(task.config_cls.preset("paper")).eval()
    x = torch.rand(1, 3, 256, 256)
    threads = torch.get_num_threads()

    def run():
        torch.set_num_threads(threads)
        with torch.no_grad():
            model(task.inputs(x, None))

    return run


@click.command()
@click.option("--rev", required=True, help="the git revision whose kernels are the baseline (e.g. 7fd524b)")
@click.option("--workload", "workloads", multiple=True, type=click.Choice(["step1", "step2", "paper", "scan", "gated"]),
              default=("step1", "step2", "paper"), show_default=True)
@click.option("--repeats", default=6, show_default=True, help="timed runs per library and workload")
def main(rev, workloads, repeats):
    _native.load()  # today's, as padm builds it (also loads torch's OpenMP runtime first)
    with tempfile.TemporaryDirectory(prefix="padm-bench-kernels-") as tmp:
        libs = {rev: library_at(rev, Path(tmp)),
                "today": build((ROOT / SOURCE).read_text(), Path(tmp) / "new.so", openmp=True)}
        click.echo(f"{torch.get_num_threads()} threads available; {repeats} runs each, alternating\n")
        click.echo(f"| workload | {rev} (s) | today (s) | speed-up |\n|---|---|---|---|")
        for name in workloads:
            run = workload(name)
            times = {tag: [] for tag in libs}
            for tag, lib in libs.items():  # warm-up
                _native._lib = lib
                run()
            for _ in range(repeats):
                for tag, lib in libs.items():
                    _native._lib = lib
                    start = time.perf_counter()
                    run()
                    times[tag].append(time.perf_counter() - start)
            a, b = statistics.median(times[rev]), statistics.median(times["today"])
            click.echo(f"| {name} | {a:.4f} ({min(times[rev]):.4f}-{max(times[rev]):.4f}) | "
                       f"{b:.4f} ({min(times['today']):.4f}-{max(times['today']):.4f}) | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
