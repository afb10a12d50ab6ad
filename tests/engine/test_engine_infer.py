"""Tiled inference: blending weights, exactness on a local network, whole-image fallback."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from padm.engine.infer import restore, tile_starts, tiled_apply
from padm.unfolding.tasks.derain.config import PADMConfig

from engine_helpers import StandIn


def test_tile_starts_cover_and_stay_inside():
    for length in (1, 31, 32, 33, 100, 257):
        for tile, overlap in ((32, 8), (32, 0), (16, 12)):
            starts = tile_starts(length, tile, overlap)
            assert starts[0] == 0
            assert starts[-1] + min(tile, length) == length
            assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_tiled_identity_is_exact_and_weights_cover_every_pixel():
    x = torch.rand(1, 2, 45, 71)
    (y,) = tiled_apply(lambda t: [t], x, tile=16, overlap=8)
    assert torch.allclose(y, x, atol=1e-6)
    with pytest.raises(ValueError):
        tiled_apply(lambda t: [t], x, tile=8, overlap=8)


def test_tiled_equals_untiled_for_a_local_network(device):
    """Receptive radius 2 per stage x 3 stages = 6 <= overlap // 4: tiling is exact (up to rounding)."""
    torch.manual_seed(0)
    model = StandIn(PADMConfig.preset("tiny")).to(device).eval()
    x = torch.rand(1, 3, 70, 83)
    whole = restore(model, x)
    tiled = restore(model, x, tile=32, overlap=24)
    assert tiled.shape == whole.shape == x.shape
    assert (tiled - whole).abs().max() < 1e-4
    # with too little overlap the seams show: the test above is not trivially true
    rough = restore(model, x, tile=32, overlap=4)
    assert (rough - whole).abs().max() > 1e-4
    # stages: every map tiled the same way
    st = restore(model, x, tile=32, overlap=24, stages=True)
    assert len(st["B"]) == len(st["eta_z"]) == 3
    assert (st["B"][-1].clamp(0, 1) - whole).abs().max() < 1e-4
    assert st["eta_z"][0].shape == (1, 8, 70, 83)


def test_image_smaller_than_tile_runs_whole():
    model = StandIn(PADMConfig.preset("tiny")).eval()
    x = torch.rand(2, 3, 13, 17)
    assert torch.equal(restore(model, x, tile=64), restore(model, x))


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.config = PADMConfig.preset("tiny")
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        return _Out(x)


class _Out:
    def __init__(self, x):
        self.B = (x,)


def test_tiles_are_rounded_to_the_padding_multiple():
    m = Counter()
    restore(m, torch.rand(1, 3, 50, 50), tile=30, overlap=8)  # tiny pads to 4: tile 30 -> 32
    assert set(m.shapes) == {(32, 32)}
