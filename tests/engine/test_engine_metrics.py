"""Metric protocols against independent implementations written here from the published definitions.

uint8Y  (evaluate_PSNR_SSIM.m): Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255) on uint8 RGB,
        PSNR peak 255, ssim_index.m: Gaussian 11x11 sigma 1.5, K = (0.01, 0.03), L = 255, 'valid'.
doubleY (statistic.m): Y = 16/255 + (65.481 R + ...) / 255 / 255 on im2double RGB, unrounded; PSNR peak 1;
        SSIM of Y*255 with the ssim_index.m settings.
MATLAB's built-in ssim (replicate padding, whole map, DynamicRange 1 for double input) is available
through ``metrics.ssim(padding="replicate", data_range=1)`` and checked too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from padm.engine import metrics


def _gauss():
    x = np.arange(11) - 5.0
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    return g / g.sum()


def ref_ssim_valid(a, b, L=255.0):
    w = _gauss()
    f = lambda x: signal.correlate2d(x, w, mode="valid")  # noqa: E731  (filter2(..., 'valid'))
    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return m.mean()


def ref_ssim_matlab_builtin(a, b, dynamic_range=1.0):
    w = _gauss()
    f = lambda x: ndimage.correlate(x, w, mode="nearest")  # noqa: E731  (imgaussfilt, 'replicate')
    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    c1, c2 = (0.01 * dynamic_range) ** 2, (0.03 * dynamic_range) ** 2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return m.mean()


def ref_uint8y(rgb_u8):
    r, g, b = (rgb_u8[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    return np.floor(y + 0.5)  # MATLAB round (values are positive)


def ref_doubley(rgb_u8):
    x = rgb_u8.astype(np.float64) / 255  # im2double
    return 16 / 255 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255


def ref_psnr(a, b, peak):
    return 10 * math.log10(peak**2 / np.mean((a - b) ** 2))


@pytest.fixture(scope="module")
def fixed_pairs():
    """Deterministic uint8 pairs of odd sizes: a smooth image and a noisy/shifted version of it."""
    rng = np.random.default_rng(1234)
    out = []
    for h, w in [(37, 53), (64, 45), (12, 11)]:
        yy, xx = np.mgrid[0:h, 0:w]
        gt = 127 + 100 * np.sin(xx[..., None] / 6 + yy[..., None] / 9 + np.arange(3))
        pred = gt + rng.normal(0, 6, gt.shape) + 3
        out.append((np.clip(pred, 0, 255).round().astype(np.uint8), np.clip(gt, 0, 255).round().astype(np.uint8)))
    return out


def _f(u8):
    return u8.astype(np.float64) / 255


@pytest.mark.parametrize("idx", [0, 1, 2])
def test_uint8y_matches_reference(fixed_pairs, idx):
    pred, gt = fixed_pairs[idx]
    p, s = metrics.score_arrays(_f(pred), _f(gt), "uint8Y")
    ya, yb = ref_uint8y(pred), ref_uint8y(gt)
    assert abs(p - ref_psnr(ya, yb, 255)) < 1e-4
    assert abs(s - ref_ssim_valid(ya, yb)) < 1e-5


@pytest.mark.parametrize("idx", [0, 1, 2])
def test_doubley_matches_reference(fixed_pairs, idx):
    pred, gt = fixed_pairs[idx]
    p, s = metrics.score_arrays(_f(pred), _f(gt), "doubleY")
    ya, yb = ref_doubley(pred), ref_doubley(gt)
    assert abs(p - ref_psnr(ya, yb, 1.0)) < 1e-4
    assert abs(s - ref_ssim_valid(ya * 255, yb * 255)) < 1e-5


@pytest.mark.parametrize("idx", [0, 1, 2])
def test_matlab_builtin_ssim_variant(fixed_pairs, idx):
    pred, gt = fixed_pairs[idx]
    ya, yb = ref_doubley(pred) * 255, ref_doubley(gt) * 255
    ours = metrics.ssim(torch.from_numpy(ya)[None, None], torch.from_numpy(yb)[None, None], padding="replicate",
                        data_range=1.0)
    assert abs(float(ours[0]) - ref_ssim_matlab_builtin(ya, yb)) < 1e-5


def test_rgb_protocol(fixed_pairs):
    pred, gt = fixed_pairs[0]
    p, s = metrics.score_arrays(_f(pred), _f(gt), "rgb")
    a, b = pred.astype(np.float64), gt.astype(np.float64)
    assert abs(p - ref_psnr(a, b, 255)) < 1e-4
    assert abs(s - np.mean([ref_ssim_valid(a[..., c], b[..., c]) for c in range(3)])) < 1e-5


def test_valid_ssim_agrees_with_skimage(fixed_pairs):
    from skimage.metrics import structural_similarity

    pred, gt = fixed_pairs[1]
    ya, yb = ref_uint8y(pred), ref_uint8y(gt)
    sk = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                               data_range=255)
    ours = metrics.ssim(torch.from_numpy(ya)[None, None], torch.from_numpy(yb)[None, None])
    assert abs(float(ours[0]) - sk) < 1e-6


def test_protocols_differ_slightly_and_rounding_is_matlab(fixed_pairs):
    pred, gt = fixed_pairs[0]
    p8, _ = metrics.score_arrays(_f(pred), _f(gt), "uint8Y")
    pd, _ = metrics.score_arrays(_f(pred), _f(gt), "doubleY")
    assert 0 < abs(p8 - pd) < 0.1
    # MATLAB rounds halves up, torch.round to even
    assert metrics._matlab_round(torch.tensor([2.5, 3.5]).double()).tolist() == [3.0, 4.0]


def test_quantisation_and_edge_cases():
    x = torch.rand(1, 3, 15, 17, dtype=torch.float64)
    p, s = metrics.score(x, x, "uint8Y")
    assert math.isinf(p[0]) and abs(s[0] - 1) < 1e-12
    # floats are scored as the saved uint8 file would be: sub-quantum differences vanish
    p2, _ = metrics.score(x, (x + 0.4 / 255).clamp(0, 1), "uint8Y")
    assert p2[0] > 40
    small = torch.rand(1, 3, 8, 9)
    assert math.isnan(metrics.score(small, small.flip(-1), "uint8Y")[1][0])  # smaller than the window
    with pytest.raises(ValueError):
        metrics.score(x, x[..., :5], "uint8Y")
    with pytest.raises(ValueError):
        metrics.get_protocol("Y")


def test_y_range():
    y = metrics.rgb_to_y(torch.tensor([[[[0.0]], [[0.0]], [[0.0]]], [[[1.0]], [[1.0]], [[1.0]]]]))
    assert y.flatten().tolist() == pytest.approx([16.0, 235.0])
