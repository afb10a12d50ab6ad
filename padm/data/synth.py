r"""Synthetic rain streaks: make rainy/clean pairs from clean photos.

The model, for a clean image :math:`B \in [0,1]^{H \times W \times 3}` and settings
:class:`SynthConfig` (density :math:`\rho`, length :math:`\ell`, angle :math:`\theta`, spread
:math:`\Delta`, width :math:`w`, brightness :math:`\beta`, blur :math:`\sigma`, layers :math:`L`):

1. **Sparse seeds**, one field per layer :math:`k = 1..L`:
   :math:`M_k(x) = b_k(x)\,u_k(x)` with :math:`b_k(x) \sim \mathrm{Bernoulli}(\rho)` and
   :math:`u_k(x) \sim U(0.5, 1)`, drawn on a margin around the image so that streaks enter from
   outside.
2. **Motion blur along the fall direction**: :math:`\theta_k = \theta + U(-\Delta, \Delta)` and
   :math:`S_k = M_k * (G_\sigma * K_{\ell, \theta_k, w})`, where :math:`K` is an anti-aliased
   segment of length :math:`\ell` and width :math:`w` (peak 1) at angle :math:`\theta_k` from the
   vertical (positive: the top of the streak leans right) and :math:`G_\sigma` a Gaussian that
   softens it (:math:`\sigma = 0`: none).
3. **Streak layer**: :math:`S = \beta \cdot \min(1, \sum_k S_k)`, white (the same in R, G, B).
4. **Screen blend**: :math:`R = 1 - (1 - B)(1 - S) = B + S\,(1 - B)`; light rain brightens dark
   regions most and never clips.

Each image gets its own generator, seeded with ``(seed, crc32(file name))``: the result does not
depend on the order or on which other images are processed.

Presets were tuned so that the rainy-input PSNR on the Y channel (MATLAB ``rgb2ycbcr``), measured on the
Rain100L/Rain200H backgrounds, matches the benchmarks: ``light`` about 27 dB (Rain100L: 26.7 dB),
``heavy`` about 15 dB (Rain200H: about 14 dB).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np

from padm.errors import UserError
from padm.fileio import atomic_folder, write_text


def _in_range(low: float, high: float, *, low_open: bool = False):
    def check(_inst, attribute, value):
        ok = (low < value if low_open else low <= value) and value <= high
        if not ok or (isinstance(value, float) and math.isnan(value)):
            bracket = "(" if low_open else "["
            raise ValueError(f"{attribute.name} must be in {bracket}{low}, {high}], got {value}")
    return check


def from_preset(presets: dict[str, Any], name: str, overrides: dict[str, Any]):
    """``presets[name]`` with ``overrides`` applied; ValueError naming the choices or the bad field."""
    try:
        base = presets[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}") from None
    try:
        return attrs.evolve(base, **overrides)
    except TypeError as err:  # a field the config does not have
        raise ValueError(f"unknown setting ({err}); settings: {', '.join(attrs.fields_dict(type(base)))}") from None


@attrs.frozen(kw_only=True)
class SynthConfig:
    """Settings of the rain model (see the module docstring for the equations)."""

    density: float = attrs.field(default=0.002, converter=float, validator=_in_range(0, 1, low_open=True))
    length: float = attrs.field(default=20.0, converter=float, validator=_in_range(1, 1000))
    angle: float = attrs.field(default=10.0, converter=float, validator=_in_range(-90, 90))
    angle_spread: float = attrs.field(default=4.0, converter=float, validator=_in_range(0, 90))
    width: float = attrs.field(default=1.0, converter=float, validator=_in_range(0.1, 50))
    brightness: float = attrs.field(default=0.8, converter=float, validator=_in_range(0, 1, low_open=True))
    blur: float = attrs.field(default=0.5, converter=float, validator=_in_range(0, 20))
    layers: int = attrs.field(default=1, converter=int, validator=_in_range(1, 16))
    seed: int = attrs.field(default=0, converter=int, validator=_in_range(0, 2**63 - 1))

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def synthesize(self, pixels: np.ndarray, name: str) -> np.ndarray:
        """Rainy uint8 pixels for clean ``pixels`` named ``name`` (:func:`synthesize`)."""
        return synthesize(pixels, self, name)

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rainy float (H, W, 3) for clean float ``clean`` in [0, 1], drawing from ``rng`` (:func:`add_rain`)."""
        return add_rain(clean, self, rng)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "SynthConfig":
        return from_preset(PRESETS, name, overrides)


