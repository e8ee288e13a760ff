"""The linear cell problem on an RVE: the micro side of FE².

A :class:`CellProblem` is a *template*: one mesh, one function space, one set of
compiled forms, one factorised matrix. It answers the question a material answers --
given macro gradients at many points, return fluxes and tangents -- for a whole batch
of macro points at once, so a rank creates one template and shares it among all its
macro quadrature points.

Cell problem (small-strain elasticity; conduction is the same with ``grad`` for ``eps``
and a conductivity for ``C``): for the macro strain ``E`` find the periodic fluctuation
``w`` with

    int_Y  eps(v) . C (E + eps(w)) dx = 0        for all periodic v,

then ``Sigma = <C (E + eps(w))>``. Vectors are in Mandel notation (see
:mod:`fe2.core.tensors`). Rigid translations are removed by pinning ``w`` at every corner of
the cell (all corners are periodic images of one another, so this pins one value).
With ``b_k = -int eps(v) . C e_k`` the discrete fluctuation for unit gradient ``e_k``
solves ``A w_k = b_k``, and

    C_eff = <C> - B^T A^-1 B / |Y|,    B = [b_1 ... b_n],

the sensitivity form of the effective tensor: one factorisation, one right-hand side per
macro gradient component, and symmetric by construction.

The periodic condition is the default; ``boundary="linear"`` (zero fluctuation on the
cell boundary) and ``boundary="minimal"`` (zero mean fluctuation gradient, a bordered
system with Lagrange multipliers) give the upper and lower apparent tensors of
:mod:`fe2.micro.boundary`. Everything above holds for them with "periodic v" replaced by
the constrained test space.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from fe2.core import linalg
from fe2.core import physics as physics_registry
from fe2.core.errors import MeshError, SolverError
from fe2.core.kinematics import measure
from fe2.core.quadrature import QuadraturePoints, default_degree, effective_geometry_degree
from fe2.materials.base import PointMaterial
from fe2.micro.boundary import BOUNDARY_CONDITIONS, cell_constraint
from fe2.micro.phases import Phase
from fe2.micro.space import CondensedSpace, MicroGradient

if TYPE_CHECKING:
    from fe2.geometry.rvemesh import RVEMesh

__all__ = ["CellProblem", "MicroFields", "effective_tensor_from_fields"]


class MicroFields(NamedTuple):
    """An RVE's fields at its micro points (:meth:`CellProblem.snapshot`), in the order of
    :attr:`CellProblem.quadrature`; ``quadrature.volumes`` integrates them."""

    fluctuation: fem.Function  #: the fluctuation ``w`` (the template's: valid until its next solve or snapshot)
    gradient: np.ndarray  #: (P, n) the micro gradient ``E + G w``
    flux: np.ndarray  #: (P, n) the micro flux (stress) at the converged state
    fields: dict[str, np.ndarray]  #: internal variables (P,) by output name, 0 in the phases without them
    out_of_plane: np.ndarray | None  #: (P,) plane strain's ``sigma_zz`` (``P_33``), None where not known


class CellProblem(PointMaterial):
    """Linear cell problem template (collective on ``rve_mesh.mesh.comm``,
    normally ``MPI.COMM_SELF``).

    Parameters
    ----------
    rve_mesh : periodic RVE mesh with cell tags (see :func:`fe2.geometry.rvemesh.load_rve_mesh`)
    phases : one :class:`~fe2.micro.phases.Phase` per physical tag; every tagged cell must be covered
    physics : ``"elasticity"`` (small strain, plane strain in 2D), ``"conduction"``, or
        ``"finite_strain"`` (the linearised problem about ``F = I``; see
        :class:`fe2.micro.nonlinear.NonlinearCellProblem` for the nonlinear one)
    degree : Lagrange degree of the fluctuation field (1 or 2)
    petsc_options : overrides of the direct solver :func:`fe2.core.linalg.rve_solver_options`
        chooses (CHOLMOD Cholesky on one process, MUMPS on several)
    source : where the phases came from, used in error messages (e.g. a file name)
    quadrature_degree : of the cell problem's forms (default
        :func:`fe2.core.quadrature.default_degree` of ``degree`` and the mesh's geometry
        degree: exact on affine cells, converged on curved ones)
    boundary : micro boundary condition of the fluctuation, one of
        :data:`fe2.micro.boundary.BOUNDARY_CONDITIONS`: ``"periodic"`` (default),
        ``"linear"`` (zero on the cell boundary) or ``"minimal"`` (zero mean gradient,
        with Lagrange multipliers: see :mod:`fe2.micro.boundary`)

    Attributes
    ----------
    size : number of macro gradient components ``n`` (3/6 for elasticity, gdim for conduction)
    volume : cell volume ``|Y|``
    volume_fractions : ``{phase name: fraction}``
    num_dofs : global number of fluctuation DOFs (before the periodic condensation)
    effective_tensor : ``(n, n)`` homogenized tensor (Mandel for elasticity)
    """

    #: the answer is linear in the macro gradient: the effective tensor is the tangent everywhere
    linear = True

    def __init__(self, rve_mesh: RVEMesh, phases: Sequence[Phase], physics: str = "elasticity",
                 degree: int = 1, petsc_options: Mapping[str, Any] | None = None,
                 source: str = "phases", boundary: str = "periodic", quadrature_degree: int | None = None) -> None:
        spec = physics_registry.get(physics)
        if boundary not in BOUNDARY_CONDITIONS:
            raise ValueError(f"unknown micro boundary condition {boundary!r}; choose one of "
                             f"{', '.join(BOUNDARY_CONDITIONS)}")
        mesh = rve_mesh.mesh
        self.rve_mesh = rve_mesh
        self.mesh = mesh
        self.comm = mesh.comm
        self.physics = physics
        self.degree = degree
        self.gdim = gdim = mesh.geometry.dim
        self.size = n = spec.gradient_size(gdim)
        self.kinematics = spec.kinematics
        self.phases = tuple(phases)

        # --- phase tensor field: DG0 (n x n) ---------------------------------------
        T = fem.functionspace(mesh, ("DG", 0, (n, n)))
        self.tensor = fem.Function(T, name="phase_tensor")
        self._fill_phases(source)

        # --- fluctuation space and its boundary condition ----------------------------
        shape = (gdim,) if spec.vector_field else ()
        self.V = V = fem.functionspace(mesh, ("Lagrange", degree, shape))
        self.box_min = np.asarray(rve_mesh.box_min, float)
        self.box_max = np.asarray(rve_mesh.box_max, float)
        self.boundary = boundary
        #: the fluctuation space under the boundary condition: assembly, solves (:mod:`fe2.micro.space`)
        self.space = CondensedSpace(V, cell_constraint(boundary, V, self.box_min, self.box_max))
        self.mpc, self.bcs = self.space.mpc, self.space.bcs
        #: the Lagrange-multiplier border of a ``"minimal"`` condition (else None)
        self.border: linalg.Border | None = self.space.border
        self._K: PETSc.Mat | None = None

        # --- forms --------------------------------------------------------------------
        G = measure(spec.kinematics, gdim)
        w, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        C = self.tensor
        self.E = fem.Constant(mesh, np.zeros(n))
        self.quadrature_degree = q = (default_degree(degree, effective_geometry_degree(mesh),
                                                     mesh.topology.cell_name())
                                      if quadrature_degree is None else quadrature_degree)
        dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": q})
        self._a = fem.form(ufl.inner(ufl.dot(C, G(w)), G(v)) * dx)
        self._L = fem.form(-ufl.inner(ufl.dot(C, self.E), G(v)) * dx)
        self.volume = self.comm.allreduce(
            fem.assemble_scalar(fem.form(fem.Constant(mesh, 1.0) * ufl.dx)), op=MPI.SUM)
        self.num_dofs = V.dofmap.index_map.size_global * V.dofmap.index_map_bs

        dx_tags = ufl.Measure("dx", domain=mesh, subdomain_data=rve_mesh.cell_tags)
        self.volume_fractions = {}
        for ph in self.phases:
            vol = fem.assemble_scalar(fem.form(fem.Constant(mesh, 1.0) * dx_tags(ph.tag)))
            self.volume_fractions[ph.name] = self.comm.allreduce(vol, op=MPI.SUM) / self.volume
        self.mean_tensor = sum(self.volume_fractions[ph.name] * np.asarray(ph.tensor, float)
                               for ph in self.phases)

        # --- matrix, factorisation, sensitivity right-hand sides -------------------
        self.A = self.assemble_matrix()
        # phase tensors are positive definite: CHOLMOD on one process (by measurement), else
        # MUMPS; a bordered matrix is indefinite: MUMPS's LDL^T
        options = {**linalg.rve_solver_options(True, self.border is None, self.A.getInfo()["nz_used"],
                                               self.comm.size > 1, saddle=self.border is not None),
                   **(petsc_options or {})}
        self.ksp = linalg.direct_solver(self.A, linalg.unique_prefix("fe2_rve_"), options, symmetric=True)
        try:
            linalg.factorise(self.ksp, f"factorisation of the RVE matrix of '{rve_mesh.path}'")
        except SolverError as err:
            raise SolverError(f"{err}; is a phase tensor singular or not positive definite?") from None
        self.B = self.space.unit_vectors(self._L, self.E)  # (nloc, n)
        #: owned rows of a condensed vector
        self.nloc = self.space.nloc
        #: B without the part the multipliers balance (the residual of a unit gradient)
        self.B_residual = self.B if self.border is None else self.border.project(self.B)
        #: the fluctuations of the unit macro gradients ``(nloc, n)`` (the sensitivities ``dw/dE``)
        self.unit_fluctuations = W = self.solve_reduced(self.B)
        self.effective_tensor = self.mean_tensor - self.space.dot(self.B, W) / self.volume

    # ---------------------------------------------------------------------------------
    def _fill_phases(self, source: str) -> None:
        mesh, tags = self.mesh, self.rve_mesh.cell_tags
        tdim = mesh.topology.dim
        num_cells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
        n = self.size
        values = np.full((num_cells, n * n), np.nan)
        present = {int(t) for t in np.unique(tags.values)}
        present = set(self.comm.allgather(present)[0]).union(*self.comm.allgather(present))
        by_tag = {}
        for ph in self.phases:
            t = np.asarray(ph.tensor, dtype=float)
            if t.shape != (n, n):
                raise ValueError(f"phase {ph.name!r}: tensor shape {t.shape}, expected {(n, n)}")
            if ph.tag not in present:
                raise MeshError(f"{source}: phase '{ph.name}' has tag {ph.tag}, which no cell of RVE mesh "
                                f"'{self.rve_mesh.path}' carries (tags present: {sorted(present)})")
            if ph.tag in by_tag:
                raise MeshError(f"{source}: phases '{by_tag[ph.tag].name}' and '{ph.name}' both have tag {ph.tag}")
            by_tag[ph.tag] = ph
            values[tags.indices[tags.values == ph.tag]] = t.ravel()
        missing = sorted(present - set(by_tag))
        if missing:
            raise MeshError(f"{source}: RVE mesh '{self.rve_mesh.path}' has cells with tag(s) {missing} "
                            f"but no phase is given for them in [rve.phases] (phases: "
                            f"{', '.join(f'{p.name} tag={p.tag}' for p in self.phases)}); add a "
                            f"[rve.phases.<name>] table with tag = {missing[0]}")
        if np.isnan(values).any():
            raise MeshError(f"RVE mesh '{self.rve_mesh.path}': {int(np.isnan(values[:, 0]).sum())} cells carry no "
                            "physical tag; every cell must belong to a phase")
        self.tensor.x.array[:] = values.ravel()

    def assemble_matrix(self, A: PETSc.Mat | None = None) -> PETSc.Mat:
        """The condensed (periodic, corners pinned) matrix of the cell problem, assembled
        into ``A`` or a new matrix (collective); with a :attr:`border`, the bordered one."""
        self._K = self.space.matrix(self._a, self._K if self.border is not None else A)
        if self.border is None:
            return self._K
        return self.border.matrix(self._K, A)

    def unit_rhs(self) -> np.ndarray:
        """The sensitivity right-hand sides ``B = [b_1 ... b_n]`` assembled anew, ``(nloc, n)``
        (collective; :attr:`B` holds the ones of the construction)."""
        return self.space.unit_vectors(self._L, self.E)

    def solve_reduced(self, rhs: np.ndarray) -> np.ndarray:
        """Solve ``A X = rhs`` ``(nloc, m)`` with the stored factorisation of the cell's
        matrix (:meth:`fe2.micro.space.CondensedSpace.solve`; collective)."""
        return self.space.solve(rhs, self.ksp)

    def evaluate(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Homogenized flux and consistent tangent for a batch of macro gradients.

        One condensed solve per point, all with the stored factorisation.

        Parameters
        ----------
        E : (N, n) macro gradients (Mandel strains or temperature gradients)

        Returns
        -------
        sigma : (N, n) volume-averaged fluxes
        tangent : (N, n, n) consistent tangents (the effective tensor, since the cell
            problem is linear)
        """
        E = np.atleast_2d(np.asarray(E, dtype=float))
        W = self.solve_reduced(self.B @ E.T)  # (nloc, N)
        sigma = E @ self.mean_tensor.T - self.space.dot(W, self.B) / self.volume
        tangent = np.broadcast_to(self.effective_tensor, (E.shape[0],) + self.effective_tensor.shape)
        return sigma, tangent

    @functools.cached_property
    def out_of_plane_row(self) -> np.ndarray | None:
        """Plane strain: the row ``c`` with ``<sigma_zz> = c . E`` (``(n,)``; each phase's
        ``sigma_zz`` from its law, averaged over the cell with the unit problems'
        fluctuations); None in 3D, for conduction and finite strain, or when a phase's law
        cannot say (computed once, collective the first time)."""
        if self.gdim != 2 or self.kinematics != "small":
            return None
        rows = {}
        for ph in self.phases:
            law = ph.law  # a phase given by its tensor alone does not say what sigma_zz is
            r = None if law is None or not law.linear else law.out_of_plane_stress(
                np.eye(self.size), law.initial_state(self.size))
            if r is None:
                return None
            rows[ph.tag] = np.asarray(r, dtype=float)
        return self._average_row(rows)

    def _average_row(self, rows: dict[int, np.ndarray]) -> np.ndarray:
        """``c_k = <zz(y) . (e_k + eps(w_k))>`` for phase rows ``zz`` by tag (collective)."""
        tags = self.rve_mesh.cell_tags
        n = self.size
        Z = fem.Function(fem.functionspace(self.mesh, ("DG", 0, (n,))))
        vals = Z.x.array.reshape(-1, n)
        for tag, r in rows.items():
            vals[tags.indices[tags.values == tag]] = r
        Z.x.scatter_forward()
        G = measure(self.kinematics, self.gdim)
        out = np.zeros(n)
        for k in range(n):
            e = np.zeros(n)
            e[k] = 1.0
            w = self.fluctuation(e)
            g = fem.Constant(self.mesh, e) + G(w)
            out[k] = fem.assemble_scalar(fem.form(ufl.dot(Z, g) * ufl.dx))
        return self.comm.allreduce(out, op=MPI.SUM) / self.volume

    def out_of_plane_stress(self, grad: np.ndarray) -> np.ndarray | None:
        """``<sigma_zz> = c . E`` (:attr:`out_of_plane_row`), or None."""
        row = self.out_of_plane_row
        return None if row is None else np.atleast_2d(grad) @ row

    @functools.cached_property
    def quadrature(self) -> QuadraturePoints:
        """The micro points: the rule of the cell problem's forms (made on first use)."""
        return QuadraturePoints(self.mesh, self.quadrature_degree)

    @functools.cached_property
    def owned_cell_tags(self) -> np.ndarray:
        """The phase tag of every owned cell, in local order ``(num_owned_cells,)``."""
        num_owned, tags = self.quadrature.num_owned_cells, self.rve_mesh.cell_tags
        cell_tag = np.zeros(num_owned, dtype=np.int64)
        owned = tags.indices < num_owned
        cell_tag[tags.indices[owned]] = tags.values[owned]
        return cell_tag

    @functools.cached_property
    def phase_points(self) -> list[np.ndarray]:
        """The micro points of each phase (indices in :attr:`quadrature` order), in the order
        of :attr:`phases`."""
        point_tag = np.repeat(self.owned_cell_tags, self.quadrature.num_points_per_cell)
        return [np.flatnonzero(point_tag == ph.tag) for ph in self.phases]

    @functools.cached_property
    def _micro_gradient(self) -> MicroGradient:
        """The compiled micro gradient ``E + G w`` at the micro points (its constant and
        function are the template's own)."""
        return self.space.micro_gradient(self.quadrature, self.kinematics, self.size)

    def _snapshot_state(self, E: np.ndarray, point: int | None, trial: bool = False
                        ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """The condensed fluctuation ``(nloc,)`` and the phase states (None: virgin) of a
        snapshot: the linear cell solves for ``E``."""
        return self.solve_reduced(self.B @ E[:, None])[:, 0], None

    def snapshot(self, E: np.ndarray, point: int | None = None, trial: bool = False) -> MicroFields:
        """The RVE's micro fields for the macro gradient ``E`` ``(n,)``: the linear cell's
        solution for ``E``; a nonlinear cell's committed fluctuation and internal state of
        its macro point ``point`` (``E`` is that point's committed macro gradient), or with
        ``trial`` those of its last evaluation (``E`` is that evaluation's). The flux
        is each phase law's at that state (:meth:`fe2.materials.base.Law.flux`), or the
        phase tensor times the gradient (collective on the template's communicator)."""
        E = np.asarray(E, dtype=float).reshape(-1)
        x, states = self._snapshot_state(E, point, trial)
        Ec, w, expr = self._micro_gradient
        Ec.value[:] = E
        self.space.set_fluctuation(w, x)
        g = self.quadrature.evaluate(expr, self.size)
        P = g.shape[0]
        flux = np.empty_like(g)
        fields: dict[str, np.ndarray] = {}
        zz = np.zeros(P) if self.gdim == 2 and self.kinematics != "scalar" else None
        for k, (ph, idx) in enumerate(zip(self.phases, self.phase_points)):
            law = ph.law
            if law is None:  # a phase given by its tensor alone: linear, no sigma_zz
                flux[idx] = g[idx] @ np.asarray(ph.tensor, dtype=float).T
                zz = None
                continue
            st = law.initial_state(idx.size) if states is None else states[k]
            flux[idx] = law.flux(g[idx], st)
            for name, vals in law.fields(st).items():
                fields.setdefault(name, np.zeros(P))[idx] = vals
            z = None if zz is None else law.out_of_plane_stress(g[idx], st)
            if z is None:
                zz = None
            else:
                zz[idx] = z
        return MicroFields(w, g, flux, fields, zz)

    def fluctuation(self, E: np.ndarray) -> fem.Function:
        """The periodic fluctuation field for one macro gradient ``E`` (n,)."""
        E = np.asarray(E, dtype=float).reshape(-1)
        w = self.space.function()
        self.space.set_fluctuation(w, self.solve_reduced(self.B @ E[:, None])[:, 0])
        return w

    def averages(self, w: fem.Function, E: np.ndarray) -> tuple[np.ndarray, float]:
        """Volume averages computed directly from the fields (independent of
        :meth:`evaluate`; used to verify it): ``(<C (E + G w)>, <(E + G w) . C (E + G w)>)``."""
        G = measure(self.kinematics, self.gdim)
        Ec = fem.Constant(self.mesh, np.asarray(E, dtype=float))
        g = Ec + G(w)
        s = ufl.dot(self.tensor, g)
        flux = np.array([fem.assemble_scalar(fem.form(s[k] * ufl.dx)) for k in range(self.size)])
        energy = fem.assemble_scalar(fem.form(ufl.inner(s, g) * ufl.dx))
        flux = self.comm.allreduce(flux, op=MPI.SUM) / self.volume
        energy = self.comm.allreduce(energy, op=MPI.SUM) / self.volume
        return flux, energy

    def destroy(self) -> None:
        """Free the PETSc objects (collective)."""
        self.ksp.destroy()
        self.A.destroy()
        if self.border is not None:
            self._K.destroy()
        self.space.destroy()


def effective_tensor_from_fields(problem: CellProblem) -> np.ndarray:
    """Effective tensor by solving each unit-gradient problem and averaging the flux
    field directly (slow path; for verification)."""
    n = problem.size
    C = np.zeros((n, n))
    for k in range(n):
        e = np.zeros(n)
        e[k] = 1.0
        w = problem.fluctuation(e)
        C[:, k] = problem.averages(w, e)[0]
    return C
