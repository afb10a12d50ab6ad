"""Dropout added to a residual: the CPU kernel vs its PyTorch reference (the same hashed mask), and the mask's statistics."""

from __future__ import annotations

import pytest
import torch

from padm.ops import _native, backend
from padm.ops.dropout import dropout_add, dropout_add_ref, dropout_add_seeded, dropout_mask

pytestmark = pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")

SEEDS = (123456789, 4_000_000_000)


def _pair(shape, dtype, fmt, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y, dout = (torch.randn(*shape, generator=g, dtype=dtype).contiguous(memory_format=fmt) for _ in range(3))
    return x.requires_grad_(), y.requires_grad_(), dout


# odd sizes: numel not a multiple of 16 (a ragged end) and over one task of 16384 elements
@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 16, 37, 41)])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-14), (torch.float32, 1e-6)])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_matches_reference_forward_and_backward(shape, fmt, dtype, tol, threads):
    x, y, dout = _pair(shape, dtype, fmt)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = dropout_add_seeded(x, y, 0.3, *SEEDS)
        grads = torch.autograd.grad(out, (x, y), dout)
    finally:
        torch.set_num_threads(old)
    ref = dropout_add_ref(x, y, 0.3, *SEEDS)
    assert type(out.grad_fn).__name__ == "_DropoutAddBackward"
    assert out.stride() == y.stride()
    assert torch.allclose(out, ref, atol=tol, rtol=tol)
    for got, want in zip(grads, torch.autograd.grad(ref, (x, y), dout)):
        assert torch.allclose(got, want, atol=tol, rtol=tol)


def test_backward_with_a_gradient_in_another_layout():
    x, y, _ = _pair((1, 8, 9, 11), torch.float64, torch.channels_last)
    out = dropout_add_seeded(x, y, 0.5, *SEEDS)
    dout = torch.randn(1, 8, 9, 11, dtype=torch.float64)  # NCHW while y is channels-last
    got = torch.autograd.grad(out, y, dout)[0]
    want = torch.autograd.grad(dropout_add_ref(x, y, 0.5, *SEEDS), y, dout)[0]
    assert torch.allclose(got, want, atol=1e-14)


def test_gradcheck():
    x, y, _ = _pair((1, 4, 5, 3), torch.float64, torch.contiguous_format, seed=1)
    assert torch.autograd.gradcheck(lambda a, b: dropout_add_seeded(a, b, 0.25, *SEEDS), (x, y))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_mask_keeps_one_minus_p_and_is_uncorrelated_between_neighbours(p):
    n = 1 << 20
    keep = dropout_mask(n, p, 7, 11).double()
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(keep.mean().item() - (1 - p)) < 5 * sigma
    both = (keep[1:] * keep[:-1]).mean().item()  # neighbours kept together: (1-p)^2 if independent
    assert abs(both - (1 - p) ** 2) < 5 * sigma
    assert (dropout_mask(n, p, 7, 12) != dropout_mask(n, p, 7, 11)).any()  # another seed, another mask


def test_dropout_add_draws_seeds_from_torch_generator():
    x, y, _ = _pair((1, 16, 13, 17), torch.float32, torch.channels_last)
    torch.manual_seed(5)
    a, b = dropout_add(x, y, 0.2), dropout_add(x, y, 0.2)
    torch.manual_seed(5)
    assert torch.equal(dropout_add(x, y, 0.2), a)  # reproducible from the seed
    assert not torch.equal(a, b)  # each call a fresh mask
    dropped = ((a - x).abs() < 1e-7) & (y.abs() > 1e-3)
    assert 0.1 < dropped.float().mean().item() < 0.3


def test_fallbacks_are_pytorch_dropout():
    x, y, _ = _pair((1, 4, 6, 5), torch.float32, torch.contiguous_format)
    assert torch.equal(dropout_add(x, y, 0.3, training=False), x + y)
    assert torch.equal(dropout_add(x, y, 0.0), x + y)
    other = y.detach().contiguous(memory_format=torch.channels_last).requires_grad_()  # layouts differ
    assert type(dropout_add(x, other, 0.3).grad_fn).__name__ != "_DropoutAddBackward"
    with backend.use("auto", training_kernels=False):
        assert type(dropout_add(x, y, 0.3).grad_fn).__name__ != "_DropoutAddBackward"
    with backend.use("reference"):
        assert type(dropout_add(x, y, 0.3).grad_fn).__name__ != "_DropoutAddBackward"
