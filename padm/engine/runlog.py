"""Run logs: ``log.jsonl`` (every record), ``train.csv`` / ``val.csv``, TensorBoard when installed, and
``curves.png`` (loss and validation PSNR) at the end.  Only rank 0 writes.

Whole files are written atomically and records are appended with :func:`padm.fileio.append_text`; a
file-system failure (a full disk, ...) is one :class:`~padm.errors.UserError` naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from padm.engine.figures import pyplot, save_figure
from padm.fileio import append_text, atomic_write, cannot, make_folder, write_text


class RunLog:
    """Append-only metrics log of one run directory.

    ``truncate_after(step)`` (on resume) drops records written after the checkpoint being resumed, so a
    resumed run's logs read like an uninterrupted run's; ``extend_with(later)`` does the same across two
    folders (a record continued by a run resumed elsewhere).
    """

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True):
        self.dir = Path(run_dir)
        make_folder(self.dir)
        self.jsonl = self.dir / "log.jsonl"
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSONL/CSV only
                pass
            else:
                try:
                    self._tb = SummaryWriter(log_dir=str(self.dir / "tb"))
                except OSError as err:
                    raise cannot(self.dir / "tb", err) from None

    def records(self) -> list[dict[str, Any]]:
        if not self.jsonl.is_file():
            return []
        out = []
        for line in self.jsonl.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a killed process
                continue
        return out

    def truncate_after(self, step: int) -> None:
        kept = [r for r in self.records() if r.get("step", 0) <= step]
        self.rewrite(kept)

    def extend_with(self, later: RunLog) -> None:
        """This log up to where ``later`` starts, then all of ``later``: a run resumed from this log's
        checkpoint into another (possibly empty) folder carries on this history instead of replacing it."""
        new = later.records()
        if new:
            first = min(r["step"] for r in new)
            self.rewrite([r for r in self.records() if r["step"] < first] + new)

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the log with ``records``: ``log.jsonl`` and both CSV files."""
        write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in records))
        for kind in ("train", "val"):
            rows = [r for r in records if r.get("kind") == kind]
            path = self.dir / f"{kind}.csv"
            if rows:
                self._write_csv(path, rows, mode="w")
            else:
                try:
                    path.unlink(missing_ok=True)
                except OSError as err:
                    raise cannot(path, err, "cannot remove") from None

    def _write_csv(self, path: Path, rows: list[dict[str, Any]], mode: str) -> None:
        """A new file (or ``mode="w"``) is written whole and atomically; otherwise the rows are appended."""
        fields = [k for k in rows[0] if k != "kind"]

        def put(f, header: bool) -> None:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if header:
                writer.writeheader()
            writer.writerows(rows)

        if mode == "w" or not path.is_file():
            with atomic_write(path) as tmp, tmp.open("w", newline="") as f:
                put(f, header=True)
        else:
            text = io.StringIO(newline="")
            put(text, header=False)
            append_text(path, text.getvalue())

    def write(self, kind: str, step: int, **values: Any) -> None:
        record = {"kind": kind, "step": int(step), **{k: _plain(v) for k, v in values.items()}}
        append_text(self.jsonl, json.dumps(record) + "\n")
        self._write_csv(self.dir / f"{kind}.csv", [record], mode="a")
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    def plot(self, path: str | os.PathLike | None = None) -> Path | None:
        """``curves.png``: training loss (log scale) and validation PSNR against the step."""
        records = self.records()
        train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train" and "loss" in r]
        val = [(r["step"], r["psnr"]) for r in records if r.get("kind") == "val" and r.get("psnr") is not None]
        if not train and not val:
            return None
        path = Path(path) if path else self.dir / "curves.png"
        fig, axes = pyplot().subplots(1, 2, figsize=(11, 4))
        if train:
            axes[0].plot(*zip(*train), lw=1)
            if all(v > 0 for _, v in train):
                axes[0].set_yscale("log")
        axes[0].set(title="training loss (all stages)", xlabel="step", ylabel="loss")
        if val:
            axes[1].plot(*zip(*val), marker="o", lw=1)
        axes[1].set(title="validation PSNR", xlabel="step", ylabel="PSNR (dB)")
        for ax in axes:
            ax.grid(alpha=0.3)
        return save_figure(fig, path, dpi=100)


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf
    return v


__all__ = ["RunLog"]
