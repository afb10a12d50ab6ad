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

A checkpoint is untrusted input.  :func:`read_checkpoint` loads it with ``weights_only=True`` (no code
runs), then checks, before any network is built: every entry above has its type (all missing or
malformed entries named in one line), the network config is within the bounds its fields declare
(:mod:`padm.unfolding.configs`), the network it describes has at most :data:`MAX_PARAMETERS`
parameters and fits in memory (:func:`check_model_size`, counted on the ``meta`` device: nothing is
allocated), and every weight is finite.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from padm.errors import UserError
from padm.fileio import atomic_write
from padm.unfolding.tasks import DEFAULT_TASK, TASKS, get_task, task_of

FORMAT = "padm-checkpoint"
VERSION = 1
# the largest network padm builds: 19x the paper's model (10.7 M), 0.8 GB of float32 weights
MAX_PARAMETERS = 200_000_000


SHIPPED_MODELS = {"light": "default.pt", "heavy": "heavy.pt"}  # --model NAME: files in <repo>/checkpoints


def shipped_checkpoint_path(name: str) -> Path:
    """A model shipped in ``<repo>/checkpoints`` (:data:`SHIPPED_MODELS`); UserError when this
    checkout does not hold it."""
    if name not in SHIPPED_MODELS:
        raise UserError(f"unknown shipped model {name!r}; choose one of {', '.join(SHIPPED_MODELS)}")
    path = Path(__file__).resolve().parents[2] / "checkpoints" / SHIPPED_MODELS[name]
    if not path.is_file():
        raise UserError(f"{path}: the {name} model is not in this checkout")
    return path


def default_checkpoint_path() -> Path:
    """The shipped default model (``light``): ``<repo>/checkpoints/default.pt``."""
    return Path(__file__).resolve().parents[2] / "checkpoints" / SHIPPED_MODELS["light"]


class _Sink:
    """A file for ``torch.save`` that keeps the ``OSError`` of a failed write: torch reports it as a
    ``RuntimeError`` about stream positions, which would hide "no space left on device"."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`padm.fileio.atomic_write`: a reader never sees half a file, and a
    full disk is one :class:`UserError` naming ``path``."""
    with atomic_write(path) as tmp, tmp.open("wb") as f:
        sink = _Sink(f)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise
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

    Raises :class:`UserError` when the file is missing, unreadable, of no known format or damaged, when
    its network config is out of bounds or describes a network too large to build, and when its
    weights are not all finite: all before any network is built.
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
        version = obj.get("version", 0)
        if isinstance(version, int) and version > VERSION:
            raise UserError(f"{path}: checkpoint version {version} is newer than this padm ({VERSION})")
        problems = entry_problems(obj)
        if problems:
            raise UserError(f"{path}: damaged padm checkpoint ({'; '.join(problems)})")
        ckpt = obj
    else:
        ckpt = _read_foreign(path, obj)
    config = checkpoint_config(path, ckpt)  # the task exists and the config is within its bounds
    check_model_size(config, path)  # before anything is built from it
    for key, label in (("model", "weights"), ("ema", "EMA weights")):
        bad = nonfinite_tensors(ckpt.get(key) or {})
        if bad:
            raise UserError(f"{path}: the {label} hold NaN or infinite values ({len(bad)} of {len(ckpt[key])} "
                            f"tensors, e.g. {bad[0]!r}); the run that wrote it diverged: use an earlier checkpoint")
    return ckpt


def _state_dict(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _rng(v: Any) -> bool:
    def states(x):
        return isinstance(x, list) and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1
                                           for t in x)

    return v is None or (isinstance(v, dict) and states(v.get("torch")) and (v.get("cuda") is None
                                                                           or states(v.get("cuda"))))


def _best(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("psnr"), (int, float)) and not isinstance(v.get("psnr"), bool)
            and isinstance(v.get("step"), int) and not isinstance(v.get("step"), bool))


def _optimizer(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and isinstance(v.get("state"), dict)
                         and isinstance(v.get("param_groups"), list))


