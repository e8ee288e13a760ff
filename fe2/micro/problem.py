"""The immutable description of a nonlinear RVE's micro problem: what a micro engine gets.

A nonlinear RVE template (:class:`fe2.micro.nonlinear.NonlinearCellProblem`) builds one
:class:`MicroProblem` and hands it to its micro engine (:mod:`fe2.micro.engines`). It holds
everything the micro problem of every macro point shares and nothing of any point: the
fluctuation space under its boundary condition (what is condensed, and how,
:class:`~fe2.micro.space.CondensedSpace`), the micro points, the phases with their laws and
the micro points of each, the cell volume, the scales of the residual (the residual of a
unit macro gradient in the elastic cell, the Gram matrix of the internal forces of the
phases' elastic stress), the elastic cell's factorisation, homogenized tensor and unit
fluctuations (the whole answer of a point whose micro tangents are all the phases' virgin
ones), the micro Newton's rules (:class:`~fe2.micro.rules.NewtonRules`), how the micro
Newton is coupled to the macro one (:attr:`MicroProblem.scheme`) and the PETSc options of
the micro solvers; and, made on first use, the precomputed operators of the batched engine
(:class:`~fe2.micro.operators.CellOperators`).

**The coupling scheme.** ``"nested"``: every evaluation solves each point's cell problem to
convergence and then its sensitivities (the consistent tangent) with the converged
Jacobian: a point that needs one micro Newton update pays two factorisations. ``"monolithic"``
(Lange, Hütter & Kiefer, CMAME 2021): the micro and macro Newton iterations are one Newton
iteration on the coupled equations. An evaluation linearises each point's cell problem
at its current fluctuation ``w`` once: with one factorisation of the Jacobian ``K`` it
solves for the Newton correction ``dw = -K^-1 r`` of the micro residual ``r`` and the
sensitivities ``dw/dE``, and answers the flux condensed to first order,
``Sigma + dSigma/dw . dw`` (the micro residual moved into the macro right-hand side), the
consistent tangent at ``w``, and the corrected fluctuation ``w + dw``, from which the next
evaluation starts along ``dw/dE``. The answers are those of the nested scheme once the macro
Newton has converged both the macro residual and every point's micro residual (the
template reports the points whose micro residual is still above its tolerance,
:meth:`fe2.micro.nonlinear.NonlinearCellProblem.unsettled_points`). The committed state
then holds the corrected fluctuation ``w + dw`` with the internal variables evaluated at
``w``: they differ by a correction within the micro tolerance. The micro Newton's
``max_iterations`` and line search are the nested scheme's; under the monolithic one a
point that does not converge shows as a macro Newton that does not, and the load step is
cut back. RVEs with a damage (softening) phase are always nested: their cell problem can
have several solutions, and the nested scheme starts from the committed state.

The description is frozen (its arrays are read-only copies): an engine reads it and never
writes into it, nor into the template. Changing a rule makes a new description
(:meth:`MicroProblem.with_rules`). The one thing made later is the batched engine's
operators, on first use, shared with the template's plane-strain ``sigma_zz`` average.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from petsc4py import PETSc

from fe2.core.quadrature import QuadraturePoints
from fe2.micro.operators import CellOperators
from fe2.micro.phases import Phase
from fe2.micro.rules import SCHEMES, NewtonRules
from fe2.micro.space import CondensedSpace

__all__ = ["MicroProblem"]


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a``."""
    out = np.array(a)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class MicroProblem:
    """The micro problem of a nonlinear RVE template (see the module docstring).

    Collective where said: on :attr:`comm`, the template's communicator (one process, or
    the group of ``[parallel] ranks_per_rve``)."""

    #: the fluctuation space under the micro boundary condition
    space: CondensedSpace
    #: the micro points (:attr:`weights` integrate over the owned cells)
    quadrature: QuadraturePoints
    #: ``"small"``, ``"finite"`` or ``"scalar"`` (:mod:`fe2.core.kinematics`)
    kinematics: str
    #: components ``n`` of a macro gradient
    size: int
    phases: tuple[Phase, ...]
    #: the owned micro points of each phase (indices in :attr:`quadrature` order)
    phase_points: tuple[np.ndarray, ...]
    #: the cell volume ``|Y|``
    volume: float
    #: the volume of the phases whose law is driven by a nonlocal strain (0 if none)
    damage_volume: float
    #: the reference macro gradient ``E_0`` (zero strain, ``F = I``) ``(n,)``
    reference: np.ndarray
    #: the condensed residual of each unit macro gradient in the elastic cell ``(nloc, n)``
    #: (without the part a border's multipliers balance)
    unit_residual: np.ndarray
    #: ``S^T S`` ``(n, n)`` of the uncondensed internal forces ``S`` of the phases' elastic
    #: stress of each unit macro gradient (the round-off floor)
    force_gram: np.ndarray
    #: the elastic cell's factorised solver (the template's)
    elastic_solver: PETSc.KSP
    rules: NewtonRules
    #: the elastic cell's homogenized tensor ``(n, n)`` (the phases' virgin tangents)
    elastic_tangent: np.ndarray
    #: the elastic cell's sensitivities ``dw/dE`` ``(nloc, n)``: its unit fluctuations
    elastic_sensitivity: np.ndarray
    #: overrides of the micro solvers' PETSc options (None: the defaults)
    petsc_options: Mapping[str, Any] | None = None
    #: how the micro and macro Newton iterations are coupled (:data:`fe2.micro.rules.SCHEMES`):
    #: ``"nested"`` (every evaluation solves the cell problem to convergence) or
    #: ``"monolithic"`` (one micro Newton step per evaluation, the micro residual condensed
    #: into the answer; the macro Newton converges both)
    scheme: str = "nested"

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown coupling scheme {self.scheme!r}; known: {', '.join(SCHEMES)}")
        if self.monolithic and self.nonlocal_form:
            raise ValueError("the monolithic scheme needs an RVE without damage (softening) phases "
                             "(their cell problem can have several solutions: nested only)")
        # read-only copies: neither the template nor an engine can change them under the other
        for name in ("reference", "unit_residual", "force_gram", "elastic_tangent", "elastic_sensitivity"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "phase_points", tuple(_frozen(idx) for idx in self.phase_points))

    # --- derived -------------------------------------------------------------------------
    @property
    def comm(self) -> Any:
        return self.space.comm

    @property
    def gdim(self) -> int:
        return self.space.mesh.geometry.dim

    @property
    def nloc(self) -> int:
        """Owned rows of a condensed fluctuation vector."""
        return self.space.nloc

    @property
    def weights(self) -> np.ndarray:
        """Integration weight of each owned micro point ``(P,)`` (sums to this process's
        share of the cell volume)."""
        return self.quadrature.volumes

    @property
    def driven(self) -> tuple[bool, ...]:
        """Per phase: its law is driven by a nonlocal strain (gradient-regularized FE²)."""
        return tuple(ph.law.driven for ph in self.phases)

    @property
    def nonlocal_form(self) -> bool:
        """A phase can be driven by a nonlocal strain."""
        return any(self.driven)

    @property
    def symmetric(self) -> bool:
        """Every phase's tangent is symmetric (so are the micro Jacobians: Cholesky)."""
        return all(ph.law.symmetric_tangent for ph in self.phases)

    @property
    def monolithic(self) -> bool:
        """One micro Newton step per evaluation (:attr:`scheme`)."""
        return self.scheme == "monolithic"

    @property
    def rate_dependent(self) -> bool:
        """A phase's law depends on the time increment."""
        return any(ph.law.rate_dependent for ph in self.phases)

    @functools.cached_property
    def operators(self) -> CellOperators:
        """The precomputed operators of the micro points (made on first use, collective then)."""
        return CellOperators(self.space, self.quadrature, self.kinematics)

    # --- the residual's scales -----------------------------------------------------------
    def floor(self, E: np.ndarray) -> np.ndarray:
        """The round-off floor of the micro residual at macro gradients ``E`` ``(m, n)`` ->
        ``(m,)`` (:meth:`fe2.micro.rules.NewtonRules.floor`; not collective)."""
        return self.rules.floor(np.atleast_2d(np.asarray(E, float)) - self.reference, self.force_gram)

    def elastic_solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve with the elastic cell's factorisation: ``rhs`` ``(nloc, m)`` (collective)."""
        return self.space.solve(rhs, self.elastic_solver)

    def with_rules(self, **changes: Any) -> MicroProblem:
        """The same problem under other rules (e.g. ``max_iterations=1``); the operators,
        if made, are shared."""
        new = dataclasses.replace(self, rules=dataclasses.replace(self.rules, **changes))
        if "operators" in self.__dict__:
            new.__dict__["operators"] = self.__dict__["operators"]
        return new
