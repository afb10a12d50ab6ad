r"""APGD: the adaptive pixel-wise gradient-descent step.

Classic unfolded proximal gradient descent takes one scalar step size per stage,
:math:`\hat x = x - \eta_k \nabla f(x)`.  PADM predicts a step size **per pixel and channel** from the
previous stage's decoder features :math:`F_{dec}`:

.. math::

    \hat x = x - S_\beta(F^{k-1}_{dec}) \odot A^\top (A x - y), \qquad S_\beta(\cdot) \ge 0

so the descent can move fast where rain is and barely at all elsewhere.  For the background block
(:math:`A = \mathrm{Id}`, :math:`y = I - R`) this is the convex combination
:math:`\hat B = (1 - \eta) \odot B + \eta \odot (I - R)` of the official code.
"""

from __future__ import annotations

from torch import Tensor

from padm.unfolding.operators import LinearOperator, l2_grad


def apgd_step(x: Tensor, y: Tensor, op: LinearOperator, eta: Tensor) -> Tensor:
    r""":math:`\hat x = x - \eta \odot A^\top(A x - y)` with pixel-wise (or broadcast scalar) :math:`\eta`."""
    return x - eta * l2_grad(op, x, y)


__all__ = ["apgd_step"]
