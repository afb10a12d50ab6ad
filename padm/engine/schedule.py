"""Learning-rate schedule of the official recipe: constant, then a cosine down to a floor.

The official run keeps 3e-4 for 92k of 300k iterations, then anneals to 1e-6 over the remaining 208k
(BasicSR ``CosineAnnealingRestartCyclicLR`` with periods [92000, 208000], restart weights [1, 1],
eta_mins [3e-4, 1e-6]).  Here the constant part is a fraction of the run, so shorter runs keep the
shape.  The schedule is a pure function of the step: nothing to save beyond the step itself.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, min_lr: float, iterations: int, constant_fraction: float,
          warmup: int = 0) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``iterations``."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    constant = round(constant_fraction * iterations)
    if step < constant:
        return lr
    span = max(iterations - constant, 1)
    t = min((step - constant) / span, 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))


__all__ = ["lr_at"]
