"""Random 128x128 training crops per second: packed HDF5 vs decoding the PNG folder.

Run:  pytest benchmarks/bench_data.py --benchmark-only

Both datasets hold the same pairs (the first 32 of ../shared/data/Rain100L_train when present, 481x321,
else 32 generated 481x321 pairs) and yield identical items for a given (seed, epoch, index); one
benchmark op is one ``dataset[i]`` (a rainy and a clean crop, augmented, as tensors).  The OPS
column therefore reads as crops per second.  ``test_hdf5_vs_png_ratio`` times both paths in
alternating rounds in the same run and prints the ratio (also in ``extra_info``).
"""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from padm.data.datasets import FolderPatchDataset, PairedPatchDataset
from padm.data.images import write_image
from padm.data.pack import pack

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Rain100L_train"
PAIRS = 32
PATCH = 128
SAMPLES = 10**7  # epoch length: the index keeps growing, every op draws a fresh crop


def _make_folder(root: Path) -> str:
    rain, clean = root / "rain", root / "norain"
    rain.mkdir(parents=True)
    clean.mkdir(parents=True)
    if (SHARED / "rain").is_dir() and len(list((SHARED / "rain").glob("*.png"))) >= PAIRS:
        for p in sorted((SHARED / "rain").glob("*.png"))[:PAIRS]:
            shutil.copy(p, rain / p.name)
            shutil.copy(SHARED / "norain" / p.name, clean / p.name)
        return f"first {PAIRS} pairs of Rain100L_train"
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:321, 0:481].astype(np.float32)
    for i in range(PAIRS):
        base = 110 + 70 * np.sin(x / (13 + i) + y / 29)[..., None] * np.array([1.0, 0.8, 0.6])
        img = np.clip(base + rng.normal(0, 10, (321, 481, 3)), 0, 255).astype(np.uint8)
        streaks = img.copy()
        cols = rng.integers(0, 481, 120)
        streaks[:, cols] = np.clip(streaks[:, cols].astype(int) + 80, 0, 255)
        write_image(clean / f"{i:04d}.png", img)
        write_image(rain / f"{i:04d}.png", streaks)
    return f"{PAIRS} generated 481x321 pairs"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    what = _make_folder(root / "png")
    files = {}
    for compression in ("lzf", "gzip"):
        files[compression] = root / f"pairs-{compression}.h5"
        pack(root / "png", files[compression], compression=compression, progress=False, log=lambda _m: None)
    return {"folder": root / "png", "h5": files, "what": what}


def _op(dataset):
    counter = itertools.count()
    return lambda: dataset[next(counter)]


def test_hdf5_crops(benchmark, data):
    ds = PairedPatchDataset(data["h5"]["lzf"], PATCH, seed=0, num_samples=SAMPLES)
    benchmark.extra_info.update(source=data["what"], patch=PATCH, compression="lzf")
    benchmark.pedantic(_op(ds), rounds=400, iterations=1, warmup_rounds=20)


def test_hdf5_gzip_crops(benchmark, data):
    ds = PairedPatchDataset(data["h5"]["gzip"], PATCH, seed=0, num_samples=SAMPLES)
    benchmark.extra_info.update(source=data["what"], patch=PATCH, compression="gzip")
    benchmark.pedantic(_op(ds), rounds=400, iterations=1, warmup_rounds=20)


def test_png_crops(benchmark, data):
    ds = FolderPatchDataset(data["folder"], PATCH, seed=0, num_samples=SAMPLES)
    benchmark.extra_info.update(source=data["what"], patch=PATCH)
    benchmark.pedantic(_op(ds), rounds=60, iterations=1, warmup_rounds=3)


def _rate(dataset, start: int, count: int) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + count):
        dataset[i]
    return count / (time.perf_counter() - t0)


def test_hdf5_vs_png_ratio(benchmark, data, capsys):
    """Crops/s of both paths, measured in alternating rounds (so CPU contention hits both alike);
    the ratio uses the median over rounds."""
    h5 = {c: PairedPatchDataset(data["h5"][c], PATCH, seed=1, num_samples=SAMPLES) for c in ("lzf", "gzip")}
    png = FolderPatchDataset(data["folder"], PATCH, seed=1, num_samples=SAMPLES)

    def measure() -> dict[str, float]:
        rates: dict[str, list[float]] = {"lzf": [], "gzip": [], "png": []}
        for r in range(5):
            rates["lzf"].append(_rate(h5["lzf"], r * 1000, 200))
            rates["gzip"].append(_rate(h5["gzip"], r * 1000, 200))
            rates["png"].append(_rate(png, r * 1000, 20))
        return {k: float(np.median(v)) for k, v in rates.items()}

    med = benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio, ratio_gzip = med["lzf"] / med["png"], med["gzip"] / med["png"]
    benchmark.extra_info.update(hdf5_lzf_crops_per_s=round(med["lzf"], 1),
                                hdf5_gzip_crops_per_s=round(med["gzip"], 1),
                                png_crops_per_s=round(med["png"], 1), ratio_lzf=round(ratio, 2),
                                ratio_gzip=round(ratio_gzip, 2), source=data["what"])
    with capsys.disabled():
        print(f"\n[bench_data] {PATCH}x{PATCH} crops/s on {data['what']}: HDF5 lzf {med['lzf']:.0f}, "
              f"HDF5 gzip {med['gzip']:.0f}, PNG decode {med['png']:.0f}; "
              f"HDF5/PNG ratio {ratio:.1f}x (lzf), {ratio_gzip:.1f}x (gzip)")
    assert ratio >= 3, f"HDF5 crops only {ratio:.1f}x faster than PNG decoding"
