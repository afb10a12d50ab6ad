"""``padm pack`` and ``padm synth``.

Imports of numpy, h5py and friends happen inside the commands so that ``padm --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from padm.errors import UserError

_LAYOUT_CHOICES = ("auto", "jorder", "restormer", "spa", "ddn", "did", "folders")


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="[SRC] OUT.h5")
@click.option("--rain", "rain", type=click.Path(file_okay=False), default=None,
              help="Folder of rainy images (with --clean; instead of SRC, or relative to SRC).")
@click.option("--clean", "clean", type=click.Path(file_okay=False), default=None,
              help="Folder of clean images matching --rain by name.")
@click.option("--layout", type=click.Choice(_LAYOUT_CHOICES), default="auto", show_default=True,
              help="Force a layout instead of detecting it.")
@click.option("--rain-side", type=click.Choice(("left", "right")), default="left", show_default=True,
              help="Side-by-side (DID) files: which half is rainy.")
@click.option("--compression", type=click.Choice(("lzf", "gzip", "none")), default="lzf", show_default=True,
              help="HDF5 compression: lzf is fast, gzip portable and smaller.")
@click.option("--chunk", type=click.IntRange(min=8), default=32, show_default=True,
              help="Chunk edge in pixels (a random crop reads only the chunks it overlaps).")
@click.option("--overwrite", is_flag=True, help="Replace OUT.h5 if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def pack(paths: tuple[str, ...], rain: str | None, clean: str | None, layout: str, rain_side: str,
         compression: str, chunk: int, overwrite: bool, quiet: bool) -> None:
    """Pack rainy/clean pairs from SRC into one HDF5 file OUT.h5.

    The layout of SRC is detected: JORDER rain/ + norain/ (Rain100L/H, Rain200L/H), Restormer
    input/ + target/, SPA-Data *gt names, DDN rainy_image/N_k -> ground_truth/N, DID side-by-side
    files.  If SRC holds several splits (train/, test/), point at one of them.  Or give the
    folders yourself: padm pack --rain DIR --clean DIR OUT.h5
    """
    from padm.data.pack import pack as run_pack

    if len(paths) == 1:
        if rain is None or clean is None:
            raise UserError("give SRC and OUT.h5, or --rain DIR --clean DIR and OUT.h5")
        src, out = None, paths[0]
    elif len(paths) == 2:
        src, out = paths
    else:
        raise UserError(f"expected [SRC] OUT.h5, got {len(paths)} paths")
    run_pack(src, out, rain=rain, clean=clean, layout=layout, rain_side=rain_side, compression=compression,
             chunk=chunk, overwrite=overwrite, progress=not quiet, log=click.echo)


def _synth_options(func):
    """One click option per :class:`padm.data.synth.SynthConfig` field (None = the preset's value)."""
    from padm.data.synth import FIELD_HELP, PRESETS

    for name in reversed(list(FIELD_HELP)):
        kind, text = FIELD_HELP[name]
        values = ", ".join(f"{preset} {getattr(cfg, name):g}" for preset, cfg in PRESETS.items())
        func = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None,
                            help=f"{text}  [{values}]")(func)
    return func


@click.command()
@click.argument("clean_dir", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--preset", type=click.Choice(("light", "heavy")), default="light", show_default=True,
              help="Starting values for the rain model; the options below override them.")
@_synth_options
@click.option("--streaks", "streaks", type=click.Path(path_type=Path), default=None,
              help="Composite real streak layers from this folder (e.g. ../shared/data/streaks_Garg06) "
                   "instead of drawing procedural streaks; --preset then picks padm.data.streaks presets.")
@click.option("--streak", "streak_settings", multiple=True, metavar="FIELD=VALUE",
              help="With --streaks: a StreakConfig setting, e.g. --streak layers=3,5 --streak blend=add "
                   "--streak veil=0.1,0.2 (fields: layers, scale, angle, angle_spread, intensity, blend, veil).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def synth(clean_dir: Path, out: Path, preset: str, streaks: Path | None, streak_settings: tuple[str, ...],
          overwrite: bool, quiet: bool, **fields) -> None:
    """Add synthetic rain streaks to the clean images in CLEAN_DIR.

    Writes OUT/rain/NAME.png and OUT/norain/NAME.png (ready for `padm pack OUT data.h5`) and
    OUT/synth.json with the settings.  The model (sparse seeds, motion blur along the fall angle,
    screen blend) is described in padm/data/synth.py and docs/data.md.
    """
    from padm.data.synth import SynthConfig, synth_folder

    overrides = {k: v for k, v in fields.items() if v is not None}
    if streaks is None:
        if streak_settings:
            raise UserError("--streak settings need --streaks DIR")
        try:
            config = SynthConfig.preset(preset, **overrides)
        except (TypeError, ValueError) as err:
            raise UserError(str(err)) from None
    else:
        config = _streak_model(streaks, preset, overrides, streak_settings)
    synth_folder(clean_dir, out, config, overwrite=overwrite, progress=not quiet, log=click.echo)


def _streak_model(folder: Path, preset: str, overrides: dict, settings: tuple[str, ...]):
    """The streak-layer model from ``--streaks`` and ``--streak FIELD=VALUE`` (only ``--seed`` of the
    procedural options applies to it)."""
    from padm.data.streaks import StreakBank, StreakConfig, StreakSynth

    procedural = sorted(k for k in overrides if k != "seed")
    if procedural:
        raise UserError(f"--{procedural[0].replace('_', '-')} sets the procedural model; with --streaks use "
                        "--streak FIELD=VALUE")
    values = dict(seed=overrides["seed"]) if "seed" in overrides else {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--streak {item!r}: expected FIELD=VALUE")
        values[key.strip()] = value.strip()
    try:
        config = StreakConfig.preset(preset, **values)
    except (TypeError, ValueError) as err:
        raise UserError(f"--streak: {err}") from None
    return StreakSynth(StreakBank(folder), config)

