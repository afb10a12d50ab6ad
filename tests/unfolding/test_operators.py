"""Operators and their adjoints, the data-fidelity gradient, the APGD step, Fourier fusion, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from padm.ops.fourier import amplitude_phase_fuse
from padm.ops.padding import crop_to, pad_to_multiple
from padm.unfolding.apgd import apgd_step
from padm.unfolding.operators import Conv2dOperator, Identity, LearnedPairConv, l2_grad


def inner(a, b):
    return (a * b).sum()


@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv_operator_adjointness(device, k):
    torch.manual_seed(0)
    op = Conv2dOperator(5, 3, k).double().to(device)
    x = torch.randn(2, 5, 13, 7, dtype=torch.float64, device=device)
    y = torch.randn(2, 3, 13, 7, dtype=torch.float64, device=device)
    assert torch.allclose(inner(op(x), y), inner(x, op.adjoint(y)), rtol=1e-12)


def test_identity_adjointness():
    x, y = torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5)
    op = Identity()
    assert torch.equal(op(x), x) and torch.equal(op.adjoint(y), y)


def test_learned_pair_is_adjoint_only_when_tied():
    torch.manual_seed(0)
    op = LearnedPairConv(6, 3).double()
    x = torch.randn(1, 6, 11, 9, dtype=torch.float64)
    y = torch.randn(1, 3, 11, 9, dtype=torch.float64)
    assert not torch.allclose(inner(op(x), y), inner(x, op.adjoint(y)))  # learned, untied
    op.tie_()
    assert torch.allclose(inner(op(x), y), inner(x, op.adjoint(y)), rtol=1e-12)


@pytest.mark.parametrize("op_factory", [Identity, lambda: Conv2dOperator(4, 3, 3).double()])
def test_l2_grad_matches_autograd(op_factory):
    torch.manual_seed(0)
    op = op_factory()
    x = torch.randn(1, 4 if isinstance(op, Conv2dOperator) else 3, 9, 8, dtype=torch.float64)
    y = torch.randn(1, 3, 9, 8, dtype=torch.float64)
    auto = torch.func.grad(lambda v: 0.5 * (op(v) - y).square().sum())(x)
    assert torch.allclose(l2_grad(op, x, y), auto, rtol=1e-12)


def test_apgd_on_background_is_the_official_convex_combination():
    B, I, R = torch.rand(3, 1, 3, 6, 5, dtype=torch.float64)
    eta = torch.rand(1, 3, 6, 5, dtype=torch.float64)
    official = (1 - eta) * B + eta * (I - R)
    assert torch.allclose(apgd_step(B, I - R, Identity(), eta), official, rtol=1e-14, atol=1e-15)


def test_apgd_zero_step_is_identity_and_unit_step_solves_identity_problem():
    x, y = torch.rand(2, 1, 3, 4, 4)
    assert torch.equal(apgd_step(x, y, Identity(), torch.zeros_like(x)), x)
    assert torch.allclose(apgd_step(x, y, Identity(), torch.ones_like(x)), y)


def test_fourier_fusion_definition():
    a = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    b = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    assert torch.allclose(amplitude_phase_fuse(a, a), a, atol=1e-12)  # identity maps, same source
    fa, fb = np.fft.rfft2(a.numpy()), np.fft.rfft2(b.numpy())
    expected = np.fft.irfft2(np.abs(fa) * np.exp(1j * np.angle(fb)), s=(9, 10))
    assert np.allclose(amplitude_phase_fuse(a, b).numpy(), expected, atol=1e-12)
    # learned maps act on the half spectra
    doubled = amplitude_phase_fuse(a, b, amp_map=lambda m: 2 * m)
    assert torch.allclose(doubled, 2 * amplitude_phase_fuse(a, b), atol=1e-12)
    with pytest.raises(ValueError):
        amplitude_phase_fuse(a, b[..., :5])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fourier_fusion_low_precision(device, dtype):
    """No bfloat16 FFT exists: the fusion computes in float32 and returns the input's dtype."""
    a, b = torch.randn(2, 2, 3, 7, 10, device=device)
    out = amplitude_phase_fuse(a.to(dtype), b.to(dtype))
    assert out.dtype == dtype
    expected = amplitude_phase_fuse(a.to(dtype).float(), b.to(dtype).float())
    assert torch.allclose(out.float(), expected, atol=0.05)


@pytest.mark.parametrize("h,w,m", [(1, 1, 32), (1, 5, 8), (5, 7, 32), (37, 53, 32), (8, 8, 8), (3, 2, 4)])
def test_pad_to_multiple(h, w, m):
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    y, size = pad_to_multiple(x, m)
    assert y.shape[-2] % m == 0 and y.shape[-1] % m == 0 and size == (h, w)
    assert torch.equal(crop_to(y, size), x)
    if h > 1 and w > 1:  # numpy's reflect extends by repeated reflection, like ours
        ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, y.shape[-2] - h), (0, y.shape[-1] - w)), mode="reflect")
        assert np.array_equal(y.numpy(), ref)


def test_pad_matches_torch_reflect_when_torch_can():
    x = torch.randn(1, 3, 37, 53)
    y, _ = pad_to_multiple(x, 32)
    assert torch.equal(y, torch.nn.functional.pad(x, (0, 11, 0, 27), mode="reflect"))
