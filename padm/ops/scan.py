r"""The selective scan (Mamba's S6 recurrence) and the causal depthwise conv1d, with interchangeable backends.

Semantics are exactly those of ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``.  For every
batch element b, channel d and state index n, with time t = 0 .. L-1 and h_{-1} = 0 (or ``initial_state``):

.. math::

    \Delta_t &= \operatorname{softplus}(\Delta^{raw}_t + \text{delta\_bias})
        \quad(\text{bias and softplus optional}) \\
    \bar A_t &= \exp(\Delta_t A) \qquad\qquad\quad (\text{zero-order hold}) \\
    h_t &= \bar A_t \odot h_{t-1} + \Delta_t\, B_t\, u_t \\
    y_t &= \langle C_t, h_t\rangle + D\, u_t, \qquad \text{out}_t = y_t \cdot \operatorname{SiLU}(z_t)
    \quad(\text{gate optional})

Shapes: ``u, delta, z``: (batch, D, L); ``A``: (D, N); ``B, C``: (D, N) (time-invariant) or
(batch, N, L) or (batch, G, N, L) (input-dependent, channel d uses group ``d // (D // G)``);
``D, delta_bias``: (D,).  Returns ``out`` (batch, D, L) in ``u``'s dtype, and with
``return_last_state=True`` also ``h_{L-1}`` (batch, D, N).

Backends (``backend=``, or the run-time setting of :mod:`padm.ops.backend` when it is ``None``):

``reference``
    Readable pure PyTorch: discretise, then one Python loop over time.  The teaching version.  The
    per-step tensors come from one ``unbind`` so autograd's backward is O(L) (indexing inside the loop,
    as ``mamba_ssm``'s ``selective_scan_ref`` does, makes it O(L^2)).
``cpu``
    Fused C++ kernel (``csrc/selective_scan.cpp``): bias, softplus, recurrence, D skip and gate in one
    pass, with its own backward; extra memory O(L·D·N / 64).  Falls back to ``reference`` with one
    warning if it cannot be compiled.
``parallel``
    Pure PyTorch without a Python loop over time: a two-level associative (Hillis-Steele) scan.  GPU
    friendly, memory hungry; the fallback of ``cuda`` when mamba-ssm is not installed.
``cuda``
    mamba-ssm's CUDA kernel when it is importable and the tensors are on a GPU, else ``parallel``.
``auto`` (default)
    ``cuda`` for GPU tensors, else ``cpu``.
"""

from __future__ import annotations

import ctypes
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from padm.ops import _native
from padm.ops import backend as _backend
from padm.ops.backend import BACKENDS

# Optional CUDA kernels: guarded so a CPU-only install never needs (or imports) them eagerly.
_mamba_scan_fn: Callable | None = None
_causal_conv1d_fn: Callable | None = None
_cuda_probe_done = False


def _probe_cuda_kernels() -> None:
    global _mamba_scan_fn, _causal_conv1d_fn, _cuda_probe_done
    if _cuda_probe_done:
        return
    _cuda_probe_done = True
    if not torch.cuda.is_available():
        return
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        _mamba_scan_fn = selective_scan_fn
    except Exception:  # not installed, or built for another torch/CUDA
        _mamba_scan_fn = None
    try:
        from causal_conv1d import causal_conv1d_fn

        _causal_conv1d_fn = causal_conv1d_fn
    except Exception:
        _causal_conv1d_fn = None


def mamba_kernel_available() -> bool:
    """True when mamba-ssm's CUDA selective scan can be used."""
    _probe_cuda_kernels()
    return _mamba_scan_fn is not None


# ----------------------------------------------------------------------------------------------------------
# shared preprocessing


def _compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def _prepare_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> Tensor:
    """Δ = softplus(Δ_raw + bias) (each step optional).  (batch, D, L)"""
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].to(delta.dtype)
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _grouped(M: Tensor) -> Tensor:
    """Input-dependent B or C as (batch, G, N, L)."""
    return M.unsqueeze(1) if M.dim() == 3 else M


