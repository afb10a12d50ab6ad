"""Helpers for the data tests: tiny generated images (odd sizes) in every supported layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padm.data.images import write_image

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
H, W = 37, 53  # odd on purpose


def scene(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A structured uint8 RGB picture (h, w, 3): gradients, a few blocks, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin((x + y) / 7 + seed)], axis=2) * 160
    for _ in range(4):
        t, l = rng.integers(0, h), rng.integers(0, w)
        base[t:t + h // 4, l:l + w // 4] += rng.uniform(-60, 60, 3)
    base += rng.normal(0, 12, base.shape)
    return np.clip(base + 40, 0, 255).astype(np.uint8)


def rainy(clean: np.ndarray, seed: int) -> np.ndarray:
    """Clean picture plus bright vertical streaks."""
    rng = np.random.default_rng(seed + 1000)
    out = clean.astype(np.int32)
    for _ in range(max(2, clean.shape[1] // 6)):
        x, t = rng.integers(0, clean.shape[1]), rng.integers(0, clean.shape[0])
        out[t:t + 12, x] += 90
    return np.clip(out, 0, 255).astype(np.uint8)


def write_pairs(rain_dir: Path, clean_dir: Path, n: int = 3, *, rain_name=None, clean_name=None,
                ext: str = "png", seed: int = 0, sizes=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write n pairs; names from rain_name(i) / clean_name(i) (default f"{i}").  Returns
    {rain stem: (rain pixels, clean pixels)}."""
    rain_dir.mkdir(parents=True, exist_ok=True)
    clean_dir.mkdir(parents=True, exist_ok=True)
    rain_name = rain_name or (lambda i: f"{i}")
    clean_name = clean_name or (lambda i: f"{i}")
    out = {}
    for i in range(1, n + 1):
        h, w = sizes[i - 1] if sizes else (H, W)
        clean = scene(seed + i, h, w)
        rain = rainy(clean, seed + i)
        write_image(rain_dir / f"{rain_name(i)}.{ext}", rain)
        write_image(clean_dir / f"{clean_name(i)}.{ext}", clean)
        out[rain_name(i)] = (rain, clean)
    return out


def leftovers(folder: Path) -> list[str]:
    """Temporary files a failed write might have left behind."""
    return [p.name for p in folder.rglob("*") if "partial" in p.name or p.name.endswith(".old")]


def y_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR on MATLAB rgb2ycbcr Y (rounded to uint8), peak 255; written here on purpose."""
    def y(p):
        f = p.astype(np.float64) / 255
        return np.round(16 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2])
    return 10 * np.log10(255**2 / np.mean((y(a) - y(b)) ** 2))
