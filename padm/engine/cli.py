"""``padm train``, ``padm eval`` and ``padm derain``.

``train`` options are generated from :class:`padm.engine.config.TrainConfig`, one per field, so the
command line, the config file and the saved config always agree.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import attrs
import click

from padm.engine.config import TrainConfig, field_types, parse_model_overrides, resolve_config
from padm.engine.metrics import PROTOCOLS
from padm.errors import UserError

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
def train(config_file, resume, print_config, model, **options):
    """Train PADM (official loss, AdamW, constant-then-cosine lr); also runs under torchrun."""
    import yaml

    overrides = {k: v for k, v in options.items() if v is not None}
    if model:
        overrides["model"] = parse_model_overrides(model)
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
    if not cfg.train_data:
        raise UserError("no training data: pass --train-data PATH (or train_data in --config)")
    from padm.engine.train import train as run_training

    summary = run_training(cfg, resume=ckpt_path)
    if summary.get("rank", 0) == 0:
        best = f", best val PSNR {summary['best_psnr']:.3f} dB at step {summary['best_step']}" \
            if summary["best_step"] >= 0 else ""
        click.echo(f"done: {summary['step']} steps, loss {summary['loss']:.5g}{best}; run in {summary['out_dir']}")


def _model_options(func):
    func = click.option("--ckpt", type=click.Path(dir_okay=False),
                        help="padm or official checkpoint (default for derain: the shipped default model)")(func)
    func = click.option("--preset", default=None,
                        help="refuse a checkpoint that is not of this preset (paper, small, tiny)")(func)
    func = click.option("--no-ema", is_flag=True, help="use the raw weights even if the checkpoint has EMA weights")(func)
    func = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")(func)
    func = click.option("--tile", type=click.IntRange(min=0), default=512, show_default=True,
                        help="images larger than this run in overlapping tiles (bounded memory); 0: whole images")(func)
    func = click.option("--overlap", type=click.IntRange(min=0), default=64, show_default=True,
                        help="overlap between tiles, blended")(func)
    return func


def _load(ckpt, preset, no_ema, device, *, default_ok: bool):
    import torch

    from padm.engine.checkpoint import load_model
    from padm.unfolding.config import PADMConfig

    if ckpt is None and not default_ok:
        raise UserError("pass --ckpt CHECKPOINT")
    try:
        expect = PADMConfig.preset(preset) if preset else None
    except ValueError as err:
        raise UserError(str(err)) from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but CUDA is not available")
    model, _ = load_model(ckpt, expect=expect, use_ema=not no_ema, device=device)
    return model


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.argument("output", type=click.Path())
@_model_options
@click.option("--stages", is_flag=True, help="also save every stage's B, R and step-size maps (<name>_stages/)")
@click.option("--overwrite", is_flag=True, help="replace existing output files")
@click.option("--quiet", is_flag=True, help="no progress bars")
def derain(input_path, output, ckpt, preset, no_ema, device, tile, overlap, stages, overwrite, quiet):
    """Derain INPUT (an image or a folder of images) into OUTPUT (a file or a folder).

    Any size and format padm reads; output keeps the size and bit depth.  Without --ckpt the shipped
    default model (checkpoints/default.pt) is used.
    """
    from padm.engine import apply

    jobs = apply.plan(input_path, output, overwrite=overwrite)
    model = _load(ckpt, preset, no_ema, device, default_ok=True)
    apply.check_inputs(jobs)
    written = apply.run(model, jobs, tile=tile or None, overlap=overlap, stages=stages, progress=not quiet)
    click.echo(f"wrote {len(written)} image(s) to {written[0] if len(written) == 1 else Path(output)}")


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pred", metavar="PRED_OR_DATA", type=click.Path())
@click.argument("gt", required=False, type=click.Path())
@_model_options
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default="uint8Y", show_default=True,
              help="uint8Y: Rain200L/H, SPA (the paper's table); doubleY: DID/DDN; rgb")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="write per-image PSNR/SSIM here")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write the summary here")
@click.option("--save", "save_dir", type=click.Path(file_okay=False),
              help="with --ckpt: save the derained images here (PNG)")
@click.option("--fid", is_flag=True, help="also FID and KID (torch-fidelity; needs --inception-weights)")
@click.option("--inception-weights", type=click.Path(dir_okay=False),
              help="local weights file of torch-fidelity's inception-v3-compat extractor (never downloaded)")
@click.option("--quiet", is_flag=True, help="no progress bars")
def evaluate(pred, gt, ckpt, preset, no_ema, device, tile, overlap, protocol, csv_path, json_path, save_dir, fid,
             inception_weights, quiet):
    """Score derained images against ground truth.

    \b
    padm eval PRED GT                 saved predictions vs ground truth (folders matched by name, or two files)
    padm eval DATA --ckpt CKPT        derain a paired dataset (folder or .h5) with a checkpoint and score it
    """
    from padm.engine import evaluate as ev

    if ckpt is None and gt is None:
        raise UserError("give PRED GT, or DATA --ckpt CHECKPOINT")
    if ckpt is not None and gt is not None:
        raise UserError("with --ckpt give one paired dataset (DATA), not PRED GT")
    if fid:
        from padm.engine.fidelity import check_weights

        check_weights(inception_weights)  # before any work
    with tempfile.TemporaryDirectory(prefix="padm-eval-") as tmp:
        if ckpt is None:
            rows, files = ev.evaluate_predictions(pred, gt, protocol, progress=not quiet)
        else:
            model = _load(ckpt, preset, no_ema, device, default_ok=False)
            rows, files = ev.evaluate_model(model, pred, protocol, tile=tile or None, overlap=overlap,
                                            save_dir=save_dir or (tmp if fid else None), progress=not quiet)
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
        Path(json_path).write_text(json.dumps(attrs.asdict(summary), indent=2) + "\n")
    click.echo(summary.line())


__all__ = ["Command", "train", "derain", "evaluate", "config_options"]
