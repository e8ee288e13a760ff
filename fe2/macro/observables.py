"""What a run reports about the state of a macro problem.

:class:`Observables` turns the state of a :class:`~fe2.macro.problem.MacroProblem` into
the numbers of a history row and the cell fields of the results: the reactions on the
supports and the resultants of the applied loads (:meth:`~Observables.reactions`), the
mean displacement (temperature) of the loaded boundaries
(:meth:`~Observables.boundary_means`), integrals of per-point values over the body and
the dissipated energy, and quadrature-weighted cell averages. It compiles the forms it
needs once and reads the problem's current state at every call; it changes nothing in
the problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dolfinx.fem.petsc
import numpy as np
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from fe2.macro.supports import owned_dofs

if TYPE_CHECKING:
    from fe2.macro.problem import MacroProblem

__all__ = ["Observables"]


class Observables:
    """The observables of ``problem`` (constructing them is collective on ``problem.comm``:
    it compiles the forms of the applied loads and the boundary means, and measures each
    loaded boundary). One instance serves the whole run."""

    def __init__(self, problem: MacroProblem) -> None:
        self.problem = p = problem
        scalar, ds = p.scalar, p.ds
        width = 1 if scalar else p.gdim  # values per surface load
        self._one = fem.Function(p.V)
        # the resultant of each traction component, and of the source
        self._traction_forms = [(fem.form((tc if scalar else tc[i]) * ds(t.tag)), t.tag, i)
                                for t, tc in zip(p.traction, p.traction_values) for i in range(width)]
        self._source_form = fem.form(p.load * p.source * p.quadrature.dx) if p.source is not None else None
        # mean displacement (temperature) of the loaded boundaries, for the history
        self._means: dict[str, tuple[Any, float]] = {}
        for tag, name, comps in ([(d.tag, d.name, [d.component]) for d in p.dirichlet]
                                 + [(t.tag, t.name, list(range(width))) for t in p.traction]):
            area = p.comm.allreduce(fem.assemble_scalar(fem.form(1.0 * ds(tag))), op=MPI.SUM)
            for c in comps:
                key = f"temperature_{name or tag}" if scalar else f"displacement_{name or tag}_{'xyz'[c]}"
                if key not in self._means and area > 0:
                    self._means[key] = (fem.form((p.u if scalar else p.u[c]) * ds(tag)), area)

    def reactions(self) -> dict[str, float]:
        """The reaction on each Dirichlet boundary in its component: the resultant of the
        internal minus the applied forces on its prescribed dofs (a dof that is prescribed
        and carries a traction too, e.g. the corner of a loaded edge and a supported one,
        takes part of its load straight from the support; a DOF prescribed on two boundaries,
        e.g. their common corner, counts for the first of them listed); and the resultant of
        the applied tractions (collective). The reactions and the tractions balance.

        Keys: ``reaction_<boundary>_<x|y|z>`` and ``force_<boundary>_<x|y|z>``. For a
        scalar field (conduction) ``heat_in_<boundary>``: the heat flowing into the body
        through the boundary, at a prescribed temperature (the reaction) or as the applied
        flux (both add up on a boundary that has both), and ``heat_source`` (the integral
        of the source); at equilibrium they sum to zero."""
        p = self.problem
        out = {}
        fint = dolfinx.fem.petsc.assemble_vector(p.F_int)
        fint.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if p.F_ext is not None:
            fext = dolfinx.fem.petsc.assemble_vector(p.F_ext)
            fext.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            fint.axpy(-1.0, fext)
            fext.destroy()
        counted = np.zeros(self._one.x.array.size, dtype=bool)
        for d, bc in zip(p.dirichlet, p.bcs):
            self._one.x.array[:] = 0.0
            dofs = owned_dofs(bc)
            dofs = dofs[~counted[dofs]]  # a DOF of two boundaries (a corner) counts for the first
            counted[dofs] = True
            self._one.x.array[dofs] = 1.0
            # the reaction force on the body; for heat, the heat the boundary supplies
            key = f"heat_in_{d.name or d.tag}" if p.scalar else f"reaction_{d.name or d.tag}_{'xyz'[d.component]}"
            out[key] = out.get(key, 0.0) + fint.dot(self._one.x.petsc_vec)
        fint.destroy()
        for form, tag, i in self._traction_forms:
            name = next((t.name for t in p.traction if t.tag == tag and t.name), str(tag))
            key = f"heat_in_{name}" if p.scalar else f"force_{name}_{'xyz'[i]}"
            out[key] = out.get(key, 0.0) + p.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)
        if self._source_form is not None:
            out["heat_source"] = p.comm.allreduce(fem.assemble_scalar(self._source_form), op=MPI.SUM)
        return out

    def boundary_means(self) -> dict[str, float]:
        """The mean displacement component of every boundary with a prescribed displacement
        (its prescribed components) or a traction (all components), as
        ``displacement_<boundary>_<x|y|z>``; for a scalar field the mean temperature,
        ``temperature_<boundary>`` (collective). With :meth:`reactions` they are the
        force–displacement curves of the boundaries."""
        comm = self.problem.comm
        return {key: comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM) / area
                for key, (form, area) in self._means.items()}

    def integral(self, values: np.ndarray) -> float:
        """Integral over the body of a per-point scalar ``(N_owned,)`` (collective)."""
        p = self.problem
        return p.comm.allreduce(float(p.point_volumes @ np.asarray(values)), op=MPI.SUM)

    def dissipated_energy(self, fields: dict[str, np.ndarray] | None = None) -> float:
        """Energy dissipated in the body so far (committed state): the integral of the
        material's ``dissipation`` density; 0 for materials that do not track it (collective).
        ``fields``: the problem's
        :meth:`~fe2.macro.problem.MacroProblem.internal_fields` if the caller has them already."""
        p = self.problem
        D = (p.internal_fields() if fields is None else fields).get("dissipation")
        return self.integral(np.zeros(p.num_owned_points) if D is None else D)

    def out_of_plane_stress(self) -> np.ndarray | None:
        """Plane strain: the cell averages ``(cells,)`` of the material's out-of-plane stress
        (``sigma_zz``; finite strain ``P_33``) at the committed state; None in 3D, for
        conduction, or when the material cannot say (not collective; the answer is the same
        on every rank)."""
        p = self.problem
        if p.gdim != 2 or p.scalar:
            return None
        zz = p.material.out_of_plane_stress(p.strains_at_points())
        return None if zz is None else self.cell_average_scalars(zz)

    def cell_average_scalars(self, values: np.ndarray) -> np.ndarray:
        """Quadrature-weighted cell averages of a per-point scalar ``(N_owned,)`` -> ``(cells,)``
        (not collective)."""
        return self.problem.quadrature.cell_average(values)

    def cell_averages(self, f: fem.Function) -> np.ndarray:
        """Quadrature-weighted cell averages of a quadrature function of the problem with
        ``size`` values per point (``strain``, ``sigma``) on owned cells,
        ``(num_owned_cells, size)`` (not collective)."""
        p = self.problem
        return p.quadrature.cell_average(f.x.array.reshape(-1, p.size)[p.point_dofs])
