"""Checkpoints: atomic writes, safe loading, padm and foreign formats, for any task.

A padm checkpoint is a plain dict readable with ``torch.load(path, weights_only=True)``::

    format        "padm-checkpoint"
    version       1
    task          name of the task (:func:`padm.unfolding.tasks.get_task`); absent in files written
                  before tasks existed, which are all of ``DEFAULT_TASK``, the first
    model_config  the task's network config, ``to_dict()``
    model         state_dict of the network
    ema           state_dict of the EMA weights, or None
    step          optimizer steps taken
    train_config  TrainConfig.to_dict() (the run's resolved config), or None for exported weights
    optimizer     optimizer.state_dict(), or None
    scaler        GradScaler.state_dict() (CUDA float16 AMP), or None
    rng           {"torch": [uint8 tensor per rank], "cuda": [uint8 tensor per rank] or None}
    best          {"psnr": float, "step": int}: best validation so far
    data_epoch    epoch of the data stream the next step draws from (informational)

A file in another code base's format is offered to every task's ``read_foreign`` (the deraining task
reads the official BasicSR ``{"params": state_dict}`` checkpoints).  Every failure to read or match a
checkpoint is a :class:`UserError` naming the file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from padm.errors import UserError
from padm.fileio import atomic_write
from padm.unfolding.tasks import DEFAULT_TASK, TASKS, get_task, task_of

FORMAT = "padm-checkpoint"
VERSION = 1


def default_checkpoint_path() -> Path:
    """The shipped default model: ``<repo>/checkpoints/default.pt``."""
    return Path(__file__).resolve().parents[2] / "checkpoints" / "default.pt"


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`padm.fileio.atomic_write`: a reader never sees half a file."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def make_checkpoint(model_config, model_state: dict, *, step: int = 0, ema_state: dict | None = None,
                    train_config: dict | None = None, optimizer: dict | None = None, scaler: dict | None = None,
                    rng: dict | None = None, best: dict | None = None, data_epoch: int = 0) -> dict:
    """Assemble the checkpoint dict (see the module docstring); the task is the config's."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "task": task_of(model_config).name,
        "model_config": model_config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
        "ema": None if ema_state is None else {k: v.detach().cpu() for k, v in ema_state.items()},
        "step": int(step),
        "train_config": train_config,
        "optimizer": optimizer,
        "scaler": scaler,
        "rng": rng,
        "best": best or {"psnr": float("-inf"), "step": -1},
        "data_epoch": int(data_epoch),
    }


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a padm or foreign checkpoint into the padm layout (foreign ones get ``task``,
    ``model_config`` and ``model``).

    Raises :class:`UserError` when the file is missing, unreadable, or no known format.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt zip, pickle with foreign classes, truncated file, text file, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable checkpoint ({first[:200]})") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if obj.get("version", 0) > VERSION:
            raise UserError(f"{path}: checkpoint version {obj['version']} is newer than this padm ({VERSION})")
        checkpoint_config(path, obj)  # the task exists and the config is valid
        return obj
    return _read_foreign(path, obj)


def checkpoint_task(path: str | os.PathLike, ckpt: dict):
    """The task a checkpoint belongs to (files older than tasks: ``DEFAULT_TASK``)."""
    name = ckpt.get("task", DEFAULT_TASK)
    if not isinstance(name, str) or (name not in TASKS and name.partition(":")[0] not in sys.modules):
        # a file never makes padm import a module: tasks of your own are registered or imported first
        raise UserError(f"{path}: checkpoint is for task {name!r}, which is neither one of {', '.join(TASKS)} "
                        "nor loaded; register or import its module first (docs/tasks.md)")
    try:
        return get_task(name)
    except ValueError as err:
        raise UserError(f"{path}: checkpoint is for a task this padm cannot load ({err})") from None


