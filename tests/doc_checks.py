"""Numeric checks the docs' equation tables name: each runs the cited function on small inputs and
compares its result with what the equation predicts.  ``tests/test_docs.py`` runs every check a table
row names (the ``check`` column), so an equation and its code cannot drift apart unnoticed.

Each check is a function without arguments that raises ``AssertionError`` when the code and the
equation disagree.  Float64 throughout, odd sizes.
"""

from __future__ import annotations

import attrs
import torch

from padm.engine.losses import unfolding_loss
from padm.ops.fourier import amplitude_phase_fuse
from padm.ops.padding import crop_to, pad_to_multiple
from padm.unfolding.apgd import apgd_step
from padm.unfolding.blocks import GDRSS, FourierFusion, ScalarStep, StepNet
from padm.unfolding.engine import StageParams, unroll
from padm.unfolding.operators import Conv2dOperator, Identity, LearnedPairConv, l2_grad
from padm.unfolding.sfpm import BlockSpec, ProxUNet, sfpm_step
from padm.unfolding.tasks import Sample, get_task
from padm.unfolding.tasks.deblur import FFTBlur, random_kernels
from padm.unfolding.tasks.derain import PADM, PADMConfig, derain_stage, init_stage
from padm.unfolding.tasks.derain.official import from_official, to_official

F64 = torch.float64
TINY = PADMConfig(n_feat=4, stages=2, depth=2, d_state=4, dropout_step=0.0)


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _close(a, b, tol=1e-10):
    assert torch.allclose(a, b, atol=tol, rtol=0), f"max difference {(a - b).abs().max().item():.3g}"


def _padm_states():
    """Initial and first state of a tiny float64 PADM, and the padded input and stage parameters."""
    torch.manual_seed(0)
    model = PADM(TINY).double().eval()
    I, _ = pad_to_multiple(_rand(1, 3, 7, 9), TINY.padding_multiple)
    with torch.no_grad():
        s0 = init_stage(I, model.init)
        s1 = derain_stage(s0, I, model.stages[0])
    return model, I, s0, s1


# ------------------------------------------------------------------------------------ docs/unfolding.md


def rain_layer_is_read_out_by_to_R():
    """(1) R = G_k(z): the network reads R out with ``to_R``; D_k (``op.d``) is a different map."""
    model, _, _, s1 = _padm_states()
    p = model.stages[0]
    with torch.no_grad():
        _close(s1.R, p.to_R(s1.z))
        assert (s1.R - p.op(s1.z)).abs().max() > 1e-6, "R would equal D(z) only if to_R were tied to D"


def data_fidelity_gradient_is_autograd():
    """(2), (4) ∇ ½‖Ax − y‖² = Aᵀ(Ax − y) for an exact-adjoint convolution."""
    torch.manual_seed(1)
    op = Conv2dOperator(4, 3, 3).double()
    x, y = _rand(2, 4, 7, 9, seed=1), _rand(2, 3, 7, 9, seed=2)
    auto = torch.func.grad(lambda v: 0.5 * (op(v) - y).square().sum())(x)
    _close(l2_grad(op, x, y), auto)


def operators_are_adjoint():
    """(4) ⟨Ax, y⟩ = ⟨x, Aᵀy⟩ for Identity, Conv2dOperator and a tied LearnedPairConv."""
    torch.manual_seed(2)
    for op, c_in, c_out in ((Identity(), 3, 3), (Conv2dOperator(5, 3, 3).double(), 5, 3),
                            (LearnedPairConv(5, 3, 3).double().tie_(), 5, 3)):
        x, y = _rand(1, c_in, 7, 9, seed=3), _rand(1, c_out, 7, 9, seed=4)
        with torch.no_grad():
            _close((op(x) * y).sum(), (x * op.adjoint(y)).sum())


def unroll_returns_every_state():
    """(3), (5) s_0 = init(I), s_k = stage(s_{k-1}, I, θ_k): K + 1 readouts, in order."""
    outs = unroll(lambda inp, p: inp + p, lambda s, inp, p: 2 * s + p, 1, 10, [100, 1000])
    assert outs == [11, 2 * 11 + 100, 2 * 122 + 1000]


def stage_params_share_or_not():
    """(5) θ_1..θ_K: one module per stage, or one shared module handed to every stage."""
    own = StageParams(lambda k: torch.nn.Linear(2, 2), 3)
    shared = StageParams(lambda k: torch.nn.Linear(2, 2), 3, shared=True)
    assert len({id(m) for m in own}) == 3 and len({id(m) for m in shared}) == 1
    assert sum(p.numel() for p in own.parameters()) == 3 * sum(p.numel() for p in shared.parameters())


