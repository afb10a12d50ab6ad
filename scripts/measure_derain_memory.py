#!/usr/bin/env python
"""Peak memory and time of `padm derain` on a large image (random weights, random image).

    python scripts/measure_derain_memory.py --size 2048 --tile 512 --overlap 64 --preset small

Peak memory is the process's maximum resident set size (CPU) or ``torch.cuda.max_memory_allocated``
(CUDA), reported with the baseline after loading torch and building the model.
"""

import resource
import time

import click
import torch


@click.command()
@click.option("--size", default=2048, show_default=True, help="square image edge in pixels")
@click.option("--tile", default=512, show_default=True, help="tile size (0: whole image)")
@click.option("--overlap", default=64, show_default=True)
@click.option("--preset", default="small", show_default=True)
@click.option("--device", default="cpu", show_default=True)
def main(size, tile, overlap, preset, device):
    from padm.engine.checkpoint import create_model
    from padm.engine.infer import restore
    from padm.unfolding.tasks.derain.config import PADMConfig

    torch.manual_seed(0)
    model = create_model(PADMConfig.preset(preset)).to(device).eval()
    x = torch.rand(1, 3, size, size)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    y = restore(model, x, tile=tile or None, overlap=overlap, progress=True)
    seconds = time.perf_counter() - t
    assert y.shape == x.shape
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = (f"{size}x{size}, preset {preset}, tile {tile or 'none'}, overlap {overlap}, {device}: {seconds:.0f} s, "
            f"peak RSS {peak:.0f} MiB (baseline {base:.0f} MiB)")
    if device.startswith("cuda"):
        line += f", peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    click.echo(line)


if __name__ == "__main__":
    main()
