"""Fixtures for the data tests (helpers live in data_helpers.py: a unique module name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from padm.data.images import write_image

from data_helpers import scene, write_pairs


@pytest.fixture
def jorder(tmp_path: Path) -> tuple[Path, dict]:
    """tmp/ds/{rain,norain}/N.png with odd sizes (two orientations) plus SOURCE.txt, mapping.csv."""
    root = tmp_path / "ds"
    pixels = write_pairs(root / "rain", root / "norain", 4, sizes=[(37, 53), (53, 37), (41, 45), (37, 53)])
    (root / "SOURCE.txt").write_text("made by a test\n")
    (root / "mapping.csv").write_text("a,b\n")
    return root, pixels


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    """tmp/clean/{0,1,2}.png: three 61x83 clean scenes, and a SOURCE.txt that is not an image."""
    d = tmp_path / "clean"
    d.mkdir()
    for i in range(3):
        write_image(d / f"{i}.png", scene(i, 61, 83))
    (d / "SOURCE.txt").write_text("x")
    return d


@pytest.fixture
def bank_dir(tmp_path):
    """Four 'rendered' streak layers: thin bright slanted lines on black, of different densities."""
    d = tmp_path / "streaks"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        layer = np.zeros((40, 57, 3), np.uint8)
        for _ in range(6 + 8 * i):
            x, y, n = rng.integers(0, 57), rng.integers(0, 40), rng.integers(5, 15)
            for t in range(n):
                layer[(y + t) % 40, (x + t // 4) % 57] = 230
        write_image(d / f"{i}-1.png", layer)
    return d
