"""Training: one visible loop, nanoGPT style, for any restoration task.

    padm train --train-data pairs.h5 --val-data val/ --preset small --iterations 20000
    padm train --task NAME --config configs/NAME.yaml     # any task of padm.unfolding.tasks
    torchrun --nproc_per_node 4 scripts/train.py --config run.yaml

The task (:mod:`padm.unfolding.tasks`) builds the network, turns a data batch into a degraded/clean
:class:`~padm.unfolding.tasks.base.Sample` and says what each stage is compared with; the model only
maps its input to its stage outputs.  Everything about training is here: the
deep-supervision loss over all K+1 stages (:mod:`padm.engine.losses`), AdamW with the official
constant-then-cosine schedule (:mod:`padm.engine.schedule`), gradient-norm clipping, optional EMA and
gradient accumulation, AMP on CUDA only, data-parallel training under ``torchrun`` (gloo on CPU, NCCL
on GPU), validation (PSNR/SSIM on Y), logs, checkpoints and exact resume.

Exact resume: a checkpoint holds the weights, optimizer, EMA, gradient scaler, step, best validation
and every rank's torch RNG state.  The data order is a pure function of (seed, step): epoch ``e``
visits a permutation drawn from ``seed + e`` and the datasets crop sample ``i`` (and seed its
degradation, for tasks that degrade on the fly) from ``(seed, epoch, i)``, so a resumed run draws
exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from padm.engine import checkpoint as ckpt_io
from padm.engine.config import TrainConfig, parse_subset, save_config
from padm.engine.guard import NonFiniteError, RunLock, StopSignals, quiet_worker, resume_hint
from padm.engine.infer import cpu_bf16_supported, restore
from padm.engine.launch import resolve_procs, run_procs, split_batch
from padm.engine.losses import unfolding_loss
from padm.engine.metrics import score
from padm.engine.runlog import RunLog
from padm.engine.schedule import lr_at
from padm.errors import UserError
from padm.ops import backend
from padm.unfolding.tasks import Sample, Task, get_task


# ----------------------------------------------------------------------------------------- processes


class Dist:
    """Where this process sits: rank, world size, device.  One process without ``torchrun``."""

    def __init__(self, device_pref: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = device_pref.startswith("cuda") or (device_pref == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise UserError(f"device {device_pref!r} asked for, but CUDA is not available")
        if want_cuda:
            index = self.local_rank if self.world > 1 or device_pref in ("auto", "cuda") else int(device_pref[5:])
            self.device = torch.device("cuda", index)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.main = self.rank == 0

    def mean(self, x: Tensor) -> Tensor:
        """Average a tensor over ranks (identity for one process)."""
        if not self.enabled:
            return x
        x = x.detach().clone().to(self.device)
        dist.all_reduce(x)
        return x / self.world

    def sum(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        x = x.clone().to(self.device)
        dist.all_reduce(x)
        return x.cpu()

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def rng_state(d: Dist) -> dict[str, list[Tensor] | None]:
    """Every rank's torch RNG state (CPU, and CUDA when used), as uint8 tensors."""
    cpu = d.gather(torch.get_rng_state())
    cuda = d.gather(torch.cuda.get_rng_state(d.device).cpu()) if d.device.type == "cuda" else None
    return {"torch": cpu, "cuda": cuda}


def set_rng_state(d: Dist, rng: dict | None, fallback_seed: int) -> None:
    saved = (rng or {}).get("torch") or []
    if len(saved) == d.world:
        torch.set_rng_state(saved[d.rank])
        if d.device.type == "cuda" and rng.get("cuda"):
            torch.cuda.set_rng_state(rng["cuda"][d.rank], d.device)
    else:  # another world size: a fresh, still deterministic, stream per rank
        if d.main:
            tqdm.write(f"note: checkpoint RNG states are for {len(saved)} process(es), not {d.world}; "
                       "dropout draws after the resume differ from the original run")
        torch.manual_seed(fallback_seed)


# ----------------------------------------------------------------------------------------- data


def _positions(subset: str) -> list[int] | None:
    """0-based image positions of a ``--train-subset``-style string (None: all images)."""
    ranges = parse_subset(subset)
    return [i - 1 for r in ranges for i in r] if ranges else None


