"""``padm train``, ``padm eval`` and ``padm restore``, for every task.

``train`` options are generated from :class:`padm.engine.config.TrainConfig`, one per field, so the
command line, the config file and the saved config always agree.  ``restore`` takes its task from the
checkpoint; :func:`restore_command` makes a copy of it bound to one task (``padm``'s task aliases).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import attrs
import click

from padm.engine.config import TrainConfig, field_types, parse_model_overrides, resolve_config
from padm.engine.metrics import PROTOCOLS
from padm.errors import UserError
from padm.fileio import cannot, write_text
from padm.ops.backend import BACKENDS

class Command(click.Command):
    """A click command that reports :class:`UserError` as one line (also when run without ``padm``)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(str(err)) from None


_CLICK_TYPES = {"int": click.INT, "float": click.FLOAT, "str": click.STRING, "str | None": click.STRING}



def config_options(func):
    """One click option per :class:`TrainConfig` field; every default is None = "not given"."""
    types = field_types(TrainConfig)
    for field in reversed(attrs.fields(TrainConfig)):
        name, help_text = field.name, field.metadata.get("help", "")
        flag = "--" + name.replace("_", "-")
        if name == "model":
            func = click.option("--model", "model", multiple=True, metavar="FIELD=VALUE",
                                help="override one network field of the preset (repeatable)")(func)
            continue
        if name == "degradation":
            func = click.option("--degradation", "degradation", multiple=True, metavar="FIELD=VALUE",
                                help="set one field of the task's degradation (repeatable; docs/tasks.md)")(func)
            continue
        default = field.default if not isinstance(field.default, attrs.Factory) else None  # type: ignore[arg-type]
        shown = f" [default: {default}]" if default not in (None, "") else ""
        if types[name] == "bool":
            func = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text + shown)(func)
        else:
            func = click.option(flag, name, type=_CLICK_TYPES[types[name]], default=None,
                                help=help_text + shown)(func)
    return func


def _resume_target(path: str) -> tuple[Path, Path]:
    """(checkpoint file, run folder) for ``--resume`` given a checkpoint or a run folder."""
    from padm.engine.checkpoint import latest_checkpoint

    p = Path(path)
    if p.is_dir():
        found = latest_checkpoint(p)
        if found is None:
            raise UserError(f"{p}: no step_*.pt checkpoint to resume from")
        return found, (p if (p / "checkpoints").is_dir() else p.parent)
    if not p.exists():
        raise UserError(f"{p}: checkpoint not found")
    return p, (p.parent.parent if p.parent.name == "checkpoints" else p.parent)


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML or TOML file of options")
@click.option("--resume", type=click.Path(), help="continue a run: its folder or one of its checkpoints")
@click.option("--print-config", is_flag=True, help="print the resolved config as YAML and exit")
@config_options
def train(config_file, resume, print_config, model, degradation, **options):
    """Train an unfolding network for a task (deep-supervised L1 + FFT loss, AdamW, constant-then-cosine lr);
    also runs under torchrun."""
    import yaml

    overrides = {k: v for k, v in options.items() if v is not None}
    if model:
        overrides["model"] = parse_model_overrides(model)
    if degradation:
        overrides["degradation"] = parse_model_overrides(degradation, "--degradation")
    base, ckpt_path = None, None
    if resume:
        from padm.engine.checkpoint import read_checkpoint

        ckpt_path, run_dir = _resume_target(resume)
        state = read_checkpoint(ckpt_path)
        if not state.get("train_config"):
            raise UserError(f"{ckpt_path}: holds weights only, not a training state; use --init-from to start from it")
        base = dict(state["train_config"])
        overrides.setdefault("out_dir", str(run_dir))
    cfg = resolve_config(config_file, overrides, base=base)
    if print_config:
        click.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False), nl=False)
        return
    if not cfg.train_data and not cfg.synth_data:
        raise UserError("no training data: pass --train-data PATH or --synth-data DIR --synth-model MODEL "
                        "(or train_data in --config)")
    from padm.engine.train import train as run_training

    if summary_line := _mode_line(cfg):
        click.echo(summary_line)
    summary = run_training(cfg, resume=ckpt_path)
    if summary.get("stopped_by"):  # SIGINT/SIGTERM: a checkpoint was written; exit as the signal would
        import signal

        if summary.get("rank", 0) == 0:
            written = Path(summary["out_dir"]) / "checkpoints" / f"step_{summary['step']:08d}.pt"
            click.echo(f"stopped by {summary['stopped_by']} after step {summary['step']}: wrote {written}; "
                       f"continue with padm train --resume {summary['out_dir']}")
        click.get_current_context().exit(128 + signal.Signals[summary["stopped_by"]])
    if summary.get("rank", 0) == 0:
        best = f", best val PSNR {summary['best_psnr']:.3f} dB at step {summary['best_step']}" \
            if summary["best_step"] >= 0 else ""
        click.echo(f"done: {summary['step']} steps, loss {summary['loss']:.5g}{best}; run in {summary['out_dir']}")


