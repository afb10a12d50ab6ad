"""The gated depthwise convolution: fused CPU kernels (forward, backward) vs the PyTorch definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from padm.ops import _native, backend
from padm.ops.gated import gated_dwconv, gated_dwconv_ref

pytestmark = pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


# 2h = 2, 30: one partial block of lanes; 32: one whole block; 34, 42, 212: whole blocks and an overlapping tail
@pytest.mark.parametrize("shape", [(1, 2, 1, 1), (2, 30, 3, 5), (1, 32, 4, 3), (2, 42, 13, 17), (1, 212, 9, 31),
                                   (3, 34, 5, 2)])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-13), (torch.float32, 1e-6)])
def test_fused_matches_definition(shape, dtype, tol):
    torch.manual_seed(0)
    u = torch.randn(*shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(shape[1], 1, 3, 3, dtype=dtype)
    with torch.no_grad():
        out = gated_dwconv(u, w)
    a, b = F.conv2d(u, w, padding=1, groups=shape[1]).chunk(2, 1)
    ref = 0.5 * a * (1 + torch.erf(a / 2**0.5)) * b  # GELU written out
    assert out.shape == (shape[0], shape[1] // 2, *shape[2:])
    assert rel(out, ref) < tol


def test_training_takes_the_differentiable_path():
    u = torch.randn(1, 8, 6, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(8, 1, 3, 3, requires_grad=True)
    out = gated_dwconv(u, w)
    assert out.grad_fn is not None
    out.sum().backward()
    assert u.grad is not None and w.grad is not None


def test_non_channels_last_input_uses_reference():
    u = torch.randn(1, 8, 6, 7)
    w = torch.randn(8, 1, 3, 3)
    with torch.no_grad():
        assert torch.allclose(gated_dwconv(u, w), gated_dwconv_ref(u, w))


# --- training: the fused backward against autograd through the definition


def _grads(fn, u, w, g):
    return torch.autograd.grad(fn(u, w), (u, w), g)


@pytest.mark.parametrize("shape", [(1, 2, 1, 1), (2, 30, 3, 5), (1, 32, 4, 3), (2, 42, 13, 17), (1, 212, 9, 31),
                                   (3, 34, 5, 2)])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_backward_matches_autograd(shape, threads):
    torch.manual_seed(1)
    u = torch.randn(*shape, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(shape[1], 1, 3, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(shape[0], shape[1] // 2, *shape[2:], dtype=torch.float64)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = gated_dwconv(u, w)
        assert type(out.grad_fn).__name__ == "_GatedDWBackward"  # the fused op, not the definition
        du, dw = torch.autograd.grad(out, (u, w), g)
    finally:
        torch.set_num_threads(old)
    rdu, rdw = _grads(gated_dwconv_ref, u, w, g)
    assert rel(du, rdu) < 1e-13 and rel(dw, rdw) < 1e-13


def test_fused_backward_float32_and_nchw_input():
    torch.manual_seed(2)
    u = torch.randn(2, 84, 19, 23, requires_grad=True)  # NCHW: the op makes its own channels-last copy
    w = torch.randn(84, 1, 3, 3, requires_grad=True)
    g = torch.randn(2, 42, 19, 23)
    du, dw = _grads(gated_dwconv, u, w, g)
    rdu, rdw = _grads(gated_dwconv_ref, u, w, g)
    assert rel(du, rdu) < 1e-5 and rel(dw, rdw) < 1e-5


def test_fused_op_passes_gradcheck():
    torch.manual_seed(3)
    u = torch.randn(1, 36, 5, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(36, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gated_dwconv, (u, w))


def test_training_kernels_switch_selects_the_definition():
    u = torch.randn(1, 8, 6, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(8, 1, 3, 3, requires_grad=True)
    with backend.use("auto", training_kernels=False):
        assert backend.training_kernels() is False
        assert type(gated_dwconv(u, w).grad_fn).__name__ != "_GatedDWBackward"
        with torch.no_grad():  # inference keeps its kernel
            assert torch.allclose(gated_dwconv(u, w), gated_dwconv_ref(u, w), atol=1e-6)
    assert backend.training_kernels() is True
    with backend.use("reference"):
        assert type(gated_dwconv(u, w).grad_fn).__name__ != "_GatedDWBackward"
