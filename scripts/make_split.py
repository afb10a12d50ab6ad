"""Split a folder of rainy/clean pairs by index into train/val folders of symlinks (no copies).

    python scripts/make_split.py ../shared/data/Rain100L_train runs/data --train 1-180 --val 181-200

creates ``runs/data/rain100l_train/{rain,norain}`` (pairs 0001-0180) and ``runs/data/rain100l_val/...``
(0181-0200), named after the source folder, the split and the layout's own sub-folder names.
"""

from __future__ import annotations

import os
from pathlib import Path

import click


def _range(text: str) -> range:
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


@click.command()
@click.argument("src", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--train", "train_range", default="1-180", show_default=True)
@click.option("--val", "val_range", default="181-200", show_default=True)
@click.option("--rain-dir", default="rain", show_default=True)
@click.option("--clean-dir", default="norain", show_default=True)
def main(src, out, train_range, val_range, rain_dir, clean_dir):
    name = src.name.lower().removesuffix("_train")
    for split, numbers in (("train", _range(train_range)), ("val", _range(val_range))):
        made = 0
        for sub in (rain_dir, clean_dir):
            folder = out / f"{name}_{split}" / sub
            folder.mkdir(parents=True, exist_ok=True)
            for n in numbers:
                matches = sorted((src / sub).glob(f"{n:04d}.*"))
                if not matches:
                    raise click.ClickException(f"{src / sub}: no file for pair {n:04d}")
                link = folder / matches[0].name
                if not link.exists():
                    os.symlink(matches[0].resolve(), link)
                made += 1
        click.echo(f"{out / f'{name}_{split}'}: {made // 2} pairs")


if __name__ == "__main__":
    main()
