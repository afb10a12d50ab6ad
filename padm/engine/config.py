"""Typed training configuration: defaults = the official recipe, a YAML/TOML file, command-line overrides.

Every field of :class:`TrainConfig` is one ``padm train`` option (``lr`` -> ``--lr``,
``constant_fraction`` -> ``--constant-fraction``; booleans as ``--flag/--no-flag``).  ``task`` names the
restoration problem (:mod:`padm.unfolding.tasks`); the network is the task's ``preset`` plus ``model``
overrides (``--model n_feat=24``), typed by the task's config class, and ``degradation`` holds the
task's degradation settings (``--degradation sigma=25``), typed by its ``degradation_cls``.  The
resolved config a run saves (``config.yaml`` and inside every checkpoint) is
:meth:`TrainConfig.to_dict`, and :meth:`TrainConfig.from_dict` reads it back.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import attrs
import yaml

from padm.engine.metrics import PROTOCOLS
from padm.errors import UserError
from padm.fileio import write_text
from padm.ops.backend import BACKENDS
from padm.unfolding.tasks import DEFAULT_TASK, TASKS, get_task


def _help(text: str, **kw):
    return attrs.field(metadata={"help": text}, **kw)


def _ge(n):
    return attrs.validators.ge(n)


@attrs.frozen(kw_only=True)
class TrainConfig:
    """One training run.  Defaults reproduce ``Options/Deraining.yml`` of the official code."""

    # --- task
    task: str = _help(f"restoration task: {', '.join(TASKS)}, or module:Class of your own (docs/tasks.md)",
                      default=DEFAULT_TASK, validator=lambda _i, _a, name: get_task(name))
    degradation: Any = _help("the task's degradation settings (--degradation FIELD=VALUE)",
                             default=attrs.Factory(lambda self: get_task(self.task).degradation_cls(),
                                                   takes_self=True))
    # --- data
    train_data: str = _help("training data: pairs (an HDF5 file from `padm pack` or a folder of pairs), or "
                            "a folder of clean images for tasks that degrade on the fly", default="")
    val_data: str | None = _help("validation data (full images), as train_data; none: no validation",
                                 default=None)
    train_subset: str = _help("use only these images of train_data, by 1-based position in name order, "
                              "e.g. 1-180 or 1-10,21-30 (empty: all)", default="")
    val_subset: str = _help("use only these images of val_data (as --train-subset)", default="")
    synth_data: str = _help("a folder of clean images made into training pairs on the fly by --synth-model "
                            "(mixed with the pairs of train_data when both are given; docs/data.md)", default="")
    synth_subset: str = _help("use only these images of synth_data (as --train-subset)", default="")
    synth_model: str = _help("how synth_data's pairs are made (padm.data.synth.load_model): a PRESET, "
                             "MODEL:PRESET[:DIR] or a JSON file", default="")
    out_dir: str = _help("run directory: config, logs, checkpoints, plots", default="runs/padm")
    patch_size: int = _help("random square crop size for training", default=256, validator=_ge(1))
    batch_size: int = _help("crops per micro-step, shared by --procs; under torchrun per process (official: "
                            "1 per GPU x 4 GPUs)", default=4,
                            validator=_ge(1))
    grad_accum: int = _help("micro-steps accumulated per optimizer step", default=1, validator=_ge(1))
    augment: bool = _help("random flips/rotations of the crops (official: on)", default=True)
    samples_per_epoch: int = _help("crops per epoch (0: one per training pair)", default=0, validator=_ge(0))
    num_workers: int = _help("DataLoader worker processes per training process", default=2, validator=_ge(0))
    # --- model
    preset: str = _help("network preset of the task (docs/tasks.md; PADM: paper, small, tiny)", default="small")
    model: Any = _help("network = preset + overrides (--model FIELD=VALUE)",
                       default=attrs.Factory(lambda self: get_task(self.task).config_cls.preset(self.preset),
                                             takes_self=True))
    init_from: str | None = _help("start from these weights (padm or foreign checkpoint); not a resume",
                                  default=None)
    # --- objective and optimiser
    fft_weight: float = _help("weight of the FFT L1 term", default=0.01, validator=_ge(0))
    lr: float = _help("peak learning rate (AdamW)", default=3e-4, validator=_ge(0))
    min_lr: float = _help("learning rate at the end of the cosine", default=1e-6, validator=_ge(0))
    weight_decay: float = _help("AdamW weight decay", default=1e-4, validator=_ge(0))
    beta1: float = _help("AdamW beta1", default=0.9)
    beta2: float = _help("AdamW beta2", default=0.999)
    grad_clip: float = _help("gradient-norm clip (0: off)", default=0.01, validator=_ge(0))
    iterations: int = _help("optimizer steps in the run", default=300_000, validator=_ge(1))
    constant_fraction: float = _help("fraction of the run at the peak lr before the cosine (official 92k/300k)",
                                     default=92_000 / 300_000, validator=attrs.validators.and_(_ge(0),
                                                                                                attrs.validators.le(1)))
    warmup: int = _help("linear warm-up steps (official: 0)", default=0, validator=_ge(0))
    restart_at: int = _help("warm restart: the lr schedule starts over at this step (0: none)", default=0,
                            validator=_ge(0))
    ema_decay: float = _help("EMA of the weights per step (0: off); validation and exports use it",
                             default=0.0, validator=attrs.validators.and_(_ge(0), attrs.validators.lt(1)))
    # --- validation, logs, checkpoints
    val_every: int = _help("validate every N steps (0: only at the end)", default=1000, validator=_ge(0))
    val_protocol: str = _help("metric protocol for validation: uint8Y, doubleY, rgb (default: the task's)",
                              default=attrs.Factory(lambda self: get_task(self.task).protocol, takes_self=True),
                              validator=attrs.validators.in_(tuple(PROTOCOLS)))
    val_max_images: int = _help("validate on at most N images (0: all)", default=0, validator=_ge(0))
    val_tile: int = _help("tile size for validation images (0: whole images)", default=0, validator=_ge(0))
    log_every: int = _help("log the training loss every N steps", default=50, validator=_ge(1))
    ckpt_every: int = _help("checkpoint every N steps (and always at the end)", default=1000, validator=_ge(1))
    keep_last: int = _help("keep the newest N step checkpoints (0: all); best.pt is kept apart", default=3,
                           validator=_ge(0))
    tensorboard: bool = _help("also log to TensorBoard when it is installed", default=True)
    plot: bool = _help("write curves.png (loss, validation PSNR) at the end", default=True)
    progress: bool = _help("show a progress bar", default=True)
    # --- runtime
    device: str = _help("auto, cpu, cuda or cuda:N (torchrun: each rank takes cuda:LOCAL_RANK)", default="auto")
    scan_backend: str = _help(f"run-time backend of the scan, conv1d and gated ops: {', '.join(BACKENDS)}",
                              default="auto", validator=attrs.validators.in_(BACKENDS))
    fused_train_ops: bool = _help("train through the fused CPU kernels (forward and backward) of the feed-forward "
                                  "networks' gated depthwise convolution, the LayerNorms and the residual "
                                  "dropouts, with AdamW's fused update; off: PyTorch's ops, as before those "
                                  "kernels existed (the baseline of scripts/bench_train.py)", default=True)
    amp: bool = _help("mixed precision on CUDA (never on CPU)", default=True)
    amp_dtype: str = _help("bfloat16 or float16 (float16 uses a gradient scaler)", default="bfloat16",
                           validator=attrs.validators.in_(("bfloat16", "float16")))
    cpu_bf16: bool = _help("bfloat16 autocast on CPU where the CPU has bf16 instructions (FFTs, scan and loss "
                           "stay float32); slower than float32 for these networks on the CPUs measured "
                           "(scripts/bench_train.py)", default=False)
    procs: int = _help("CPU processes sharing each batch (data-parallel, the threads divided between them); "
                       "0: as many as the cores and the batch allow (1 on a GPU or under torchrun)", default=0,
                       validator=_ge(0))
    seed: int = _help("seed for weights, crops, dropout", default=0)
    deterministic: bool = _help("deterministic kernels (slower on CUDA)", default=False)

    def __attrs_post_init__(self):
        if self.restart_at and self.restart_at >= self.iterations:
            raise ValueError(f"restart_at ({self.restart_at}) must be below iterations ({self.iterations})")
        task = get_task(self.task)
        if type(self.model) is not task.config_cls:
            raise ValueError(f"task {self.task!r} needs a {task.config_cls.__name__} network, "
                             f"got {type(self.model).__name__}")
        if type(self.degradation) is not task.degradation_cls:
            raise ValueError(f"task {self.task!r} needs {task.degradation_cls.__name__} degradation settings, "
                             f"got {type(self.degradation).__name__}")
        if bool(self.synth_data) != bool(self.synth_model):
            raise ValueError("synth_data and synth_model go together: the clean images and how pairs are made "
                             "of them")
        for name in ("train_subset", "val_subset", "synth_subset"):
            parse_subset(getattr(self, name))  # ValueError now, not after the data is opened

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        """Build from plain data (a config file, a checkpoint); errors name ``source``."""
        data = dict(data)
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{source}: unknown training option(s) {', '.join(unknown)}")
        nested = {}
        for key in ("model", "degradation"):
            nested[key] = data.pop(key, None) or {}
            if not isinstance(nested[key], dict):
                raise UserError(f"{source}: {key!r} must be a mapping of fields, got {nested[key]!r}")
        try:
            kwargs = {name: _coerce(name, value) for name, value in data.items()}
            task = get_task(kwargs.get("task", DEFAULT_TASK))
            model = task.config_cls.preset(kwargs.get("preset", "small"),
                                           **_coerce_fields(task.config_cls, "model", nested["model"]))
            degradation = task.degradation_cls(**_coerce_fields(task.degradation_cls, "degradation",
                                                                nested["degradation"]))
            return cls(model=model, degradation=degradation, **kwargs)
        except (TypeError, ValueError) as err:
            raise UserError(f"{source}: {err}") from None


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "str | None": str, "int | None": int,
          "float | None": float}


def field_types(cls=TrainConfig) -> dict[str, str]:
    """Field name -> its annotation as text (``int``, ``float``, ``str | None``, ...)."""
    return {f.name: f.type if isinstance(f.type, str) else f.type.__name__ for f in attrs.fields(cls)}


def _coerce_value(name: str, kind: str, value: Any) -> Any:
    if value is None:
        if kind.endswith("| None"):
            return None
        raise TypeError(f"{name} may not be empty")
    py = _TYPES.get(kind)
    if py is None:
        return value
    if py is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise TypeError(f"{name} must be true or false, got {value!r}")
    if py is int:
        number = _coerce_value(name, "float", value)
        if not number.is_integer():
            raise TypeError(f"{name} must be an integer, got {value!r}")
        return int(number)
    if py is float:
        if isinstance(value, bool):
            raise TypeError(f"{name} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number, got {value!r}") from None
    return str(value)


def _coerce(name: str, value: Any) -> Any:
    return _coerce_value(name, field_types(TrainConfig)[name], value)


def _coerce_fields(cls, prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """Values of a nested config typed by ``cls``'s fields; keys ``cls`` only knows as legacy are dropped."""
    types = field_types(cls)
    out = {}
    for name, value in values.items():
        if name in getattr(cls, "LEGACY_FIELDS", ()):
            continue
        if name not in types:
            raise ValueError(f"unknown {prefix} field {name!r}; fields: {', '.join(types) or '(none)'}")
        out[name] = _coerce_value(f"{prefix}.{name}", types[name], value)
    return out