def open_datasets(cfg: TrainConfig):
    """Training crops and (optional) full validation images, from :mod:`padm.data`: pairs, or clean
    images for a task that degrades them itself."""
    from padm.data.datasets import open_clean, open_paired, open_synth

    task = get_task(cfg.task)
    opener = open_paired if task.data == "pairs" else open_clean
    common = dict(patch_size=cfg.patch_size, seed=cfg.seed, augment=cfg.augment,
                  num_samples=cfg.samples_per_epoch or None)
    if cfg.synth_data:
        if task.data != "pairs":
            raise UserError(f"--synth-data makes pairs, but task {task.name!r} degrades clean images itself; "
                            "pass them as --train-data")
        train = open_synth(cfg.synth_data, model=cfg.synth_model, pairs=cfg.train_data or None,
                           select=_positions(cfg.synth_subset), pairs_select=_positions(cfg.train_subset), **common)
    else:
        train = opener(cfg.train_data, select=_positions(cfg.train_subset), **common)
    val = opener(cfg.val_data, select=_positions(cfg.val_subset)) if cfg.val_data else None
    return train, val


def rank_batch_size(cfg: TrainConfig, d: Dist) -> int:
    """Crops per micro-step on this rank: a share of ``batch_size`` for ``--procs`` ranks, all of it
    for a ``torchrun`` rank."""
    return cfg.batch_size // d.world if split_batch() else cfg.batch_size


def batch_stream(dataset, cfg: TrainConfig, d: Dist, start_micro: int) -> Iterator[dict[str, Any]]:
    """Endless micro-batches for this rank, starting after ``start_micro`` micro-batches.

    Epoch ``e`` visits ``randperm(len, seed + e)`` cut to whole global micro-batches; rank ``r`` takes
    every ``world``-th sample.  ``set_epoch(e)`` re-draws the dataset's crops.
    """
    n = len(dataset)
    batch_size = rank_batch_size(cfg, d)
    per_micro = batch_size * d.world
    per_epoch = n // per_micro  # micro-batches per epoch
    if per_epoch == 0:
        raise UserError(f"{cfg.train_data or cfg.synth_data}: {n} training crop(s) per epoch, fewer than batch_size x processes = "
                        f"{per_micro}; raise --samples-per-epoch")
    epoch, skip = divmod(start_micro, per_epoch)
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g)[: per_epoch * per_micro]
        mine = order[d.rank::d.world][skip * batch_size:].tolist()
        # own generator: creating the loader's iterator must not draw from the global RNG (dropout)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=mine, num_workers=cfg.num_workers,
                            pin_memory=d.device.type == "cuda", generator=torch.Generator().manual_seed(epoch),
                            persistent_workers=False, worker_init_fn=quiet_worker)
        for batch in loader:
            batch["epoch"] = epoch
            yield batch
        epoch, skip = epoch + 1, 0


# ----------------------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model: nn.Module, dataset, cfg: TrainConfig, d: Dist, task: Task | None = None) -> dict[str, float]:
    """Mean PSNR/SSIM (``cfg.val_protocol``) over the validation images, split across ranks."""
    task = task or get_task(cfg.task)
    protocol = cfg.val_protocol
    was_training = model.training
    model.eval()
    n = len(dataset) if cfg.val_max_images == 0 else min(cfg.val_max_images, len(dataset))
    totals = torch.zeros(3, dtype=torch.float64)  # psnr sum, ssim sum, count
    for i in range(d.rank, n, d.world):
        sample = task.item_sample(dataset[i], cfg.degradation)
        pred = restore(model, sample.degraded, aux=sample.aux, tile=cfg.val_tile or None)
        p, s = score(pred, sample.clean, protocol)
        totals += torch.tensor([p[0].item(), s[0].item(), 1.0], dtype=torch.float64)
    totals = d.sum(totals)
    model.train(was_training)
    count = max(totals[2].item(), 1.0)
    return {"psnr": totals[0].item() / count, "ssim": totals[1].item() / count, "images": int(totals[2].item())}


# ----------------------------------------------------------------------------------------- the run


