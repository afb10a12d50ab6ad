"""Learning-rate schedule of the official recipe: constant, then a cosine down to a floor.

The official run keeps 3e-4 for 92k of 300k iterations, then anneals to 1e-6 over the remaining 208k
(BasicSR ``CosineAnnealingRestartCyclicLR`` with periods [92000, 208000], restart weights [1, 1],
eta_mins [3e-4, 1e-6]).  Here the constant part is a fraction of the run, so shorter runs keep the
shape.  The schedule is a pure function of the step: nothing to save beyond the step itself.

A *warm restart* (``start > 0``, ``padm train --restart-at``) splits the run into two cycles of the
same shape: steps ``0 .. start-1`` and ``start .. iterations-1``.  Resuming a finished run with
``--iterations N --restart-at STEP --constant-fraction 0`` anneals the peak lr back down over the new
steps, with no arithmetic on the constant fraction.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, min_lr: float, iterations: int, constant_fraction: float,
          warmup: int = 0, start: int = 0) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``iterations``.

    With ``0 < start < iterations`` the schedule is run twice: over ``0 .. start`` and, from its
    beginning again (warm-up, constant part, cosine), over ``start .. iterations``.
    """
    if 0 < start < iterations:
        if step >= start:
            step, iterations = step - start, iterations - start
        else:
            iterations = start
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    constant = round(constant_fraction * iterations)
    if step < constant:
        return lr
    span = max(iterations - constant, 1)
    t = min((step - constant) / span, 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))


__all__ = ["lr_at"]