def _mode_line(cfg: TrainConfig) -> str:
    """One line saying what is trained, printed before training starts (rank 0 only)."""
    import os

    if os.environ.get("RANK", "0") != "0" or not cfg.progress:
        return ""
    return f"task {cfg.task}, preset {cfg.preset}, scan backend {cfg.scan_backend}"


def _model_options(func):
    func = click.option("--ckpt", type=click.Path(dir_okay=False),
                        help="padm or foreign (e.g. official) checkpoint (default for restore: the shipped model)")(func)
    func = click.option("--preset", default=None,
                        help="refuse a checkpoint that is not of this preset of its task")(func)
    func = click.option("--no-ema", is_flag=True, help="use the raw weights even if the checkpoint has EMA weights")(func)
    func = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")(func)
    func = click.option("--scan-backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                        help="run-time backend of the scan, conv1d and gated ops")(func)
    func = click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
                        help="arithmetic of the network: bf16 autocast (a CPU with bf16 instructions, or a GPU) was "
                             "1.2x faster here and moved outputs by up to 4 grey levels (docs/engine.md)")(func)
    func = click.option("--tile", type=click.IntRange(min=0), default=512, show_default=True,
                        help="images larger than this run in overlapping tiles (bounded memory); 0: whole images")(func)
    func = click.option("--overlap", type=click.IntRange(min=0), default=64, show_default=True,
                        help="overlap between tiles, blended")(func)
    return func


def _load(ckpt, preset, no_ema, device, *, default_ok: bool, task: str | None = None):
    """(model, checkpoint dict, task) from the options; ``task``: the task the checkpoint must be of."""
    import torch

    from padm.engine.checkpoint import checkpoint_task, default_checkpoint_path, load_model, read_checkpoint

    if ckpt is None and not default_ok:
        raise UserError("pass --ckpt CHECKPOINT")
    path = ckpt if ckpt is not None else default_checkpoint_path()
    expect = None
    if preset or task:
        found = checkpoint_task(path, read_checkpoint(path)) if Path(path).is_file() else None
        if task and found is not None and found.name != task:
            raise UserError(f"{path}: checkpoint is for task {found.name!r}, not {task!r}; "
                            f"use `padm restore` or a {task} checkpoint")
        if preset and found is not None:
            try:
                expect = found.config_cls.preset(preset)
            except ValueError as err:
                raise UserError(str(err)) from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but CUDA is not available")
    model, info = load_model(ckpt, expect=expect, use_ema=not no_ema, device=device)
    return model, info, checkpoint_task(path, info)


def _shipped_or_ckpt(shipped: str | None, ckpt: str | None) -> str | None:
    """``--model NAME`` as a checkpoint path (``--ckpt`` and ``--model`` exclude each other)."""
    if shipped is None:
        return ckpt
    if ckpt is not None:
        raise UserError("give --ckpt or --model, not both")
    from padm.engine.checkpoint import shipped_checkpoint_path

    return str(shipped_checkpoint_path(shipped))


def _read_aux(task, aux_path):
    if aux_path is None:
        if task.needs_aux():
            raise UserError(f"task {task.name!r} needs --aux FILE: {task.aux_help}")
        return None
    if not task.needs_aux():
        raise UserError(f"task {task.name!r} takes no --aux input")
    if not Path(aux_path).is_file():
        raise UserError(f"{aux_path}: not found")
    try:
        return task.read_aux(aux_path)
    except (OSError, ValueError) as err:
        raise UserError(f"{aux_path}: {err}") from None


def restore_command(name: str = "restore", task: str | None = None, verb: str = "Restore") -> click.Command:
    """The ``padm restore`` command, or (with ``task``) a copy that only takes checkpoints of that task."""

    @click.command(name=name, cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("input_path", metavar="INPUT", type=click.Path())
    @click.argument("output", type=click.Path())
    @_model_options
    @click.option("--aux", "aux_path", type=click.Path(dir_okay=False),
                  help="the extra input a task's operator needs (see docs/tasks.md)")
    @click.option("--stages", is_flag=True, help="also save every stage's maps (<name>_stages/)")
    @click.option("--model", "shipped", type=click.Choice(["light", "heavy"]), default=None,
                  help="a shipped model instead of --ckpt: light (checkpoints/default.pt, the default) or heavy "
                       "(checkpoints/heavy.pt); see checkpoints/README.md")
    @click.option("--overwrite", is_flag=True, help="replace existing output files")
    @click.option("--quiet", is_flag=True, help="no progress bars")
    def command(input_path, output, ckpt, preset, no_ema, device, scan_backend, precision, tile, overlap, aux_path,
                stages, shipped, overwrite, quiet):
        from padm.engine import apply
        from padm.engine.infer import precision as arithmetic
        from padm.ops import backend

        ckpt = _shipped_or_ckpt(shipped, ckpt)
        jobs = apply.plan(input_path, output, overwrite=overwrite)
        model, _, found = _load(ckpt, preset, no_ema, device, default_ok=True, task=task)
        aux = _read_aux(found, aux_path)
        apply.check_inputs(jobs)
        with backend.use(scan_backend), arithmetic(precision, next(model.parameters()).device):
            written = apply.run(model, jobs, tile=tile or None, overlap=overlap, stages=stages, aux=aux,
                                progress=not quiet)
        click.echo(f"wrote {len(written)} image(s) to {written[0] if len(written) == 1 else Path(output)}")

    what = f"with a {task} checkpoint" if task else "with the checkpoint's task"
    command.help = (f"{verb} INPUT (an image or a folder of images) into OUTPUT (a file or a folder), {what}.\n\n"
                    "Any size and format padm reads; output keeps the size and bit depth.  Without --ckpt the "
                    "shipped default model (checkpoints/default.pt) is used.")
    return command


restore = restore_command()


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pred", metavar="PRED_OR_DATA", type=click.Path())
@click.argument("gt", required=False, type=click.Path())
@_model_options
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default=None,
              help="uint8Y (the paper's table), doubleY, rgb  [default: the task's; uint8Y for PRED GT]")
