"""Headless matplotlib and atomic figure writing, shared by the demo, ``padm explain`` and run logs."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from padm.fileio import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to a temporary PNG beside ``path`` and rename it: no half-written figures."""
    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_write(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        pyplot().close(fig)
    return path
