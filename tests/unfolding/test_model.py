"""The PADM network: any image size, clear errors, configs, weight sharing, pure stages, gradients."""

from __future__ import annotations

import attrs
import pytest
import torch

from padm.ops import backend as ops_backend

from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.engine import StageParams, unroll
from padm.unfolding.tasks.derain.model import PADM, DerainState, count_parameters, derain_stage, init_stage

TINY = PADMConfig(n_feat=4, stages=1, depth=2, d_state=4)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return PADM(TINY).eval()


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 3, 5, 3), (1, 3, 37, 53), (3, 3, 9, 30), (1, 3, 2, 70)])
def test_any_size(tiny_model, device, shape):
    model = tiny_model.to(device)
    x = torch.rand(*shape, device=device)
    with torch.no_grad():
        out = model(x)
    assert len(out.B) == len(out.R) == len(out.eta_B) == len(out.eta_z) == TINY.stages + 1
    for t in out.B + out.R + out.eta_B:
        assert t.shape == shape and torch.isfinite(t).all()
    assert out.eta_z[0].shape == (shape[0], TINY.n_feat, *shape[2:])
    assert all((e >= 0).all() for e in out.eta_B + out.eta_z)  # step sizes are non-negative


def test_official_padding_on_small_images():
    """An image smaller than the padding multiple (32) works: reflection is extended, not refused."""
    model = PADM(attrs.evolve(TINY, pad_multiple=32)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 7, 4))
    assert out.B[-1].shape == (1, 3, 7, 4)


def test_batch_elements_are_independent(tiny_model, device):
    tiny_model.to(device)
    x = torch.rand(3, 3, 13, 11, device=device)
    with torch.no_grad():
        batched = tiny_model(x).B[-1]
        single = tiny_model(x[1:2]).B[-1]
    # on CUDA, cuDNN picks TF32 convolution algorithms by batch size: measured differences ~3e-5 on an H100
    assert torch.allclose(batched[1:2], single, atol=1e-5 if device.type == "cpu" else 1e-3)


def test_bfloat16_autocast(tiny_model, device):
    """Training on CUDA runs under bfloat16 autocast by default: the whole network, the Fourier fusion
    included (there is no bfloat16 FFT), must run forward and backward and stay close to float32."""
    tiny_model.to(device)
    x = torch.rand(2, 3, 21, 18, device=device)
    with torch.no_grad():
        ref = tiny_model(x).B[-1]
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = tiny_model(x)
    assert (out.B[-1].float() - ref).abs().max().item() < 0.05
    loss = sum(b.float().abs().mean() + r.float().abs().mean() for b, r in zip(out.B, out.R))
    loss.backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(3, 8, 8), "4-D"),
        (torch.rand(1, 1, 8, 8), "channels"),
        (torch.rand(1, 4, 8, 8), "channels"),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), "dtype"),
        (torch.rand(1, 3, 8, 8, dtype=torch.float64), "dtype"),
        (torch.rand(0, 3, 8, 8), "empty"),
        ("image.png", "Tensor"),
    ],
)
def test_bad_input_raises_value_error(tiny_model, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_model(bad)


def test_single_channel_model():
    model = PADM(attrs.evolve(TINY, in_channels=1)).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 10, 9)).B[-1].shape == (2, 1, 10, 9)


def test_config_round_trip_and_validation():
    cfg = PADMConfig.preset("small", n_feat=12)
    assert PADMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown PADMConfig field"):
        PADMConfig.from_dict({**cfg.to_dict(), "nfeat": 3})
    with pytest.raises(ValueError, match="unknown preset"):
        PADMConfig.preset("huge")
    with pytest.raises(ValueError):
        PADMConfig(n_feat=0)
    with pytest.raises(TypeError):  # a run-time setting, not architecture (padm.ops.backend)
        PADMConfig(scan_backend="cpu")
    legacy = PADMConfig.from_dict({**cfg.to_dict(), "scan_backend": "auto"})  # checkpoints before the move
    assert legacy == cfg
    assert PADMConfig(depth=3).padding_multiple == 4
    assert PADMConfig(depth=4).padding_multiple == 8
    assert PADMConfig.preset("paper").padding_multiple == 32


def test_shared_stage_weights():
    per_stage = PADM(attrs.evolve(TINY, stages=3))
    shared = PADM(attrs.evolve(TINY, stages=3, share_stage_weights=True))
    assert len(shared.stages) == len(per_stage.stages) == 3
    assert shared.stages[0] is shared.stages[2]
    assert per_stage.stages[0] is not per_stage.stages[2]
    stage_params = count_parameters(per_stage.stages[0])
    assert count_parameters(per_stage) - count_parameters(shared) == 2 * stage_params
    with torch.no_grad():
        assert len(shared.eval()(torch.rand(1, 3, 8, 8)).B) == 4


def test_stage_params_indexing():
    sp = StageParams(lambda k: torch.nn.Linear(1, 1), 2)
    assert len(list(sp)) == 2
    with pytest.raises(IndexError):
        sp[2]


