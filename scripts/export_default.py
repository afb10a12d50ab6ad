"""Ship a training run as the default model: ``checkpoints/default.pt`` plus the run's record.

    python scripts/export_default.py runs/rain100l_small
    python scripts/export_default.py runs/heavy_small --name heavy_small --file heavy.pt --weights raw

Writes
  checkpoints/default.pt                  weights only + network config + provenance
  checkpoints/rain100l_small/resume.pt    the run's newest full checkpoint: `padm train --resume` it
  checkpoints/rain100l_small/{config.yaml, log.jsonl, train.csv, val.csv, curves.png}
                                          (the metrics logs keep the record's steps before the run's first)
  checkpoints/rain100l_small/train.log    the console log ``runs/rain100l_small.log`` when it exists
and refuses any file over 20 MB.  The default model is the newest step's weights (not the best-scoring
one): its EMA weights when the run has them, or the raw weights with ``--weights raw``.  Validation
during training scores the EMA weights, so with ``--weights raw`` score the shipped weights with
``padm eval VAL_DIR --ckpt <run's step checkpoint> --no-ema``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import torch

from padm.fileio import atomic_write
from padm.engine.checkpoint import atomic_save, latest_checkpoint, make_checkpoint, read_checkpoint
from padm.engine.runlog import RunLog
from padm.unfolding.tasks.derain.config import PADMConfig

REPO = Path(__file__).resolve().parents[1]
LIMIT = 20 * 1000 * 1000


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--name", default="rain100l_small", show_default=True, help="folder under checkpoints/")
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True,
              help="ship the EMA weights (when the run has them) or the raw trained weights")
@click.option("--file", "file_name", default="default.pt", show_default=True,
              help="the shipped weights' file under checkpoints/ (heavy.pt: padm derain --model heavy)")
def main(run_dir: Path, name: str, weights: str, file_name: str) -> None:
    ckpt_path = latest_checkpoint(run_dir)
    if ckpt_path is None:
        raise click.ClickException(f"{run_dir}: no checkpoints yet")
    ckpt = read_checkpoint(ckpt_path)
    use_ema = weights == "ema" and ckpt.get("ema") is not None
    state = ckpt["ema"] if use_ema else ckpt["model"]
    shipped = make_checkpoint(PADMConfig.from_dict(ckpt["model_config"]), state, step=ckpt["step"],
                              train_config=ckpt.get("train_config"), best=ckpt.get("best"))
    out = REPO / "checkpoints"
    record = out / name
    record.mkdir(parents=True, exist_ok=True)
    atomic_save(shipped, out / file_name)
    with atomic_write(record / "resume.pt") as tmp:
        shutil.copyfile(ckpt_path, tmp)
    sources = {"config.yaml": run_dir / "config.yaml",
               "train.log": run_dir.with_name(run_dir.name + ".log")}  # nohup ... >> runs/<name>.log
    for f, src in sources.items():
        if src.is_file():
            shutil.copyfile(src, record / f)
    record_log = RunLog(record, tensorboard=False)
    record_log.extend_with(RunLog(run_dir, tensorboard=False))  # keeps the record's steps before the run's
    record_log.plot(record / "curves.png")
    for f in [out / file_name, *record.iterdir()]:
        if f.stat().st_size > LIMIT:
            raise click.ClickException(f"{f} is {f.stat().st_size / 1e6:.1f} MB, over the 20 MB limit")
    torch.load(out / file_name, map_location="cpu", weights_only=True)  # loads safely
    click.echo(f"shipped step {ckpt['step']} of {run_dir} ({'EMA' if use_ema else 'raw'} weights)"
               f" -> {out / file_name}; record in {record}")


if __name__ == "__main__":
    main()