def parse_subset(text: str) -> list[range]:
    """``"1-180"`` or ``"1-10,21-30"`` -> 1-based inclusive ranges; ``""`` -> [] (everything)."""
    out = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"image subset {text!r}: expected numbers like 1-180 or 1-10,21-30") from None
        if a < 1 or b < a:
            raise ValueError(f"image subset {text!r}: ranges count from 1 and run upwards")
        out.append(range(a, b + 1))
    return out


def parse_model_overrides(items: tuple[str, ...] | list[str], option: str = "--model") -> dict[str, Any]:
    """``["n_feat=24", "share_stage_weights=true"]`` -> typed dict (YAML scalars)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} expects FIELD=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Plain data of a ``.yaml``/``.yml``/``.toml`` config file (:class:`UserError` naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(path.read_text())
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(path.read_text()) or {}
        else:
            raise UserError(f"{path}: config files are .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"{path}: not a valid config file ({first})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file must hold a mapping of options")
    return data


def resolve_config(file: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                   base: dict[str, Any] | None = None) -> TrainConfig:
    """``base`` (e.g. a checkpoint's config) < ``file`` < ``overrides``; ``model`` mappings merge by field."""
    data: dict[str, Any] = dict(base or {})
    sources = []
    for layer, name in ((read_config_file(file) if file else None, str(file)), (overrides, "command line")):
        if not layer:
            continue
        layer = dict(layer)
        if ("preset" in layer or "task" in layer) and "model" in data and "model" not in layer:
            data.pop("model")  # a new preset replaces the whole network; per-field overrides merge
        if "task" in layer and layer["task"] != data.get("task", DEFAULT_TASK) and "degradation" not in layer:
            data.pop("degradation", None)  # another task's degradation settings mean nothing here
        for key in ("model", "degradation"):
            if key in layer and isinstance(layer[key], dict) and isinstance(data.get(key), dict):
                layer[key] = {**data[key], **layer[key]}
        data.update(layer)
        sources.append(name)
    return TrainConfig.from_dict(data, source=" + ".join(sources) or "config")


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


__all__ = ["TrainConfig", "field_types", "parse_model_overrides", "parse_subset", "read_config_file",
           "resolve_config", "save_config"]
