"""The macro problem: equilibrium with stress and tangent in quadrature spaces.

The macro displacement ``u`` is a Lagrange field on a mesh distributed over
``mesh.comm``. Stress ``sigma`` and consistent tangent ``C`` live in quadrature spaces,
so the residual and Jacobian are

    F(u; v) = int sigma . eps(v) dx - sum_b lambda int t_b . v ds_b
    J(du, v) = int eps(v) . C eps(du) dx

and at every Newton iterate the macro strains at the quadrature points of the cells a
rank *owns* are handed, as one batch, to that rank's material (a closed-form law or an
RVE template); the answers fill the quadrature functions and ghosts are updated. The
formulation (:mod:`fe2.macro.formulations`: local, or implicit-gradient with the mixed
unknown ``(u, e)``) adds its own terms. Newton iterations are
:func:`fe2.solvers.newton.newton` on the :class:`Equilibrium` system.
All methods are collective on ``mesh.comm`` unless said otherwise.

The checks of the supports are :mod:`fe2.macro.supports`; what a run reports about the
state (reactions, boundary means, integrals, cell averages) is
:class:`fe2.macro.observables.Observables`; the load pattern that dissipation-based path
following reads is :class:`fe2.macro.pattern.LoadPattern`. Each takes the problem; the
problem knows none of them.

For a scalar material (``kinematics == "scalar"``: steady heat conduction) ``u`` is the
temperature ``T``, ``eps(v) = grad v``, ``sigma = K grad T`` is the negative heat flux,
``t_b`` the heat flux into the body through boundary ``b`` and a volumetric heat source
``s`` adds ``- lambda int s v dx``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from fe2.core import linalg
from fe2.core.errors import SolverError, collective
from fe2.core.kinematics import gradient_size, measure, reference_gradient
from fe2.core.quadrature import QuadraturePoints, default_degree, effective_geometry_degree
from fe2.macro.formulations import GradientFormulation, LocalFormulation
from fe2.macro.loads import Amplitude, Dirichlet, Traction, scale
from fe2.macro.mesh import MacroMesh
from fe2.materials.base import PointMaterial
from fe2.solvers.newton import NewtonReport, newton

__all__ = ["Equilibrium", "MacroProblem"]


class MacroProblem:
    """Macro equilibrium with a :class:`~fe2.materials.base.PointMaterial` at the quadrature
    points (collective on ``macro_mesh.mesh.comm``).

    The kinematics follow the material's ``kinematics`` attribute: small strain (Mandel
    strain -> Mandel stress) or finite strain (``F = I + grad u`` flattened -> first
    Piola–Kirchhoff stress, total Lagrangian).

    Parameters
    ----------
    macro_mesh : mesh with tagged boundaries
    material : evaluated on the owned quadrature points of this rank, in the order of
        :meth:`point_labels`
    degree : Lagrange degree of ``u``
    quadrature_degree : default :func:`fe2.core.quadrature.default_degree` (``max(2 * (degree - 1), 1)`` on
        affine simplices, more on curved ones, ``2 * degree`` on quadrilaterals and hexahedra)
    dirichlet, traction : boundary conditions, each ``value * a(t)`` at pseudo-time ``t``
        (:func:`fe2.macro.loads.scale`: its amplitude, or ``t``; scalar kinematics:
        temperatures, and inward heat fluxes as one-value tractions)
    source : scalar kinematics: heat source per unit volume, scaled like the loads by
        ``source_amplitude``
    petsc_options : overrides of :data:`fe2.core.linalg.DIRECT_LU`
    nonlocal_length : if given, the implicit gradient enhancement with this internal length
        (:class:`~fe2.macro.formulations.GradientFormulation`); the material must have a
        nonlocal form

    The unknown is :attr:`x` (``u``, or the mixed ``(u, e)``); :attr:`u` is always the
    displacement (a copy kept in step with ``x`` in the gradient case). What the
    observables (:mod:`fe2.macro.observables`) and the load pattern
    (:mod:`fe2.macro.pattern`) build on is public: the forms ``F_int``, ``F_ext`` and ``J``
    (``J_ufl``), the boundary measure ``ds``, ``traction_values``, ``point_dofs`` and the
    committed ``x_committed`` and ``f_int_committed``.
    """

    def __init__(self, macro_mesh: MacroMesh, material: PointMaterial, degree: int = 2,
                 quadrature_degree: int | None = None, dirichlet: Sequence[Dirichlet] = (),
                 traction: Sequence[Traction] = (), petsc_options: Mapping[str, Any] | None = None,
                 nonlocal_length: float | None = None, source: float | None = None,
                 source_amplitude: Amplitude | None = None) -> None:
        self.macro_mesh = macro_mesh
        self.mesh = mesh = macro_mesh.mesh
        self.comm = mesh.comm
        self.material = material
        self.gdim = gdim = mesh.geometry.dim
        self.kinematics = material.kinematics
        self.size = n = gradient_size(self.kinematics, gdim)
        #: a scalar field (the temperature of a conduction problem) rather than a displacement
        self.scalar = scalar = self.kinematics == "scalar"
        if source is not None and not scalar:
            raise ValueError("a volumetric heat source needs a scalar (conduction) material")
        if material.size != n:
            raise ValueError(f"material size {material.size} does not match macro strain size {n}")
        self.quadrature = qp = QuadraturePoints(mesh, default_degree(degree, effective_geometry_degree(mesh),
                                                                          mesh.topology.cell_name())
                                                if quadrature_degree is None else quadrature_degree)
        self.quadrature_degree = qp.degree
        self.nonlocal_length = nonlocal_length
        if nonlocal_length is not None:
            self.formulation: LocalFormulation = GradientFormulation(mesh, degree, qp, n, nonlocal_length)
            self.e = self.formulation.e
        else:
            self.formulation = LocalFormulation(mesh, degree, qp, n, scalar=scalar)
        self.formulation.check(material, self.kinematics)
        form = self.formulation
        self.V, self.x, self.u = form.V, form.x, form.u
        Vu, u_expr, v, du = form.Vu, form.u_expr, form.v, form.du
        Qs, Qc = qp.space((n,)), qp.space((n, n))
        self.sigma = fem.Function(Qs, name="stress")
        self.tangent = fem.Function(Qc, name="tangent")
        self.strain = fem.Function(Qs, name="strain")
        G = measure(self.kinematics, gdim)
        reference = ufl.as_vector(reference_gradient(self.kinematics, gdim).tolist())
        self._strain_expr = qp.expression(G(u_expr) if self.kinematics == "small" else reference + G(u_expr))
        #: ``(N_owned,)`` the dof of each owned point in the quadrature spaces (block size
        #: ``n`` in ``strain`` and ``sigma``, ``n * n`` in ``tangent``)
        self.point_dofs = qp.dofs(Qs)
        self.num_owned_cells = qp.num_owned_cells
        self.num_points_per_cell = qp.num_points_per_cell
        self.num_owned_points = qp.num_points
        self.num_points_global = self.comm.allreduce(self.num_owned_points, op=MPI.SUM)
        self.point_volumes = qp.volumes
        # (made here, where every rank is: compiling the expression is collective in dolfinx's JIT,
        # and a failed RVE on one rank names its point by them)
        self._coordinates = qp.evaluate(qp.expression(ufl.SpatialCoordinate(mesh)), gdim)
        #: the last converged step's increment of the solution (owned entries; None before one)
        self.last_increment: np.ndarray | None = None

        # --- boundary conditions ----------------------------------------------------------
        fdim = mesh.topology.dim - 1
        tags = macro_mesh.facet_tags
        #: the factor of the heat source (:meth:`set_load`)
        self.load = fem.Constant(mesh, 0.0)
        #: the pseudo-time of the loads (:meth:`set_load`)
        self.time = 0.0
        self.source_amplitude = source_amplitude
        self.dirichlet = list(dirichlet)
        self.bcs = []
        self._bc_values = []
        for d in self.dirichlet:
            if (d.component is None) != scalar:
                raise ValueError(f"Dirichlet condition on {d.name or d.tag}: "
                                 + ("a temperature has no component" if scalar else "needs a displacement component"))
            space = Vu if scalar else Vu.sub(d.component)
            facets = tags.indices[tags.values == d.tag]
            dofs = fem.locate_dofs_topological(space, fdim, facets)
            c = fem.Constant(mesh, 0.0)
            self.bcs.append(fem.dirichletbc(c, dofs, space))
            self._bc_values.append((c, d.value, d.amplitude))
        self.traction = list(traction)
        #: the boundary measure, the facet tags its subdomains
        self.ds = ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags)
        dx = qp.dx

        # --- forms ------------------------------------------------------------------------
        F = ufl.inner(self.sigma, G(v)) * dx
        own = form.residual(G)
        if own is not None:
            F += own
        self._tractions = []  # (constant, value at load factor 1, amplitude), as _bc_values
        width = 1 if scalar else gdim  # values per surface load
        for t in self.traction:
            if len(t.value) != width:
                raise ValueError(f"{'heat flux' if scalar else 'traction'} on {t.name or t.tag} has {len(t.value)} "
                                 f"components, expected {width}")
            value = np.asarray(t.value, float)
            tc = fem.Constant(mesh, 0.0 if scalar else np.zeros(gdim))
            self._tractions.append((tc, value[0] if scalar else value, t.amplitude))
            F -= ufl.inner(tc, v) * ds(t.tag)
        #: the traction (inward heat flux) of each of :attr:`traction` at the current load
        #: (:meth:`set_load`), a Constant
        self.traction_values = [tc for tc, _, _ in self._tractions]
        #: the volumetric heat source (scalar kinematics), scaled by :attr:`load`
        self.source = source
        if source is not None:
            F -= self.load * source * v * dx
        self._F = fem.form(F)
        J = ufl.inner(ufl.dot(self.tangent, G(du)), G(v)) * dx
        own = form.jacobian(G)
        if own is not None:
            J = J + own
        #: the Jacobian (compiled form), and its UFL form for the forms derived from it (the
        #: load pattern's ``K^T w``, :mod:`fe2.macro.pattern`)
        self.J, self.J_ufl = fem.form(J), J
        #: the internal forces ``int sigma . eps(v) dx`` (compiled form)
        self.F_int = fem.form(ufl.inner(self.sigma, G(v)) * dx)
        ext = [ufl.inner(tc, v) * ds(t.tag) for tc, t in zip(self.traction_values, self.traction)]
        if source is not None:
            ext.append(self.load * source * v * dx)
        #: the external forces at the current load, tractions and source (compiled form; None
        #: without either)
        self.F_ext = fem.form(sum(ext[1:], ext[0])) if ext else None
        self.A = dolfinx.fem.petsc.create_matrix(self.J)
        self.b = dolfinx.fem.petsc.create_vector(self._F)
        self.dx_vec = dolfinx.fem.petsc.create_vector(self._F)
        self.ksp = linalg.direct_solver(self.A, linalg.unique_prefix("fe2_macro_"), petsc_options,
                                        symmetric=False)
        self.u_committed = self.x.x.array.copy()
        #: work done on the body by the external forces up to the last committed step
        #: (trapezoidal in the steps; reactions of prescribed displacements included)
        self.work = 0.0
        #: the solution and the internal forces (``F_int`` assembled) at the last committed
        #: step, as PETSc vectors (:attr:`u_committed` is the solution's local array): the
        #: work of the next step starts from them
        self.x_committed = self.x.x.petsc_vec.copy()
        self.f_int_committed = self.x_committed.duplicate()
        self.f_int_committed.set(0.0)
        # (the mesh file's or generator's cell numbers: the same on any number of ranks)
        cell_index = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)[qp.cells]
        self._labels = np.stack([np.repeat(cell_index, self.num_points_per_cell),
                                 np.tile(np.arange(self.num_points_per_cell), self.num_owned_cells)], axis=1)

    def point_labels(self) -> np.ndarray:
        """``(N_owned, 2)``: original cell index (the mesh file's or generator's numbering,
        the same on any number of ranks) and quadrature point number of each owned
        material point, in the order the material sees them (not collective)."""
        return self._labels

    def commit(self) -> None:
        """A load step converged: commit the material state, remember ``u`` and add the
        step's work to :attr:`work` (collective)."""
        self.material.commit()
        self.u_committed[:] = self.x.x.array
        f = dolfinx.fem.petsc.assemble_vector(self.F_int)
        f.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        du = self.x.x.petsc_vec.copy()
        du.axpy(-1.0, self.x_committed)
        self.last_increment = du.array.copy()  # (owned entries: where the next load may turn)
        # trapezoidal rule: the internal forces balance the external ones (reactions included)
        self.work += 0.5 * (f.dot(du) + self.f_int_committed.dot(du))
        self.x_committed.destroy()
        self.f_int_committed.destroy()
        du.destroy()
        self.x_committed, self.f_int_committed = self.x.x.petsc_vec.copy(), f

    def checkpoint_fields(self) -> dict[str, np.ndarray]:
        """The macro state a restart needs besides the material's, as local arrays laid out
        like ``x.x.array`` (not collective): ``x`` (the committed solution) and ``f_prev``
        (the internal forces there, for the work of the next step)."""
        self.f_int_committed.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        with self.f_int_committed.localForm() as f:
            f_prev = f.array_r.copy()
        return {"x": self.u_committed.copy(), "f_prev": f_prev}

    def restore(self, fields: dict[str, np.ndarray], work: float, load: float) -> None:
        """Continue from a checkpoint: :meth:`checkpoint_fields` of a committed step at load
        factor ``load`` with external ``work`` so far (the material's state is restored by
        the material; not collective)."""
        self.x.x.array[:] = fields["x"]
        self.u_committed[:] = fields["x"]
        if "x_prev" in fields:  # (as the run that wrote it: its last increment decides the next predictor)
            self.last_increment = (fields["x"] - fields["x_prev"])[: self.x.x.petsc_vec.getLocalSize()]
        self._sync()
        with self.x_committed.localForm() as loc:
            loc.array[:] = fields["x"]
        with self.f_int_committed.localForm() as loc:
            loc.array[:] = fields["f_prev"]
        self.work = work
        self.set_load(load)

    def revert(self) -> None:
        """A load step failed: back to the committed material state and ``u`` (not collective)."""
        self.material.revert()
        self.x.x.array[:] = self.u_committed
        self._sync()

    def _sync(self) -> None:
        """Copy the displacement (and nonlocal strain) out of the mixed unknown (not collective)."""
        self.formulation.sync()

    def set_load(self, t: float) -> None:
        """The loads at pseudo-time ``t``: each Dirichlet value, traction and the source
        times its factor :func:`fe2.macro.loads.scale` (``t`` itself for a load without an
        amplitude: then ``t`` is the load factor; not collective)."""
        self.time = t
        self.load.value = scale(self.source_amplitude, t)
        for c, value, amp in self._bc_values:
            c.value = scale(amp, t) * value
        for tc, value, amp in self._tractions:
            tc.value = scale(amp, t) * value

    def strains_at_points(self) -> np.ndarray:
        """Macro strains at the owned quadrature points, ``(N_owned, n)`` (not collective)."""
        return self.quadrature.evaluate(self._strain_expr, self.size)

    def stresses_at_points(self) -> np.ndarray:
        """The material's fluxes (stresses) at the owned quadrature points of the last
        evaluation, ``(N_owned, n)`` (after a converged step: that step's; not collective)."""
        return self.sigma.x.array.reshape(-1, self.size)[self.point_dofs]

    def point_coordinates(self) -> np.ndarray:
        """Coordinates of the owned quadrature points, ``(N_owned, gdim)``, in
        :meth:`point_labels` order (not collective)."""
        return self._coordinates

    def _evaluate_material(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self.formulation.evaluate(self.material, E)
        except SolverError as err:
            if err.point is None:
                raise
            cell, q = self._labels[err.point]
            x = ", ".join(f"{v:.6g}" for v in self.point_coordinates()[err.point])
            reason = str(err).removeprefix(f"RVE at macro point {err.point}: ")
            raise SolverError(f"RVE at the macro point ({x}) (cell {cell} of the macro mesh, quadrature point {q}): "
                              f"{reason}") from None

    def update_material(self, report: NewtonReport | None = None) -> None:
        """Evaluate the material at all owned points and fill stress/tangent (collective:
        ghost update; a material failure on any rank raises
        :class:`~fe2.core.errors.SolverError` on all). ``report`` counts the evaluations and
        the time spent in them (the slowest rank's)."""
        E = self.strains_at_points()
        t0 = time.perf_counter()
        sig, C = collective(self.comm, self._evaluate_material, E)
        t_mat = time.perf_counter() - t0
        self.formulation.scatter()
        n = self.size
        self.strain.x.array.reshape(-1, n)[self.point_dofs] = E
        self.sigma.x.array.reshape(-1, n)[self.point_dofs] = sig
        self.tangent.x.array.reshape(-1, n * n)[self.point_dofs] = np.asarray(C).reshape(-1, n * n)
        for f in (self.strain, self.sigma, self.tangent):
            f.x.scatter_forward()
        if report is not None:
            report.material_points += self.num_owned_points
            report.time_material += self.comm.allreduce(t_mat, op=MPI.MAX)

    def turned(self) -> bool:
        """Whether the Newton update just solved (:attr:`dx_vec`, taken as ``x -= dx``) moves
        against the last converged step's increment: the load turned (collective)."""
        if self.last_increment is None:  # (on every rank alike: before the first converged step)
            return False
        work = -float(np.dot(self.dx_vec.array, self.last_increment))
        return self.comm.allreduce(work, op=MPI.SUM) < 0.0

    def unloading_update(self) -> bool:
        """Solve the update again with the material's unloading tangent
        (:meth:`fe2.materials.base.PointMaterial.unloading_tangent`) where the material has
        one on every rank; whether it did (collective)."""
        C = self.material.unloading_tangent() if self.nonlocal_length is None else None
        if C is not None and np.shape(C)[0] != self.num_owned_points:
            C = None  # (a material that has not sized its points: none to give)
        if not self.comm.allreduce(C is not None, op=MPI.LAND):
            return False
        n = self.size
        self.tangent.x.array.reshape(-1, n * n)[self.point_dofs] = np.asarray(C).reshape(-1, n * n)
        self.tangent.x.scatter_forward()
        self.assemble_jacobian()
        self.solve(self.b, self.dx_vec)
        return True

    def unsettled_points(self) -> int:
        """Material points of all ranks whose own equations are not yet solved at the last
        evaluation (:meth:`fe2.materials.base.PointMaterial.unsettled_points`; collective)."""
        return self.comm.allreduce(self.material.unsettled_points(), op=MPI.SUM)

    def assemble_residual(self) -> float:
        """Assemble the residual into :attr:`b` (Dirichlet rows: ``x - load * value``, so
        that one Newton update lands on the boundary values) and return its norm (collective)."""
        b = self.b
        with b.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, self._F)
        dolfinx.fem.petsc.apply_lifting(b, [self.J], bcs=[self.bcs], x0=[self.x.x.petsc_vec], alpha=-1.0)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, self.bcs, self.x.x.petsc_vec, -1.0)
        return b.norm()

    def assemble_jacobian(self) -> None:
        """Assemble the consistent tangent (Dirichlet rows and columns replaced by the
        identity) into :attr:`A`; it is factorised at the next :meth:`solve` (collective)."""
        self.A.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(self.A, self.J, bcs=self.bcs)
        self.A.assemble()
        self.ksp.setOperators(self.A)

    def solve(self, rhs: PETSc.Vec, out: PETSc.Vec) -> None:
        """``out = A^-1 rhs`` with the factorisation of the last assembled Jacobian, ghosts
        updated (collective)."""
        linalg.factorise(self.ksp, "factorisation of the macro Jacobian")
        try:
            self.ksp.solve(rhs, out)
        except PETSc.Error as err:  # e.g. a factorisation that failed (raised on every rank)
            raise SolverError(f"macro linear solve failed: {linalg.petsc_message(err)}") from None
        if self.ksp.getConvergedReason() < 0:
            raise SolverError(f"macro linear solve failed (KSP reason {self.ksp.getConvergedReason()})")
        out.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)

    def add_to_solution(self, alpha: float, dx: PETSc.Vec | np.ndarray) -> None:
        """``x += alpha dx`` (``dx`` a ghosted vector of the unknown, or its local array
        with ghosts); not collective for an array."""
        if isinstance(dx, np.ndarray):
            self.x.x.array[:] += alpha * dx
        else:
            self.x.x.petsc_vec.axpy(alpha, dx)
            self.x.x.scatter_forward()
        self._sync()

    def newton(self, rtol: float = 1e-10, atol: float = 1e-12, max_iterations: int = 20,
               log: Callable[[str], None] | None = None, stop: Callable[[], None] | None = None) -> NewtonReport:
        """Newton iterations for the current load (collective), on the :class:`Equilibrium`
        system: converged when the residual norm (Dirichlet rows included, so a new load's
        jump in the boundary values counts) is below ``max(rtol * |F_0|, atol)``. A material
        failure ends the iterations with ``report.failure`` set. ``stop``: see
        :func:`~fe2.solvers.newton.newton` (what it raises propagates)."""
        rep = NewtonReport()
        try:
            system = Equilibrium(self, rtol, atol, rep)
            newton(system, max_iterations, log=log, report=rep, stop=stop)
            if not rep.converged and system.unsettled:
                rep.failure += f" ({system.unsettled} RVE cell problems not yet converged)"
        except SolverError as err:  # a material (RVE) failure: raised on all ranks
            rep.converged = False
            rep.failure = str(err)
            if log:
                log(f"    material failure: {err}")
        return rep

    def set_time_increment(self, dt: float) -> None:
        """Pseudo-time increment of the next load step, for rate-dependent materials."""
        self.material.set_time_increment(dt)

    def internal_fields(self) -> dict[str, np.ndarray]:
        """The material's committed scalar internal variables at the owned points,
        ``{name: (N_owned,)}`` (empty for materials without any; not collective)."""
        return self.material.internal_fields()

    def destroy(self) -> None:
        for obj in (self.ksp, self.A, self.b, self.dx_vec, self.x_committed, self.f_int_committed):
            obj.destroy()