def _per_channel(M: Tensor, dim: int) -> Tensor:
    """Input-dependent B or C expanded to one row per channel: (batch, D, N, L)."""
    M = _grouped(M)
    batch, groups, n, length = M.shape
    if dim % groups:
        raise ValueError(f"D={dim} is not a multiple of the number of groups G={groups}")
    return M[:, :, None].expand(batch, groups, dim // groups, n, length).reshape(batch, dim, n, length)


def _finish(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    """out = (y + D u) · SiLU(z)."""
    if D is not None:
        y = y + u * D[:, None].to(y.dtype)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


def _check(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> None:
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, D, L); got {tuple(u.shape)} and {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != u.shape[1]:
        raise ValueError(f"A must be (D, N) with D={u.shape[1]}; got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("complex A is not supported")
    for name, M in (("B", B), ("C", C)):
        if M.dim() == 2:
            if M.shape != A.shape:
                raise ValueError(f"time-invariant {name} must be (D, N) = {tuple(A.shape)}; got {tuple(M.shape)}")
        elif M.dim() in (3, 4):
            if M.shape[0] != u.shape[0] or M.shape[-1] != u.shape[2] or M.shape[-2] != A.shape[1]:
                raise ValueError(f"{name} must be (batch, [G,] N, L); got {tuple(M.shape)}")
        else:
            raise ValueError(f"{name} must be 2-, 3- or 4-dimensional; got {tuple(M.shape)}")


# ----------------------------------------------------------------------------------------------------------
# reference: the readable version


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, initial_state=None):
    """Pure-PyTorch selective scan: discretise, then one loop over time (see module docstring)."""
    _check(u, delta, A, B, C)
    dtype_in = u.dtype
    ct = _compute_dtype(u, delta, A, B, C)
    u, delta, A, B, C = (t.to(ct) for t in (u, delta, A, B, C))
    delta = _prepare_delta(delta, delta_bias, delta_softplus)  # (b, D, L)
    dim = u.shape[1]

    # zero-order-hold discretisation, for every step at once
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # Ā_t = exp(Δ_t A)   (b, D, L, N)
    if B.dim() == 2:
        dBu = torch.einsum("bdl,dn->bdln", delta * u, B)  # Δ_t B u_t        (b, D, L, N)
    else:
        dBu = torch.einsum("bdl,bdnl->bdln", delta * u, _per_channel(B, dim))
    # C_t for every step: L x (b, D, N), or the same (D, N) matrix when C is time-invariant
    C_steps = [C] * u.shape[-1] if C.dim() == 2 else _per_channel(C, dim).unbind(-1)

    h = u.new_zeros(u.shape[0], dim, A.shape[1]) if initial_state is None else initial_state.to(ct)  # h_{-1} (b, D, N)
    ys = []
    # unbind once: one autograd node for all steps, so the backward stays O(L)
    for dA_t, dBu_t, C_t in zip(dA.unbind(2), dBu.unbind(2), C_steps):
        h = dA_t * h + dBu_t  # h_t = Ā_t ⊙ h_{t-1} + Δ_t B_t u_t
        ys.append((h * C_t).sum(-1))  # y_t = <C_t, h_t>   (b, D)
    y = torch.stack(ys, dim=-1)  # (b, D, L)
    out = _finish(y, u, D, z).to(dtype_in)
    return (out, h.to(dtype_in)) if return_last_state else out


# ----------------------------------------------------------------------------------------------------------
# parallel: associative scan in pure PyTorch (GPU fallback)


def _associative_scan(a: Tensor, b: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Inclusive scan of h_t = a_t h_{t-1} + b_t along ``dim`` (h_{-1} = 0), in log2(L) steps.

    Returns (prod_{s<=t} a_s, h_t).  Composition of steps is associative:
    (a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2).
    """
    length, k = a.shape[dim], 1
    while k < length:
        a_prev, b_prev = a.narrow(dim, 0, length - k), b.narrow(dim, 0, length - k)
        a_cur, b_cur = a.narrow(dim, k, length - k), b.narrow(dim, k, length - k)
        b = torch.cat([b.narrow(dim, 0, k), a_cur * b_prev + b_cur], dim)
        a = torch.cat([a.narrow(dim, 0, k), a_cur * a_prev], dim)
        k *= 2
    return a, b


def selective_scan_parallel(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                            return_last_state=False, initial_state=None, chunk: int = 64):
    """Selective scan without a Python loop over time: scan inside chunks of ``chunk`` steps, then across
    chunk carries, then combine (h_t = h_t^{local} + Ā_{chunk start..t} h_{carry})."""
    _check(u, delta, A, B, C)
    dtype_in = u.dtype
    ct = _compute_dtype(u, delta, A, B, C)
    u, delta, A, B, C = (t.to(ct) for t in (u, delta, A, B, C))
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    n = A.shape[1]
    a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # (b, D, L, N)
    Bd = B[None, :, None, :] if B.dim() == 2 else _per_channel(B, dim).transpose(-1, -2)
    bu = (delta * u)[..., None] * Bd  # (b, D, L, N)
    if initial_state is not None:  # h_0 = a_0 h_{-1} + b_0: the initial state enters through the first step
        bu = torch.cat([bu[:, :, :1] + a[:, :, :1] * initial_state.to(ct)[:, :, None], bu[:, :, 1:]], dim=2)

    t = min(chunk, length)
    pad = (-length) % t
    if pad:  # padded steps: a = 1, b = 0 leave the state unchanged
        a = F.pad(a, (0, 0, 0, pad), value=1.0)
        bu = F.pad(bu, (0, 0, 0, pad))
    nc = (length + pad) // t
    a = a.view(batch, dim, nc, t, n)
    bu = bu.view(batch, dim, nc, t, n)
    a_cum, h_local = _associative_scan(a, bu, dim=3)  # within chunks
    _, h_end = _associative_scan(a_cum[:, :, :, -1], h_local[:, :, :, -1], dim=2)  # state after each chunk
    carry = F.pad(h_end[:, :, :-1], (0, 0, 1, 0))  # state entering each chunk (b, D, nc, N)
    h = (h_local + a_cum * carry[:, :, :, None]).view(batch, dim, nc * t, n)[:, :, :length]  # (b, D, L, N)

    Cd = C[None, :, None, :] if C.dim() == 2 else _per_channel(C, dim).transpose(-1, -2)
    y = (h * Cd).sum(-1)  # (b, D, L)
    out = _finish(y, u, D, z).to(dtype_in)
    return (out, h[:, :, -1].to(dtype_in)) if return_last_state else out


# ----------------------------------------------------------------------------------------------------------
# cpu: the fused C++ kernel


def _call_kernel(direction: str, ref: Tensor, pointers, seqs, groups, dims, softplus: bool) -> None:
    """Call ``padm_scan_{fwd,bwd}_{f32,f64}`` with pointer, stride and dims arrays (see the C++ file)."""
    ptrs = (ctypes.c_void_p * len(pointers))(*[t.data_ptr() if t is not None else None for t in pointers])
    strides: list[int] = []
    for t in seqs:  # (batch, dim, len) views; absent ones get zeros
        strides += list(t.stride()) if t is not None else [0, 0, 0]
    for t in groups:  # (batch, groups, N, len) views
        strides += list(t.stride())
    st = (ctypes.c_int64 * len(strides))(*strides)
    dm = (ctypes.c_int64 * 5)(*dims)
    _native.kernel(f"scan_{direction}", ref)(ptrs, st, dm, int(softplus), torch.get_num_threads())


def _empty_in_layout(t: Tensor) -> Tensor:
    """An empty (batch, D, L) gradient for ``t`` in its memory order: time-major (a transposed (batch, L, D)
    tensor) when ``t`` is, even where ``t`` is a slice (``empty_like`` would make the gradient of
    the Mamba block's gate ``z``, a slice of its input projection, (batch, D, L)-contiguous, and its
    consumer then copies it back transposed)."""
    batch, dim, length = t.shape
    if t.stride(1) < t.stride(2):
        return t.new_empty(batch, length, dim).transpose(1, 2)
    return t.new_empty(batch, dim, length)


def _sum_slices(buf: Tensor) -> Tensor:
    """The per-thread partial sums of a kernel, (threads, ...) -> (...); one thread's slice is returned as
    a view (a sum over one slice would copy it)."""
    return buf[0] if buf.shape[0] == 1 else buf.sum(0)


def _dense(t: Tensor | None) -> Tensor | None:
    """Strided views are passed as they are; only tensors with overlapping or negative strides are copied."""
    if t is None:
        return None
    if t.dim() and (min(t.stride()) < 0 or any(st == 0 and n > 1 for st, n in zip(t.stride(), t.shape))):
        return t.contiguous()
    return t


class _ScanCPUFunction(torch.autograd.Function):
    """The whole selective scan (bias, softplus, recurrence, D skip, SiLU gate) in the fused kernel.

    ``u, delta, z`` are (batch, D, L) views of any strides (the Mamba block passes transposed
    (batch, L, D) activations); B and C are (batch, G, N, L) views; all of one dtype (float32/float64).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus: bool, h0):
        batch, dim, length = u.shape
        groups, n = B.shape[1], A.shape[1]
        dims = (batch, dim, length, n, groups)
        need_grad = any(ctx.needs_input_grad[:8]) or ctx.needs_input_grad[9]
        out = torch.empty_like(u)  # same layout as u
        last = u.new_empty(batch, dim, n)
        chunk = _native.load().padm_scan_chunk()
        ckpt = u.new_empty(batch, dim, math.ceil(length / chunk), n) if need_grad else None
        _call_kernel("fwd", u, (u, delta, A, B, C, D, z, delta_bias, out, last, ckpt, h0), (u, delta, z, out),
                     (B, C), dims, softplus)
        if need_grad:  # the checkpoints hold h0 as the state entering chunk 0: the backward needs no more of it
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ckpt)
            ctx.softplus = softplus
            ctx.dh0 = h0 is not None and ctx.needs_input_grad[9]
        ctx.mark_non_differentiable(last)
        return out, last

    @staticmethod
    def backward(ctx, dout, _dlast):
        u, delta, A, B, C, D, z, delta_bias, ckpt = ctx.saved_tensors
        batch, dim, length = u.shape
        groups, n = B.shape[1], A.shape[1]
        threads = torch.get_num_threads()
        dout = _dense(dout)
        du, ddelta = _empty_in_layout(u), _empty_in_layout(delta)
        dz = _empty_in_layout(z) if z is not None else None
        dA_part = u.new_empty(batch, dim, n)
        dD_part, dbias_part = u.new_empty(batch, dim), u.new_empty(batch, dim)
        # (threads, batch, G, N, L) views, one slice per thread, summed below; time-major in memory, as the Mamba
        # block stores B and C (a library built from an older source, as scripts/bench_train.py
        # --baseline-kernels loads, writes (..., N, L)-contiguous buffers)
        if hasattr(_native.load(), "padm_scan_bc_grad_time_major"):
            dB_buf, dC_buf = (u.new_zeros(threads, batch, groups, length, n).transpose(-1, -2) for _ in range(2))
        else:
            dB_buf, dC_buf = (u.new_zeros(threads, batch, groups, n, length) for _ in range(2))
        dh0 = u.new_empty(batch, dim, n) if ctx.dh0 else None
        _call_kernel(
            "bwd", u,
            (u, delta, A, B, C, D, z, delta_bias, ckpt, dout, du, ddelta, dA_part, dD_part, dz, dbias_part, dB_buf,
             dC_buf, dh0),
            (u, delta, z, dout, du, ddelta, dz), (B, C), (batch, dim, length, n, groups), ctx.softplus,
        )
        return (
            du,
            ddelta,
            dA_part.sum(0),
            _sum_slices(dB_buf),
            _sum_slices(dC_buf),
            dD_part.sum(0) if D is not None else None,
            dz,
            dbias_part.sum(0) if delta_bias is not None else None,
            None,
            dh0,
        )


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, initial_state=None):
    """Selective scan with the fused CPU kernel (falls back to the reference if it is unavailable, or for
    time-invariant B/C, which the kernel does not handle)."""
    _check(u, delta, A, B, C)
    if u.is_cuda:
        raise ValueError("the 'cpu' scan backend needs CPU tensors; use backend='cuda' or 'auto'")
    if B.dim() == 2 or C.dim() == 2 or not _native.available():
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                                  initial_state)
    dtype_in = u.dtype
    ct = _compute_dtype(u, delta, A, B, C)
    Bg, Cg = _grouped(B), _grouped(C)
    if Bg.shape[1] != Cg.shape[1] or u.shape[1] % Bg.shape[1]:
        raise ValueError("B and C must have the same number of groups, dividing D")

    def prep(t):
        return _dense(t.to(ct)) if t is not None else None

    def prep_vec(t):  # per-channel parameters are read as contiguous arrays
        return t.to(ct).contiguous() if t is not None else None

    out, last = _ScanCPUFunction.apply(
        prep(u), prep(delta), prep_vec(A), prep(Bg), prep(Cg), prep_vec(D), prep(z), prep_vec(delta_bias),
        bool(delta_softplus), prep_vec(initial_state),
    )
    out = out.to(dtype_in)
    return (out, last.to(dtype_in)) if return_last_state else out


