"""The tasks on the task-free core: the deblurring operator, the generic image network, the
degradations, and the registry."""

from __future__ import annotations

import pytest
import torch

from padm.unfolding.image_net import ImageInputs, ImageUnfolding, Measurement, image_init, image_stage
from padm.unfolding.operators import Identity, l2_grad
from padm.unfolding.tasks import TASKS, get_task, task_of
from padm.unfolding.tasks.deblur import BlurSettings, DeblurConfig, FFTBlur, random_kernels
from padm.unfolding.tasks.denoise import DenoiseConfig, NoiseSettings


@pytest.mark.parametrize("size", [(16, 16), (13, 21), (9, 10)])
def test_fft_blur_adjointness(device, size):
    g = torch.Generator().manual_seed(0)
    k = random_kernels(2, size=5, generator=g).double().to(device)
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
    k = random_kernels(1, size=7, generator=torch.Generator().manual_seed(1)).double()
    op = FFTBlur(k, (12, 14))
    x, y = torch.randn(2, 1, 3, 12, 14, dtype=torch.float64)
    auto = torch.func.grad(lambda v: 0.5 * (op(v) - y).square().sum())(x)
    assert torch.allclose(l2_grad(op, x, y), auto, atol=1e-12)


def test_kernels_are_normalised():
    k = random_kernels(4, generator=torch.Generator().manual_seed(0))
    assert k.shape == (4, 1, 9, 9) and torch.allclose(k.sum(dim=(-2, -1)), torch.ones(4, 1))


@pytest.mark.parametrize("shape", [(2, 3, 16, 20), (1, 3, 13, 9)])
@pytest.mark.parametrize("name", ["deblur", "denoise"])
def test_image_tasks_run_and_train(name, shape):
    torch.manual_seed(0)
    task = get_task(name)
    net = task.build(task.config_cls.preset("tiny"))
    clean = torch.rand(*shape)
    sample = task.degrade(clean, list(range(shape[0])), task.degradation_cls())
    out = net(task.inputs(sample.degraded, sample.aux))
    assert len(out.x) == 2 and all(o.shape == shape for o in out.x)
    assert task.predict(out) is out.x[-1]
    sum(o.abs().mean() for o in out.x).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_image_stage_is_a_gradient_step_then_a_proximal_step():
    """Behaviour, not source text: one stage equals x − η ⊙ Aᵀ(Ax − y) followed by x̂ + U(x̂), computed
    by hand from the stage's own step-size and proximal networks."""
    torch.manual_seed(0)
    net = ImageUnfolding(DeblurConfig.preset("tiny")).double().eval()
    y = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    op = FFTBlur(random_kernels(1, size=3).double(), (8, 8))
    inp = ImageInputs(y=y, op=op)
    p = net.stages[0]
    with torch.no_grad():
        s0 = image_init(inp, net.init)
        s1 = image_stage(s0, inp, p)
        eta = p.eta(s0.feats.dec[-1])
        x_hat = s0.x - eta * op.adjoint(op(s0.x) - y)
        residual, _ = p.prox(x_hat, s0.feats)
    assert torch.allclose(s1.eta, eta) and torch.allclose(s1.x, x_hat + residual, atol=1e-12)


def test_denoise_degradation_is_seeded_and_at_sigma():
    task, clean = get_task("denoise"), torch.full((2, 3, 64, 64), 0.5)
    a = task.degrade(clean, [7, 8], NoiseSettings(sigma=25))
    b = task.degrade(clean, [7, 8], NoiseSettings(sigma=25))
    assert torch.equal(a.degraded, b.degraded) and not torch.equal(a.degraded[0], a.degraded[1])
    assert (a.degraded - clean).std().item() == pytest.approx(25 / 255, rel=0.03)
    blind = task.degrade(clean, [1, 2], NoiseSettings(sigma=5, sigma_max=50))
    stds = [(blind.degraded[i] - 0.5).std().item() * 255 for i in range(2)]
    assert all(5 * 0.9 < s < 50 * 1.1 for s in stds) and abs(stds[0] - stds[1]) > 0.5
    # image 0's noise depends on its own seed only, not on the other images of the batch
    alone = task.degrade(clean[:1], [7], NoiseSettings(sigma=25))
    assert torch.equal(alone.degraded[0], a.degraded[0])


def test_deblur_degradation_uses_the_operator_it_hands_the_network():
    task, clean = get_task("deblur"), torch.rand(1, 3, 20, 24)
    s = task.degrade(clean, [3], BlurSettings(noise=0.0))
    assert s.aux.shape == (1, 1, 9, 9)
    m = task.inputs(s.degraded, s.aux)
    assert torch.allclose(m.operator((20, 24))(clean), s.degraded, atol=1e-6)


def test_registry_knows_each_task_by_its_config():
    assert set(TASKS) == {"derain", "deblur", "denoise"}
    assert task_of(DenoiseConfig()).name == "denoise" and task_of(DeblurConfig()).name == "deblur"
    with pytest.raises(ValueError, match="unknown task"):
        get_task("dehaze")
    identity = get_task("denoise").inputs(torch.zeros(1, 3, 4, 4))
    assert isinstance(identity, Measurement) and isinstance(identity.operator((4, 4)), Identity)
