"""The micro engines: what solves the nonlinear cell problems of a template's macro points.

Every engine implements the contract of :mod:`fe2.micro.engines.base` (made from the
template's immutable :class:`~fe2.micro.problem.MicroProblem`; evaluates a batch of points
from their macro gradients, committed states and predictors; returns fluxes, tangents,
trial states, predictors, per-point failures and its own counters) and iterates by the
rules of :mod:`fe2.micro.rules`. The load balancer and rank groups
(:mod:`fe2.parallel`) serve any of them through that contract.

- :mod:`~fe2.micro.engines.batched`: all points of a rank iterate together, no assembly,
  exact elastic shortcut (the default)
- :mod:`~fe2.micro.engines.reference`: one point at a time with dolfinx and dolfinx_mpc
  assembly, the slow, obviously-correct path the others are tested against

A new engine is a subclass of :class:`~fe2.micro.engines.base.MicroEngine` and one entry in
:data:`ENGINES`; the contract tests (``tests/micro/test_engines.py``) then run it.
"""

from __future__ import annotations

from fe2.micro.engines.base import MicroEngine
from fe2.micro.engines.batched import BatchedEngine
from fe2.micro.engines.reference import ReferenceEngine

__all__ = ["ENGINES", "engine_class"]

#: the micro engines by name (``[rve] engine``); the first is the default
ENGINES: dict[str, type[MicroEngine]] = {cls.name: cls for cls in (BatchedEngine, ReferenceEngine)}


def engine_class(name: str) -> type[MicroEngine]:
    """The engine called ``name``; a ``ValueError`` naming the registered ones otherwise."""
    if name not in ENGINES:
        raise ValueError(f"unknown micro engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[name]
