"""The selective scan: reference semantics, fused CPU kernel, parallel scan, CUDA path, causal conv1d."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from padm.ops import _native
from padm.ops import scan as S


def make_inputs(batch=2, dim=40, n=5, length=53, groups=2, dtype=torch.float64, device="cpu", seed=0,
                variable=True, grad=False):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    u = r(batch, dim, length)
    delta = r(batch, dim, length) * 0.5  # raw: softplus makes it positive
    A = -torch.rand(dim, n, generator=g, dtype=dtype) * 2 - 0.1
    if variable:
        B, C = r(batch, groups, n, length), r(batch, groups, n, length)
    else:
        B, C = r(dim, n), r(dim, n)
    D, z, bias = r(dim), r(batch, dim, length), r(dim) * 0.1
    out = [t.to(device) for t in (u, delta, A, B, C, D, z, bias)]
    return [t.requires_grad_() for t in out] if grad else out


def naive_scan(u, delta, A, B, C, D, z, bias):
    """The recurrence written element by element, straight from the definition (float64, tiny sizes)."""
    batch, dim, length = u.shape
    n = A.shape[1]
    per_group = dim // B.shape[1]
    out = torch.zeros_like(u)
    for b in range(batch):
        for d in range(dim):
            g = d // per_group
            h = [0.0] * n
            for t in range(length):
                dt = math.log1p(math.exp(delta[b, d, t].item() + bias[d].item()))  # softplus
                y = 0.0
                for i in range(n):
                    h[i] = math.exp(dt * A[d, i].item()) * h[i] + dt * B[b, g, i, t].item() * u[b, d, t].item()
                    y += C[b, g, i, t].item() * h[i]
                y += D[d].item() * u[b, d, t].item()
                zt = z[b, d, t].item()
                out[b, d, t] = y * zt / (1 + math.exp(-zt))  # y * silu(z)
    return out


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def test_reference_matches_definition():
    args = make_inputs(batch=1, dim=4, n=3, length=7, groups=2)
    out = S.selective_scan_ref(*args, delta_softplus=True)
    assert rel_err(out, naive_scan(*args)) < 1e-12


@pytest.mark.parametrize("backend", ["cpu", "parallel"])
@pytest.mark.parametrize("softplus", [True, False])
@pytest.mark.parametrize("groups,dim", [(1, 40), (2, 40), (3, 21), (1, 16), (1, 3)])
def test_backend_matches_reference_f64(backend, softplus, groups, dim):
    args = make_inputs(dim=dim, groups=groups, length=131)
    if not softplus:
        args[1] = args[1].abs()  # keep Δ >= 0 so the recurrence is stable
    ref, ref_last = S.selective_scan_ref(*args, delta_softplus=softplus, return_last_state=True)
    out, last = S.selective_scan(*args, delta_softplus=softplus, return_last_state=True, backend=backend)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    assert rel_err(out, ref) < 1e-12
    assert rel_err(last, ref_last) < 1e-12


@pytest.mark.parametrize("backend", ["cpu", "parallel"])
def test_optional_inputs_and_3d_bc(backend):
    u, delta, A, B, C, D, z, bias = make_inputs(groups=1, length=77)
    B3, C3 = B[:, 0], C[:, 0]  # (batch, N, L)
    for kwargs in ({}, {"D": D}, {"z": z}, {"delta_bias": bias}, {"D": D, "z": z, "delta_bias": bias}):
        ref = S.selective_scan_ref(u, delta.abs(), A, B3, C3, **kwargs)
        out = S.selective_scan(u, delta.abs(), A, B3, C3, backend=backend, **kwargs)
        assert rel_err(out, ref) < 1e-12, kwargs


def test_time_invariant_bc_falls_back():
    args = make_inputs(variable=False, length=31)
    ref = S.selective_scan_ref(*args, delta_softplus=True)
    for backend in ("cpu", "parallel"):
        assert rel_err(S.selective_scan(*args, delta_softplus=True, backend=backend), ref) < 1e-12


@pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")
@pytest.mark.parametrize("softplus", [True, False])
def test_cpu_kernel_gradcheck(softplus):
    args = make_inputs(batch=2, dim=18, n=3, length=70, groups=2, grad=True)
    if not softplus:
        with torch.no_grad():
            args[1].abs_()
    fn = lambda *a: S.selective_scan_cpu(*a, delta_softplus=softplus)  # noqa: E731
    # random projections over the whole input (fast mode), then every entry on a smaller problem
    assert torch.autograd.gradcheck(fn, args, fast_mode=True)
    small = make_inputs(batch=1, dim=6, n=2, length=66, groups=2, grad=True)
    if not softplus:
        with torch.no_grad():
            small[1].abs_()
    assert torch.autograd.gradcheck(fn, small)


@pytest.mark.parametrize("backend", ["cpu", "parallel"])
def test_initial_state_matches_reference_with_gradients(backend):
    """h_{-1} = initial_state: output, last state and every gradient (the state's included) as the reference."""
    args = make_inputs(batch=2, dim=19, n=16, length=150, groups=1, grad=True)
    h0 = torch.randn(2, 19, 16, dtype=torch.float64, requires_grad=True)
    w = torch.cos(torch.arange(150, dtype=torch.float64))  # a loss that weighs every step differently
    results = {}
    for name in ("reference", backend):
        out, last = S.selective_scan(*args, delta_softplus=True, return_last_state=True, initial_state=h0,
                                     backend=name)
        results[name] = (out, last, torch.autograd.grad((out * w).sum(), [*args, h0]))
    (ref, ref_last, ref_grads), (out, last, grads) = results["reference"], results[backend]
    assert rel_err(out, ref) < 1e-12 and rel_err(last, ref_last) < 1e-12
    for a, b in zip(grads, ref_grads):
        assert rel_err(a, b) < 1e-10
    assert grads[-1].abs().max() > 0  # the state does reach the output


@pytest.mark.parametrize("backend", ["reference", "cpu", "parallel"])
def test_a_sequence_scanned_in_pieces_equals_the_whole(backend):
    u, delta, A, B, C, D, z, bias = make_inputs(batch=2, dim=21, n=4, length=131, groups=3)
    whole = S.selective_scan(u, delta, A, B, C, D, z, bias, True, backend=backend)
    pieces, h = [], None
    for t0, t1 in ((0, 40), (40, 41), (41, 131)):  # a piece of one step too
        cut = lambda t: t[..., t0:t1]  # noqa: E731
        out, h = S.selective_scan(cut(u), cut(delta), A, cut(B), cut(C), D, cut(z), bias, True,
                                  return_last_state=True, initial_state=h, backend=backend)
        pieces.append(out)
    assert rel_err(torch.cat(pieces, -1), whole) < 1e-12


def test_initial_state_of_the_wrong_shape_raises():
    args = make_inputs(batch=1, dim=4, n=3, length=7)
    with pytest.raises(ValueError, match="initial_state"):
        S.selective_scan(*args, initial_state=torch.zeros(1, 4, 2, dtype=torch.float64))


@pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")
def test_cpu_kernel_gradcheck_with_initial_state():
    args = make_inputs(batch=1, dim=6, n=2, length=66, groups=2, grad=True)
    h0 = torch.randn(1, 6, 2, dtype=torch.float64, requires_grad=True)
    fn = lambda *a: S.selective_scan_cpu(*a[:-1], delta_softplus=True, initial_state=a[-1])  # noqa: E731
    assert torch.autograd.gradcheck(fn, (*args, h0))


@pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")
def test_cpu_kernel_gradcheck_without_optionals():
    u, delta, A, B, C, *_ = make_inputs(batch=1, dim=5, n=4, length=65, groups=1, grad=True)
    assert torch.autograd.gradcheck(lambda *a: S.selective_scan_cpu(*a), (u, delta.abs().detach().requires_grad_(), A, B, C))


@pytest.mark.parametrize("backend", ["cpu", "parallel"])
@pytest.mark.parametrize("length", [1, 63, 64, 65, 300])
def test_float32_forward_and_gradients_match_reference(backend, length):
    args = make_inputs(dim=37, n=16, length=length, groups=1, dtype=torch.float32, grad=True)
    ref = S.selective_scan_ref(*args, delta_softplus=True)
    grads_ref = torch.autograd.grad(ref, args, torch.ones_like(ref))
    out = S.selective_scan(*args, delta_softplus=True, backend=backend)
    grads = torch.autograd.grad(out, args, torch.ones_like(out))
    assert rel_err(out, ref) < 1e-5
    for name, g, gr in zip("u delta A B C D z bias".split(), grads, grads_ref):
        assert rel_err(g, gr) < 1e-5, name


@pytest.mark.slow
@pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")
@pytest.mark.parametrize("dim", [80, 160])
def test_float32_benchmark_shape_l4096(dim):
    """float32 outputs and gradients agree to 1e-5 relative on a benchmark shape (N=16, L=4096)."""
    args = make_inputs(batch=1, dim=dim, n=16, length=4096, groups=1, dtype=torch.float32, grad=True)
    ref = S.selective_scan_ref(*args, delta_softplus=True)
    grads_ref = torch.autograd.grad(ref, args, torch.ones_like(ref))
    out = S.selective_scan_cpu(*args, delta_softplus=True)
    grads = torch.autograd.grad(out, args, torch.ones_like(out))
    assert rel_err(out, ref) < 1e-5
    for name, g, gr in zip("u delta A B C D z bias".split(), grads, grads_ref):
        assert rel_err(g, gr) < 1e-5, name


def test_half_precision_inputs_are_upcast():
    args = make_inputs(dtype=torch.float32, length=40, groups=1)
    ref = S.selective_scan_ref(*args, delta_softplus=True)
    out = S.selective_scan_cpu(*[a.to(torch.bfloat16) for a in args], delta_softplus=True)
    assert out.dtype == torch.bfloat16
    assert rel_err(out.float(), ref) < 5e-2


def test_kernel_is_multithread_consistent():
    if not _native.available():
        pytest.skip("fused kernel could not be built")
    args = make_inputs(batch=3, dim=70, n=8, length=150, groups=2, dtype=torch.float64, grad=True)
    prev = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = S.selective_scan_cpu(*args, delta_softplus=True)
            results.append([out, *torch.autograd.grad(out.square().sum(), args)])
    finally:
        torch.set_num_threads(prev)
    for a, b in zip(*results):
        assert rel_err(a, b) < 1e-12


def test_gradients_of_time_major_slices_stay_time_major_and_match_reference():
    """The Mamba block's layout: x, z halves of one (batch, L, 2D) projection, B, C slices of one (batch, L, 2N)
    tensor, all passed transposed.  The kernel's gradients keep that time-major memory order (so the
    consumers' concatenations copy no transposed data) and equal the reference's."""
    if not _native.available():
        pytest.skip("fused kernel could not be built")
    g = torch.Generator().manual_seed(3)
    batch, dim, n, length = 2, 19, 4, 97
    xz = torch.randn(batch, length, 2 * dim, generator=g, dtype=torch.float64, requires_grad=True)
    bc = torch.randn(batch, length, 2 * n, generator=g, dtype=torch.float64, requires_grad=True)
    delta = (0.5 * torch.randn(batch, length, dim, generator=g, dtype=torch.float64)).requires_grad_()
    A = -torch.rand(dim, n, generator=g, dtype=torch.float64) - 0.1
    seen = {}

    def run(fn):
        u, z = xz[..., :dim].transpose(1, 2), xz[..., dim:].transpose(1, 2)  # (batch, D, L) views
        B, C = bc[..., :n].transpose(1, 2), bc[..., n:].transpose(1, 2)  # (batch, N, L) views
        dl = delta.transpose(1, 2)
        for name, t in (("u", u), ("z", z), ("B", B), ("delta", dl)):
            t.register_hook(lambda grad, name=name: seen.__setitem__(name, grad.stride()))
        out = fn(u, dl, A, B, C, None, z, None, delta_softplus=True)
        return torch.autograd.grad(out.square().sum(), (xz, bc, delta))

    ref = run(S.selective_scan_ref)
    fused = run(S.selective_scan_cpu)
    for name in ("u", "z", "delta", "B"):
        stride = seen[name]
        assert stride[1] < stride[2], f"d{name} is not time-major: strides {stride}"
    for a, b in zip(fused, ref):
        assert rel_err(a, b) < 1e-10


def test_fallback_when_kernel_unavailable(monkeypatch):
    monkeypatch.setattr(_native, "_lib", None)
    monkeypatch.setattr(_native, "_tried", False)
    monkeypatch.setenv("PADM_NO_NATIVE", "1")
    args = make_inputs(length=20)
    with pytest.warns(RuntimeWarning, match="fused CPU scan kernel unavailable"):
        out = S.selective_scan(*args, delta_softplus=True, backend="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, not on every call
        S.selective_scan(*args, delta_softplus=True, backend="cpu")
    assert rel_err(out, S.selective_scan_ref(*args, delta_softplus=True)) < 1e-12
    assert "PADM_NO_NATIVE" in _native.unavailable_reason()


def test_bad_shapes_raise_value_error():
    u, delta, A, B, C, *_ = make_inputs()
    with pytest.raises(ValueError):
        S.selective_scan(u[0], delta, A, B, C)
    with pytest.raises(ValueError):
        S.selective_scan(u, delta, A[:3], B, C)
    with pytest.raises(ValueError):
        S.selective_scan(u, delta, A, B[..., :5], C)
    with pytest.raises(ValueError):
        S.selective_scan(u, delta, A, B, C, backend="fast")


def test_auto_backend_resolution():
    assert S.resolve_backend("auto", torch.device("cpu")) == "cpu"
    assert S.resolve_backend("auto", torch.device("cuda")) == "cuda"
    assert S.resolve_backend("reference", torch.device("cuda")) == "reference"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_backend_matches_reference():
    """Runs wherever CUDA is present: mamba-ssm's kernel when installed, else the parallel scan."""
    args = make_inputs(batch=2, dim=64, n=16, length=1000, groups=1, dtype=torch.float32, grad=True, device="cuda")
    ref = S.selective_scan_ref(*args, delta_softplus=True)
    grads_ref = torch.autograd.grad(ref, args, torch.ones_like(ref))
    out = S.selective_scan(*args, delta_softplus=True, backend="cuda")
    grads = torch.autograd.grad(out, args, torch.ones_like(out))
    assert rel_err(out, ref) < 1e-4
    for g, gr in zip(grads, grads_ref):
        assert rel_err(g, gr) < 1e-3


def test_mamba_not_imported_on_cpu():
    import sys

    S.selective_scan(*make_inputs(length=5), delta_softplus=True)
    S.causal_conv1d(torch.randn(1, 4, 9), torch.randn(4, 4))
    if not torch.cuda.is_available():
        assert "mamba_ssm" not in sys.modules and "causal_conv1d" not in sys.modules


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_causal_conv1d_matches_definition(device, k, activation):
    x = torch.randn(2, 6, 29, dtype=torch.float64, device=device)
    w = torch.randn(6, k, dtype=torch.float64, device=device)
    b = torch.randn(6, dtype=torch.float64, device=device)
    ref = S.causal_conv1d_ref(x, w, b, activation)
    out = S.causal_conv1d(x, w.unsqueeze(1), b, activation)
    assert rel_err(out, ref) < 1e-12
    # causality: changing the future leaves the past unchanged
    x2 = x.clone()
    x2[..., 20:] += 1
    assert torch.equal(S.causal_conv1d(x2, w, b, activation)[..., :20], out[..., :20])


@pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")
@pytest.mark.parametrize("length", [1, 5, 255, 256, 600])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_fused_causal_conv1d_channel_last(length, activation):
    """Channel-last input (the Mamba block's layout) takes the fused kernel: values and gradients."""
    torch.manual_seed(0)
    xz = torch.randn(2, length, 42, dtype=torch.float64, requires_grad=True)  # a (b, L, 2D) projection
    w = torch.randn(21, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(21, dtype=torch.float64, requires_grad=True)
    x = xz[..., :21].transpose(1, 2)  # (b, D, L) view, channel stride 1
    out = S.causal_conv1d(x, w, b, activation)
    ref = S.causal_conv1d_ref(x, w, b, activation)
    assert out.shape == ref.shape and out.stride(1) == 1
    assert rel_err(out, ref) < 1e-12
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (xz, w, b), g)
    grads_ref = torch.autograd.grad(ref, (xz, w, b), g)
    for a, r in zip(grads, grads_ref):
        assert rel_err(a, r) < 1e-12


@pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")
def test_fused_causal_conv1d_gradcheck_and_threads():
    xl = torch.randn(3, 300, 19, dtype=torch.float64, requires_grad=True)
    w = torch.randn(19, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(19, dtype=torch.float64, requires_grad=True)
    fn = lambda a, ww, bb: S.causal_conv1d(a.transpose(1, 2), ww, bb, "silu")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (xl, w, b), fast_mode=True)
    prev = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = fn(xl, w, b)
            results.append([out, *torch.autograd.grad(out.square().sum(), (xl, w, b))])
    finally:
        torch.set_num_threads(prev)
    for a, c in zip(*results):
        assert rel_err(a, c) < 1e-12