_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def selective_scan_cuda(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                        return_last_state=False, initial_state=None):
    """mamba-ssm's CUDA kernel for GPU tensors when installed, else the ``parallel`` PyTorch scan.

    The kernel handles float32/float16/bfloat16 and no initial state; float64 (gradchecks, golden tests)
    and an ``initial_state`` take ``parallel``.
    """
    if u.is_cuda and u.dtype in _KERNEL_DTYPES and initial_state is None and mamba_kernel_available():
        return _mamba_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return selective_scan_parallel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                                   initial_state)


_IMPLS = {
    "reference": selective_scan_ref,
    "cpu": selective_scan_cpu,
    "parallel": selective_scan_parallel,
    "cuda": selective_scan_cuda,
}


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """The concrete backend ``backend`` (``None``: the run-time setting) stands for on ``device``."""
    return _backend.resolve(backend, device.type == "cuda")


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, initial_state=None, backend: str | None = None):
    """Selective scan with ``selective_scan_fn`` semantics (module docstring), on the chosen backend
    (``None``: :func:`padm.ops.backend.current`).

    ``initial_state`` (batch, D, N), an extension: the state :math:`h_{-1}` before step 0 instead of zero, so
    that a long sequence can be scanned in pieces, each starting from the ``return_last_state`` of the one
    before (differentiable on every backend).
    """
    if initial_state is not None and initial_state.shape != (u.shape[0], u.shape[1], A.shape[1]):
        raise ValueError(f"initial_state must be (batch, D, N) = {(u.shape[0], u.shape[1], A.shape[1])}; "
                         f"got {tuple(initial_state.shape)}")
    impl = _IMPLS[resolve_backend(backend, u.device)]
    return impl(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, initial_state)


