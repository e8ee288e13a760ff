"""One Newton driver for every nonlinear system fe2 solves.

The macro equilibrium (:class:`fe2.macro.problem.MacroProblem`), the bordered
arc-length system of dissipation control (:mod:`fe2.solvers.pathfollowing`) and the
micro cell problem of every RVE (:class:`fe2.micro.nonlinear.NonlinearCellProblem`) all
iterate with :func:`newton`. What differs between them is supplied by the system
(:class:`NewtonSystem`): how the residual and its norm are formed, when it counts as
converged, how the Jacobian is assembled and solved, and how an update is applied. The
driver owns the iteration: the count, the residual history, the test for a non-finite
residual, the iteration limit and an optional backtracking line search (the micro solve
halves a step whose residual grows, up to ``max_cuts`` times).

Not collective by itself; collective exactly where the system's methods are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = ["NewtonReport", "NewtonSystem", "newton"]


@dataclass
class NewtonReport:
    """What one Newton solve did (for the macro problem: rank-independent numbers)."""

    converged: bool = False
    iterations: int = 0
    residuals: list[float] = field(default_factory=list)
    updates: list[float] = field(default_factory=list)
    time_material: float = 0.0  #: seconds in material (RVE) evaluations, slowest rank
    time_macro: float = 0.0  #: seconds in the system's own assembly and solves
    material_points: int = 0  #: material evaluations of this rank
    cuts: int = 0  #: line-search halvings
    failure: str = ""


class NewtonSystem(Protocol):
    """What :func:`newton` needs from a nonlinear system. The current iterate lives in the
    system; "the update" is the Newton correction computed at the last accepted iterate."""

    #: name of the unknown in log lines (``u``, ``x``, ``w``)
    unknown: str

    def residual(self) -> float:
        """Evaluate everything at the initial iterate and return the residual norm."""
        ...

    def converged(self, iteration: int, norm: float) -> bool:
        """Whether the accepted iterate ``iteration`` with residual ``norm`` is converged."""
        ...

    def solve_update(self) -> float:
        """Assemble the Jacobian at the current iterate, solve for the update; its norm."""
        ...

    def step(self, alpha: float) -> float:
        """Move to ``accepted iterate + alpha * update``, evaluate there and return the
        residual norm (``inf`` where the evaluation fails and a line search may cut)."""
        ...

    def accept(self, norm: float, new_norm: float) -> bool:
        """Line search: whether a step from residual ``norm`` to ``new_norm`` is taken."""
        ...

    def status(self) -> str:
        """Extra text for the log line of the current iterate (may be empty)."""
        ...


def newton(system: NewtonSystem, max_iterations: int, *, max_cuts: int = 0,
           log: Callable[[str], None] | None = None, report: NewtonReport | None = None,
           stop: Callable[[], None] | None = None) -> NewtonReport:
    """Newton iterations on ``system`` from its current iterate.

    Stops when :meth:`NewtonSystem.converged` says so (``report.converged``), or with
    ``report.failure`` set when the residual is not finite, after ``max_iterations``
    updates, or when ``max_cuts > 0`` and a step is still not accepted after ``max_cuts``
    halvings (without a line search every full step is taken). Exceptions of the system
    (e.g. a failed material evaluation) propagate.

    ``stop``: called before every update (collective where the system is); it raises to
    end the iterations (:class:`fe2.core.stopping.StopRequest`), and that propagates too.
    """
    rep = report if report is not None else NewtonReport()
    r = system.residual()
    it = 0
    while True:
        rep.residuals.append(r)
        rep.iterations = it
        if log is not None:
            upd = f"  |d{system.unknown}| = {rep.updates[-1]:.3e}" if rep.updates else ""
            log(f"    newton {it:2d}: |R| = {r:.3e}{system.status()}{upd}")
        if not np.isfinite(r):
            rep.failure = "residual is not finite"
            return rep
        if system.converged(it, r):
            rep.converged = True
            return rep
        if it == max_iterations:
            rep.failure = f"no convergence in {max_iterations} Newton iterations"
            return rep
        if stop is not None:
            stop()
        rep.updates.append(system.solve_update())
        alpha, cuts = 1.0, 0
        r_new = system.step(alpha)
        while max_cuts and not system.accept(r, r_new):
            cuts += 1
            rep.cuts += 1
            if cuts > max_cuts:
                rep.failure = f"line search failed at iteration {it + 1} (residual {r:.3e}, {max_cuts} step halvings)"
                return rep
            alpha *= 0.5
            r_new = system.step(alpha)
        r = r_new
        it += 1
