"""The macro problem: small-strain equilibrium with stress and tangent in quadrature spaces.

The macro displacement ``u`` is a Lagrange field on a mesh distributed over
``mesh.comm``. Stress ``sigma`` and consistent tangent ``C`` live in quadrature spaces,
so the residual and Jacobian are

    F(u; v) = int sigma . eps(v) dx - sum_b lambda int t_b . v ds_b
    J(du, v) = int eps(v) . C eps(du) dx

and at every Newton iterate the macro strains at the quadrature points of the cells a
rank *owns* are handed, as one batch, to that rank's material (a closed-form law or an
RVE template); the answers fill the quadrature functions and ghosts are updated.
All methods are collective on ``mesh.comm`` unless said otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import basix
import basix.ufl
import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from fe2 import petsc as fe2petsc
from fe2.errors import SolverError
from fe2.macromesh import MacroMesh
from fe2.errors import collective
from fe2.materials import PointMaterial
from fe2.rve import flat_grad, mandel_strain
from fe2.tensors import strain_size

AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class Dirichlet:
    """Displacement component ``component`` on boundary ``tag`` equal to ``load * value``."""

    tag: int
    component: int
    value: float
    name: str = ""


@dataclass(frozen=True)
class Traction:
    """Traction ``load * value`` on boundary ``tag``."""

    tag: int
    value: tuple[float, ...]
    name: str = ""


@dataclass
class NewtonReport:
    """What one load step's Newton iterations did (rank-independent numbers)."""

    converged: bool = False
    iterations: int = 0
    residuals: list[float] = field(default_factory=list)
    updates: list[float] = field(default_factory=list)
    time_material: float = 0.0
    time_macro: float = 0.0
    material_points: int = 0
    failure: str = ""