# click option type and help for each field (padm synth --density ... maps 1:1 onto the fields)
FIELD_HELP: dict[str, tuple[type, str]] = {
    "density": (float, "Fraction of pixels that start a streak, per layer."),
    "length": (float, "Streak length in pixels."),
    "angle": (float, "Fall angle in degrees from vertical (positive: top leans right)."),
    "angle_spread": (float, "Each layer's angle varies by up to +- this many degrees."),
    "width": (float, "Streak width in pixels."),
    "brightness": (float, "Streak intensity in (0, 1]."),
    "blur": (float, "Gaussian blur sigma (pixels) softening the streaks; 0 = sharp."),
    "layers": (int, "Number of streak layers, each with its own angle and seeds."),
    "seed": (int, "Random seed (each image also mixes in a hash of its name)."),
}

PRESETS: dict[str, SynthConfig] = {
    # Rain100L-like: sparse, thin, mostly one direction
    "light": SynthConfig(density=0.0022, length=22, angle=8, angle_spread=4, width=1.0, brightness=0.85,
                         blur=0.6, layers=1),
    # Rain200H-like: dense, long, wide streaks in several directions
    "heavy": SynthConfig(density=0.0018, length=45, angle=10, angle_spread=14, width=1.5, brightness=0.9,
                         blur=0.8, layers=3),
}


# ------------------------------------------------------------------------------------------- the model


def streak_kernel(length: float, angle: float, width: float, blur: float = 0.0) -> np.ndarray:
    """The motion-blur kernel :math:`G_\\sigma * K_{\\ell,\\theta,w}`: an anti-aliased segment with
    peak 1 (before the Gaussian), centred in an odd-sized square."""
    theta = math.radians(angle)
    along_y, along_x = math.cos(theta), -math.sin(theta)  # direction of fall (y points down)
    reach = 0.5 * (length + width) + 3.0 * blur + 1.0
    r = int(math.ceil(reach))
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    along = np.abs(y * along_y + x * along_x)
    across = np.abs(-y * along_x + x * along_y)
    kernel = (np.clip(0.5 * length + 0.5 - along, 0, 1) * np.clip(0.5 * width + 0.5 - across, 0, 1))
    kernel /= max(float(kernel.max()), 1e-12)
    if blur > 0:
        kernel = _gaussian_blur(kernel, blur)
    return kernel.astype(np.float32)


