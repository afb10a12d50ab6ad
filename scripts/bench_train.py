"""Training throughput on this machine: optimizer steps per second of ``padm train`` in each mode.

    python scripts/bench_train.py                       # the README table (about 25 minutes on 2 cores)
    python scripts/bench_train.py --case small:128x2 --mode fp32 --mode procs --steps 20
    python scripts/bench_train.py --json docs/results/bench_train.json
    python scripts/bench_train.py --baseline-kernels 7fd524b    # fp32 with the kernels of that commit
    python scripts/bench_train.py --case small:128x2 --mode fp32 --mode procs+fused --rounds 4 \
        --baseline-kernels 7fd524b                              # the issue-26 ratio, modes interleaved

Every mode runs the real engine (:func:`padm.engine.train.train`: data loading, the loss over all
stages, gradient clipping, AdamW, logging) on the same crops for ``--warmup`` + ``--steps`` optimizer
steps; the rate is the median of the per-step rates the run logs after the warm-up.  Ratios are against
``fp32`` (one process, all threads, eager float32 through PyTorch's ops: the engine's behaviour before
these modes existed) measured in the same run.  Modes:

===============  ===================================================================================
``fp32``         the baseline: one process, all threads, float32, PyTorch's ops for the gated depthwise
                 convolution and the LayerNorms, AdamW's per-tensor loop (``--no-fused-train-ops``)
``fused``        ``fp32`` with the fused training kernels and AdamW's fused update (``--fused-train-ops``)
``bf16``         one process, bfloat16 autocast on the CPU (``--cpu-bf16``)
``procs``        one process per core, each with one thread and a share of the batch (``--procs 0``)
``procs+fused``  both: ``padm train``'s default on a CPU
``procs+bf16``   ``procs`` with bfloat16 autocast
``fp32+w2``      the baseline with two DataLoader worker processes instead of none
``procs+w1``     ``procs`` with one DataLoader worker per process
===============  ===================================================================================

Modes without ``fused`` in their name train the gated convolution and the LayerNorms through PyTorch's
ops and AdamW through its per-tensor loop (under bfloat16 the layers always do: the kernels are
float32/float64).

``--baseline-kernels REV`` runs the ``fp32`` mode with the fused-kernel library built from
``padm/ops/csrc/selective_scan.cpp`` as of git revision ``REV`` (the scan and conv1d of that time),
loaded in place of today's for that mode only, so that the baseline is the engine as it was (the
issue-26 baseline is ``7fd524b``: the kernels of the issue's filing, for training) while every other
mode runs today's kernels, all in the same run.  It needs a git checkout and a C++ compiler.

``--rounds R`` runs every case's modes R times, in turn, the order reversed every other round (fp32,
procs+fused, procs+fused, fp32, ...), and reports each mode's ratio as the median of its per-round ratios
to the same round's ``fp32`` (with their range): the VM's speed drifts by ±15 % over minutes, so modes run
one after the other once each compare machines of different speeds; interleaved, the drift cancels.

``--compile-check`` also times a forward+backward+AdamW loop with the network's blocks compiled by
``torch.compile`` (inductor) against the same loop in eager mode; padm ships no compile mode because
it was slower here (the whole network does not compile; see the README Performance section).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import statistics
import tempfile
import time
from pathlib import Path

import click
import torch

from padm.engine.config import resolve_config
from padm.engine.launch import cpu_cores
from padm.engine.infer import cpu_bf16_supported
from padm.engine.train import train
from padm.ops import _native
from bench_kernels import library_at  # scripts/: the library of a git revision

MODES = {
    "fp32": dict(procs=1, cpu_bf16=False, num_workers=0, fused_train_ops=False),
    "fused": dict(procs=1, cpu_bf16=False, num_workers=0, fused_train_ops=True),
    "bf16": dict(procs=1, cpu_bf16=True, num_workers=0, fused_train_ops=False),
    "procs": dict(procs=0, cpu_bf16=False, num_workers=0, fused_train_ops=False),
    "procs+fused": dict(procs=0, cpu_bf16=False, num_workers=0, fused_train_ops=True),
    "procs+bf16": dict(procs=0, cpu_bf16=True, num_workers=0, fused_train_ops=False),
    "fp32+w2": dict(procs=1, cpu_bf16=False, num_workers=2, fused_train_ops=False),
    "procs+w1": dict(procs=0, cpu_bf16=False, num_workers=1, fused_train_ops=False),
}
CASES = ("small:128x2", "small:64x8", "paper:128x1")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Rain100L_train"


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo", encoding="utf-8") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    name = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                 if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").exists() else "unknown CPU"
    has = lambda f: "yes" if f in flags else "no"  # noqa: E731
    return (f"{name}, {cpu_cores()} cores; avx512f {has('avx512f')}, avx512_bf16 {has('avx512_bf16')}, "
            f"amx_bf16 {has('amx_bf16')}; oneDNN bf16 {'yes' if cpu_bf16_supported() else 'no'}; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def synthetic_pairs(root: Path, n: int = 8, size: int = 160) -> Path:
    """Rainy/clean pairs with some structure, for a machine without ``../shared/data``."""
    from padm.data.images import write_image

    g = torch.Generator().manual_seed(0)
    (root / "rain").mkdir(parents=True)
    (root / "norain").mkdir(parents=True)
    for i in range(n):
        clean = torch.nn.functional.avg_pool2d(torch.rand(1, 3, size, size, generator=g), 5, 1, 2)[0]
        rain = (clean + (torch.rand(1, size, size, generator=g) > 0.97) * 0.5).clamp(0, 1)
        for folder, img in (("norain", clean), ("rain", rain)):
            write_image(root / folder / f"{i + 1:04d}.png", (img.permute(1, 2, 0) * 255).round().byte().numpy())
    return root


@contextlib.contextmanager
def kernels(lib: ctypes.CDLL | None):
    """Run the block with ``lib`` as padm's kernel library (None: today's)."""
    today = _native.load()
    if lib is None or today is None:
        yield
        return
    _native._lib = lib
    try:
        yield
    finally:
        _native._lib = today


def run_mode(data: Path, preset: str, patch: int, batch: int, mode: str, warmup: int, steps: int,
             work: Path) -> dict:
    out = work / f"{preset}_{patch}x{batch}_{mode}"
    cfg = resolve_config(None, dict(
        train_data=str(data), train_subset="1-180" if data == SHARED else "", preset=preset, patch_size=patch,
        batch_size=batch, iterations=warmup + steps, log_every=1, val_data=None, ckpt_every=10**9,
        keep_last=1, plot=False, progress=False, tensorboard=False, out_dir=str(out), lr=1e-4,
        samples_per_epoch=max(64, batch * (warmup + steps)), device="cpu", **MODES[mode]))
    start = time.perf_counter()
    summary = train(cfg)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rates = [r["it_s"] for r in rows if "it_s" in r][warmup:]
    return {"preset": preset, "patch": patch, "batch": batch, "mode": mode, "it_s": statistics.median(rates),
            "it_s_min": min(rates), "it_s_max": max(rates), "steps": len(rates), "loss": summary["loss"],
            "wall_s": wall}


def compile_check(preset: str, patch: int, batch: int, steps: int) -> dict:
    """Eager vs inductor-compiled blocks on a plain forward+backward+AdamW loop (no engine)."""
    from padm.engine.losses import unfolding_loss
    from padm.unfolding import blocks
    from padm.unfolding.tasks import get_task
    from padm.unfolding.tasks.base import Sample

    task = get_task("derain")
    g = torch.Generator().manual_seed(0)
    sample = Sample(torch.rand(batch, 3, patch, patch, generator=g), torch.rand(batch, 3, patch, patch, generator=g),
                    None)
    result = {}
    for mode in ("eager", "compiled blocks"):
        torch.manual_seed(0)
        model = task.build(task.config_cls.preset(preset))
        if mode != "eager":
            for m in model.modules():
                if isinstance(m, (blocks.GatedFFN, blocks.LayerNorm2d, blocks.StepNet, blocks.CAB)):
                    m.compile(dynamic=False)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            loss, _ = unfolding_loss(task.supervision(model(task.inputs(sample.degraded, None)), sample))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        t = time.perf_counter()
        step()
        first = time.perf_counter() - t
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        result[mode] = {"it_s": 1 / statistics.median(times), "first_step_s": first}
    return result


@click.command()
@click.option("--case", "cases", multiple=True, default=CASES, show_default=True, help="PRESET:PATCHxBATCH")
@click.option("--mode", "modes", multiple=True, show_default=True, type=click.Choice(list(MODES)),
              default=("fp32", "fused", "bf16", "procs", "procs+fused", "procs+bf16"))
@click.option("--steps", default=20, show_default=True, help="measured optimizer steps per mode")
@click.option("--warmup", default=3, show_default=True, help="steps before measuring")
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(min=1),
              help="run the modes this many times, interleaved (ratios: median over rounds)")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="training pairs (default: ../shared/data/Rain100L_train 1-180, else synthetic pairs)")
@click.option("--baseline-kernels", "baseline_rev", default=None, metavar="REV",
              help="run the fp32 baseline with the kernel library of this git revision (e.g. 7fd524b)")
@click.option("--compile-check", is_flag=True, help="also time torch.compile'd blocks (slow to compile)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="also write the rows here")
def main(cases, modes, steps, warmup, rounds, data, baseline_rev, compile_check, json_path):
    print(cpu_flags())
    rows = []
    with tempfile.TemporaryDirectory(prefix="padm-bench-train-") as tmp:
        work = Path(tmp)
        baseline = library_at(baseline_rev, work) if baseline_rev else None
        if baseline_rev:
            print(f"fp32 runs with the kernels of {baseline_rev}; the other modes with today's")
        source = Path(data) if data else (SHARED if SHARED.is_dir() else synthetic_pairs(work / "pairs"))
        for case in cases:
            preset, _, size = case.partition(":")
            patch, _, batch = size.partition("x")
            for r in range(rounds):
                for mode in (modes if r % 2 == 0 else modes[::-1]):
                    with kernels(baseline if mode == "fp32" else None):
                        row = run_mode(source, preset, int(patch), int(batch), mode, warmup, steps, work / f"r{r}")
                    row["kernels"] = baseline_rev if (mode == "fp32" and baseline_rev) else "today"
                    row["round"] = r
                    rows.append(row)
                    print(f"  {case:<12} round {r + 1}/{rounds} {mode:<11} {row['it_s']:.3f} it/s", flush=True)
    summary = summarise(rows)
    print()
    print("| case | mode | kernels | steps/s (median) | range | vs fp32 |")
    print("|---|---|---|---|---|---|")
    for row in summary:
        print(f"| {row['preset']} {row['patch']}² x {row['batch']} | {row['mode']} | {row['kernels']} | "
              f"{row['it_s']:.3f} | {row['it_s_min']:.3f}-{row['it_s_max']:.3f} | {row['ratio_text']} |")
    extra = {}
    if compile_check:
        extra = compile_check_result = compile_check(*_first_case(cases), steps=max(5, steps // 2))
        e, c = compile_check_result["eager"], compile_check_result["compiled blocks"]
        print(f"\ntorch.compile (blocks, inductor), {cases[0]}: eager {e['it_s']:.3f} it/s, compiled {c['it_s']:.3f} "
              f"it/s ({c['it_s'] / e['it_s']:.2f}x); first step {e['first_step_s']:.1f} s vs {c['first_step_s']:.1f} s "
              "(compile time)")
    if json_path:
        from padm.fileio import write_text

        write_text(json_path, json.dumps({"cpu": cpu_flags(), "baseline_kernels": baseline_rev, "rounds": rounds,
                                          "rows": rows, "summary": summary, "compile": extra}, indent=2) + "\n")


def summarise(rows: list[dict]) -> list[dict]:
    """One row per (case, mode): the median of its rounds' rates, and its ratio to ``fp32`` as the median of
    the per-round ratios (each against the ``fp32`` run of the same round), with their range."""
    out = []
    keys = list(dict.fromkeys((r["preset"], r["patch"], r["batch"], r["mode"]) for r in rows))
    for preset, patch, batch, mode in keys:
        mine = [r for r in rows if (r["preset"], r["patch"], r["batch"], r["mode"]) == (preset, patch, batch, mode)]
        rates = [r["it_s"] for r in mine]
        ratios = []
        for r in mine:
            base = next((b["it_s"] for b in rows if b["mode"] == "fp32" and b["round"] == r["round"]
                         and (b["preset"], b["patch"], b["batch"]) == (preset, patch, batch)), None)
            if base:
                ratios.append(r["it_s"] / base)
        ratio = statistics.median(ratios) if ratios else None
        text = "-" if ratio is None else f"{ratio:.2f}x"
        if len(ratios) > 1:
            text += f" ({min(ratios):.2f}-{max(ratios):.2f})"
        out.append({"preset": preset, "patch": patch, "batch": batch, "mode": mode, "kernels": mine[0]["kernels"],
                    "it_s": statistics.median(rates), "it_s_min": min(r["it_s_min"] for r in mine),
                    "it_s_max": max(r["it_s_max"] for r in mine), "rounds": len(mine), "ratio": ratio,
                    "ratios": ratios, "ratio_text": text})
    return out


def _first_case(cases) -> tuple[str, int, int]:
    preset, _, size = cases[0].partition(":")
    patch, _, batch = size.partition("x")
    return preset, int(patch), int(batch)


if __name__ == "__main__":
    main()
