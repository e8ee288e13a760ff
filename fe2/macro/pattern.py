"""The load pattern of a macro problem: what dissipation-based path following reads.

With proportional loads (:func:`proportional`: no load has an amplitude, so the
pseudo-time is the load factor ``lam``) the loads of a
:class:`~fe2.macro.problem.MacroProblem` are ``lam`` times a fixed pattern: ``w``, the
prescribed displacements at ``lam = 1`` on the Dirichlet dofs (0 elsewhere), and
``f_hat``, the external forces of the tractions (and of a heat source) at ``lam = 1``.
:class:`LoadPattern` holds them and derives what the bordered system of
:mod:`fe2.solvers.pathfollowing` needs: the derivative of the residual with respect to
``lam`` (:meth:`~LoadPattern.load_derivative`), the conjugate force
``G = w . f_int(x) - f_hat . x`` (:meth:`~LoadPattern.conjugate_force`) and its gradient
``dG/dx = K^T w - f_hat`` (:meth:`~LoadPattern.conjugate_force_gradient`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dolfinx.fem.petsc
import ufl
from dolfinx import fem
from petsc4py import PETSc

if TYPE_CHECKING:
    from fe2.macro.problem import MacroProblem

__all__ = ["LoadPattern", "proportional"]


def proportional(problem: MacroProblem) -> bool:
    """All loads of ``problem`` are scaled by one factor, the pseudo-time (no load has an
    amplitude): what the load pattern of the dissipation control assumes (not collective)."""
    return problem.source_amplitude is None and all(
        load.amplitude is None for load in (*problem.dirichlet, *problem.traction))


class LoadPattern:
    """The load pattern of ``problem`` (see the module docstring) and what path following
    derives from it; collective on ``problem.comm``. Constructing it assembles ``w`` and
    ``f_hat`` (at load factor 1, then back to the problem's pseudo-time) and compiles
    ``K^T w``; raises ValueError unless the loads are :func:`proportional`.

    Attributes
    ----------
    w, f_hat : the pattern, ghosted PETSc vectors laid out like ``problem.x`` (the vectors
        of two functions of ``problem.V``: freed with them)
    """

    def __init__(self, problem: MacroProblem) -> None:
        if not proportional(problem):
            raise ValueError("the load pattern needs proportional loads (no amplitudes)")
        self.problem = p = problem
        self._w = fem.Function(p.V)
        self._f_hat = fem.Function(p.V)
        self._Kt_w = fem.form(ufl.action(ufl.adjoint(p.J_ufl), self._w))
        load = p.time
        p.set_load(1.0)
        self.w = w = self._w.x.petsc_vec
        w.set(0.0)
        dolfinx.fem.petsc.set_bc(w, p.bcs)
        self._w.x.scatter_forward()
        self.f_hat = f_hat = self._f_hat.x.petsc_vec
        with f_hat.localForm() as loc:
            loc.set(0.0)
        if p.F_ext is not None:
            dolfinx.fem.petsc.assemble_vector(f_hat, p.F_ext)
            f_hat.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        p.set_load(load)

    def load_derivative(self, out: PETSc.Vec) -> None:
        """``out = d(residual)/d(load factor)`` at fixed ``x`` and tangent, for the residual
        of :meth:`~fe2.macro.problem.MacroProblem.assemble_residual`: ``K_fD w - f_hat`` on
        free rows, ``-w`` on Dirichlet rows (collective)."""
        p = self.problem
        load = p.time
        p.set_load(1.0)
        with out.localForm() as loc:  # ghosts included: they are summed into their owners
            loc.set(0.0)
        dolfinx.fem.petsc.apply_lifting(out, [p.J], bcs=[p.bcs], alpha=-1.0)
        out.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        out.axpy(-1.0, self.f_hat)
        dolfinx.fem.petsc.set_bc(out, p.bcs, alpha=-1.0)
        p.set_load(load)

    def conjugate_force(self, committed: bool = False) -> float:
        """``G = w . f_int(x) - f_hat . x``: the reactions' resultant along the prescribed
        displacement pattern minus the tractions' work-conjugate displacement. With it the
        external work rate is ``G' d(load) + ...`` and, for a material that unloads
        secantly (damage), the energy dissipated between two equilibrium states is
        ``(G0 (lam - lam0) - lam0 (G - G0)) / 2`` (see :mod:`fe2.solvers.pathfollowing`); collective.
        ``committed``: at the last committed state, from the internal forces
        :meth:`~fe2.macro.problem.MacroProblem.commit` assembled (no assembly)."""
        p, w, f_hat = self.problem, self.w, self.f_hat
        if committed:
            return p.f_int_committed.dot(w) - f_hat.dot(p.x_committed)
        f = dolfinx.fem.petsc.assemble_vector(p.F_int)
        f.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        G = f.dot(w) - f_hat.dot(p.x.x.petsc_vec)
        f.destroy()
        return G

    def conjugate_force_gradient(self, out: PETSc.Vec) -> None:
        """``out = dG/dx = K^T w - f_hat`` with the current (unconstrained) consistent
        tangent ``K`` (collective)."""
        with out.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(out, self._Kt_w)
        out.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        out.axpy(-1.0, self.f_hat)
