r"""Linear operators with their adjoints, and the quadratic data-fidelity gradient.

A (learned or fixed) linear operator :math:`A: X \to Y` comes with its adjoint :math:`A^\top`, defined by
:math:`\langle A x, y\rangle = \langle x, A^\top y\rangle` for all x, y; every operator here has an
adjointness test.  The data-fidelity term of a stage is

.. math::

    f(x) = \tfrac12 \lVert A x - y \rVert^2, \qquad \nabla f(x) = A^\top (A x - y)

For deraining, :math:`I = B + R` with :math:`R = \mathcal{D}(z)` splits into two blocks that PADM updates
in turn (block-coordinate descent):

- the background step uses :math:`A = \mathrm{Id}` and :math:`y = I - R`:
  :math:`\nabla_B f = B - (I - R)`;
- the rain-map step uses :math:`A = \mathcal{D}` (a convolution ``C -> 3``) and :math:`y = I - B`:
  :math:`\nabla_z f = \mathcal{D}^\top(\mathcal{D} z - (I - B))`.

The official network learns :math:`\mathcal{D}` and :math:`\mathcal{D}^\top` as **two independent
convolutions** (:class:`LearnedPairConv`), so its "adjoint" is only an approximation learned end to end;
:class:`Conv2dOperator` is the exactly tied version.  Task-specific operators live with their task
(the FFT blur of :mod:`padm.unfolding.tasks.deblur.operator`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class LinearOperator(nn.Module):
    """A linear map with an adjoint.  Subclasses implement :meth:`forward` (A x) and :meth:`adjoint`."""

    def forward(self, x: Tensor) -> Tensor:  # A x
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:  # A^T y
        raise NotImplementedError


class Identity(LinearOperator):
    """A = Id (the background block of the rain model)."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        return y


class Conv2dOperator(LinearOperator):
    """A z = conv2d(z, W) with zero 'same' padding, A^T y = conv_transpose2d(y, W): exact adjoints.

    ``W``: (C_out, C_in, k, k), k odd.  Maps (N, C_in, H, W) -> (N, C_out, H, W).
    """

    def __init__(self, c_in: int, c_out: int, k: int = 3, weight: Tensor | None = None):
        super().__init__()
        if k % 2 == 0:
            raise ValueError("kernel size must be odd for a same-size convolution")
        w = weight if weight is not None else torch.randn(c_out, c_in, k, k) / (c_in * k * k) ** 0.5
        self.weight = nn.Parameter(w.clone())

    def forward(self, z: Tensor) -> Tensor:
        return F.conv2d(z, self.weight, padding=self.weight.shape[-1] // 2)

    def adjoint(self, y: Tensor) -> Tensor:
        return F.conv_transpose2d(y, self.weight, padding=self.weight.shape[-1] // 2)


class LearnedPairConv(LinearOperator):
    """The official rain operator: ``d`` (C -> 3) as A and an independently learned ``dt`` (3 -> C) as
    its transpose.  Not an exact adjoint unless ``dt`` happens to equal ``d``'s transpose."""

    def __init__(self, c_z: int, c_img: int, k: int = 3):
        super().__init__()
        self.d = nn.Conv2d(c_z, c_img, k, padding=k // 2, bias=False)
        self.dt = nn.Conv2d(c_img, c_z, k, padding=k // 2, bias=False)

    def forward(self, z: Tensor) -> Tensor:
        return self.d(z)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.dt(y)

    @torch.no_grad()
    def tie_(self) -> "LearnedPairConv":
        """Set ``dt`` to the exact adjoint of ``d`` (flip the kernel, swap channels)."""
        self.dt.weight.copy_(self.d.weight.flip(-1, -2).transpose(0, 1))
        return self


def l2_grad(op: LinearOperator, x: Tensor, y: Tensor) -> Tensor:
    r""":math:`\nabla_x \tfrac12\lVert A x - y\rVert^2 = A^\top(A x - y)`."""
    return op.adjoint(op(x) - y)


__all__ = ["LinearOperator", "Identity", "Conv2dOperator", "LearnedPairConv", "l2_grad"]
