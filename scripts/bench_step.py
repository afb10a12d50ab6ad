"""One training step (forward, loss over all stages, backward, clipping, AdamW) in variants, A/B in one process.

    python scripts/bench_step.py                                   # small, 128² x 1, one thread
    python scripts/bench_step.py --preset small --patch 128 --batch 1 --threads 1 --repeats 16

This is the per-process work of ``padm train --procs 0`` (one thread per process), without the engine
around it, so that one change to the hot path can be measured against today's path on the same machine
at the same moment: the variants run one step each in turn, ``--repeats`` times, and each one's median
is compared with the baseline's.  (The VM's speed drifts by ±15 % over minutes; timing the variants one
after the other instead would measure the drift.)  Variants:

===================  ===================================================================================
``baseline``         the engine's path: NCHW model and input, the fused training kernels (gated
                     convolution, LayerNorm, dropout), AdamW fused with for-each clipping, Python's GC on
``pytorch-ops``      the fused training kernels off (``--no-fused-train-ops``): PyTorch's ops train the
                     gated depthwise convolution, the LayerNorms and the dropouts, as before those
                     kernels existed
``reference-norm``   only the LayerNorms through PyTorch's op (``F.layer_norm``)
``pytorch-dropout``  only the residual dropouts through PyTorch's ``x + F.dropout(y)``
``loop-adamw``       AdamW's per-tensor loop and per-tensor clipping (PyTorch's CPU defaults)
``channels-last``    model and crops converted to channels-last memory
``no-gc``            Python's cyclic garbage collector off during the step
===================  ===================================================================================
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time

import click
import torch

from padm.engine.losses import unfolding_loss
from padm.ops import backend, dropout, norm
from padm.unfolding.tasks import get_task
from padm.unfolding.tasks.base import Sample

VARIANTS = ("baseline", "pytorch-ops", "reference-norm", "pytorch-dropout", "loop-adamw", "channels-last", "no-gc")


@contextlib.contextmanager
def _op_path(variant: str):
    """For ``reference-norm`` / ``pytorch-dropout``, that op through its PyTorch fallback."""
    module = {"reference-norm": norm, "pytorch-dropout": dropout}.get(variant)
    if module is None:
        yield
        return
    fused_ok = module._fused_ok
    module._fused_ok = lambda *args: False
    try:
        yield
    finally:
        module._fused_ok = fused_ok


def make_step(variant: str, preset: str, patch: int, batch: int):
    task = get_task("derain")
    torch.manual_seed(0)
    model = task.build(task.config_cls.preset(preset))
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(batch, 3, patch, patch, generator=g)  # (N, 3, H, W)
    rainy = (clean + 0.2 * torch.rand(batch, 3, patch, patch, generator=g)).clamp(0, 1)
    if variant == "channels-last":
        model = model.to(memory_format=torch.channels_last)
        clean, rainy = (t.contiguous(memory_format=torch.channels_last) for t in (clean, rainy))
    fused_opt = variant not in ("loop-adamw", "pytorch-ops")  # as padm.engine.train.fused_cpu_optimizer
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **({"fused": True} if fused_opt else {}))
    sample = Sample(rainy, clean, None)

    def step() -> float:
        if variant == "no-gc":
            gc.disable()
        try:
            with backend.use("auto", training_kernels=variant != "pytorch-ops"), _op_path(variant):
                out = model(task.inputs(sample.degraded, sample.aux))
                loss, _ = unfolding_loss(task.supervision(out, sample), 0.01)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True if fused_opt else None)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()
        finally:
            gc.enable()

    return step


@click.command()
@click.option("--preset", default="small", show_default=True)
@click.option("--patch", default=128, show_default=True)
@click.option("--batch", default=1, show_default=True)
@click.option("--threads", default=1, show_default=True, help="intra-op threads (the default mode uses 1)")
@click.option("--repeats", default=12, show_default=True, help="timed steps per variant")
@click.option("--variant", "variants", multiple=True, type=click.Choice(VARIANTS),
              help="variants besides the baseline (default: all)")
def main(preset, patch, batch, threads, repeats, variants):
    torch.set_num_threads(threads)
    names = ["baseline", *[v for v in (variants or VARIANTS) if v != "baseline"]]
    steps = {name: make_step(name, preset, patch, batch) for name in names}
    for step in steps.values():  # warm-up: kernel build, allocator, first-call costs
        step()
        step()
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["baseline"])
    click.echo(f"{preset} {patch}² x {batch}, {threads} thread(s), {repeats} steps each, alternating\n")
    click.echo("| variant | median s/step | range | vs baseline |\n|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        click.echo(f"| {name} | {med:.3f} | {min(ts):.3f}-{max(ts):.3f} | {base / med:.2f}x |")


if __name__ == "__main__":
    main()
