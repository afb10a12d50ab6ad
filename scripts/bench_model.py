"""Median PADM forward time for one image (the README numbers).

    python scripts/bench_model.py --preset paper --size 256
    python scripts/bench_model.py --preset small --size 481x321 --repeats 5
    python scripts/bench_model.py --preset paper --size 256 --ab-whole    # what bands and pieces give

``--ab-whole`` alternates, in one process, the default path with one that computes the feed-forward
networks and the Mamba mixers whole (no bands of rows, no pieces of tokens: the inference path before
those changes) and prints both medians, their ratio and the largest output difference.
"""

from __future__ import annotations

import statistics
import time

import click
import torch

from padm.ops import backend as ops_backend
from padm.unfolding.blocks import GatedFFN, MambaMixer

from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.tasks.derain.model import PADM


@click.command()
@click.option("--preset", default="paper", show_default=True)
@click.option("--size", default="256", show_default=True, help="N or WxH")
@click.option("--repeats", default=5, show_default=True)
@click.option("--threads", default=0, help="intra-op threads (0: torch's default)")
@click.option("--backend", default="auto", show_default=True, help="scan backend")
@click.option("--ab-whole", is_flag=True, help="alternate with FFNs and mixers computed whole (no bands/pieces)")
def main(preset, size, repeats, threads, backend, ab_whole):
    if threads:
        torch.set_num_threads(threads)
    w, _, h = size.partition("x")
    h = h or w
    torch.manual_seed(0)
    model = PADM(PADMConfig.preset(preset)).eval()
    x = torch.rand(1, 3, int(h), int(w))
    if ab_whole:
        return _ab_whole(model, x, preset, f"{w}x{h}", repeats, backend)
    with torch.no_grad(), ops_backend.use(backend):
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    print(f"preset={preset} size={w}x{h} threads={torch.get_num_threads()} backend={backend}: "
          f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, {repeats} runs)")


def _ab_whole(model, x, preset, size, repeats, backend):
    bands = GatedFFN.band_bytes, MambaMixer.band_bytes
    times = {"bands": [], "whole": []}
    outs = {}
    try:
        with torch.no_grad(), ops_backend.use(backend):
            for i in range(repeats + 1):  # the first round is the warm-up
                for name in times:
                    GatedFFN.band_bytes, MambaMixer.band_bytes = bands if name == "bands" else (1 << 62, 1 << 62)
                    start = time.perf_counter()
                    outs[name] = model(x).B[-1]
                    if i:
                        times[name].append(time.perf_counter() - start)
    finally:
        GatedFFN.band_bytes, MambaMixer.band_bytes = bands
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"preset={preset} size={size} threads={torch.get_num_threads()} {k:5s}: median {med[k]:.2f} s "
              f"(min {min(v):.2f}, max {max(v):.2f}, {repeats} runs)")
    diff = (outs["bands"] - outs["whole"]).abs().max().item()
    print(f"whole / bands = {med['whole'] / med['bands']:.2f}x; max |output difference| {diff:.1e}")


if __name__ == "__main__":
    main()