def _gaussian_blur(array: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    pad = np.pad(array.astype(np.float64), radius)
    rows = np.apply_along_axis(lambda v: np.convolve(v, g, mode="valid"), 1, pad)
    both = np.apply_along_axis(lambda v: np.convolve(v, g, mode="valid"), 0, rows)
    return both.astype(np.float32)


def _valid_convolve(field: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' 2-D convolution by FFT: field (H + kh - 1, W + kw - 1) -> (H, W)."""
    fh, fw = field.shape
    kh, kw = kernel.shape
    spectrum = np.fft.rfft2(field, (fh, fw)) * np.fft.rfft2(kernel, (fh, fw))
    full = np.fft.irfft2(spectrum, (fh, fw))  # circular; no wrap-around at indices >= k - 1
    return full[kh - 1:, kw - 1:].astype(np.float32)


def rain_layer(height: int, width: int, config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """The streak layer :math:`S` (H, W) in [0, brightness]."""
    total = np.zeros((height, width), dtype=np.float32)
    for _ in range(config.layers):
        angle = config.angle + rng.uniform(-config.angle_spread, config.angle_spread)
        kernel = streak_kernel(config.length, angle, config.width, config.blur)
        kh, kw = kernel.shape
        fh, fw = height + kh - 1, width + kw - 1
        seeds = rng.random((fh, fw), dtype=np.float32) < config.density  # (H + kh - 1, W + kw - 1)
        field = seeds * rng.uniform(0.5, 1.0, size=(fh, fw)).astype(np.float32)
        total += _valid_convolve(field, kernel)
    return config.brightness * np.clip(total, 0.0, 1.0)


def add_rain(clean: np.ndarray, config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Rainy version of ``clean`` (H, W, 3) float in [0, 1]: :math:`R = 1 - (1 - B)(1 - S)`."""
    h, w, _ = clean.shape
    streaks = rain_layer(h, w, config, rng)[..., None]  # (H, W, 1)
    return (1.0 - (1.0 - clean) * (1.0 - streaks)).astype(np.float32)


def image_rng(config, name: str) -> np.random.Generator:
    """The generator of image ``name``: ``(config.seed, crc32(name))`` (any config with a seed)."""
    return np.random.default_rng([config.seed, zlib.crc32(name.encode("utf-8"))])


def synthesize(pixels: np.ndarray, config: SynthConfig, name: str) -> np.ndarray:
    """Rainy uint8 (H, W, 3) pixels for clean uint8/uint16 ``pixels`` named ``name``."""
    from padm.data.images import from_float, to_8bit, to_float

    clean = to_float(to_8bit(pixels))  # (H, W, 3)
    return from_float(add_rain(clean, config, image_rng(config, name)), 8)


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB, peak 255) between the Y channels (MATLAB rgb2ycbcr, rounded) of two uint8 images;
    used only to report what ``padm synth`` made."""
    def y(p: np.ndarray) -> np.ndarray:
        f = p.astype(np.float64) / 255.0
        return np.round(16 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2])

    mse = float(np.mean((y(a) - y(b)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


# ------------------------------------------------------------------------------------------- folders


@attrs.frozen
class SynthResult:
    out: Path
    count: int
    skipped: int
    mean_psnr_y: float
    notes: dict[str, int]


def synth_folder(clean_dir: str | os.PathLike, out: str | os.PathLike, config, *,
                 overwrite: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> SynthResult:
    """Write ``out/rain/NAME.png``, ``out/norain/NAME.png`` (8-bit) and ``out/synth.json`` for every
    image in ``clean_dir``.  ``config``: the rain model, a :class:`SynthConfig` (procedural streaks) or a
    :class:`padm.data.streaks.StreakSynth` (real streak layers); anything with ``synthesize(pixels,
    name)`` and ``to_dict()``.  Everything is written to a temporary folder that is renamed at the end,
    so an interrupted run leaves no half-filled ``out``."""
    from tqdm import tqdm

    from padm.data.images import read_image, to_8bit, write_image
    from padm.data.layouts import list_images

    clean_dir, out = Path(clean_dir), Path(out)
    if not clean_dir.is_dir():
        raise UserError(f"folder not found: {clean_dir}" if not clean_dir.exists()
                        else f"expected a folder of clean images, got a file: {clean_dir}")
    if out.exists() and not out.is_dir():
        raise UserError(f"output path exists and is a file: {out}")
    if out.exists() and not overwrite:
        raise UserError(f"output folder already exists: {out} (use --overwrite to replace it)")
    if out.resolve() == clean_dir.resolve() or clean_dir.resolve() in out.resolve().parents:
        raise UserError(f"output folder {out} must not be inside the clean folder {clean_dir}")
    files, skipped = list_images(clean_dir)
    if not files:
        raise UserError(f"no images found in {clean_dir}")
    images = {p.stem: p for p in files}
    if skipped:
        log(f"Skipped {skipped} non-image entries in {clean_dir}")

    notes: Counter[str] = Counter()
    psnrs = []
    with atomic_folder(out) as tmp:  # a failure (disk full, read-only, Ctrl-C) leaves no half-filled out
        bar = tqdm(images.items(), desc=f"synth {out.name}", unit="img", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for name, path in bar:
            img = read_image(path)
            notes.update(img.notes)
            if img.bit_depth == 16:
                notes["16-bit converted to 8-bit"] += 1
            clean = to_8bit(img.pixels)  # (H, W, 3) uint8
            rainy = config.synthesize(clean, name)
            write_image(tmp / "norain" / f"{name}.png", clean)
            write_image(tmp / "rain" / f"{name}.png", rainy)
            psnrs.append(psnr_y(rainy, clean))
        mean_psnr = float(np.mean(psnrs))
        write_text(tmp / "synth.json", json.dumps(
            {"config": config.to_dict(), "source": str(clean_dir.resolve()), "images": len(images),
             "mean_psnr_y_db": round(mean_psnr, 3)}, indent=2) + "\n")
    if notes:
        log("Converted: " + "; ".join(f"{note} ({n} images)" for note, n in sorted(notes.items())))
    log(f"Wrote {len(images)} pairs to {out} (rainy-input PSNR on Y: {mean_psnr:.2f} dB)")
    return SynthResult(out, len(images), skipped, mean_psnr, dict(notes))


# ------------------------------------------------------------------------------------------- models by name


MODEL_SPEC_HELP = ("PRESET or procedural:PRESET (procedural streaks), streaks:PRESET:DIR (streak layers of DIR), "
                   "or a JSON file: the synth.json `padm synth` writes, or its \"config\" mapping (a relative "
                   "\"streaks\" folder is relative to the JSON file)")


def load_model(spec: str):
    """The rain model a spec names (:data:`MODEL_SPEC_HELP`): a :class:`SynthConfig` or a
    :class:`padm.data.streaks.StreakSynth`; :class:`UserError` for a bad spec."""
    from padm.data.streaks import StreakBank, StreakConfig, StreakSynth

    spec = str(spec).strip()
    if not spec:
        raise UserError("no rain model given; expected " + MODEL_SPEC_HELP)
    try:
        if spec.lower().endswith(".json"):
            return _model_from_json(Path(spec))
        kind, _, rest = spec.partition(":") if ":" in spec else ("procedural", "", spec)
        if kind == "procedural":
            return SynthConfig.preset(rest)
        if kind == "streaks":
            preset, sep, folder = rest.partition(":")
            if not sep or not folder:
                raise ValueError("streaks:PRESET:DIR needs a preset and a folder")
            return StreakSynth(StreakBank(folder), StreakConfig.preset(preset))
        raise ValueError(f"unknown rain model {kind!r}")
    except (TypeError, ValueError) as err:
        raise UserError(f"rain model {spec!r}: {err}; expected {MODEL_SPEC_HELP}") from None


def _model_from_json(path: Path):
    from padm.data.streaks import StreakBank, StreakConfig, StreakSynth

    if not path.is_file():
        raise UserError(f"rain model file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a JSON file ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]  # a synth.json of `padm synth`
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of rain-model settings")
    data = dict(data)
    kind = data.pop("model", "procedural")
    if kind == "streaks":
        folder = data.pop("streaks", None)
        if not folder:
            raise UserError(f"{path}: a streaks model needs \"streaks\": the folder of streak layers")
        data.pop("layers_available", None)
        folder = Path(folder) if Path(folder).is_absolute() else path.parent / folder
        return StreakSynth(StreakBank(folder), StreakConfig(**data))
    if kind != "procedural":
        raise UserError(f"{path}: unknown rain model {kind!r} (procedural or streaks)")
    return SynthConfig(**data)

