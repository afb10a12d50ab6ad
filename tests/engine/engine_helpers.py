"""Helpers shared by the engine tests (importable as ``engine_helpers``; pytest puts this folder on the path).

``inject_fault`` makes file-system writes fail (read-only, permission denied, disk full) without a real
mount, ``leftovers`` finds temporary files a writer left behind, and ``assert_one_line_error`` checks
the one-line error of the command line.

``StandIn`` has PADM's interface (``.config``, ``forward -> UnfoldingOutput``-like object with K+1
stage tuples ``B``, ``R``, ``eta_B``, ``eta_z``) but is a few local convolutions with dropout, so
training-loop tests run in a second, and tiling is exact for it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import attrs
import numpy as np
import torch
from torch import nn

from padm.unfolding.tasks.derain.config import PADMConfig

@attrs.frozen
class Stages:
    B: tuple
    R: tuple
    eta_B: tuple
    eta_z: tuple


class StandIn(nn.Module):
    """Local (receptive radius 2) unrolled toy: each stage refines B with two 3x3 convolutions."""

    def __init__(self, config: PADMConfig):
        super().__init__()
        self.config = config
        c = config.n_feat
        self.body = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.GELU(), nn.Dropout(0.1), nn.Conv2d(c, 3, 3, padding=1))
            for _ in range(config.stages + 1))
        self.eta = nn.Parameter(torch.full((config.stages + 1,), 0.5))

    def forward(self, rainy):
        if rainy.dim() != 4 or rainy.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (N, {self.config.in_channels}, H, W), got {tuple(rainy.shape)}")
        B, Bs, Rs, eB, eR = rainy, [], [], [], []
        for k, body in enumerate(self.body):
            B = B + self.eta[k] * body(B)
            Bs.append(B)
            Rs.append(rainy - B)
            eB.append(self.eta[k].expand_as(B))
            eR.append(self.eta[k].expand(B.shape[0], self.config.n_feat, *B.shape[-2:]))
        return Stages(tuple(Bs), tuple(Rs), tuple(eB), tuple(eR))


def write_pairs(root: Path, n: int = 4, size=(21, 26), seed: int = 0) -> Path:
    """``root/rain/NNNN.png`` + ``root/norain/NNNN.png``: smooth clean images plus streaks."""
    from padm.data.images import write_image

    rng = np.random.default_rng(seed)
    h, w = size
    (root / "rain").mkdir(parents=True, exist_ok=True)
    (root / "norain").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = 0.5 + 0.3 * np.sin(xx[..., None] / (3 + i) + yy[..., None] / 5 + np.arange(3) + rng.uniform(0, 6))
        streaks = (((xx + 2 * yy + i) % 7) == 0)[..., None] * 0.35
        clean = (np.clip(base, 0, 1) * 255).round().astype(np.uint8)
        rain = (np.clip(base + streaks, 0, 1) * 255).round().astype(np.uint8)
        write_image(root / "norain" / f"{i + 1:04d}.png", clean)
        write_image(root / "rain" / f"{i + 1:04d}.png", rain)
    return root


# ------------------------------------------------------------------------------------ injected faults

FAULTS = {  # name -> (errno, what fails)
    "read-only": (errno.EROFS, "create"),  # the target folder is on a read-only mount
    "missing-parent-read-only": (errno.EROFS, "create"),  # ... and a folder of the target is missing
    "permission-denied": (errno.EACCES, "create"),
    "disk-full": (errno.ENOSPC, "flush"),  # the data was written, the disk filled up before it was on it
}


def inject_fault(monkeypatch, kind: str, root: Path, *, after: int = 0, only: str = "") -> list[str]:
    """Make file-system writes under ``root`` fail as ``kind`` of :data:`FAULTS` would, without a real mount.

    ``create`` faults: creating a file (``os.open`` with ``O_CREAT``) or a folder (``os.mkdir``) under
    ``root`` raises.  ``flush`` faults: the flush to disk that finishes every file padm writes
    (``padm.fileio._fsync``, inside :func:`padm.fileio.atomic_write` and ``append_text``) raises,
    after the writer wrote its data: the disk filled up midway.  ``after``: let that many matching
    operations succeed first; ``only``: only paths containing this text.  Returns the paths that failed.
    """
    import padm.fileio as fileio

    code, what = FAULTS[kind]
    failed: list[str] = []
    seen = [0]

    def hit(path) -> bool:
        text = os.fspath(path) if not isinstance(path, int) else ""
        if not text.startswith(str(root)) or only not in text:
            return False
        seen[0] += 1
        if seen[0] <= after:
            return False
        failed.append(text)
        return True

    def error(path) -> OSError:
        return OSError(code, os.strerror(code), os.fspath(path))

    if what == "create":
        real_open, real_mkdir = os.open, os.mkdir

        def fake_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and hit(path):
                raise error(path)
            return real_open(path, flags, *args, **kwargs)

        def fake_mkdir(path, *args, **kwargs):
            if os.path.exists(path) or not os.path.isdir(os.path.dirname(os.fspath(path))):
                return real_mkdir(path, *args, **kwargs)  # EEXIST / ENOENT, as a read-only mount answers too
            if hit(path):
                raise error(path)
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)
    else:
        real_fsync = fileio._fsync

        def fake_fsync(path):
            if hit(path):
                raise error(path)
            real_fsync(path)

        monkeypatch.setattr(fileio, "_fsync", fake_fsync)
    return failed


def leftovers(root: Path) -> list[str]:
    """Temporary files or folders of padm's writers under ``root``: there must never be any."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if ".partial" in p.name or p.name.endswith(".old"))


def assert_one_line_error(code: int, output: str, needle: str) -> str:
    """A non-zero exit with one ``Error: ...`` line containing ``needle`` and no traceback (other lines,
    such as a summary printed before the work began, may come with it)."""
    assert code != 0, output
    assert "Traceback" not in output, output
    errors = [ln for ln in output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and errors[0].startswith("Error: "), output
    assert needle in errors[0], output
    return errors[0]