class MacroProblem:
    """Macro equilibrium with a :class:`~fe2.materials.PointMaterial` at the quadrature
    points (collective on ``macro_mesh.mesh.comm``).

    The kinematics follow the material's ``kinematics`` attribute (default ``"small"``):
    small strain (Mandel strain -> Mandel stress) or finite strain (``F = I + grad u``
    flattened -> first Piola–Kirchhoff stress, total Lagrangian).

    Parameters
    ----------
    macro_mesh : mesh with tagged boundaries
    material : evaluated on the owned quadrature points of this rank, in the order of
        :meth:`point_labels`
    degree : Lagrange degree of ``u``
    quadrature_degree : default ``max(2 * (degree - 1), 1)``
    dirichlet, traction : boundary conditions, scaled by the load factor
    petsc_options : overrides of :data:`fe2.petsc.DIRECT_LU`
    nonlocal_length : if given, the implicit gradient enhancement (Peerlings et al. 1996)
        with internal length ``l``: a P1 field ``e`` (the nonlocal equivalent strain) solves
        ``e - l^2 div grad e = e_loc`` with natural boundary conditions, where ``e_loc`` is
        the material's local equivalent strain, and the material's damage is driven by
        ``e``. The material must then provide ``evaluate_nonlocal(E, e)`` returning
        ``(sigma, dsigma/dE, dsigma/de, e_loc, de_loc/dE, de_loc/de)``; Newton is
        monolithic in ``(u, e)`` with this complete block tangent.

    The unknown is :attr:`x` (``u``, or the mixed ``(u, e)``); :attr:`u` is always the
    displacement (a copy kept in step with ``x`` in the gradient case).
    """

    def __init__(self, macro_mesh: MacroMesh, material: PointMaterial, degree: int = 2,
                 quadrature_degree: int | None = None, dirichlet: Sequence[Dirichlet] = (),
                 traction: Sequence[Traction] = (), petsc_options: Mapping[str, Any] | None = None,
                 nonlocal_length: float | None = None) -> None:
        self.macro_mesh = macro_mesh
        self.mesh = mesh = macro_mesh.mesh
        self.comm = mesh.comm
        self.material = material
        self.gdim = gdim = mesh.geometry.dim
        self.kinematics = getattr(material, "kinematics", "small")
        self.size = n = strain_size(gdim) if self.kinematics == "small" else gdim * gdim
        if material.size != n:
            raise ValueError(f"material size {material.size} does not match macro strain size {n}")
        qdeg = max(2 * (degree - 1), 1) if quadrature_degree is None else quadrature_degree
        self.quadrature_degree = qdeg
        tdim = mesh.topology.dim

        cell = mesh.topology.cell_name()
        self.nonlocal_length = nonlocal_length
        self.gradient = nonlocal_length is not None
        if self.gradient:
            if self.kinematics != "small" or not hasattr(material, "evaluate_nonlocal"):
                raise ValueError("the gradient-enhanced macro problem needs a small-strain material with "
                                 "evaluate_nonlocal (a damage law or an RVE with a damage phase)")
            if not nonlocal_length > 0:
                raise ValueError(f"nonlocal_length must be > 0, got {nonlocal_length}")
            el_u = basix.ufl.element("Lagrange", cell, degree, shape=(gdim,))
            el_e = basix.ufl.element("Lagrange", cell, 1)
            self.V = V = fem.functionspace(mesh, basix.ufl.mixed_element([el_u, el_e]))
            self.x = fem.Function(V, name="solution")
            Vu = V.sub(0)
            self.Vu_collapsed, self._u_dofs = Vu.collapse()
            self.u = fem.Function(self.Vu_collapsed, name="displacement")
            self.Ve_collapsed, self._e_dofs = V.sub(1).collapse()
            self.e = fem.Function(self.Ve_collapsed, name="nonlocal_strain")
            u_expr, e_expr = ufl.split(self.x)
        else:
            self.V = V = fem.functionspace(mesh, ("Lagrange", degree, (gdim,)))
            self.u = self.x = fem.Function(V, name="displacement")
            Vu, u_expr = V, self.u
        Qs = fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(n,), degree=qdeg))
        Qc = fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(n, n), degree=qdeg))
        self.sigma = fem.Function(Qs, name="stress")
        self.tangent = fem.Function(Qc, name="tangent")
        self.strain = fem.Function(Qs, name="strain")
        points, self.quadrature_weights = basix.make_quadrature(basix.CellType[cell], qdeg)
        self.num_points_per_cell = points.shape[0]
        if self.kinematics == "small":
            G = lambda w: mandel_strain(w, gdim)  # noqa: E731
            self._strain_expr = fem.Expression(G(u_expr), points)
        else:
            G = lambda w: flat_grad(w, gdim)  # noqa: E731
            identity = ufl.as_vector(np.eye(gdim).ravel().tolist())
            self._strain_expr = fem.Expression(identity + G(u_expr), points)
        self._G = G
        self.num_owned_cells = mesh.topology.index_map(tdim).size_local
        self._cells = np.arange(self.num_owned_cells, dtype=np.int32)
        self._qdofs = Qs.dofmap.list[: self.num_owned_cells].ravel()  # (cells x points)
        self.num_owned_points = self._qdofs.size
        self.num_points_global = self.comm.allreduce(self.num_owned_points, op=MPI.SUM)

        # --- boundary conditions ----------------------------------------------------------
        fdim = tdim - 1
        tags = macro_mesh.facet_tags
        self.load = fem.Constant(mesh, 0.0)
        self.dirichlet = list(dirichlet)
        self.bcs = []
        self._bc_values = []
        for d in self.dirichlet:
            facets = tags.indices[tags.values == d.tag]
            dofs = fem.locate_dofs_topological(Vu.sub(d.component), fdim, facets)
            c = fem.Constant(mesh, 0.0)
            self.bcs.append(fem.dirichletbc(c, dofs, Vu.sub(d.component)))
            self._bc_values.append((c, d.value))
        self.traction = list(traction)
        ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags)
        dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": qdeg, "quadrature_scheme": "default"})
        eps = G
        if self.gradient:
            (v, q), (du, de) = ufl.TestFunctions(V), ufl.TrialFunctions(V)
            Qe = fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(), degree=qdeg))
            #: dsigma/de, e_loc, de_loc/dE, de_loc/de at the quadrature points
            self.dsigma_de = fem.Function(Qs, name="dsigma_de")
            self.e_local = fem.Function(Qe, name="local_equivalent_strain")
            self.de_local_dE = fem.Function(Qs, name="de_loc_dE")
            self.de_local_de = fem.Function(Qe, name="de_loc_de")
            self._e_expr = fem.Expression(e_expr, points)
            self._qdofs_scalar = Qe.dofmap.list[: mesh.topology.index_map(tdim).size_local].ravel()
            l2 = fem.Constant(mesh, float(nonlocal_length) ** 2)
            F_e = (e_expr * q + l2 * ufl.inner(ufl.grad(e_expr), ufl.grad(q)) - self.e_local * q) * dx
            J_extra = (ufl.inner(self.dsigma_de * de, eps(v)) * dx
                       + (de * q + l2 * ufl.inner(ufl.grad(de), ufl.grad(q)) - self.de_local_de * de * q) * dx
                       - q * ufl.inner(self.de_local_dE, eps(du)) * dx)
        else:
            v, du = ufl.TestFunction(V), ufl.TrialFunction(V)
        F = ufl.inner(self.sigma, eps(v)) * dx
        if self.gradient:
            F += F_e
        self._tractions = []
        for t in self.traction:
            if len(t.value) != gdim:
                raise ValueError(f"traction on {t.name or t.tag} has {len(t.value)} components, expected {gdim}")
            tc = fem.Constant(mesh, np.zeros(gdim))
            self._tractions.append((tc, np.asarray(t.value, float), t.tag))
            F -= ufl.inner(tc, v) * ds(t.tag)
        self._F = fem.form(F)
        J = ufl.inner(ufl.dot(self.tangent, eps(du)), eps(v)) * dx
        if self.gradient:
            J = J + J_extra
        self._J = fem.form(J)
        self._Fint = fem.form(ufl.inner(self.sigma, eps(v)) * dx)
        # load pattern, for path following: w = the prescribed displacements at load 1 on the
        # Dirichlet dofs (0 elsewhere), f_hat = the tractions at load 1, and K^T w
        self._w = fem.Function(V)
        self._Kt_w = fem.form(ufl.action(ufl.adjoint(J), self._w))
        ext = [ufl.inner(tc, v) * ds(tag) for tc, _, tag in self._tractions]
        self._F_ext = fem.form(sum(ext[1:], ext[0])) if ext else None
        self._pattern: tuple[PETSc.Vec, PETSc.Vec] | None = None
        self._one = fem.Function(V)
        self._traction_forms = [(fem.form(tc[i] * ds(tag)), tag, i) for tc, _, tag in self._tractions
                                for i in range(gdim)]

        self.A = dolfinx.fem.petsc.create_matrix(self._J)
        self.b = dolfinx.fem.petsc.create_vector(self._F)
        self.dx_vec = dolfinx.fem.petsc.create_vector(self._F)
        self.ksp = fe2petsc.direct_solver(self.A, fe2petsc.unique_prefix("fe2_macro_"), petsc_options,
                                          symmetric=False)
        self.u_committed = self.x.x.array.copy()
        #: work done on the body by the external forces up to the last committed step
        #: (trapezoidal in the steps; reactions of prescribed displacements included)
        self.work = 0.0
        self._u_prev = self.x.x.petsc_vec.copy()
        self._f_prev = self._u_prev.duplicate()
        self._f_prev.set(0.0)
        # volume of each owned material point (affine cells: |cell| w_q / sum w)
        D0 = fem.functionspace(mesh, ("DG", 0))
        vol = dolfinx.fem.petsc.assemble_vector(fem.form(ufl.TestFunction(D0) * ufl.dx))
        w = self.quadrature_weights / self.quadrature_weights.sum()
        self.point_volumes = (vol.array[: self.num_owned_cells, None] * w[None, :]).ravel()
        vol.destroy()
        cell_index = mesh.topology.index_map(tdim).local_to_global(self._cells)
        self._labels = np.stack([np.repeat(cell_index, self.num_points_per_cell),
                                 np.tile(np.arange(self.num_points_per_cell), self.num_owned_cells)], axis=1)

    def point_labels(self) -> np.ndarray:
        """``(N_owned, 2)``: global cell index and quadrature point number of each owned
        material point, in the order the material sees them (not collective)."""
        return self._labels

    def commit(self) -> None:
        """A load step converged: commit the material state, remember ``u`` and add the
        step's work to :attr:`work` (collective)."""
        self.material.commit()
        self.u_committed[:] = self.x.x.array
        f = dolfinx.fem.petsc.assemble_vector(self._Fint)
        f.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        du = self.x.x.petsc_vec.copy()
        du.axpy(-1.0, self._u_prev)
        # trapezoidal rule: the internal forces balance the external ones (reactions included)
        self.work += 0.5 * (f.dot(du) + self._f_prev.dot(du))
        self._u_prev.destroy()
        self._f_prev.destroy()
        du.destroy()
        self._u_prev, self._f_prev = self.x.x.petsc_vec.copy(), f

    def revert(self) -> None:
        """A load step failed: back to the committed material state and ``u`` (not collective)."""
        self.material.revert()
        self.x.x.array[:] = self.u_committed
        self._sync()

    def _sync(self) -> None:
        """Copy the displacement (and nonlocal strain) out of the mixed unknown (not collective)."""
        if self.gradient:
            self.u.x.array[:] = self.x.x.array[self._u_dofs]
            self.e.x.array[:] = self.x.x.array[self._e_dofs]

    # -------------------------------------------------------------------------------------
    def set_load(self, factor: float) -> None:
        """Scale all Dirichlet values and tractions by ``factor`` (not collective)."""
        self.load.value = factor
        for c, value in self._bc_values:
            c.value = factor * value
        for tc, value, _ in self._tractions:
            tc.value[:] = factor * value

    def strains_at_points(self) -> np.ndarray:
        """Macro strains at the owned quadrature points, ``(N_owned, n)`` (not collective)."""
        vals = self._strain_expr.eval(self.mesh, self._cells)
        return vals.reshape(-1, self.size)

    def _evaluate_material(self, E: np.ndarray, e_nl: np.ndarray | None = None) -> tuple:
        try:
            if e_nl is not None:
                return self.material.evaluate_nonlocal(E, e_nl)
            return self.material.evaluate(E)
        except SolverError as err:
            point = getattr(err, "point", None)
            if point is None:
                raise
            cell, q = self._labels[point]
            raise SolverError(f"{err} [macro cell {cell}, quadrature point {q}, rank {self.comm.rank}]") from None

    def update_material(self) -> float:
        """Evaluate the material at all owned points and fill stress/tangent (collective:
        ghost update; a material failure on any rank raises
        :class:`~fe2.errors.SolverError` on all). Returns the time spent in the material
        on this rank."""
        E = self.strains_at_points()
        t0 = time.perf_counter()
        if self.gradient:
            e_nl = self._e_expr.eval(self.mesh, self._cells).reshape(-1)
            sig, C, S, el, dl_dE, dl_de = collective(self.comm, self._evaluate_material, E, e_nl)
            self.dsigma_de.x.array.reshape(-1, self.size)[self._qdofs] = S
            self.de_local_dE.x.array.reshape(-1, self.size)[self._qdofs] = dl_dE
            self.e_local.x.array[self._qdofs_scalar] = el
            self.de_local_de.x.array[self._qdofs_scalar] = dl_de
            for f in (self.dsigma_de, self.de_local_dE, self.e_local, self.de_local_de):
                f.x.scatter_forward()
        else:
            sig, C = collective(self.comm, self._evaluate_material, E)
        t_mat = time.perf_counter() - t0
        n = self.size
        self.strain.x.array.reshape(-1, n)[self._qdofs] = E
        self.sigma.x.array.reshape(-1, n)[self._qdofs] = sig
        self.tangent.x.array.reshape(-1, n * n)[self._qdofs] = np.asarray(C).reshape(-1, n * n)
        for f in (self.strain, self.sigma, self.tangent):
            f.x.scatter_forward()
        return t_mat

    def assemble_residual(self) -> float:
        """Assemble the residual into :attr:`b` (Dirichlet rows: ``x - load * value``, so
        that one Newton update lands on the boundary values) and return its norm (collective)."""
        b = self.b
        with b.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, self._F)
        dolfinx.fem.petsc.apply_lifting(b, [self._J], bcs=[self.bcs], x0=[self.x.x.petsc_vec], alpha=-1.0)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, self.bcs, self.x.x.petsc_vec, -1.0)
        return b.norm()

    def assemble_jacobian(self) -> None:
        """Assemble the consistent tangent (Dirichlet rows and columns replaced by the
        identity) into :attr:`A`; it is factorised at the next :meth:`solve` (collective)."""
        self.A.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(self.A, self._J, bcs=self.bcs)
        self.A.assemble()
        self.ksp.setOperators(self.A)

    def solve(self, rhs: PETSc.Vec, out: PETSc.Vec) -> None:
        """``out = A^-1 rhs`` with the factorisation of the last assembled Jacobian, ghosts
        updated (collective)."""
        self.ksp.solve(rhs, out)
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

    # --- the load pattern, for path following ---------------------------------------------
    def _load_pattern(self) -> tuple[PETSc.Vec, PETSc.Vec]:
        """``(w, f_hat)``: the prescribed displacements at load factor 1 on the Dirichlet
        dofs (0 elsewhere) and the external force vector of the tractions at load factor 1."""
        if self._pattern is None:
            load = float(self.load.value)
            self.set_load(1.0)
            w = self._w.x.petsc_vec
            w.set(0.0)
            dolfinx.fem.petsc.set_bc(w, self.bcs)
            self._w.x.scatter_forward()
            f_hat = w.duplicate()
            with f_hat.localForm() as loc:
                loc.set(0.0)
            if self._F_ext is not None:
                dolfinx.fem.petsc.assemble_vector(f_hat, self._F_ext)
                f_hat.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            self.set_load(load)
            self._pattern = (w, f_hat)
        return self._pattern

    def load_derivative(self, out: PETSc.Vec) -> None:
        """``out = d(residual)/d(load factor)`` at fixed ``x`` and tangent, for the residual
        of :meth:`assemble_residual`: ``K_fD w - f_hat`` on free rows, ``-w`` on Dirichlet
        rows (collective)."""
        _, f_hat = self._load_pattern()
        load = float(self.load.value)
        self.set_load(1.0)
        with out.localForm() as loc:  # ghosts included: they are summed into their owners
            loc.set(0.0)
        dolfinx.fem.petsc.apply_lifting(out, [self._J], bcs=[self.bcs], alpha=-1.0)
        out.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        out.axpy(-1.0, f_hat)
        dolfinx.fem.petsc.set_bc(out, self.bcs, alpha=-1.0)
        self.set_load(load)

    def conjugate_force(self, committed: bool = False) -> float:
        """``G = w . f_int(x) - f_hat . x``: the reactions' resultant along the prescribed
        displacement pattern minus the tractions' work-conjugate displacement. With it the
        external work rate is ``G' d(load) + ...`` and, for a material that unloads
        secantly (damage), the energy dissipated between two equilibrium states is
        ``(G0 (lam - lam0) - lam0 (G - G0)) / 2`` (see :mod:`fe2.pathfollowing`); collective.
        ``committed``: at the last committed state, from the internal forces :meth:`commit`
        assembled (no assembly)."""
        w, f_hat = self._load_pattern()
        if committed:
            return self._f_prev.dot(w) - f_hat.dot(self._u_prev)
        f = dolfinx.fem.petsc.assemble_vector(self._Fint)
        f.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        G = f.dot(w) - f_hat.dot(self.x.x.petsc_vec)
        f.destroy()
        return G

    def conjugate_force_gradient(self, out: PETSc.Vec) -> None:
        """``out = dG/dx = K^T w - f_hat`` with the current (unconstrained) consistent
        tangent ``K`` (collective)."""
        _, f_hat = self._load_pattern()
        with out.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(out, self._Kt_w)
        out.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        out.axpy(-1.0, f_hat)

    def newton(self, rtol: float = 1e-10, atol: float = 1e-12, max_iterations: int = 20,
               log: Callable[[str], None] | None = None) -> NewtonReport:
        """Newton iterations for the current load (collective).

        Converged when the residual norm (Dirichlet rows included, so a new load's jump
        in the boundary values counts) is below ``max(rtol * |F_0|, atol)``.
        """
        rep = NewtonReport()
        try:
            self._newton(rep, rtol, atol, max_iterations, log)
        except SolverError as err:  # a material (RVE) failure: raised on all ranks
            rep.converged = False
            rep.failure = str(err)
            if log:
                log(f"    material failure: {err}")
        return rep

    def evaluate(self, rep: NewtonReport) -> None:
        """Evaluate the material at the current ``x`` and account for it in ``rep`` (collective)."""
        t_mat = self.update_material()
        rep.material_points += self.num_owned_points
        rep.time_material += self.comm.allreduce(t_mat, op=MPI.MAX)

    def _newton(self, rep: NewtonReport, rtol: float, atol: float, max_iterations: int,
                log: Callable[[str], None] | None) -> None:
        self.evaluate(rep)
        r0 = None
        for it in range(max_iterations + 1):
            t0 = time.perf_counter()
            r = self.assemble_residual()
            rep.residuals.append(r)
            if r0 is None:
                r0 = r
            if log:
                upd = f"  |du| = {rep.updates[-1]:.3e}" if rep.updates else ""
                log(f"    newton {it:2d}: |R| = {r:.3e}{upd}")
            rep.iterations = it
            if not np.isfinite(r):
                rep.time_macro += time.perf_counter() - t0
                rep.failure = "residual is not finite"
                return
            if r <= max(rtol * r0, atol) and it > 0 or r <= atol:
                rep.converged = True
                rep.time_macro += time.perf_counter() - t0
                return
            if it == max_iterations:
                rep.failure = f"no convergence in {max_iterations} Newton iterations"
                return
            self.assemble_jacobian()
            self.solve(self.b, self.dx_vec)
            self.add_to_solution(-1.0, self.dx_vec)
            rep.updates.append(self.dx_vec.norm())
            rep.time_macro += time.perf_counter() - t0
            self.evaluate(rep)

    # -------------------------------------------------------------------------------------
    def reactions(self) -> dict[str, float]:
        """Resultant of the internal forces on each Dirichlet boundary in its component
        (the reaction), and of the applied tractions (collective)."""
        out = {}
        fint = dolfinx.fem.petsc.assemble_vector(self._Fint)
        fint.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        for d, bc in zip(self.dirichlet, self.bcs):
            self._one.x.array[:] = 0.0
            dofs = bc.dof_indices()[0][: bc.dof_indices()[1]]
            self._one.x.array[dofs] = 1.0
            key = f"reaction_{d.name or d.tag}_{'xyz'[d.component]}"
            out[key] = out.get(key, 0.0) + fint.dot(self._one.x.petsc_vec)
        fint.destroy()
        for form, tag, i in self._traction_forms:
            name = next((t.name for t in self.traction if t.tag == tag and t.name), str(tag))
            key = f"force_{name}_{'xyz'[i]}"
            out[key] = self.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)
        return out

    def set_time_increment(self, dt: float) -> None:
        """Pseudo-time increment of the next load step, for rate-dependent materials."""
        f = getattr(self.material, "set_time_increment", None)
        if f is not None:
            f(dt)

    def internal_fields(self) -> dict[str, np.ndarray]:
        """The material's committed scalar internal variables at the owned points,
        ``{name: (N_owned,)}`` (empty for materials without any; not collective)."""
        f = getattr(self.material, "internal_fields", None)
        return f() if f is not None else {}

    def integrate(self, values: np.ndarray) -> float:
        """Integral over the body of a per-point scalar ``(N_owned,)`` (collective)."""
        return self.comm.allreduce(float(self.point_volumes @ np.asarray(values)), op=MPI.SUM)

    def dissipated_energy(self, fields: dict[str, np.ndarray] | None = None) -> float:
        """Energy dissipated in the body so far (committed state): the integral of the
        material's ``dissipation`` density; 0 for materials that do not track it (collective).
        ``fields``: :meth:`internal_fields` if the caller has them already."""
        D = (self.internal_fields() if fields is None else fields).get("dissipation")
        return self.integrate(np.zeros(self.num_owned_points) if D is None else D)

    def cell_average_scalars(self, values: np.ndarray) -> np.ndarray:
        """Quadrature-weighted cell averages of a per-point scalar ``(N_owned,)`` -> ``(cells,)``."""
        w = self.quadrature_weights / self.quadrature_weights.sum()
        return np.asarray(values).reshape(self.num_owned_cells, self.num_points_per_cell) @ w

    def cell_averages(self, f: fem.Function) -> np.ndarray:
        """Quadrature-weighted cell averages of a quadrature function on owned cells,
        ``(num_owned_cells, n)`` (affine cells; not collective)."""
        n = self.size
        vals = f.x.array.reshape(-1, n)[self._qdofs].reshape(self.num_owned_cells, self.num_points_per_cell, n)
        w = self.quadrature_weights / self.quadrature_weights.sum()
        return np.einsum("cqk,q->ck", vals, w)

    def destroy(self) -> None:
        for obj in (self.ksp, self.A, self.b, self.dx_vec, self._u_prev, self._f_prev,
                    *(self._pattern[1:] if self._pattern else ())):
            obj.destroy()
