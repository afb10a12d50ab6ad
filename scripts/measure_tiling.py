#!/usr/bin/env python
"""How far tiled inference is from whole-image inference for a PADM model.

    python scripts/measure_tiling.py IMAGE [--ckpt CKPT | --preset small] --tile 256 --overlap 32 --overlap 128

Prints, per overlap, the largest absolute difference (in [0, 1] units) and the PSNR of the tiled
output against the untiled one.
"""

import math

import click
import torch


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--ckpt", default=None, help="checkpoint (default: random weights of --preset)")
@click.option("--preset", default="small", show_default=True)
@click.option("--tile", default=256, show_default=True)
@click.option("--overlap", "overlaps", multiple=True, type=int, default=(32, 128), show_default=True)
def main(image, ckpt, preset, tile, overlaps):
    from padm.data.images import read_image, to_tensor
    from padm.engine.checkpoint import create_model, load_model
    from padm.engine.infer import restore
    from padm.unfolding.tasks.derain.config import PADMConfig

    torch.manual_seed(0)
    model = load_model(ckpt)[0] if ckpt else create_model(PADMConfig.preset(preset)).eval()
    x = to_tensor(read_image(image).pixels)[None]
    whole = restore(model, x)
    for overlap in overlaps:
        tiled = restore(model, x, tile=tile, overlap=overlap)
        diff = (tiled - whole).abs()
        mse = diff.double().pow(2).mean().item()
        psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
        click.echo(f"{x.shape[-1]}x{x.shape[-2]}, tile {tile}, overlap {overlap}: max |diff| {diff.max():.4f}, "
                   f"mean |diff| {diff.mean():.5f}, PSNR(tiled vs whole) {psnr:.2f} dB")


if __name__ == "__main__":
    main()
