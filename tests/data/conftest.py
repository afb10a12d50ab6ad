"""Fixtures for the data tests (helpers live in data_helpers.py: a unique module name)."""

from __future__ import annotations

from pathlib import Path

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