def apgd_background_step_is_a_convex_combination():
    """(6) B̂ = B − η ⊙ (B − (I − R)) = (1 − η) ⊙ B + η ⊙ (I − R)."""
    B, y, eta = _rand(1, 3, 5, 7, seed=5), _rand(1, 3, 5, 7, seed=6), _rand(1, 3, 5, 7, seed=7)
    _close(apgd_step(B, y, Identity(), eta), (1 - eta) * B + eta * y)


def apgd_rain_map_step_uses_the_adjoint():
    """(7) ẑ = z − η ⊙ Dᵀ(Dz − (I − B)), with D and Dᵀ the two convolutions of LearnedPairConv."""
    torch.manual_seed(3)
    op = LearnedPairConv(4, 3, 3).double()
    z, y, eta = _rand(1, 4, 5, 7, seed=8), _rand(1, 3, 5, 7, seed=9), _rand(1, 4, 5, 7, seed=10)
    with torch.no_grad():
        _close(apgd_step(z, y, op, eta), z - eta * op.dt(op.d(z) - y))


def step_sizes_are_pixelwise_and_nonnegative():
    """(6), (7) η = S_β(F_dec) ≥ 0, one value per pixel and channel."""
    torch.manual_seed(4)
    eta = StepNet(4, 3).double()(torch.randn(2, 4, 5, 7, dtype=F64))
    assert eta.shape == (2, 3, 5, 7) and (eta >= 0).all() and eta.flatten(1).std(1).min() > 0


def scalar_step_is_one_number():
    """(6) ablation: the classic scalar step, the same value at every pixel."""
    eta = ScalarStep(4, 3, init=0.25)(torch.zeros(2, 4, 5, 7))
    assert eta.shape == (2, 3, 5, 7) and torch.allclose(eta, torch.full_like(eta, 0.25))


def proximal_step_is_residual():
    """(8) x = x̂ + U(x̂; F_enc, F_dec)."""
    torch.manual_seed(5)
    prox = ProxUNet(4, 2, BlockSpec(d_state=4), in_channels=3).double().eval()
    x_hat = _rand(1, 3, 6, 8, seed=11)
    with torch.no_grad():
        x, _ = sfpm_step(x_hat, prox, None)
        _close(x, x_hat + prox(x_hat)[0])


def unet_features_have_the_level_shapes():
    """(8) level i has C·2^i channels at H/2^i; F_dec[-1] is level 0."""
    prox = ProxUNet(4, 3, BlockSpec(d_state=4), in_channels=3).eval()
    with torch.no_grad():
        _, feats = prox(torch.rand(1, 3, 8, 12), None)
    assert [tuple(t.shape) for t in feats.enc] == [(1, 4, 8, 12), (1, 8, 4, 6)]
    assert [tuple(t.shape) for t in feats.dec] == [(1, 8, 4, 6), (1, 4, 8, 12)]


def gdrss_scans_pixels_in_row_major_order():
    """(9) the SSM branch scans the row-major pixel sequence one way: changing the last pixel leaves
    every row above the local convolutions' reach unchanged, changing the first pixel does not."""
    torch.manual_seed(6)
    block = GDRSS(4, d_state=4).double().eval()
    x = _rand(1, 4, 9, 7, seed=12)
    last, first = x.clone(), x.clone()
    last[:, 0, -1, -1] += 1.0  # one channel: a shift of all channels would vanish in the LayerNorm
    first[:, 0, 0, 0] += 1.0
    with torch.no_grad():
        y, y_last, y_first = block(x), block(last), block(first)
    _close(y[..., :6, :], y_last[..., :6, :])  # local 3×3 convolutions reach 2 rows up
    assert (y[..., -1, :] - y_first[..., -1, :]).abs().max() > 1e-9  # the scan carries pixel 0 to the end


def fusion_keeps_amplitude_of_one_and_phase_of_the_other():
    """(10) |F x_rec| = |F F_enc| and ∠F x_rec = ∠F F_dec (identity maps φ_A, φ_P)."""
    enc, dec = _rand(1, 2, 6, 8, seed=13), _rand(1, 2, 6, 8, seed=14)
    rec = torch.fft.rfft2(amplitude_phase_fuse(enc, dec))
    ref = torch.fft.rfft2(enc).abs() * torch.exp(1j * torch.fft.rfft2(dec).angle())
    # irfft2 keeps only the Hermitian part of the columns 0 and W/2: compare the others
    _close(rec[..., 1:-1], ref[..., 1:-1], 1e-9)


