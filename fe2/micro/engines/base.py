"""The micro engine contract: what every engine that solves RVE cell problems implements.

An engine solves the nonlinear cell problem of many macro points of one RVE template. It
is made from the template's immutable description of the micro problem
(:class:`fe2.micro.problem.MicroProblem`: operators, phases and their laws, tolerances,
volume, what is condensed) and knows nothing else of the template; it never writes into
the description nor into the template, and keeps no per-point history (the template's
state bank does).

One evaluation (:meth:`MicroEngine.evaluate`) takes a :class:`PointBatch`: for ``m``
points their macro gradients, their starting fluctuations and their committed internal
states (and, for gradient-regularized FE², the nonlocal strain that drives their damage
phases); it returns an :class:`EngineAnswer`: the homogenized fluxes and consistent
tangents, the converged (trial) fluctuations and internal states, the sensitivities of the
fluctuations ``dW/dE`` (the predictors of the next evaluation) or the nonlocal
sensitivities, the points that failed with the reason, the estimated cost of each point
and the engine's own counters of this evaluation. A failed point does not stop the others;
its answer is meaningless and it is listed in ``failures``.

:meth:`MicroEngine.start` turns the committed fluctuations and the predictors of the last
evaluation into the starting fluctuations (the engine's choice: the committed one, or a
first-order prediction). It runs where the points' history lives, so that a batch that
travels to another rank (:mod:`fe2.parallel.balance`) carries one fluctuation per point.

Every engine iterates by the rules of :mod:`fe2.micro.rules`, so all converge to the same
answers. Under the monolithic scheme (:attr:`fe2.micro.problem.MicroProblem.scheme`) an
evaluation does not iterate: it linearises each point once at its start and answers the
Newton correction with it (the answer's fluctuation and flux, :class:`EngineAnswer`), and
the answer's ``residual`` tells the template whether the point's cell problem is solved.
Collective on the template's communicator (one process, or a group of ranks that
holds a distributed RVE): every process of it calls :meth:`MicroEngine.evaluate` with the
same points and gets the whole answer of each.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from fe2.micro.problem import MicroProblem

__all__ = ["EngineAnswer", "MicroEngine", "NonlocalAnswer", "PointBatch", "Predictor"]


class PointBatch(NamedTuple):
    """The input of one evaluation: ``m`` points (rows)."""

    gradient: np.ndarray  #: (m, n) macro gradients
    start: np.ndarray  #: (m, nloc) starting fluctuations (condensed; :meth:`MicroEngine.start`)
    states: list[np.ndarray]  #: per phase: (m, points of the phase, state size), committed
    drive: np.ndarray | None = None  #: (m,) nonlocal equivalent strain driving the damage phases, or None

    @property
    def size(self) -> int:
        return self.gradient.shape[0]

    def take(self, rows: np.ndarray | slice) -> PointBatch:
        """The points ``rows``."""
        return PointBatch(self.gradient[rows], self.start[rows], [s[rows] for s in self.states],
                          None if self.drive is None else self.drive[rows])

    @staticmethod
    def join(parts: Sequence[PointBatch]) -> PointBatch:
        """The points of ``parts`` in order (all alike: driven or not)."""
        drive = None if parts[0].drive is None else np.concatenate([p.drive for p in parts])
        return PointBatch(np.concatenate([p.gradient for p in parts]), np.concatenate([p.start for p in parts]),
                          [np.concatenate([p.states[k] for p in parts]) for k in range(len(parts[0].states))],
                          drive)


class Predictor(NamedTuple):
    """What the last evaluation of each of a template's ``N`` points left for the next one
    (the template's trial state)."""

    fluctuation: np.ndarray  #: (N, nloc) the last converged fluctuation
    sensitivity: np.ndarray  #: (N, nloc, n) dW/dE there (zero: no prediction)
    gradient: np.ndarray  #: (N, n) the macro gradient there


class NonlocalAnswer(NamedTuple):
    """The nonlocal sensitivities of ``m`` points (gradient-regularized FE²)."""

    dflux_de: np.ndarray  #: (m, n) dSigma / d e_nl
    e_local: np.ndarray  #: (m,) the RVE's local equivalent strain
    de_local_dE: np.ndarray  #: (m, n)
    de_local_de: np.ndarray  #: (m,)


@dataclass
class EngineAnswer:
    """The output of one evaluation of ``m`` points (rows, in the batch's order).

    Under the monolithic scheme (:attr:`fe2.micro.problem.MicroProblem.scheme`) the flux is
    condensed to first order in the micro residual, the tangent is the consistent one at the
    state evaluated (the states are that state's), and the fluctuation is the evaluated
    one plus its Newton correction (:mod:`fe2.micro.problem`)."""

    flux: np.ndarray  #: (m, n) homogenized fluxes
    tangent: np.ndarray  #: (m, n, n) consistent homogenized tangents
    fluctuation: np.ndarray  #: (m, nloc) converged fluctuations (trial)
    states: list[np.ndarray]  #: per phase: (m, points of the phase, state size), trial
    #: dW/dE ``(m, nloc, n)`` (without a drive), the predictor of the next evaluation
    sensitivity: np.ndarray | None = None
    nonlocal_: NonlocalAnswer | None = None  #: with a drive
    failures: dict[int, str] = field(default_factory=dict)  #: row -> reason
    #: (m,) estimated seconds each point took, by which the load balancer distributes points;
    #: every engine sets it, the same on every process of the template's communicator
    #: (:meth:`MicroEngine.group_mean`)
    cost: np.ndarray | None = None
    #: the engine's counters of this evaluation (:attr:`MicroEngine.counters`)
    counters: dict[str, float] = field(default_factory=dict)
    #: (m,) the micro residual norm at the answered state relative to its tolerance
    #: (:mod:`fe2.micro.rules`): at most 1, or a stagnated residual, for a converged point;
    #: any value under the monolithic scheme (:attr:`fe2.micro.problem.MicroProblem.scheme`);
    #: every engine sets it (:meth:`empty` starts from NaN: not set)
    residual: np.ndarray | None = None

    @staticmethod
    def empty(batch: PointBatch, n: int) -> EngineAnswer:
        """Room for the answers of ``batch`` (macro gradients of ``n`` components)."""
        m, nloc = batch.start.shape
        drive = batch.drive is not None
        return EngineAnswer(
            np.empty((m, n)), np.empty((m, n, n)), np.empty((m, nloc)), [np.empty_like(s) for s in batch.states],
            None if drive else np.empty((m, nloc, n)),
            NonlocalAnswer(np.empty((m, n)), np.empty(m), np.empty((m, n)), np.empty(m)) if drive else None,
            {}, np.zeros(m), {}, np.full(m, np.nan))

    def take(self, rows: slice) -> EngineAnswer:
        """The answers of the consecutive rows ``rows`` (failures renumbered from 0; no counters)."""
        start, stop, _ = rows.indices(self.flux.shape[0])
        return EngineAnswer(
            self.flux[rows], self.tangent[rows], self.fluctuation[rows], [s[rows] for s in self.states],
            None if self.sensitivity is None else self.sensitivity[rows],
            None if self.nonlocal_ is None else NonlocalAnswer(*(a[rows] for a in self.nonlocal_)),
            {i - start: msg for i, msg in self.failures.items() if start <= i < stop},
            None if self.cost is None else self.cost[rows], {},
            None if self.residual is None else self.residual[rows])

    def put(self, rows: np.ndarray, part: EngineAnswer) -> None:
        """Write the answers ``part`` into rows ``rows`` (its failures too)."""
        self.flux[rows], self.tangent[rows], self.fluctuation[rows] = part.flux, part.tangent, part.fluctuation
        for dst, src in zip(self.states, part.states):
            dst[rows] = src
        if self.sensitivity is not None:
            self.sensitivity[rows] = part.sensitivity
        if self.nonlocal_ is not None:
            for dst, src in zip(self.nonlocal_, part.nonlocal_):
                dst[rows] = src
        if self.cost is not None and part.cost is not None:
            self.cost[rows] = part.cost
        if self.residual is not None and part.residual is not None:
            self.residual[rows] = part.residual
        self.failures.update({int(rows[i]): msg for i, msg in part.failures.items()})


class MicroEngine(abc.ABC):
    """Base class of the micro engines (see the module docstring). Subclasses set
    :attr:`name` and :attr:`counters` and implement :meth:`evaluate`."""

    #: the name a case file gives (``[rve] engine``)
    name: ClassVar[str]
    #: the counters of :attr:`EngineAnswer.counters` (summed over evaluations in the RVE's
    #: statistics): at least ``solves`` (point evaluations), ``newton_iterations``, ``cuts``
    #: (line-search halvings) and ``seconds``
    counters: ClassVar[tuple[str, ...]] = ("solves", "newton_iterations", "cuts", "seconds")

    #: under the nested scheme, start each micro Newton from the first-order prediction
    #: (:meth:`start`) rather than from the committed fluctuation
    warm_trial: bool = False

    def __init__(self, problem: MicroProblem) -> None:
        self.problem = problem

    def start(self, gradient: np.ndarray, rows: np.ndarray, committed: np.ndarray, predictor: Predictor
              ) -> np.ndarray:
        """The starting fluctuations ``(m, nloc)`` of the template's points ``rows`` ``(m,)``
        for macro gradients ``gradient`` ``(m, n)``, from the committed fluctuations
        ``committed`` ``(N, nloc)`` and the predictors of all ``N`` points (not collective):
        the first-order prediction ``W + dW/dE (E - E_last)`` from the last evaluation under
        the monolithic scheme (the coupled Newton's update of the fluctuation) or with
        :attr:`warm_trial`, else the committed fluctuation."""
        if not (self.problem.monolithic or self.warm_trial):
            return committed[rows]
        return predictor.fluctuation[rows] + np.einsum("mak,mk->ma", predictor.sensitivity[rows],
                                                       gradient - predictor.gradient[rows])

    def group_mean(self, cost: np.ndarray) -> np.ndarray:
        """Point costs ``(m,)`` averaged over the processes of the template's communicator,
        as :attr:`EngineAnswer.cost` must be (collective): a group's ranks measure their own
        clocks but must take the same balancing decisions."""
        comm = self.problem.comm
        return cost if comm.size == 1 else comm.allreduce(cost) / comm.size

    @abc.abstractmethod
    def evaluate(self, batch: PointBatch) -> EngineAnswer:
        """Solve the cell problems of the points of ``batch`` (collective on the
        template's communicator; see the module docstring). Raises only for errors that
        are not a point's (those are :attr:`EngineAnswer.failures`)."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Free the engine's PETSc objects (collective)."""