def precision(cfg: TrainConfig, device: torch.device) -> str:
    """The arithmetic the forward pass runs in: ``float32``, or the autocast dtype."""
    if device.type == "cuda":
        return cfg.amp_dtype if cfg.amp else "float32"
    return "bfloat16" if cfg.cpu_bf16 and cpu_bf16_supported() else "float32"


def _autocast(cfg: TrainConfig, device: torch.device):
    """Autocast for the forward pass (the loss and the optimizer stay float32, master weights too)."""
    dtype = precision(cfg, device)
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, dtype))


def fused_cpu_optimizer(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether AdamW runs its fused kernel and the clipping PyTorch's for-each ops: on the CPU with
    ``fused_train_ops`` (the same update to rounding; off, the per-tensor loop of the baseline)."""
    return cfg.fused_train_ops and device.type == "cpu"


def describe_mode(cfg: TrainConfig, d: Dist) -> str:
    """One line saying how this run computes: device, processes x threads, precision."""
    where = f"{d.device}" + (f" (GPU {torch.cuda.get_device_name(d.device)})" if d.device.type == "cuda" else "")
    how = precision(cfg, d.device)
    if cfg.cpu_bf16 and d.device.type == "cpu" and how == "float32":
        how += " (--cpu-bf16 asked for, but this CPU has no bfloat16 instructions)"
    per = rank_batch_size(cfg, d)
    ops = ("" if d.device.type == "cuda"
           else ", fused kernels (gated conv, LayerNorm, dropout, AdamW)" if cfg.fused_train_ops else ", PyTorch ops")
    return (f"training on {where}: {d.world} process(es) x {torch.get_num_threads()} thread(s), "
            f"{per} crop(s) per process per micro-step, {how}{ops}")


def _prepare_run_dir(cfg: TrainConfig, resuming: bool) -> Path:
    out = Path(cfg.out_dir)
    if not resuming and ckpt_io.latest_checkpoint(out) is not None:
        raise UserError(f"{out}: already holds a run; resume it with --resume {out} or choose another --out-dir")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    return out


@attrs.define
class _Run:
    """What the loop shares with :func:`train` around it: stop signals, the run folder's lock, progress."""

    signals: StopSignals
    stack: contextlib.ExitStack
    looping: bool = False
    step: int = 0


def train(cfg: TrainConfig, resume: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run (or resume) training as configured; returns a summary (final step, last loss, best PSNR,
    ``stopped_by``: the signal that stopped it early, or None).

    The run folder is locked for this process (:class:`padm.engine.guard.RunLock`).  SIGINT/SIGTERM
    stop it after the current step with a checkpoint; a non-finite loss or gradient raises
    :class:`padm.engine.guard.NonFiniteError` before that step is logged or saved; any other failure
    during the loop (a full disk, ...) is a :class:`UserError` that names the last good checkpoint.
    """
    procs = resolve_procs(cfg)
    if procs > 1:  # data-parallel CPU ranks, started here (padm.engine.launch)
        return run_procs(train, cfg, resume, procs)
    d = Dist(cfg.device)
    try:
        with backend.use(cfg.scan_backend, training_kernels=cfg.fused_train_ops), StopSignals() as signals, contextlib.ExitStack() as stack:
            run = _Run(signals, stack)
            try:
                return _train(cfg, d, resume, run)
            except UserError as err:
                if not run.looping or isinstance(err, NonFiniteError):
                    raise
                raise type(err)(f"{err}; training stopped at step {run.step}, "
                                f"{resume_hint(Path(cfg.out_dir))}") from None
    finally:
        d.close()


def _lock_run_dir(out: Path, d: Dist, run: _Run) -> None:
    """Rank 0 locks the run folder for the whole run; every rank raises if it could not."""
    error = None
    if d.main:
        try:
            run.stack.enter_context(RunLock(out))
        except UserError as err:
            error = str(err)
    errors = [e for e in d.gather(error) if e]
    if errors:
        raise UserError(errors[0])


def _after_step(run: _Run, d: Dist, out: Path, step: int, loss: Tensor, grad_norm: Tensor, *,
                check_grad: bool) -> bool:
    """After optimizer step ``step``: a non-finite loss or gradient norm (on any rank) raises
    :class:`NonFiniteError`; returns whether a stop signal arrived (on any rank).  With a gradient
    scaler, non-finite gradients are the scaler's to handle (it skips the step), so only the loss counts."""
    run.step = step
    bad = [~torch.isfinite(loss.detach()),
           ~torch.isfinite(grad_norm.detach()) if check_grad else torch.zeros((), dtype=torch.bool)]
    flags = torch.stack([b.float().cpu() for b in bad] + [torch.tensor(float(run.signals.received is not None))])
    bad_loss, bad_grad, stop = (v > 0 for v in d.sum(flags).tolist())
    if bad_loss or bad_grad:
        what, value = ("loss", loss) if bad_loss else ("gradient norm", grad_norm)
        shown = f"{value.item():g}" if not torch.isfinite(value) else "not finite on another process"
        raise NonFiniteError(f"step {step}: the {what} is {shown}; training stopped before logging or saving "
                             f"this step, {resume_hint(out)} (a lower --lr or a --grad-clip may keep it finite)")
    return stop


def _train(cfg: TrainConfig, d: Dist, resume, run: _Run) -> dict[str, Any]:
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif d.device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    state = ckpt_io.read_checkpoint(resume) if resume else None
    if state is not None and state.get("optimizer") is None:
        raise UserError(f"{resume}: holds weights only, not a training state; use --init-from to start from it")
    out = _prepare_run_dir(cfg, resuming=state is not None)
    task = get_task(cfg.task)
    train_set, val_set = open_datasets(cfg)  # before anything is written: bad data paths fail cleanly
    _lock_run_dir(out, d, run)  # one process per run folder, then look again: another may have used it
    out = _prepare_run_dir(cfg, resuming=state is not None)

    # model, EMA, optimizer
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = ckpt_io.create_model(cfg.model).to(d.device)
    if state is not None:
        ckpt_io.require_model(resume, state, cfg.model)
        ckpt_io.load_weights(model, state["model"], resume)
    elif cfg.init_from:
        init = ckpt_io.read_checkpoint(cfg.init_from)
        ckpt_io.require_model(cfg.init_from, init, cfg.model)
        ckpt_io.load_weights(model, init["ema"] if init.get("ema") else init["model"], cfg.init_from)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
    if ema is not None and state is not None and state.get("ema") is not None:
        ckpt_io.load_weights(ema, state["ema"], resume)
    # on the CPU with the fused training ops, AdamW's fused kernel (one pass over every parameter instead of
    # a Python loop of ten ops for each of the ~900 tensors): 32 -> 9 ms per `small` step with the clipping
    fused_opt = fused_cpu_optimizer(cfg, d.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                  weight_decay=cfg.weight_decay, **({"fused": True} if fused_opt else {}))
    use_scaler = cfg.amp and d.device.type == "cuda" and cfg.amp_dtype == "float16"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    step, best = 0, {"psnr": float("-inf"), "step": -1}
    if state is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise UserError(f"{resume}: the optimizer state does not fit the model ({str(err)[:200]})") from None
        step, best = int(state["step"]), dict(state["best"])
        set_rng_state(d, state.get("rng"), cfg.seed + 7919 * d.rank + step)
    else:
        torch.manual_seed(cfg.seed + 7919 * d.rank)  # dropout differs between ranks, reproducibly
    raw_model = model
    if d.enabled:
        # depthwise weights' gradients come with an arbitrary stride on their size-1 axis; DDP copies them
        # into its buckets correctly and would warn about it on every run
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        model = DDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)

    # logs
    log = None
    if d.main:
        save_config(cfg, out / "config.yaml")  # the lock made the folder
        log = RunLog(out, tensorboard=cfg.tensorboard)
        if state is not None:
            log.truncate_after(step)

    def save(name: str) -> Path:
        rng = rng_state(d)  # collective: every rank takes part
        path = out / "checkpoints" / name
        if d.main:
            ckpt_io.atomic_save(ckpt_io.make_checkpoint(
                cfg.model, raw_model.state_dict(), step=step,
                ema_state=None if ema is None else ema.state_dict(), train_config=cfg.to_dict(),
                optimizer=optimizer.state_dict(), scaler=scaler.state_dict() if use_scaler else None,
                rng=rng, best=best, data_epoch=epoch), path)
        return path

    stream = batch_stream(train_set, cfg, d, start_micro=step * cfg.grad_accum)
    if d.main:
        tqdm.write(describe_mode(cfg, d))
    bar = tqdm(total=cfg.iterations, initial=step, disable=not (d.main and cfg.progress), dynamic_ncols=True,
               desc="train")
    epoch, last_loss, t0, steps_timed = 0, math.nan, time.perf_counter(), 0
    model.train()
    run.looping, stopping = True, False
    while step < cfg.iterations:
        lr = lr_at(step, lr=cfg.lr, min_lr=cfg.min_lr, iterations=cfg.iterations,
                   constant_fraction=cfg.constant_fraction, warmup=cfg.warmup, start=cfg.restart_at)
        for group in optimizer.param_groups:
            group["lr"] = lr

        loss_sum = torch.zeros((), device=d.device)
        parts_sum: dict[str, Tensor] = {}
        for micro in range(cfg.grad_accum):
            batch = next(stream)
            epoch = batch["epoch"]
            sample: Sample = task.make_sample(batch, cfg.degradation).to(d.device)  # degraded, clean, aux
            sync = contextlib.nullcontext() if (not d.enabled or micro == cfg.grad_accum - 1) else model.no_sync()
            with sync:
                with _autocast(cfg, d.device):
                    outputs = model(task.inputs(sample.degraded, sample.aux))  # every stage's estimates
                loss, parts = unfolding_loss(task.supervision(outputs, sample), cfg.fft_weight)
                scaler.scale(loss / cfg.grad_accum).backward()
            loss_sum += loss.detach() / cfg.grad_accum
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0) + v / cfg.grad_accum

        scaler.unscale_(optimizer)
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), max_norm,
                                                   foreach=True if fused_opt else None)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), raw_model.parameters()):
                    pe.lerp_(pm, 1.0 - cfg.ema_decay)
                for be, bm in zip(ema.buffers(), raw_model.buffers()):
                    be.copy_(bm)
        step += 1
        steps_timed += 1
        bar.update()
        last = step == cfg.iterations
        stopping = _after_step(run, d, out, step, loss_sum, grad_norm, check_grad=not use_scaler) and not last

        if step % cfg.log_every == 0 or last:
            loss_val = d.mean(loss_sum).item()
            parts_val = {k: d.mean(v).item() for k, v in parts_sum.items()}
            elapsed = time.perf_counter() - t0
            last_loss = loss_val
            if log is not None:
                log.write("train", step, loss=loss_val, **parts_val, lr=lr, grad_norm=grad_norm.item(),
                          it_s=steps_timed / elapsed, epoch=epoch)
            bar.set_postfix(loss=f"{loss_val:.4g}", lr=f"{lr:.2e}")
            t0, steps_timed = time.perf_counter(), 0

        if val_set is not None and ((cfg.val_every and step % cfg.val_every == 0) or last):
            metrics = validate(ema if ema is not None else raw_model, val_set, cfg, d, task)
            improved = metrics["psnr"] > best["psnr"]
            if improved:
                best = {"psnr": metrics["psnr"], "step": step}
            if log is not None:
                log.write("val", step, **metrics, best_psnr=best["psnr"])
                bar.write(f"step {step}: val PSNR {metrics['psnr']:.3f} dB, SSIM {metrics['ssim']:.4f} "
                          f"({cfg.val_protocol}, {metrics['images']} images)"
                          + (" (best)" if improved else ""))
            if improved:
                save("best.pt")

        if step % cfg.ckpt_every == 0 or last or stopping:
            save(f"step_{step:08d}.pt")
            if d.main:
                ckpt_io.prune_checkpoints(out / "checkpoints", cfg.keep_last)
            d.barrier()
        if stopping:  # SIGINT/SIGTERM: the checkpoint of this step is written
            break
    bar.close()
    run.looping = False  # every step is done and saved: what fails now needs no resume

    if log is not None:
        if cfg.plot and not stopping:
            log.plot()
        log.close()
    return {"step": step, "loss": last_loss, "best_psnr": best["psnr"], "best_step": best["step"],
            "out_dir": str(out), "rank": d.rank, "stopped_by": run.signals.name if stopping else None}


__all__ = ["Dist", "batch_stream", "validate", "train", "open_datasets", "rng_state", "set_rng_state"]
