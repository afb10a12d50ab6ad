"""Median PADM forward time for one image (the README numbers).

    python scripts/bench_model.py --preset paper --size 256
    python scripts/bench_model.py --preset small --size 481x321 --repeats 5
"""

from __future__ import annotations

import statistics
import time

import click
import torch

from padm.ops import backend as ops_backend

from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.tasks.derain.model import PADM


@click.command()
@click.option("--preset", default="paper", show_default=True)
@click.option("--size", default="256", show_default=True, help="N or WxH")
@click.option("--repeats", default=5, show_default=True)
@click.option("--threads", default=0, help="intra-op threads (0: torch's default)")
@click.option("--backend", default="auto", show_default=True, help="scan backend")
def main(preset, size, repeats, threads, backend):
    if threads:
        torch.set_num_threads(threads)
    w, _, h = size.partition("x")
    h = h or w
    torch.manual_seed(0)
    model = PADM(PADMConfig.preset(preset)).eval()
    x = torch.rand(1, 3, int(h), int(w))
    with torch.no_grad(), ops_backend.use(backend):
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    print(f"preset={preset} size={w}x{h} threads={torch.get_num_threads()} backend={backend}: "
          f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, {repeats} runs)")


if __name__ == "__main__":
    main()