def fusion_modulation_is_gamma_x_plus_phi():
    """(10) out = γ(x_rec) ⊙ x + φ(x_rec) + x; with γ = φ = 0 the features pass unchanged."""
    fusion = FourierFusion(2).double()
    with torch.no_grad():
        for conv in (fusion.gamma, fusion.phi):
            conv.weight.zero_()
            conv.bias.zero_()
        x = _rand(1, 2, 6, 8, seed=15)
        _close(fusion(x, _rand(1, 2, 6, 8, seed=16), _rand(1, 2, 6, 8, seed=17)), x)


def derain_stage_follows_equations_6_to_8():
    """(6)–(8) one stage, recomputed by hand from its own parameters."""
    model, I, s0, s1 = _padm_states()
    p = model.stages[0]
    with torch.no_grad():
        eta_B = p.eta_B(s0.feats_B.dec[-1])
        B_hat = (1 - eta_B) * s0.B + eta_B * (I - s0.R)
        B = B_hat + p.prox_B(B_hat, s0.feats_B)[0]
        eta_z = p.eta_z(s0.feats_z.dec[-1])
        z_hat = s0.z - eta_z * p.op.dt(p.op.d(s0.z) - (I - B))
        z = z_hat + p.prox_z(z_hat, s0.feats_z)[0]
    _close(s1.B, B)
    _close(s1.z, z)


def initial_stage_starts_from_the_input():
    """(11) B̂_0 = I (the step at B = I, R = 0 is the identity), z_0 = PReLU(conv(I − B))."""
    model, I, s0, _ = _padm_states()
    p = model.init
    with torch.no_grad():
        B = I + p.prox_B(I, None)[0]
        z0 = p.to_z(I - B)
        z_hat = z0 - p.eta_z(I - B) * p.op.dt(p.op.d(z0) - (I - B))
        _close(s0.B, B)
        _close(s0.z, z_hat + p.prox_z(z_hat, None)[0])


def loss_is_the_official_objective():
    """(12) Σ_j ‖B_j − B^gt‖₁ + ‖R_j − (I − B^gt)‖₁ + 0.01 ‖F B_j − F B^gt‖₁ (means)."""
    I, gt = _rand(1, 3, 5, 7, seed=18), _rand(1, 3, 5, 7, seed=19)
    B = [_rand(1, 3, 5, 7, seed=20 + j) for j in range(3)]
    R = [_rand(1, 3, 5, 7, seed=30 + j) for j in range(3)]
    out = type("Out", (), {"B": tuple(B), "R": tuple(R)})()
    total, _ = unfolding_loss(get_task("derain").supervision(out, Sample(I, gt)))
    expect = sum((b - gt).abs().mean() + (r - (I - gt)).abs().mean()
                 + 0.01 * (torch.fft.fft2(b) - torch.fft.fft2(gt)).abs().mean() for b, r in zip(B, R))
    _close(total.double(), expect.double(), 1e-6)


def official_names_round_trip():
    """official checkpoints: padm → official → padm names are the identity."""
    sd = PADM(attrs.evolve(TINY, pad_multiple=32)).state_dict()
    back = from_official(to_official(sd))
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def padding_is_undone_by_the_crop():
    """padding: H, W reflect-padded up to the multiple, cropped back exactly."""
    x = _rand(1, 3, 5, 11, seed=40)
    padded, size = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (8, 16) and torch.equal(crop_to(padded, size), x)
    _close(padded[..., 5, :11], x[..., 3, :])  # reflection about the last row


# ------------------------------------------------------------------------------------ docs/tasks.md


def blur_operator_is_adjoint_and_a_convolution():
    """A x = k ⊛ x (periodic) and ⟨Ax, y⟩ = ⟨x, Aᵀy⟩."""
    k = random_kernels(1, size=5, generator=torch.Generator().manual_seed(0)).double()
    op = FFTBlur(k, (9, 10))
    x, y = _rand(1, 3, 9, 10, seed=41), _rand(1, 3, 9, 10, seed=42)
    _close((op(x) * y).sum(), (x * op.adjoint(y)).sum())
    circ = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 2, 2, 2), mode="circular"),
                                      k.flip(-1, -2).expand(3, 1, 5, 5), groups=3)
    _close(op(x), circ)


def denoising_degradation_adds_sigma_noise():
    """y = x + n, n ~ N(0, (σ/255)²), the same noise for the same seed."""
    task, x = get_task("denoise"), torch.full((1, 3, 96, 96), 0.5)
    settings = task.degradation_cls(sigma=25.0)
    y1, y2 = task.degrade(x, [5], settings).degraded, task.degrade(x, [5], settings).degraded
    assert torch.equal(y1, y2) and abs((y1 - x).std().item() * 255 - 25) < 1.0


