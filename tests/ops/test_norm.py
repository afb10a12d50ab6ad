"""LayerNorm over rows: the fused CPU kernels (forward, backward) vs ``F.layer_norm``."""

from __future__ import annotations

import pytest
import torch

from padm.ops import _native, backend
from padm.ops.norm import layer_norm, layer_norm_ref

pytestmark = pytest.mark.skipif(not _native.available(), reason="fused kernel could not be built")

# C = 3, 5, 13: one partial block of lanes; 16, 32, 64: whole blocks (the unrolled path); 20, 40, 47, 160:
# whole blocks and an overlapping ragged end.  Rows 1, 7 x 5 = 35, 259: a partial group of 16 rows, and
# more rows than one task of 256.
CHANNELS = [3, 5, 13, 16, 20, 32, 40, 47, 64, 160]
SHAPES = [(1, 1), (7, 5), (259,)]


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _inputs(lead, c, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(*lead, c, generator=g, dtype=dtype) * 3 + 1.5).requires_grad_()  # an offset mean
    w = torch.randn(c, generator=g, dtype=dtype).requires_grad_()
    b = torch.randn(c, generator=g, dtype=dtype).requires_grad_()
    dy = torch.randn(*lead, c, generator=g, dtype=dtype)
    return x, w, b, dy


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("lead", SHAPES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_fused_forward_and_backward_match_definition(lead, c, dtype, tol):
    x, w, b, dy = _inputs(lead, c, dtype)
    y = layer_norm(x, w, b)
    assert type(y.grad_fn).__name__ == "_LayerNormRowsBackward"  # the fused op, not the definition
    grads = torch.autograd.grad(y, (x, w, b), dy)
    y_ref = layer_norm_ref(x, w, b)
    grads_ref = torch.autograd.grad(y_ref, (x, w, b), dy)
    assert y.shape == x.shape and y.is_contiguous()
    assert rel(y, y_ref) < tol
    for got, want in zip(grads, grads_ref):
        assert rel(got, want) < tol
    with torch.no_grad():  # inference: the forward kernel alone
        assert rel(layer_norm(x, w, b), y_ref) < tol


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_split_rows_and_sum_parameter_gradients(threads):
    x, w, b, dy = _inputs((3, 700), 32, torch.float64, seed=1)  # 2100 rows: several tasks per thread
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        grads = torch.autograd.grad(layer_norm(x, w, b), (x, w, b), dy)
    finally:
        torch.set_num_threads(old)
    for got, want in zip(grads, torch.autograd.grad(layer_norm_ref(x, w, b), (x, w, b), dy)):
        assert rel(got, want) < 1e-12


def test_permuted_channels_last_rows_and_nchw_input():
    """LayerNorm2d's use: (N, H, W, C) views of channels-last maps (rows contiguous) and of NCHW maps (copied)."""
    torch.manual_seed(2)
    w, b = torch.randn(16), torch.randn(16)
    for fmt in (torch.channels_last, torch.contiguous_format):
        x = torch.randn(2, 16, 9, 11).contiguous(memory_format=fmt).permute(0, 2, 3, 1)  # (N, H, W, C)
        with torch.no_grad():
            assert rel(layer_norm(x, w, b), layer_norm_ref(x, w, b)) < 2e-6


def test_fused_op_passes_gradcheck():
    x, w, b, _ = _inputs((3, 6), 20, torch.float64, seed=3)
    assert torch.autograd.gradcheck(layer_norm, (x, w, b))


def test_without_affine_parameters_and_other_backends_use_the_definition():
    x, w, b, _ = _inputs((4,), 16, torch.float32)
    assert type(layer_norm(x, None, None).grad_fn).__name__ != "_LayerNormRowsBackward"
    with backend.use("reference"):
        assert type(layer_norm(x, w, b).grad_fn).__name__ != "_LayerNormRowsBackward"
    with backend.use("auto", training_kernels=False):
        assert type(layer_norm(x, w, b).grad_fn).__name__ != "_LayerNormRowsBackward"
        with torch.no_grad():  # inference keeps its kernel
            assert rel(layer_norm(x, w, b), layer_norm_ref(x, w, b)) < 2e-6


def test_model_norms_keep_nn_layernorm_parameters():
    from padm.unfolding.blocks import GDRSS

    block = GDRSS(16)
    keys = {k for k in block.state_dict() if "norm" in k}
    assert {"token_norm.weight", "token_norm.bias", "mixer_norm.weight", "mixer_norm.bias",
            "norm1.weight", "norm2.bias"} <= keys
    assert isinstance(block.token_norm, torch.nn.LayerNorm)