class Equilibrium:
    """The macro equilibrium of a :class:`MacroProblem` at its current load as a
    :class:`~fe2.solvers.newton.NewtonSystem` (collective): converged when the residual
    norm is below ``max(rtol * first residual, atol)`` after at least one update, or below
    ``atol``, and every material point's own equations are solved (monolithic FE²:
    :meth:`MacroProblem.unsettled_points`); every full Newton step is taken. Times the
    macro-side work into ``report``."""

    unknown = "u"

    def __init__(self, problem: MacroProblem, rtol: float, atol: float, report: NewtonReport) -> None:
        self.problem, self.rtol, self.atol, self.report = problem, rtol, atol, report
        self.r0: float | None = None
        #: material points whose own equations are not yet solved (monolithic FE²)
        self.unsettled = 0
        #: the next update is the first of the step (see :meth:`solve_update`)
        self.first_update = True
        #: said once, in the next log line (:meth:`status`)
        self.note = ""

    def _assemble(self) -> float:
        t0 = time.perf_counter()
        r = self.problem.assemble_residual()
        self.report.time_macro += time.perf_counter() - t0
        return r

    #: rounds of :meth:`step` that solve the unsettled cell problems on at an equilibrium
    SETTLE_ROUNDS = 3
    #: where the load turned, the unloading update is taken when it is shorter than this
    #: fraction of the consistent one (a plastic state's tangent overshooting)
    OVERSHOOT = 0.5

    def residual(self) -> float:
        self.problem.update_material(self.report)
        self.unsettled = self.problem.unsettled_points()
        self.r0 = r = self._assemble()
        return r

    def _equilibrium(self, iteration: int, norm: float) -> bool:
        return norm <= max(self.rtol * self.r0, self.atol) and iteration > 0 or norm <= self.atol

    def converged(self, iteration: int, norm: float) -> bool:
        return self._equilibrium(iteration, norm) and not self.unsettled

    def solve_update(self) -> float:
        """The Newton update. The first one of a step that moves against the last step's
        increment (the load turned: unloading, reversal) is solved again with the material's
        unloading tangent, and taken when it is shorter than :attr:`OVERSHOOT` times the
        consistent one: the consistent tangent of a plastic state would send a load-driven
        step far past the other side, where the iterates then jump to and fro."""
        p = self.problem
        t0 = time.perf_counter()
        p.assemble_jacobian()
        p.solve(p.b, p.dx_vec)
        if self.first_update:
            self.first_update = False
            if p.turned():
                consistent = p.dx_vec.copy()
                if p.unloading_update():
                    # (only where the consistent tangent overshoots: a step driven by its boundary
                    # displacements moves alike with both, and keeps its consistent update)
                    if p.dx_vec.norm() < self.OVERSHOOT * consistent.norm():
                        self.note = "  (the load turned: first update with the unloading tangent)"
                    else:
                        consistent.copy(p.dx_vec)
                consistent.destroy()
        self.report.time_macro += time.perf_counter() - t0
        return p.dx_vec.norm()

    def step(self, alpha: float) -> float:
        """The update, the material there and the residual. Monolithic FE²: where the macro
        residual is already in equilibrium but some cell problems are not yet solved, those
        take further micro Newton steps at the same macro state (the others keep their
        answers), up to :attr:`SETTLE_ROUNDS` times, rather than a whole macro iteration."""
        p = self.problem
        p.add_to_solution(-alpha, p.dx_vec)
        p.update_material(self.report)
        self.unsettled = p.unsettled_points()
        r = self._assemble()
        for _ in range(self.SETTLE_ROUNDS):
            if not (self.unsettled and self._equilibrium(1, r)):
                break
            p.update_material(self.report)
            self.unsettled = p.unsettled_points()
            r = self._assemble()
        return r

    def accept(self, norm: float, new_norm: float) -> bool:
        return True

    def status(self) -> str:
        note, self.note = self.note, ""
        return (f"  ({self.unsettled} RVEs unsettled)" if self.unsettled else "") + note