# ----------------------------------------------------------------------------------------------------------
# causal depthwise conv1d


def causal_conv1d_ref(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    r"""y[b, d, t] = bias[d] + \sum_{k=0}^{K-1} w[d, k] x[b, d, t - K + 1 + k]  (x = 0 before t = 0).

    Written as K shifted multiply-adds, the definition itself.  x: (batch, D, L); weight: (D, K).
    """
    k = weight.shape[-1]
    xp = F.pad(x, (k - 1, 0))  # (b, D, L + K - 1): zeros in the past
    y = sum(weight[:, i, None] * xp[..., i : i + x.shape[-1]] for i in range(k))
    if bias is not None:
        y = y + bias[:, None]
    return F.silu(y) if activation in ("silu", "swish") else y


def _i64(values) -> ctypes.Array:
    values = list(values)
    return (ctypes.c_int64 * len(values))(*values)


class _CausalConv1dCPUFunction(torch.autograd.Function):
    """Fused causal depthwise conv1d (+ SiLU) on channel-last activations, with its own backward.

    ``xl``: (batch, L, D) view with unit channel stride; ``wT``: (K, D) contiguous.  Returns (batch, L, D).
    """

    @staticmethod
    def forward(ctx, xl, wT, bias, silu: bool):
        batch, length, dim = xl.shape
        k = wT.shape[0]
        out = xl.new_empty(batch, length, dim)
        _native.kernel("conv_fwd", xl)(
            xl.data_ptr(), _i64(xl.stride()), wT.data_ptr(), _ptr(bias), out.data_ptr(), int(silu),
            _i64((batch, length, dim, k)), torch.get_num_threads(),
        )
        ctx.save_for_backward(xl, wT, bias)
        ctx.silu = silu
        return out

    @staticmethod
    def backward(ctx, dout):
        xl, wT, bias = ctx.saved_tensors
        batch, length, dim = xl.shape
        k = wT.shape[0]
        dout = _dense(dout)
        threads = torch.get_num_threads()
        dx = xl.new_empty(batch, length, dim)
        dw_buf = xl.new_zeros(threads, k, dim)
        db_buf = xl.new_zeros(threads, dim)
        _native.kernel("conv_bwd", xl)(
            xl.data_ptr(), _i64(xl.stride()), wT.data_ptr(), _ptr(bias), dout.data_ptr(), _i64(dout.stride()),
            int(ctx.silu), dx.data_ptr(), dw_buf.data_ptr(), db_buf.data_ptr(), _i64((batch, length, dim, k)), threads,
        )
        return dx, _sum_slices(dw_buf), _sum_slices(db_buf) if bias is not None else None, None


def _ptr(t: Tensor | None):
    return t.data_ptr() if t is not None else None


def causal_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """Causal depthwise conv1d: causal-conv1d's CUDA kernel, the fused CPU kernel, or ``F.conv1d``.

    x: (batch, D, L), any strides; weight: (D, K) or (D, 1, K); returns (batch, D, L).  A channel-last
    input (``x.stride(1) == 1``, a transposed (batch, L, D) tensor, as the Mamba block passes) goes to
    the fused CPU kernel and comes back as the same kind of view, without copies.  The run-time
    backend (:mod:`padm.ops.backend`) selects: ``reference`` runs :func:`causal_conv1d_ref`,
    ``parallel`` ``F.conv1d``, the others the fastest kernel available.
    """
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"activation must be None or 'silu', got {activation!r}")
    w = weight.reshape(weight.shape[0], -1)  # (D, K)
    k, length = w.shape[-1], x.shape[-1]
    chosen = _backend.resolve(None, x.is_cuda)
    if chosen == "reference":
        return causal_conv1d_ref(x, w, bias, activation)
    if x.is_cuda and chosen == "cuda":
        _probe_cuda_kernels()
        if _causal_conv1d_fn is not None and x.dtype in _KERNEL_DTYPES:
            return _causal_conv1d_fn(x.contiguous(), w, bias, activation=activation)
    elif (not x.is_cuda and chosen == "cpu" and x.stride(1) == 1 and x.dtype in (torch.float32, torch.float64)
          and _native.available()):
        xl = x.transpose(1, 2)  # (batch, L, D), unit channel stride
        wT = w.t().to(x.dtype).contiguous()  # (K, D)
        b = bias.to(x.dtype).contiguous() if bias is not None else None
        return _CausalConv1dCPUFunction.apply(_dense(xl), wT, b, activation is not None).transpose(1, 2)
    y = F.conv1d(x, w.unsqueeze(1), bias, padding=k - 1, groups=x.shape[1])[..., :length]
    return F.silu(y) if activation is not None else y


__all__ = [
    "BACKENDS",
    "selective_scan",
    "selective_scan_ref",
    "selective_scan_cpu",
    "selective_scan_parallel",
    "selective_scan_cuda",
    "resolve_backend",
    "mamba_kernel_available",
    "causal_conv1d",
    "causal_conv1d_ref",
]