def checkpoint_config(path: str | os.PathLike, ckpt: dict):
    """The typed network config a checkpoint holds (:class:`UserError` if it is not valid)."""
    task = checkpoint_task(path, ckpt)
    try:
        return task.config_cls.from_dict(ckpt["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}: checkpoint holds an invalid model config ({err})") from None


def _read_foreign(path: Path, obj: Any) -> dict:
    for name in TASKS:
        try:
            found = get_task(name).read_foreign(obj)
        except (KeyError, ValueError, RuntimeError) as err:
            raise UserError(f"{path}: {name} checkpoint could not be converted ({err})") from None
        if found is not None:
            config, state = found
            return make_checkpoint(config, state)
    raise UserError(f"{path}: neither a padm checkpoint nor an official checkpoint that a task reads")


def config_mismatch(a, b) -> list[str]:
    """Architecture fields in which two configs differ, as ``"name a != b"`` strings."""
    if type(a) is not type(b):
        return [f"network {type(a).__name__} != {type(b).__name__}"]
    da, db = a.to_dict(), b.to_dict()
    runtime = type(a).RUNTIME_FIELDS
    return [f"{k} {da[k]!r} != {db[k]!r}" for k in da if k not in runtime and da[k] != db[k]]


def require_model(path: str | os.PathLike, ckpt: dict, expect) -> None:
    """:class:`UserError` unless the checkpoint's network has ``expect``'s architecture."""
    diff = config_mismatch(checkpoint_config(path, ckpt), expect)
    if diff:
        raise UserError(f"{path}: checkpoint is for another model configuration ({'; '.join(diff)})")


def create_model(config) -> nn.Module:
    """A fresh network for ``config`` (built by the task the config belongs to)."""
    return task_of(config).build(config)


def load_weights(model: nn.Module, state: dict, path: str | os.PathLike) -> None:
    """``load_state_dict(strict=True)`` with a one-line :class:`UserError` on a mismatch."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise UserError(f"{path}: weights do not fit the model ({detail[:200]})") from None


def load_model(path: str | os.PathLike | None = None, *, expect=None, use_ema: bool = True,
               device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Network in eval mode from a padm or foreign checkpoint (``None``: the shipped default model).

    ``expect``: a config the checkpoint must match (e.g. a preset the user asked for); a different
    architecture is a :class:`UserError`.  EMA weights are used when present and ``use_ema``.
    Returns ``(model, checkpoint_dict)``; ``checkpoint_task(path, ckpt)`` is its task.
    """
    if path is None:
        path = default_checkpoint_path()
        if not path.is_file():
            raise UserError(f"{path}: no default model shipped yet; pass --ckpt with a checkpoint")
    ckpt = read_checkpoint(path)
    if expect is not None:
        require_model(path, ckpt, expect)
    model = create_model(checkpoint_config(path, ckpt))
    state = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    load_weights(model, state, path)
    return model.to(device).eval(), ckpt


def checkpoint_step(path: Path) -> int:
    """Step encoded in a ``step_00001234.pt`` name, or -1."""
    stem = path.stem
    return int(stem[5:]) if stem.startswith("step_") and stem[5:].isdigit() else -1


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """Newest ``checkpoints/step_*.pt`` of a run directory (or of the folder itself)."""
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    found = [p for p in folder.glob("step_*.pt") if checkpoint_step(p) >= 0]
    return max(found, key=checkpoint_step) if found else None


def prune_checkpoints(folder: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints (``best.pt`` is never touched)."""
    if keep_last <= 0:
        return
    found = sorted((p for p in folder.glob("step_*.pt") if checkpoint_step(p) >= 0), key=checkpoint_step)
    for p in found[:-keep_last]:
        p.unlink(missing_ok=True)


__all__ = ["FORMAT", "VERSION", "default_checkpoint_path", "atomic_save", "make_checkpoint", "read_checkpoint",
           "checkpoint_task", "checkpoint_config", "config_mismatch", "require_model", "create_model",
           "load_weights", "load_model", "checkpoint_step", "latest_checkpoint", "prune_checkpoints"]