def image_stage_is_gradient_then_proximal_step():
    """x̂ = x − S_β(F_dec) ⊙ Aᵀ(Ax − y), x = x̂ + U(x̂): the generic stage of deblurring and denoising."""
    from padm.unfolding.image_net import ImageInputs, image_init, image_stage

    task = get_task("denoise")
    torch.manual_seed(7)
    net = task.build(task.config_cls.preset("tiny")).double().eval()
    inp = ImageInputs(y=_rand(1, 3, 6, 8, seed=43), op=Identity())
    p = net.stages[0]
    with torch.no_grad():
        s0 = image_init(inp, net.init)
        s1 = image_stage(s0, inp, p)
        x_hat = s0.x - p.eta(s0.feats.dec[-1]) * (s0.x - inp.y)
        _close(s1.x, x_hat + p.prox(x_hat, s0.feats)[0])


# ------------------------------------------------------------------------------------ docs/ssm.md


def _scan_inputs(batch=1, dim=3, n=2, length=6, seed=50):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, dim, length, generator=g, dtype=F64)
    delta = torch.rand(batch, dim, length, generator=g, dtype=F64)
    A = -torch.rand(dim, n, generator=g, dtype=F64) - 0.1
    B = torch.randn(batch, n, length, generator=g, dtype=F64)
    C = torch.randn(batch, n, length, generator=g, dtype=F64)
    D = torch.randn(dim, generator=g, dtype=F64)
    return u, delta, A, B, C, D


def zero_order_hold_recurrence():
    """(S1), (S2), (S4) h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t u_t, y_t = ⟨C_t, h_t⟩ + D u_t, by hand."""
    from padm.ops.scan import selective_scan_ref

    u, delta, A, B, C, D = _scan_inputs()
    h = torch.zeros(1, 3, 2, dtype=F64)
    ys = []
    for t in range(u.shape[-1]):
        dt = delta[..., t, None]  # (1, D, 1)
        h = torch.exp(dt * A) * h + dt * B[:, None, :, t] * u[..., t, None]
        ys.append((h * C[:, None, :, t]).sum(-1) + D * u[..., t])
    _close(selective_scan_ref(u, delta, A, B, C, D), torch.stack(ys, -1))


def scan_backends_agree():
    """(S4) the fused C++ kernel and the associative scan compute the reference recurrence, with the
    softplus bias and the SiLU gate of the Mamba block."""
    from padm.ops.scan import selective_scan

    u, delta, A, B, C, D = _scan_inputs(batch=2, dim=4, n=3, length=37)
    z, bias = _rand(2, 4, 37, seed=51), _rand(4, seed=52)
    ref = selective_scan(u, delta, A, B, C, D, z, bias, True, backend="reference")
    for name in ("cpu", "parallel"):
        _close(selective_scan(u, delta, A, B, C, D, z, bias, True, backend=name), ref, 1e-9)


def fused_scan_gradient_is_autograd():
    """(S6), (S7) the fused kernel's hand-written backward equals autograd through the reference."""
    from padm.ops.scan import selective_scan

    grads = {}
    for name in ("reference", "cpu"):
        inputs = [t.clone().requires_grad_() for t in _scan_inputs(batch=1, dim=4, n=3, length=21)]
        selective_scan(*inputs, delta_softplus=True, backend=name).square().sum().backward()
        grads[name] = [t.grad for t in inputs]
    for a, b in zip(grads["reference"], grads["cpu"]):
        _close(a, b, 1e-9)


def gated_ffn_conv_gradient_is_autograd():
    """(9) the FFN's GELU(a)·b after a depthwise 3×3: the fused kernels' output and hand-written backward
    equal the definition and autograd through it."""
    from padm.ops.gated import gated_dwconv, gated_dwconv_ref

    u = _rand(1, 10, 7, 6, seed=61).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = (_rand(10, 1, 3, 3, seed=62) - 0.5).requires_grad_()
    g = _rand(1, 5, 7, 6, seed=63)
    fused, ref = gated_dwconv(u, w), gated_dwconv_ref(u, w)
    assert type(fused.grad_fn).__name__ == "_GatedDWBackward"
    _close(fused, ref)
    for a, b in zip(torch.autograd.grad(fused, (u, w), g), torch.autograd.grad(ref, (u, w), g)):
        _close(a, b)


