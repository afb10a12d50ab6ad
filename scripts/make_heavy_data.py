"""The heavy-rain training and validation pairs of ``checkpoints/heavy.pt``, from ../shared/data.

    python scripts/make_heavy_data.py OUT        # OUT/train/{rain,norain}, OUT/val/{rain,norain}

- ``train``: BSD300_clean photos 1-189 (name order) with ``padm synth --streaks streaks_Garg06
  --preset heavy --seed 0``, plus the 20 Rain200H training pairs (``r200h_`` prefix);
- ``val``: BSD300_clean photos 190-209 with the same preset, ``--seed 1`` (a fixed synthetic heavy
  validation set).  Rain200H ``test5`` is never used here: it is the test set.
- ``pairs`` (heavy.pt v2): the real pairs only, Rain100L 0001-0180 (``r100l_``) and the 20 Rain200H
  training pairs (``r200h_``); v2 makes its synthetic pairs on the fly from BSD300_clean 1-189
  (``--synth-data``, ``configs/heavy_v2_rain.json``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from padm.data.layouts import list_images
from padm.data.streaks import StreakBank, StreakConfig, StreakSynth
from padm.data.synth import synth_folder

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def main(out: Path):
    if out.exists():
        raise click.UsageError(f"{out} exists")
    photos, _ = list_images(SHARED / "BSD300_clean")
    bank = StreakBank(SHARED / "streaks_Garg06")
    stage = out / "_clean"
    for name, chosen in (("train", photos[:189]), ("val", photos[189:209])):
        (stage / name).mkdir(parents=True)
        for p in chosen:
            shutil.copy(p, stage / name / p.name)
        seed = 0 if name == "train" else 1
        synth_folder(stage / name, out / name, StreakSynth(bank, StreakConfig.preset("heavy", seed=seed)),
                     progress=False)
    for side in ("rain", "norain"):
        (out / "pairs" / side).mkdir(parents=True)
        for p in list_images(SHARED / "Rain200H_samples" / "train20" / side)[0]:
            shutil.copy(p, out / "train" / side / f"r200h_{p.name}")
            shutil.copy(p, out / "pairs" / side / f"r200h_{p.name}")
        for p in list_images(SHARED / "Rain100L_train" / side)[0][:180]:  # 0001-0180; 0181-0200 validate
            shutil.copy(p, out / "pairs" / side / f"r100l_{p.name}")
    shutil.rmtree(stage)
    count = {name: len(list_images(out / name / "rain")[0]) for name in ("train", "val", "pairs")}
    print(", ".join(f"{name}: {n} pairs" for name, n in count.items()))


if __name__ == "__main__":
    main()