@click.option("--degradation", multiple=True, metavar="FIELD=VALUE",
              help="with --ckpt, for tasks that degrade clean images: override the checkpoint's degradation")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="write per-image PSNR/SSIM here")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write the summary here")
@click.option("--save", "save_dir", type=click.Path(file_okay=False),
              help="with --ckpt: save the restored images here (PNG)")
@click.option("--fid", is_flag=True, help="also FID and KID (torch-fidelity; needs --inception-weights)")
@click.option("--inception-weights", type=click.Path(dir_okay=False),
              help="local weights file of torch-fidelity's inception-v3-compat extractor (never downloaded)")
@click.option("--quiet", is_flag=True, help="no progress bars")
def evaluate(pred, gt, ckpt, preset, no_ema, device, scan_backend, precision, tile, overlap, protocol, degradation,
             csv_path, json_path, save_dir, fid, inception_weights, quiet):
    """Score restored images against ground truth.

    \b
    padm eval PRED GT                 saved predictions vs ground truth (folders matched by name, or two files)
    padm eval DATA --ckpt CKPT        restore the checkpoint's task data (pairs, or clean images it degrades)
                                      with the checkpoint and score it
    """
    from padm.engine import evaluate as ev

    if ckpt is None and gt is None:
        raise UserError("give PRED GT, or DATA --ckpt CHECKPOINT")
    if ckpt is not None and gt is not None:
        raise UserError("with --ckpt give one paired dataset (DATA), not PRED GT")
    if fid:
        from padm.engine.fidelity import check_weights

        check_weights(inception_weights)  # before any work
    from padm.ops import backend

    with contextlib.ExitStack() as stack, backend.use(scan_backend):
        tmp = stack.enter_context(_scratch_folder()) if fid and ckpt is not None and not save_dir else None
        if ckpt is None:
            protocol = protocol or "uint8Y"
            rows, files = ev.evaluate_predictions(pred, gt, protocol, progress=not quiet)
        else:
            model, info, task = _load(ckpt, preset, no_ema, device, default_ok=False)
            protocol = protocol or task.protocol
            settings = _degradation(task, info, degradation)
            from padm.engine.infer import precision as arithmetic

            stack.enter_context(arithmetic(precision, next(model.parameters()).device))
            rows, files = ev.evaluate_model(model, pred, protocol, tile=tile or None, overlap=overlap,
                                            save_dir=save_dir or tmp, degradation=settings,
                                            progress=not quiet)
        summary = ev.summarize(rows, protocol)
        if fid:
            from padm.engine.fidelity import fidelity_metrics

            import torch

            extra = fidelity_metrics([p for p, _ in files], [g for _, g in files], inception_weights,
                                     cuda=torch.cuda.is_available() and device != "cpu")
            summary = attrs.evolve(summary, extra=extra)
    if csv_path:
        ev.write_csv(rows, csv_path, summary)
    if json_path:
        write_text(json_path, json.dumps(attrs.asdict(summary), indent=2) + "\n")
    click.echo(summary.line())


@contextlib.contextmanager
def _scratch_folder():
    """A temporary folder for the images FID reads (a failure to make it is one line)."""
    try:
        folder = tempfile.TemporaryDirectory(prefix="padm-eval-")
    except OSError as err:
        raise cannot(tempfile.gettempdir(), err, "cannot make a temporary folder") from None
    with folder as name:
        yield name


def _degradation(task, ckpt: dict, items: tuple[str, ...]):
    """The degradation to score with: the checkpoint's training settings (else the task's defaults),
    with ``--degradation`` overrides."""
    from padm.engine.config import _coerce_fields

    saved = dict((ckpt.get("train_config") or {}).get("degradation") or {}) if ckpt.get("task") == task.name else {}
    try:
        values = {**_coerce_fields(task.degradation_cls, "degradation", saved),
                  **_coerce_fields(task.degradation_cls, "degradation", parse_model_overrides(items, "--degradation"))}
        return task.degradation_cls(**values)
    except (TypeError, ValueError) as err:
        raise UserError(str(err)) from None


__all__ = ["Command", "train", "restore", "restore_command", "evaluate", "config_options"]