def test_stages_are_pure(tiny_model):
    """A stage returns a new frozen state and leaves its input state untouched."""
    I = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        s0 = init_stage(I, tiny_model.init)
        B_before = s0.B.clone()
        s1 = derain_stage(s0, I, tiny_model.stages[0])
        s1_again = derain_stage(s0, I, tiny_model.stages[0])
    assert isinstance(s1, DerainState) and s1 is not s0
    assert torch.equal(s0.B, B_before)
    assert torch.equal(s1.B, s1_again.B)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s1.B = I


def test_engine_is_generic():
    """unroll knows nothing about images: gradient descent on a quadratic, one step size per stage."""
    target = torch.tensor([3.0, -1.0])
    steps = [torch.tensor(0.5), torch.tensor(0.5), torch.tensor(1.0)]
    outs = unroll(
        init=lambda y, p: torch.zeros(2),
        stage=lambda x, y, eta: x - eta * (x - y),
        inputs=target,
        init_params=None,
        stage_params=steps,
    )
    assert len(outs) == 4
    assert torch.allclose(outs[1], 0.5 * target) and torch.allclose(outs[2], 0.75 * target)
    assert torch.allclose(outs[-1], target)


def test_eval_mode_is_deterministic(tiny_model):
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(tiny_model(x).B[-1], tiny_model(x).B[-1])


def test_model_gradients_agree_across_scan_backends():
    """End to end in float64: the fused kernel's backward inside the full network equals the reference."""
    torch.manual_seed(1)
    model = PADM(attrs.evolve(TINY, dropout_step=0.0)).double()
    x = torch.rand(1, 3, 9, 7, dtype=torch.float64)
    grads = {}
    for backend in ("reference", "cpu"):
        model.zero_grad()
        with ops_backend.use(backend):
            out = model(x)
        sum(b.square().mean() + r.abs().mean() for b, r in zip(out.B, out.R)).backward()
        grads[backend] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads["reference"], grads["cpu"]):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("switch", [{"step": "scalar"}, {"fourier_fusion": False}, {"ssm": False}])
def test_ablation_switches_build_and_run(switch):
    cfg = attrs.evolve(TINY, stages=2, **switch)
    model = PADM(cfg).eval()
    full = PADM(attrs.evolve(TINY, stages=2))
    assert count_parameters(model) < count_parameters(full)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 11, 6)).B[-1].shape == (1, 3, 11, 6)


@pytest.mark.parametrize("shape,channels_last", [((2, 16, 37, 23), True), ((1, 16, 9, 5), False), ((1, 8, 19, 4), True)])
def test_ffn_in_bands_of_rows_equals_the_whole_image(device, shape, channels_last):
    """Inference splits a large FFN expansion into bands of rows with one context row each side."""
    from padm.unfolding.blocks import GatedFFN

    torch.manual_seed(0)
    ffn = GatedFFN(shape[1]).eval().to(device)
    x = torch.randn(*shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        whole = ffn(x)
        ffn.band_bytes = 1  # the smallest bands (8 rows): several band edges inside the image
        banded = ffn(x)
    assert torch.allclose(banded, whole, atol=1e-6, rtol=0)
    y = x.clone().requires_grad_()
    assert ffn(y).grad_fn is not None  # training never bands


@pytest.mark.parametrize("length,batch", [(1000, 2), (257, 1), (3, 1)])
def test_mixer_in_pieces_of_tokens_equals_the_whole_sequence(length, batch):
    """CPU inference scans a long sequence in pieces, each from the last state of the one before."""
    from padm.unfolding.blocks import MambaMixer

    torch.manual_seed(0)
    mixer = MambaMixer(16).eval()
    t = torch.randn(batch, length, 16)
    with torch.no_grad():
        whole = mixer(t)
        mixer.band_bytes = 1  # the smallest pieces (256 tokens): piece edges inside the sequence
        pieces = mixer(t)
    assert torch.allclose(pieces, whole, atol=1e-6, rtol=0)
    assert mixer(t.clone().requires_grad_()).grad_fn is not None  # training never splits


def test_fourier_fusion_is_channels_last_and_matches_its_equation(device):
    """out = γ(x_rec) ⊙ x + φ(x_rec) + x with x_rec the amplitude/phase fusion, computed channels-last."""
    from padm.ops.fourier import amplitude_phase_fuse
    from padm.unfolding.blocks import FourierFusion

    torch.manual_seed(0)
    fusion = FourierFusion(6).double().to(device)
    x, enc, dec = (torch.randn(2, 6, 11, 9, dtype=torch.float64, device=device) for _ in range(3))
    out = fusion(x, enc, dec)
    x_rec = amplitude_phase_fuse(enc, dec, fusion.amp, fusion.pha)  # plain (N, C, H, W) layout throughout
    assert torch.allclose(out, fusion.gamma(x_rec) * x + fusion.phi(x_rec) + x, atol=1e-12)
    assert out.is_contiguous(memory_format=torch.channels_last)
