"""Build and load the fused CPU scan kernel (``csrc/selective_scan.cpp``).

The kernel is plain C++ (no PyTorch headers), compiled once with the system ``g++`` into a cache
directory and loaded with :mod:`ctypes`; compiling takes a few seconds, loading afterwards is instant.
The cache key covers the source, the compiler flags, the compiler version and the CPU, so a home
directory shared between different machines never loads a binary built for another CPU.  The build
writes to a temporary file and renames it, so concurrent processes (DataLoader workers, ``torchrun``
ranks) never see a half-written library.

If no compiler is available or the build fails, :func:`load` returns ``None`` and emits one warning;
callers fall back to the pure-PyTorch reference.  ``PADM_NO_NATIVE=1`` disables the kernel.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import threading
import warnings
from pathlib import Path

import torch  # before the library loads: its libgomp.so.1 must resolve to torch's

from padm.fileio import atomic_write

_SOURCE = Path(__file__).with_name("csrc") / "selective_scan.cpp"  # scan, conv1d, gated conv, LayerNorm, dropout
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-Wno-psabi", "-std=c++17", "-shared", "-fPIC", "-pthread"]
# OpenMP: the kernels' threads are then those of the OpenMP runtime PyTorch loaded (see parallel_tasks in
# the source); a compiler without it builds the std::thread version
_OPENMP = ["-fopenmp"]

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
_error: str | None = None


def cache_dir() -> Path:
    root = os.environ.get("PADM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "padm"
    )
    return Path(root) / "kernels"


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def _build(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    key = hashlib.sha256(
        b"\0".join(x.encode() for x in (_SOURCE.read_text(), " ".join(_FLAGS + _OPENMP), version, _cpu_id()))
    ).hexdigest()[:16]
    target = cache_dir() / f"padm_scan_{key}.so"
    if target.exists():
        return target
    with atomic_write(target) as tmp:  # two processes building at once each rename a whole library
        for extra in (_OPENMP, []):
            proc = subprocess.run([cxx, *_FLAGS, *extra, str(_SOURCE), "-o", str(tmp)], capture_output=True,
                                  text=True, check=False)
            if proc.returncode == 0:
                break
        else:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "compiler failed")
    return target


def _declare(lib: ctypes.CDLL, strict: bool = True) -> None:
    """Argument types of the library's functions; ``strict=False`` skips those it lacks (an older build,
    as ``scripts/bench_train.py --baseline-kernels`` loads)."""
    p, i64p, i32, i64 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_int64
    scan = [ctypes.POINTER(ctypes.c_void_p), i64p, i64p, i32, i32]
    signatures = {"padm_scan_chunk": ([], ctypes.c_int), "padm_scan_bc_grad_time_major": ([], ctypes.c_int)}
    for name in ("fwd_f32", "fwd_f64", "bwd_f32", "bwd_f64"):
        signatures[f"padm_scan_{name}"] = (scan, None)
    for suffix in ("f32", "f64"):
        signatures[f"padm_conv_fwd_{suffix}"] = ([p, i64p, p, p, p, i32, i64p, i32], None)
        signatures[f"padm_conv_bwd_{suffix}"] = ([p, i64p, p, p, p, i64p, i32, p, p, p, i64p, i32], None)
        signatures[f"padm_gated_dw_{suffix}"] = ([p, p, p, i64, i64, i64, i64, i32], None)
        signatures[f"padm_gated_dw_bwd_{suffix}"] = ([p, p, p, p, p, i64, i64, i64, i64, i32], None)
        signatures[f"padm_layer_norm_{suffix}"] = ([p, p, p, p, p, p, i64, i64, ctypes.c_double, i32], None)
        signatures[f"padm_layer_norm_bwd_{suffix}"] = ([p, p, p, p, p, p, p, p, i64, i64, i32], None)
        u32 = ctypes.c_uint32
        signatures[f"padm_dropout_add_{suffix}"] = ([p, p, p, i64, u32, u32, u32, ctypes.c_double, i32], None)
    for name, (argtypes, restype) in signatures.items():
        if not strict and not hasattr(lib, name):
            continue
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype


def load() -> ctypes.CDLL | None:
    """The compiled kernel library, building it on first use; ``None`` if it cannot be built."""
    global _lib, _tried, _error
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        if os.environ.get("PADM_NO_NATIVE", "") not in ("", "0"):
            _error = "disabled by PADM_NO_NATIVE"
        elif (cxx := _compiler()) is None:
            _error = "no C++ compiler (g++/clang++) found"
        else:
            try:
                lib = ctypes.CDLL(str(_build(cxx)))
                _declare(lib)
                _lib = lib
            except (OSError, RuntimeError, AttributeError, ValueError) as err:  # ValueError: UserError of a write
                _error = f"build failed: {err}"
        if _lib is None:
            warnings.warn(
                f"padm: fused CPU scan kernel unavailable ({_error}); using the slower pure-PyTorch "
                "reference scan. Install g++ to enable it.",
                RuntimeWarning,
                stacklevel=3,
            )
        _tried = True
        return _lib


def available() -> bool:
    return load() is not None


def has(name: str) -> bool:
    """Whether the loaded library exports ``name`` (an older build, as ``scripts/bench_train.py
    --baseline-kernels`` loads, may lack the newer kernels)."""
    lib = load()
    return lib is not None and hasattr(lib, name)


def _typed(name: str, like: torch.Tensor) -> str:
    return f"padm_{name}_{'f64' if like.dtype == torch.float64 else 'f32'}"


def kernel(name: str, like: torch.Tensor):
    """The library's ``padm_{name}_f32`` or ``padm_{name}_f64`` for tensors of ``like``'s dtype."""
    return getattr(load(), _typed(name, like))


def has_kernel(name: str, like: torch.Tensor) -> bool:
    """:func:`has` for the ``name`` kernel of ``like``'s dtype."""
    return has(_typed(name, like))


def unavailable_reason() -> str | None:
    load()
    return _error
