"""Data-parallel training on one CPU machine: ``padm train --procs N`` without ``torchrun``.

Why: PADM's training step is thousands of small and medium kernels (LayerNorms, depthwise
convolutions, the scan over 128² = 16k tokens).  Two threads inside one process spend much of a step
waiting for each other at the end of every kernel; two processes with one thread each, each computing
half of the batch, do not.  On the 2-core machines padm is built on this is about 1.4× more optimizer
steps per second at the same batch (``python scripts/bench_train.py``).

What: :func:`run_procs` starts ``N`` ranks (``python -m padm.engine.launch``, gloo), each with
``threads // N`` intra-op threads, sets the ``torchrun`` variables (``RANK``, ``WORLD_SIZE``, ...) so
:class:`padm.engine.train.Dist` sees an ordinary process group, and **splits** ``batch_size`` across
them (``PADM_SPLIT_BATCH``; under ``torchrun`` ``batch_size`` stays per process).  Each global
micro-batch holds exactly the crops a single process would have drawn (:func:`batch_stream`), and the
L1 loss is a mean, so DDP's gradient average is the one-process gradient; only the dropout draws and
the order of floating-point sums differ.

The ranks get their own process group: a Ctrl-C reaches the launcher once, and it forwards the signal
once to every rank, which then stop together after the step with a checkpoint
(:class:`padm.engine.guard.StopSignals`).  A rank that fails with a :class:`UserError` hands its
one-line message back; the others are stopped, and the launcher raises the same message.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from padm.errors import UserError

SPLIT_ENV = "PADM_SPLIT_BATCH"


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_procs(cfg) -> int:
    """How many processes ``cfg`` trains with: ``cfg.procs``, or for 0 (auto) the most that divide
    the batch, at most one per core, on a CPU run outside ``torchrun`` (else 1)."""
    wants_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    if under_torchrun():
        return 1  # torchrun made the processes
    if cfg.procs == 0:
        if wants_cuda:
            return 1
        return max(n for n in range(1, min(cpu_cores(), cfg.batch_size) + 1) if cfg.batch_size % n == 0)
    if cfg.procs > 1:
        if wants_cuda:
            raise UserError("--procs splits a CPU run; on GPUs start one process per GPU with torchrun")
        if cfg.batch_size % cfg.procs:
            raise UserError(f"--batch-size {cfg.batch_size} does not split into --procs {cfg.procs} equal parts")
    return cfg.procs


def split_batch() -> bool:
    """Whether this rank was started by :func:`run_procs` (``batch_size`` is shared by the ranks)."""
    return os.environ.get(SPLIT_ENV) == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_procs(train_fn, cfg, resume, procs: int) -> dict[str, Any]:
    """Run ``padm.engine.train.train(cfg, resume)`` in ``procs`` CPU ranks (``python -m
    padm.engine.launch``, as ``torchrun`` would start them: no ``__main__`` guard needed in the
    caller's script); returns rank 0's summary, or re-raises the first rank's :class:`UserError`."""
    del train_fn  # the ranks import padm.engine.train themselves
    threads = max(1, torch.get_num_threads() // procs)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="padm-ranks-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"config": cfg.to_dict(), "resume": None if resume is None else str(resume)}))
        ranks = []
        for r in range(procs):
            env = dict(os.environ, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(procs),
                       LOCAL_WORLD_SIZE=str(procs), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       OMP_NUM_THREADS=str(threads), **{SPLIT_ENV: "1"})
            # own session: the terminal's Ctrl-C reaches the launcher only, which forwards it once
            ranks.append(subprocess.Popen([sys.executable, "-m", "padm.engine.launch", str(spec),
                                           str(Path(tmp) / f"result{r}.json")], env=env, start_new_session=True))
        forwarded: list[int] = []

        def forward(signum, _frame):
            forwarded.append(signum)
            for p in ranks:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL if len(forwarded) > 2 else signum)

        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            failed_at = None
            while any(p.poll() is None for p in ranks):
                time.sleep(0.2)
                if failed_at is None and any(p.poll() not in (None, 0) for p in ranks):
                    failed_at = time.monotonic()  # the others may wait in a collective: a moment, then stop
                if failed_at is not None and time.monotonic() - failed_at > 10:
                    for p in ranks:
                        if p.poll() is None:
                            p.kill()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        reports = {}
        for r in range(procs):
            path = Path(tmp) / f"result{r}.json"
            if path.is_file():
                reports[r] = json.loads(path.read_text())
    errors = [reports[r] for r in sorted(reports) if "error" in reports[r]]
    if errors:
        raise _error_class(errors[0]["kind"])(errors[0]["error"])
    if 0 not in reports:
        codes = ", ".join(f"rank {r}: exit code {p.returncode}" for r, p in enumerate(ranks))
        raise RuntimeError(f"a training process ended without a result ({codes}); its output is above")
    return reports[0]["summary"]


def _error_class(qualified: str) -> type[UserError]:
    """The UserError subclass a rank raised (by its name in padm), else UserError."""
    module, _, name = qualified.rpartition(".")
    if not module.startswith("padm."):
        return UserError
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return UserError
    return cls if isinstance(cls, type) and issubclass(cls, UserError) else UserError


def _rank_main(spec_path: str, result_path: str) -> int:
    """One rank: read the run's spec, train, write the summary or the one-line error."""
    from padm.engine.config import TrainConfig
    from padm.engine.train import train

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = json.loads(Path(spec_path).read_text())
    try:
        cfg = TrainConfig.from_dict(spec["config"], source="run spec")
        summary = train(cfg, spec["resume"])
    except UserError as err:
        Path(result_path).write_text(json.dumps({"error": str(err),
                                                 "kind": f"{type(err).__module__}.{type(err).__qualname__}"}))
        return 1
    Path(result_path).write_text(json.dumps({"summary": summary}, default=str))
    return 0


__all__ = ["resolve_procs", "run_procs", "split_batch", "cpu_cores", "under_torchrun"]


if __name__ == "__main__":
    sys.exit(_rank_main(*sys.argv[1:3]))
