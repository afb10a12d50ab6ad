"""The second task on the engine: non-blind deblurring with an exact FFT blur operator."""

from __future__ import annotations

import inspect

import pytest
import torch

from padm.unfolding import deblur as D
from padm.unfolding.operators import FFTBlur, l2_grad


@pytest.mark.parametrize("size", [(16, 16), (13, 21), (9, 10)])
def test_fft_blur_adjointness(device, size):
    g = torch.Generator().manual_seed(0)
    k = D.random_kernels(2, size=5, generator=g).double().to(device)
    op = FFTBlur(k, size).to(device)
    x = torch.randn(2, 3, *size, dtype=torch.float64, device=device)
    y = torch.randn(2, 3, *size, dtype=torch.float64, device=device)
    assert torch.allclose((op(x) * y).sum(), (x * op.adjoint(y)).sum(), rtol=1e-12)


def test_fft_blur_is_a_centred_circular_convolution():
    x = torch.zeros(1, 1, 11, 12, dtype=torch.float64)
    x[..., 5, 6] = 1.0  # an impulse away from the borders returns the kernel itself, centred on it
    k = torch.arange(9, dtype=torch.float64).view(1, 1, 3, 3)
    out = FFTBlur(k, (11, 12))(x)
    assert torch.allclose(out[0, 0, 4:7, 5:8], k[0, 0], atol=1e-12)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="circular"), k.flip(-1, -2))
    assert torch.allclose(out, ref, atol=1e-12)


def test_blur_gradient_matches_autograd():
    k = D.random_kernels(1, size=7, generator=torch.Generator().manual_seed(1)).double()
    op = FFTBlur(k, (12, 14))
    x, y = torch.randn(2, 1, 3, 12, 14, dtype=torch.float64)
    auto = torch.func.grad(lambda v: 0.5 * (op(v) - y).square().sum())(x)
    assert torch.allclose(l2_grad(op, x, y), auto, atol=1e-12)


def test_kernels_are_normalised():
    k = D.random_kernels(4, generator=torch.Generator().manual_seed(0))
    assert k.shape == (4, 1, 9, 9) and torch.allclose(k.sum(dim=(-2, -1)), torch.ones(4, 1))


@pytest.mark.parametrize("shape", [(2, 3, 16, 20), (1, 3, 13, 9)])
def test_deblur_net_runs_and_trains(shape):
    torch.manual_seed(0)
    net = D.DeblurNet(D.DeblurConfig(n_feat=4, stages=2, depth=2, d_state=4))
    x = torch.rand(*shape)
    k = D.random_kernels(shape[0], size=5)
    y = D.degrade(x, k, 0.01) if shape[-1] % 2 == 0 and shape[-2] % 2 == 0 else x
    outs = net(y, k)
    assert len(outs) == 3 and all(o.shape == shape for o in outs)
    sum(o.abs().mean() for o in outs).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_deblurring_reuses_the_stage_pieces():
    """No stage code is copied: the deblurring stage calls the same APGD/SFPM functions as deraining."""
    src = inspect.getsource(D.deblur_stage) + inspect.getsource(D.deblur_init)
    assert "apgd_step(" in src and "sfpm_step(" in src
    assert D.apgd_step is __import__("padm.unfolding.apgd", fromlist=["apgd_step"]).apgd_step
    assert D.unroll is __import__("padm.unfolding.engine", fromlist=["unroll"]).unroll