def layer_norm_gradient_is_autograd():
    """(9) the GDRSS block's LayerNorms over the channels of each pixel or token: the fused kernels'
    output and hand-written backward equal ``F.layer_norm`` and autograd through it."""
    from padm.ops import _native
    from padm.ops.norm import layer_norm, layer_norm_ref

    x = (_rand(3, 7, 20, seed=64) * 4 - 1).requires_grad_()  # 20 channels: whole vectors and a ragged end
    w, b = _rand(20, seed=65).requires_grad_(), _rand(20, seed=66).requires_grad_()
    g = _rand(3, 7, 20, seed=67)
    fused, ref = layer_norm(x, w, b), layer_norm_ref(x, w, b)
    if _native.available():
        assert type(fused.grad_fn).__name__ == "_LayerNormRowsBackward"
    _close(fused, ref)
    for a, c in zip(torch.autograd.grad(fused, (x, w, b), g), torch.autograd.grad(ref, (x, w, b), g)):
        _close(a, c)


def residual_dropout_keeps_and_scales():
    """(9) x + Drop(y): every element is x + y / (1 − p) (kept) or x (dropped), the kernel equals its
    PyTorch reference with the same hashed mask, and about 1 − p of the elements are kept."""
    from padm.ops import _native
    from padm.ops.dropout import dropout_add_ref, dropout_add_seeded, dropout_mask

    x, y, p = _rand(1, 4, 9, 7, seed=68), _rand(1, 4, 9, 7, seed=69) + 1.0, 0.25
    ref = dropout_add_ref(x, y, p, 3, 5)
    kept = (ref - x - y / (1 - p)).abs() < 1e-12
    assert bool((kept | ((ref - x).abs() < 1e-12)).all())
    if _native.available():
        _close(dropout_add_seeded(x, y, p, 3, 5), ref)
    assert abs(dropout_mask(1 << 16, p, 3, 5).double().mean().item() - (1 - p)) < 0.01


def causal_conv1d_is_a_causal_shifted_sum():
    """(S5) y_t = b + Σ_k w_k x_{t−K+1+k}: the kernels equal the definition, and y_t ignores x_{>t}."""
    from padm.ops.scan import causal_conv1d, causal_conv1d_ref

    x, w, b = _rand(2, 5, 17, seed=53), _rand(5, 4, seed=54), _rand(5, seed=55)
    ref = causal_conv1d_ref(x, w, b, "silu")
    _close(causal_conv1d(x.transpose(1, 2).contiguous().transpose(1, 2), w, b, "silu"), ref)
    later = x.clone()
    later[..., 9:] += 1.0
    _close(causal_conv1d_ref(later, w, b, "silu")[..., :9], ref[..., :9])


def mamba_block_is_causal_over_tokens():
    """(S3), (S5) the Mamba mixer: token t's output depends on tokens 0..t only (Δ, B, C from the input)."""
    from padm.unfolding.blocks import MambaMixer

    torch.manual_seed(8)
    mixer = MambaMixer(4, d_state=3).double()
    t = _rand(1, 12, 4, seed=56)
    later = t.clone()
    later[:, 7:] += 1.0
    with torch.no_grad():
        a, b = mixer(t), mixer(later)
    _close(a[:, :7], b[:, :7])
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-6


def scan_in_pieces_is_the_whole_scan():
    """(S4) scanning steps 0..k-1, then k..L-1 from the state the first piece ended in, is the whole scan;
    so is the Mamba block's inference in pieces of tokens."""
    from padm.ops.scan import selective_scan
    from padm.unfolding.blocks import MambaMixer

    u, delta, A, B, C, D = _scan_inputs(batch=2, dim=4, n=3, length=37)
    for name in ("reference", "cpu", "parallel"):
        whole = selective_scan(u, delta, A, B, C, D, delta_softplus=True, backend=name)
        first, h = selective_scan(u[..., :20], delta[..., :20], A, B[..., :20], C[..., :20], D,
                                  delta_softplus=True, return_last_state=True, backend=name)
        rest = selective_scan(u[..., 20:], delta[..., 20:], A, B[..., 20:], C[..., 20:], D,
                              delta_softplus=True, initial_state=h, backend=name)
        _close(torch.cat([first, rest], -1), whole)
    torch.manual_seed(9)
    mixer = MambaMixer(4, d_state=3).double()
    t = _rand(1, 600, 4, seed=57)
    with torch.no_grad():
        whole = mixer(t)
        mixer.band_bytes = 1  # pieces of 256 tokens
        _close(mixer(t), whole)


def native_kernel_loads_or_says_why():
    """the kernel build: either a library whose scan matches the reference, or a stated reason."""
    from padm.ops import _native

    lib = _native.load()
    assert lib is not None or _native._error, "no kernel and no reason given"


CHECKS = {name: fn for name, fn in globals().items() if callable(fn) and fn.__module__ == __name__
          and not name.startswith("_")}
