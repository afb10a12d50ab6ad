r"""Rain from real streak layers: composite rendered streak images onto clean photos.

The streak layers (e.g. Garg & Nayar 2006's renderings, ``../shared/data/streaks_Garg06``) are
light streaks on black.  For a clean image :math:`B \in [0,1]^{H \times W \times 3}` and settings
:class:`StreakConfig`, each image draws, from its own generator:

1. **Layers** :math:`k = 1..L`, :math:`L \sim U\{L_{min}..L_{max}\}`: a streak image chosen at random,
   its grey level :math:`G_k = \max_c` (channels) in [0, 1], rescaled by :math:`s_k \sim U(s_{min},
   s_{max})`, rotated by :math:`\phi_k = \phi_0 + U(-\Delta, \Delta)` degrees (the same
   :math:`\phi_0 \sim U(-\phi_{max}, \phi_{max})` for all layers of an image: rain falls one way),
   tiled periodically if smaller than the image, and cropped at a random offset to H x W.
2. **Intensity** :math:`a_k \sim U(a_{min}, a_{max})`; the streak map is the screen sum
   :math:`S = 1 - \prod_k (1 - a_k G_k)` (never above 1, dense layers saturate softly).
3. **Blend**: ``screen`` :math:`R = 1 - (1 - B)(1 - S)` or ``add`` :math:`R = \min(1, B + S)`.
4. **Veil** (heavy rain's haze, optional): :math:`t \sim U(t_{min}, t_{max})`,
   airlight :math:`A \sim U(0.75, 0.95)` (grey), :math:`R \leftarrow (1 - t) R + t A`.

The generator is seeded with ``(seed, crc32(name))`` (as :mod:`padm.data.synth`): an image's rain
does not depend on the order or on the other images, so a run is reproducible, and on-the-fly
synthesis during training gives the same pair for the same (seed, name).

Presets are tuned so that the rainy-input PSNR on Y (MATLAB ``rgb2ycbcr``) over the shared clean
BSD300 photos falls in the benchmarks' ranges: ``light`` 26-28 dB (Rain100L: 26.7 dB) and
``heavy`` 13-16 dB (Rain200H/Rain100H: about 14 dB); ``tests/data/test_data_shared.py`` checks it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from padm.errors import UserError


def _pair(low: float, high: float):
    """Validator of a (min, max) range within [low, high]."""

    def check(_inst, attribute, value):
        a, b = value
        if not (low <= a <= b <= high):
            raise ValueError(f"{attribute.name} must be (min, max) with {low} <= min <= max <= {high}, got {value}")

    return check


def _within(low: float, high: float):
    """Validator of a number within [low, high]."""

    def check(_inst, attribute, value):
        if not (low <= value <= high):
            raise ValueError(f"{attribute.name} must be in [{low}, {high}], got {value}")

    return check


def _floats(value) -> tuple[float, float]:
    """``(min, max)`` from a pair or a string ``"MIN,MAX"``."""
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    try:
        a, b = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise ValueError(f"expected a range MIN,MAX, got {value!r}") from None
    return a, b


def _ints(value) -> tuple[int, int]:
    a, b = _floats(value)
    if a != int(a) or b != int(b):
        raise ValueError(f"expected two integers, got {value}")
    return int(a), int(b)


@attrs.frozen(kw_only=True)
class StreakConfig:
    """Settings of the streak-layer rain model (the equations: this module's docstring).  Ranges are
    ``(min, max)`` pairs; each image draws its values uniformly from them."""

    layers: tuple[int, int] = attrs.field(default=(1, 1), converter=_ints, validator=_pair(1, 16))
    scale: tuple[float, float] = attrs.field(default=(0.8, 1.2), converter=_floats, validator=_pair(0.1, 8))
    angle: float = attrs.field(default=15.0, converter=float, validator=_within(0, 90))
    angle_spread: float = attrs.field(default=3.0, converter=float, validator=_within(0, 90))
    intensity: tuple[float, float] = attrs.field(default=(0.5, 0.8), converter=_floats, validator=_pair(0, 1))
    blend: str = attrs.field(default="screen", validator=attrs.validators.in_(("screen", "add")))
    veil: tuple[float, float] = attrs.field(default=(0.0, 0.0), converter=_floats, validator=_pair(0, 0.9))
    seed: int = attrs.field(default=0, converter=int, validator=_within(0, 2**63 - 1))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items()}

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "StreakConfig":
        from padm.data.synth import from_preset

        return from_preset(STREAK_PRESETS, name, overrides)


STREAK_PRESETS: dict[str, StreakConfig] = {
    # Rain100L-like: two layers of moderate intensity
    "light": StreakConfig(layers=(2, 2), scale=(0.9, 1.3), angle=15, angle_spread=2, intensity=(0.65, 0.85),
                          blend="screen"),
    # Rain200H-like: many bright, partly enlarged layers and a veil
    "heavy": StreakConfig(layers=(6, 8), scale=(1.0, 2.0), angle=20, angle_spread=6, intensity=(0.75, 1.0),
                          blend="screen", veil=(0.2, 0.35)),
}


class StreakBank:
    """The streak layers of a folder, decoded on first use (kept as uint8 grey)."""

    def __init__(self, folder: str | os.PathLike):
        from padm.data.layouts import list_images

        folder = Path(folder)
        if not folder.is_dir():
            raise UserError(f"streak folder not found: {folder}" if not folder.exists()
                            else f"expected a folder of streak layers, got a file: {folder}")
        self.folder = folder
        self.files = sorted(list_images(folder)[0])
        if not self.files:
            raise UserError(f"no streak images found in {folder}")
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def layer(self, i: int) -> np.ndarray:
        """Layer ``i`` as grey float32 (h, w) in [0, 1]: the brightest channel."""
        if i not in self._cache:
            from padm.data.images import read_image, to_8bit

            self._cache[i] = to_8bit(read_image(self.files[i]).pixels).max(axis=2)
        return self._cache[i].astype(np.float32) / 255.0


def _cover(layer: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random H x W window of ``layer`` repeated periodically (h, w) -> (H, W)."""
    h, w = layer.shape
    y, x = int(rng.integers(h)), int(rng.integers(w))
    rows = (y + np.arange(height)) % h
    cols = (x + np.arange(width)) % w
    return layer[np.ix_(rows, cols)]


def streak_map(bank: StreakBank, height: int, width: int, config: StreakConfig,
               rng: np.random.Generator) -> np.ndarray:
    """The streak map :math:`S = 1 - \\prod_k (1 - a_k G_k)`, (H, W) float32 in [0, 1]."""
    from skimage.transform import rescale, rotate

    base_angle = rng.uniform(-config.angle, config.angle)
    keep = np.ones((height, width), dtype=np.float32)  # prod_k (1 - a_k G_k)
    for _ in range(int(rng.integers(config.layers[0], config.layers[1] + 1))):
        g = bank.layer(int(rng.integers(len(bank))))  # (h, w)
        g = rescale(g, rng.uniform(*config.scale), order=1, anti_aliasing=True, preserve_range=True)
        angle = base_angle + rng.uniform(-config.angle_spread, config.angle_spread)
        g = rotate(g, angle, order=1, mode="wrap", preserve_range=True)  # rain stays continuous at the edges
        a = rng.uniform(*config.intensity)
        keep *= 1.0 - a * np.clip(_cover(g.astype(np.float32), height, width, rng), 0.0, 1.0)
    return 1.0 - keep


def add_streaks(clean: np.ndarray, bank: StreakBank, config: StreakConfig, rng: np.random.Generator) -> np.ndarray:
    """Rainy version of ``clean`` (H, W, 3) float in [0, 1] (blend, then the veil)."""
    h, w, _ = clean.shape
    s = streak_map(bank, h, w, config, rng)[..., None]  # (H, W, 1)
    rainy = 1.0 - (1.0 - clean) * (1.0 - s) if config.blend == "screen" else np.minimum(1.0, clean + s)
    t = rng.uniform(*config.veil)
    if t > 0:
        airlight = rng.uniform(0.75, 0.95)
        rainy = (1.0 - t) * rainy + t * airlight
    return rainy.astype(np.float32)


@attrs.define
class StreakSynth:
    """The streak-layer model as ``padm synth`` uses it: a bank and its settings."""

    bank: StreakBank
    config: StreakConfig

    def to_dict(self) -> dict[str, Any]:
        return {"model": "streaks", "streaks": str(self.bank.folder.resolve()), "layers_available": len(self.bank),
                **self.config.to_dict()}

    @property
    def seed(self) -> int:
        return self.config.seed

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rainy float (H, W, 3) for clean float ``clean`` in [0, 1], drawing from ``rng`` (:func:`add_streaks`)."""
        return add_streaks(clean, self.bank, self.config, rng)

    def synthesize(self, pixels: np.ndarray, name: str) -> np.ndarray:
        """Rainy uint8 (H, W, 3) pixels for clean uint8/uint16 ``pixels`` named ``name``."""
        from padm.data.images import from_float, to_8bit, to_float
        from padm.data.synth import image_rng

        rng = image_rng(self.config, name)  # (seed, crc32(name)), as the procedural model
        return from_float(add_streaks(to_float(to_8bit(pixels)), self.bank, self.config, rng), 8)


__all__ = ["StreakConfig", "STREAK_PRESETS", "StreakBank", "StreakSynth", "streak_map", "add_streaks"]
