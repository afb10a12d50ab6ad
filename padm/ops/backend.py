"""Which implementation the fast ops run on: a run-time setting, not part of any model.

One list of backends and one place that selects.  The selective scan, the causal conv1d and the gated
depthwise convolution read :func:`current` when they are called, so a model never stores a backend::

    from padm.ops import backend

    with backend.use("reference"):      # every op inside runs its readable PyTorch reference
        out = model(x)
    backend.set_default("cpu")          # process-wide, e.g. from a --scan-backend option

``auto``
    the fastest available: the mamba-ssm / causal-conv1d CUDA kernels for GPU tensors, the fused C++
    kernels for CPU tensors.
``reference``
    the readable pure-PyTorch definitions (scan loop, shifted multiply-adds, conv + GELU + product).
``cpu``
    the fused C++ kernels (they fall back to the reference where they do not apply).
``parallel``
    the associative PyTorch scan (GPU friendly); conv1d and gated ops through ``F.conv*``.
``cuda``
    mamba-ssm's kernel where installed and on a GPU, else ``parallel``.

The setting is per thread (a :class:`contextvars.ContextVar`), so tests running models side by side
do not see each other's choice.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

BACKENDS = ("auto", "reference", "cpu", "parallel", "cuda")

_default = "auto"
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("padm_backend", default=None)
_training: contextvars.ContextVar[bool] = contextvars.ContextVar("padm_training_kernels", default=True)


def check(name: str) -> str:
    """``name`` if it is a backend, else ``ValueError`` listing them."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def current() -> str:
    """The backend in force here: the innermost :func:`use`, else the process default."""
    return _current.get() or _default


def set_default(name: str) -> None:
    """Set the process-wide default (what :func:`current` returns outside any :func:`use`)."""
    global _default
    _default = check(name)


def training_kernels() -> bool:
    """Whether ops whose fused kernel has a backward may use it when a gradient is needed (default
    True).  Off, they train through PyTorch's ops as before the kernels existed (``padm train
    --no-fused-train-ops``, the baseline of ``scripts/bench_train.py``); inference is not affected."""
    return _training.get()


@contextlib.contextmanager
def use(name: str, *, training_kernels: bool | None = None) -> Iterator[str]:
    """Run the block with ``name`` as the backend of every fast op (and, if given, with the fused
    training kernels allowed or not)."""
    token = _current.set(check(name))
    token_t = _training.set(training_kernels) if training_kernels is not None else None
    try:
        yield name
    finally:
        if token_t is not None:
            _training.reset(token_t)
        _current.reset(token)


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd will want a gradient of any of ``tensors`` here."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def cpu_kernels_allowed(*inputs: torch.Tensor) -> bool:
    """Whether an op on CPU tensors ``inputs`` may run its fused C++ kernels: the ``cpu`` backend is in
    force and, when a gradient of an input is needed, :func:`training_kernels` allows their backward."""
    return resolve(None, False) == "cpu" and (not needs_grad(*inputs) or training_kernels())


def resolve(name: str | None, is_cuda: bool) -> str:
    """The concrete backend (``auto`` resolved) for a tensor on CUDA or not; ``None``: :func:`current`."""
    name = check(name) if name is not None else current()
    if name == "auto":
        return "cuda" if is_cuda else "cpu"
    return name


__all__ = ["BACKENDS", "check", "current", "set_default", "use", "resolve", "training_kernels", "needs_grad",
           "cpu_kernels_allowed"]