# entry -> (required, check, what it must be); the layout of the module docstring
_ENTRIES = {
    "version": (False, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "task": (False, lambda v: isinstance(v, str), "a task name"),
    "model_config": (True, lambda v: isinstance(v, dict), "a mapping of network fields"),
    "model": (True, _state_dict, "a mapping of names to tensors"),
    "ema": (False, lambda v: v is None or _state_dict(v), "empty or a mapping of names to tensors"),
    "step": (False, _count, "a step count (an integer >= 0)"),
    "data_epoch": (False, _count, "an epoch (an integer >= 0)"),
    "train_config": (False, lambda v: v is None or isinstance(v, dict), "empty or a mapping of options"),
    "optimizer": (False, _optimizer, "empty or an optimizer state_dict"),
    "scaler": (False, lambda v: v is None or isinstance(v, dict), "empty or a GradScaler state_dict"),
    "rng": (False, _rng, "empty or {'torch': [uint8 tensor per process], 'cuda': [...] or empty}"),
    "best": (False, _best, "{'psnr': number, 'step': integer}"),
}
_TRAINING_STATE = ("step", "train_config", "best")  # what a file with an optimizer state must hold too


def _kind(v: Any) -> str:
    return "empty" if v is None else f"a {type(v).__name__}"


def entry_problems(ckpt: dict) -> list[str]:
    """Every missing or malformed entry of a padm checkpoint dict, as short phrases (empty: none)."""
    missing = {name for name, (required, _, _) in _ENTRIES.items() if required and name not in ckpt}
    if ckpt.get("optimizer") is not None:  # a training state: resuming needs these as well
        missing |= {name for name in _TRAINING_STATE if ckpt.get(name) is None}
    problems = [f"missing {name!r}" + ("" if _ENTRIES[name][0] else " (a training state needs it)")
                for name in _ENTRIES if name in missing]
    problems += [f"{name!r} is {_kind(ckpt[name])}, expected {what}" for name, (_, ok, what) in _ENTRIES.items()
                 if name in ckpt and name not in missing and not ok(ckpt[name])]
    return problems


def nonfinite_tensors(state: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or an infinity."""
    return [k for k, t in state.items()
            if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]


class _TooLarge(Exception):
    pass


@functools.lru_cache(maxsize=16)
def model_size(config) -> tuple[int, int | None]:
    """``(parameters, bytes of parameters and buffers)`` of the network ``config`` describes, counted
    by building it on the ``meta`` device (no memory is allocated).  A network far past
    :data:`MAX_PARAMETERS` stops being built early: then the bytes are None and the count is a lower bound.
    """
    counted = 0

    def count(_module, _name, param):
        nonlocal counted
        counted += param.numel() if param is not None else 0
        if counted > 4 * MAX_PARAMETERS:
            raise _TooLarge

    hook = torch.nn.modules.module.register_module_parameter_registration_hook(count)
    try:
        with torch.device("meta"):
            model = task_of(config).build(config)
    except _TooLarge:
        return counted, None
    finally:
        hook.remove()
    params = sum(p.numel() for p in model.parameters())
    tensors = itertools.chain(model.parameters(), model.buffers())
    return params, sum(t.numel() * t.element_size() for t in tensors)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _describe(config) -> str:
    """``"n_feat 512, stages 20"``: the fields in which ``config`` differs from its task's default preset."""
    values = attrs.asdict(config)
    try:
        base = attrs.asdict(type(config).preset(task_of(config).default_preset))
    except (AttributeError, ValueError):
        base = {}
    return ", ".join(f"{k} {v}" for k, v in values.items() if base.get(k, object()) != v) or "as its preset"


def check_model_size(config, source: str | os.PathLike = "network config") -> None:
    """:class:`UserError` unless the network ``config`` describes has at most :data:`MAX_PARAMETERS`
    parameters and its weights (twice: the network and the state dict loaded into it) fit in the
    available memory.  Presets are known to fit; other configs are counted on the ``meta`` device.
    """
    if getattr(config, "is_preset", lambda: False)():
        return
    fields = _describe(config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors is a no-op"
            params, nbytes = model_size(config)
    except Exception as err:  # a network these (bounded) fields cannot build: say so, not a traceback
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{source}: the network config cannot be built ({first[:200]}); config {fields}") from None
    if nbytes is None or params > MAX_PARAMETERS:
        amount = f"more than {params:,}" if nbytes is None else f"{params:,}"
        raise UserError(f"{source}: the network would have {amount} parameters, more than padm builds "
                        f"({MAX_PARAMETERS:,}); config {fields}")
    free = available_memory()
    if free is not None and 2 * nbytes > free:
        raise UserError(f"{source}: the network's weights need {_gib(2 * nbytes)} of memory to load "
                        f"({params:,} parameters), and {_gib(free)} is available")


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
    """The typed network config a checkpoint holds (:class:`UserError` naming every bad field)."""
    task = checkpoint_task(path, ckpt)
    if not isinstance(ckpt.get("model_config"), dict):
        raise UserError(f"{path}: checkpoint holds no model config")
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
    """A fresh network for ``config`` (built by the task the config belongs to), after
    :func:`check_model_size`."""
    check_model_size(config)
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


def prune_checkpoints(folder: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints (``best.pt`` is never touched); returns
    the ones that could not be deleted (an old checkpoint left behind does no harm)."""
    if keep_last <= 0:
        return []
    found = sorted((p for p in folder.glob("step_*.pt") if checkpoint_step(p) >= 0), key=checkpoint_step)
    kept = []
    for p in found[:-keep_last]:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            kept.append(p)
    return kept


__all__ = ["FORMAT", "VERSION", "MAX_PARAMETERS", "SHIPPED_MODELS", "shipped_checkpoint_path", "default_checkpoint_path", "atomic_save", "make_checkpoint",
           "read_checkpoint", "entry_problems", "nonfinite_tensors", "model_size", "available_memory",
           "check_model_size", "checkpoint_task", "checkpoint_config", "config_mismatch", "require_model",
           "create_model", "load_weights", "load_model", "checkpoint_step", "latest_checkpoint", "prune_checkpoints"]
