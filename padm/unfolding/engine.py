r"""The generic unrolling engine: K stages of an iterative algorithm as a network.

An unfolded algorithm is three pure functions and its parameters::

    state_0 = init(inputs, init_params)
    state_k = stage(state_{k-1}, inputs, stage_params[k-1])      k = 1 .. K
    output_k = readout(state_k)

:func:`unroll` only loops; it knows nothing about images, rain or blur.  Per-stage parameters are data:
:class:`StageParams` holds K parameter sets, or one set shared by all stages, and that is the single
place where sharing is decided.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence, TypeVar

import torch.nn as nn

State = TypeVar("State")
Inputs = TypeVar("Inputs")
Out = TypeVar("Out")


class StageParams(nn.Module):
    """K stages' parameters: ``make(k)`` builds stage k's parameter module.

    ``shared=True`` builds one module and hands it to every stage (weight sharing across stages);
    otherwise stage k gets its own.  Indexing and iteration yield the module of each stage.
    """

    def __init__(self, make: Callable[[int], nn.Module], stages: int, shared: bool = False):
        super().__init__()
        self.stages = stages
        self.shared = shared
        self.params = nn.ModuleList([make(0)] if shared and stages else [make(k) for k in range(stages)])

    def __len__(self) -> int:
        return self.stages

    def __getitem__(self, k: int) -> nn.Module:
        if not 0 <= k < self.stages:
            raise IndexError(f"stage {k} out of range 0..{self.stages - 1}")
        return self.params[0 if self.shared else k]

    def __iter__(self) -> Iterator[nn.Module]:
        return (self[k] for k in range(self.stages))


def unroll(
    init: Callable[[Inputs, nn.Module], State],
    stage: Callable[[State, Inputs, nn.Module], State],
    inputs: Inputs,
    init_params: nn.Module,
    stage_params: Sequence[nn.Module],
    readout: Callable[[State], Out] = lambda s: s,
) -> list[Out]:
    """Run ``init`` then every stage; return ``readout`` of each state, the initial one first (K+1)."""
    state = init(inputs, init_params)
    outputs = [readout(state)]
    for params in stage_params:
        state = stage(state, inputs, params)
        outputs.append(readout(state))
    return outputs


__all__ = ["StageParams", "unroll"]
