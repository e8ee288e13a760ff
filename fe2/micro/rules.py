"""The rules of the micro Newton: when a cell problem is converged, when a step is taken,
when a solve has failed, and what the failure says. Every micro engine
(:mod:`fe2.micro.engines`) iterates by these rules, so that they give the same answers.

For a point with macro gradient ``E`` the rules compare the norm of the condensed residual
``|r|`` with a tolerance made of three scales:

- ``r_ref``: the residual the macro gradient alone causes in the elastic cell
  (``|B_residual (E - E_0)|``; zero for a homogeneous cell);
- ``r_forces``: the norm of the internal forces assembled without the periodic
  condensation (their boundary tractions do not cancel, so it measures the size of the
  forces), updated at every accepted iterate;
- the round-off floor (:meth:`NewtonRules.floor`): :attr:`NewtonRules.roundoff` times the
  internal forces the phases' elastic stress of ``E - E_0`` would cause. A state of that
  strain has forces of this size somewhere in its sums, so its residual cannot be trusted
  below it, even where the stress itself is zero (a homogeneous cell unloaded to zero
  stress has neither a reference residual nor internal forces).

The tolerance starts at ``max(rtol max(r_ref, r_forces), floor)`` and grows with
``rtol r_forces`` at every later iterate. An iterate is converged when ``|r|`` is below
it, or when the residual stagnates (falls by less than :attr:`NewtonRules.stagnation`)
within :attr:`NewtonRules.slack` times it. The line search takes a step whose residual is
finite and smaller, or any finite one from a residual within the slack; otherwise it halves
the step, at most ``max_cuts`` times. A solve fails when the material fails at the start,
the residual is not finite, the line search gives up, or ``max_iterations`` updates do not
converge. All rules are numpy expressions over any number of points (scalars work too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ROUNDOFF", "SCHEMES", "NewtonRules"]

#: how the micro Newton is coupled to the macro one (:attr:`fe2.micro.problem.MicroProblem.scheme`)
SCHEMES = ("monolithic", "nested")

#: the residual's round-off floor, relative to the internal forces the elastic stress of the
#: macro gradient would cause (:meth:`NewtonRules.floor`)
ROUNDOFF = 1e-13


@dataclass(frozen=True)
class NewtonRules:
    """The micro Newton's tolerances and limits (see the module docstring)."""

    #: residual norm relative to the larger of ``r_ref`` and ``r_forces``
    rtol: float = 1e-10
    #: Newton updates before the solve is declared failed
    max_iterations: int = 25
    #: halvings of a Newton step before the solve is declared failed
    max_cuts: int = 8
    #: the round-off floor's factor
    roundoff: float = ROUNDOFF
    #: a residual within this factor of the tolerance may stagnate, and any finite step from it is taken
    slack: float = 1e3
    #: a residual that falls by less than this factor stagnates
    stagnation: float = 0.5

    def floor(self, d: np.ndarray, gram: np.ndarray) -> np.ndarray:
        """The round-off floor ``(m,)`` of macro gradients ``d = E - E_0`` ``(m, n)``, with
        ``gram = S^T S`` ``(n, n)``, ``S`` the uncondensed internal forces of the phases'
        elastic stress of each unit macro gradient."""
        return self.roundoff * np.sqrt(np.maximum(np.einsum("mi,ij,mj->m", d, gram, d), 0.0))

    def tolerance(self, r_ref: Any, r_forces: Any, floor: Any) -> Any:
        """The tolerance at the start of a solve."""
        return np.maximum(self.rtol * np.maximum(r_ref, r_forces), floor)

    def converged(self, iteration: Any, norm: Any, r_prev: Any, tol: Any, r_forces: Any) -> tuple[Any, Any]:
        """Whether accepted iterates ``iteration`` with residual ``norm`` (the previous
        accepted one ``r_prev``, internal forces ``r_forces``) are converged under the
        tolerance ``tol``, and the tolerance from now on."""
        later = np.asarray(iteration) > 0
        stagnated = later & (norm > self.stagnation * r_prev) & (norm <= self.slack * tol)
        tol = np.where(later, np.maximum(tol, self.rtol * r_forces), tol)
        return stagnated | (norm <= tol), tol

    @staticmethod
    def ratio(norm: Any, tol: Any) -> Any:
        """Residual norms relative to their tolerances (a zero residual within a zero
        tolerance: 0; a nonzero one: infinite)."""
        norm, tol = np.asarray(norm, dtype=float), np.asarray(tol, dtype=float)
        return np.divide(norm, tol, out=np.where(norm > 0, np.inf, 0.0), where=tol > 0)

    def settled(self, ratio: Any, previous: Any) -> Any:
        """Monolithic scheme: whether points whose micro residuals are ``ratio`` times their
        tolerances are solved, ``previous`` the ratio of their last evaluation in the load
        step (0: none): within the tolerance, or stagnated within the slack."""
        ratio, previous = np.asarray(ratio), np.asarray(previous)
        return (ratio <= 1.0) | ((ratio <= self.slack) & (previous > 0) & (ratio > self.stagnation * previous))

    def accept(self, norm: Any, new_norm: Any, tol: Any) -> Any:
        """The line search: whether a step from residual ``norm`` to ``new_norm`` is taken."""
        return np.isfinite(new_norm) & ((new_norm < norm) | (norm <= self.slack * tol))

    # --- what a failure says -------------------------------------------------------------
    @staticmethod
    def material_failed_at_start() -> str:
        return "the micro material failed at the start of the solve (warm start)"

    @staticmethod
    def not_finite() -> str:
        return "micro Newton residual is not finite"

    def line_search_failed(self, iteration: int, norm: float) -> str:
        """``iteration``: the update that could not be taken (counted from 1)."""
        return (f"micro Newton line search failed at iteration {iteration} (residual {norm:.3e}, "
                f"{self.max_cuts} step halvings)")

    @staticmethod
    def no_convergence(iterations: int, tol: float, residuals: list[float]) -> str:
        return (f"micro Newton did not converge in {iterations} iterations (residual {residuals[-1]:.3e}, "
                f"tolerance {tol:.3e}, residuals {' '.join(f'{v:.2e}' for v in residuals)})")
