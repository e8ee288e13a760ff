"""Periodic cell problems on an RVE: the micro side of FE².

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
:mod:`fe2.tensors`). Rigid translations are removed by pinning ``w`` at every corner of
the cell (all corners are periodic images of one another, so this pins one value).
With ``b_k = -int eps(v) . C e_k`` the discrete fluctuation for unit gradient ``e_k``
solves ``A w_k = b_k``, and

    C_eff = <C> - B^T A^-1 B / |Y|,    B = [b_1 ... b_n],

the sensitivity form of the effective tensor: one factorisation, one right-hand side per
macro gradient component, and symmetric by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dolfinx
import dolfinx.fem.petsc
import dolfinx_mpc
import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc

from fe2 import petsc as fe2petsc
from fe2.errors import MeshError, SolverError
from fe2.materials import law_fields
from fe2.tensors import SQRT2, strain_size

if TYPE_CHECKING:
    from fe2.rvemesh import RVEMesh

PHYSICS = ("elasticity", "conduction", "finite_strain")


@dataclass(frozen=True)
class Phase:
    """A material phase of an RVE: the cells with physical tag ``tag``.

    ``tensor`` is the phase's (initial) tangent in the layout of the macro gradient:
    Mandel stiffness ``(n, n)`` (small strain), conductivity ``(gdim, gdim)``, or
    ``dP/dF`` at ``F = I`` ``(gdim^2, gdim^2)`` (finite strain). ``law`` is the
    constitutive law (:class:`fe2.materials.Material`) of a nonlinear RVE; with a law
    and no tensor, the tensor is the law's tangent in its initial state.
    """

    name: str
    tag: int
    tensor: np.ndarray | None = None
    law: Any = None

    def __post_init__(self) -> None:
        if self.tensor is None:
            if self.law is None:
                raise ValueError(f"phase {self.name!r} needs a tensor or a law")
            law = self.law
            g0 = reference_gradient(law.kinematics, law.gdim)[None, :]
            _, t, _ = law.integrate(g0, law.initial_state(1))
            object.__setattr__(self, "tensor", np.array(t[0]))


def reference_gradient(kinematics: str, gdim: int) -> np.ndarray:
    """The macro gradient of the undeformed state: zero strain, or ``F = I`` flattened."""
    if kinematics == "finite":
        return np.eye(gdim).ravel()
    return np.zeros(strain_size(gdim))


def mandel_strain(u: Any, gdim: int) -> Any:
    """UFL Mandel vector of ``sym(grad(u))``."""
    e = ufl.sym(ufl.grad(u))
    if gdim == 2:
        return ufl.as_vector([e[0, 0], e[1, 1], SQRT2 * e[0, 1]])
    return ufl.as_vector([e[0, 0], e[1, 1], e[2, 2], SQRT2 * e[1, 2], SQRT2 * e[0, 2], SQRT2 * e[0, 1]])


def flat_grad(u: Any, gdim: int) -> Any:
    """UFL ``grad(u)`` flattened row-major (``[u1,1, u1,2, u2,1, u2,2]`` in 2D)."""
    g = ufl.grad(u)
    return ufl.as_vector([g[i, j] for i in range(gdim) for j in range(gdim)])


def gradient_operator(physics: str, gdim: int):
    """The macro-gradient measure of a field: Mandel strain (small strain), flattened
    displacement gradient (finite strain; ``F = I + that``) or temperature gradient."""
    if physics == "elasticity":
        return lambda u: mandel_strain(u, gdim)
    if physics == "finite_strain":
        return lambda u: flat_grad(u, gdim)
    return ufl.grad


def gradient_size(physics: str, gdim: int) -> int:
    """Number of macro gradient components of a physics."""
    return {"elasticity": strain_size(gdim), "finite_strain": gdim * gdim, "conduction": gdim}[physics]


def periodic_constraint(V: fem.FunctionSpace, box_min: np.ndarray, box_max: np.ndarray
                        ) -> tuple[dolfinx_mpc.MultiPointConstraint, list[fem.DirichletBC]]:
    """Periodic constraint of ``V`` on the box ``[box_min, box_max]`` with every corner pinned.

    One relation maps every point of an upper face, edge or corner to its image with all
    upper coordinates replaced by lower ones, so no master is itself a slave. All corners
    carry a zero Dirichlet condition: dolfinx_mpc drops a slave whose master is a
    Dirichlet DOF from the constraint (leaving it free), so pinning only the origin would
    leave the other corners unconstrained.

    Returns
    -------
    (finalized MultiPointConstraint, [corner DirichletBC])
    """
    lo, hi = np.asarray(box_min, float), np.asarray(box_max, float)
    gdim = lo.size
    tol = 1e-8 * float(np.max(hi - lo))

    def at_corner(x):
        return np.all([np.isclose(x[a], lo[a], atol=tol) | np.isclose(x[a], hi[a], atol=tol)
                       for a in range(gdim)], axis=0)

    def on_upper_face(x):
        return np.any([np.isclose(x[a], hi[a], atol=tol) for a in range(gdim)], axis=0)

    def to_lower_face(x):
        y = x.copy()
        for a in range(gdim):
            y[a] = np.where(np.isclose(x[a], hi[a], atol=tol), lo[a], x[a])
        return y

    shape = V.value_shape
    zero = np.zeros(shape) if len(shape) else dolfinx.default_scalar_type(0.0)
    bcs = [fem.dirichletbc(zero, fem.locate_dofs_geometrical(V, at_corner), V)]
    mpc = dolfinx_mpc.MultiPointConstraint(V)
    mpc.create_periodic_constraint_geometrical(V, on_upper_face, to_lower_face, bcs)
    mpc.finalize()
    return mpc, bcs


class CellProblem:
    """Linear periodic cell problem template (collective on ``rve_mesh.mesh.comm``,
    normally ``MPI.COMM_SELF``).

    Parameters
    ----------
    rve_mesh : periodic RVE mesh with cell tags (see :func:`fe2.rvemesh.load_rve_mesh`)
    phases : one :class:`Phase` per physical tag; every tagged cell must be covered
    physics : ``"elasticity"`` (small strain, plane strain in 2D), ``"conduction"``, or
        ``"finite_strain"`` (the linearised problem about ``F = I``; see
        :class:`NonlinearCellProblem` for the nonlinear one)
    degree : Lagrange degree of the fluctuation field (1 or 2)
    petsc_options : overrides of :data:`fe2.petsc.DIRECT_CHOLESKY`
    source : where the phases came from, used in error messages (e.g. a file name)

    Attributes
    ----------
    size : number of macro gradient components ``n`` (3/6 for elasticity, gdim for conduction)
    volume : cell volume ``|Y|``
    volume_fractions : ``{phase name: fraction}``
    num_dofs : global number of fluctuation DOFs (before the periodic condensation)
    effective_tensor : ``(n, n)`` homogenized tensor (Mandel for elasticity)
    """

    def __init__(self, rve_mesh: RVEMesh, phases: Sequence[Phase], physics: str = "elasticity",
                 degree: int = 1, petsc_options: Mapping[str, Any] | None = None,
                 source: str = "phases") -> None:
        if physics not in PHYSICS:
            raise ValueError(f"physics must be one of {PHYSICS}, got {physics!r}")
        mesh = rve_mesh.mesh
        self.rve_mesh = rve_mesh
        self.mesh = mesh
        self.comm = mesh.comm
        self.physics = physics
        self.degree = degree
        self.gdim = gdim = mesh.geometry.dim
        self.size = n = gradient_size(physics, gdim)
        self.kinematics = "finite" if physics == "finite_strain" else "small"
        self.phases = tuple(phases)

        # --- phase tensor field: DG0 (n x n) ---------------------------------------
        T = fem.functionspace(mesh, ("DG", 0, (n, n)))
        self.tensor = fem.Function(T, name="phase_tensor")
        self._fill_phases(source)

        # --- fluctuation space, corner pins, periodic constraint --------------------
        shape = () if physics == "conduction" else (gdim,)
        self.V = V = fem.functionspace(mesh, ("Lagrange", degree, shape))
        self.box_min = np.asarray(rve_mesh.box_min, float)
        self.box_max = np.asarray(rve_mesh.box_max, float)
        self.mpc, self.bcs = periodic_constraint(V, self.box_min, self.box_max)

        # --- forms --------------------------------------------------------------------
        G = gradient_operator(physics, gdim)
        w, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        C = self.tensor
        self.E = fem.Constant(mesh, np.zeros(n))
        self._a = fem.form(ufl.inner(ufl.dot(C, G(w)), G(v)) * ufl.dx)
        self._L = fem.form(-ufl.inner(ufl.dot(C, self.E), G(v)) * ufl.dx)
        self.volume = self.comm.allreduce(
            fem.assemble_scalar(fem.form(fem.Constant(mesh, 1.0) * ufl.dx)), op=_sum())
        self.num_dofs = V.dofmap.index_map.size_global * V.dofmap.index_map_bs

        dx_tags = ufl.Measure("dx", domain=mesh, subdomain_data=rve_mesh.cell_tags)
        self.volume_fractions = {}
        for ph in self.phases:
            vol = fem.assemble_scalar(fem.form(fem.Constant(mesh, 1.0) * dx_tags(ph.tag)))
            self.volume_fractions[ph.name] = self.comm.allreduce(vol, op=_sum()) / self.volume
        self.mean_tensor = sum(self.volume_fractions[ph.name] * np.asarray(ph.tensor, float)
                               for ph in self.phases)

        # --- matrix, factorisation, sensitivity right-hand sides -------------------
        self.A = dolfinx_mpc.assemble_matrix(self._a, self.mpc, bcs=self.bcs)
        self.ksp = fe2petsc.direct_solver(self.A, fe2petsc.unique_prefix("fe2_rve_"),
                                          petsc_options, symmetric=True)
        try:
            self.ksp.setUp()
        except PETSc.Error as err:
            raise SolverError(f"factorisation of the RVE matrix of '{rve_mesh.path}' failed ({err}); "
                              "is a phase tensor singular or not positive definite?") from None
        self.B = self._assemble_unit_rhs()  # (local reduced dofs, n)
        W = self.solve_reduced(self.B)
        self.effective_tensor = self.mean_tensor - self._dot(self.B, W) / self.volume

    # ---------------------------------------------------------------------------------
    def _fill_phases(self, source: str) -> None:
        mesh, tags = self.mesh, self.rve_mesh.cell_tags
        tdim = mesh.topology.dim
        num_cells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
        n = self.size
        values = np.full((num_cells, n * n), np.nan)
        present = set(int(t) for t in np.unique(tags.values))
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

    def _assemble_unit_rhs(self, form: fem.Form | None = None, unit: fem.Constant | None = None) -> np.ndarray:
        """Condensed right-hand sides of ``form`` for each unit value of the constant
        ``unit`` (default: the sensitivity forms ``b_k``), as columns ``(nloc, n)``."""
        form = self._L if form is None else form
        unit = self.E if unit is None else unit
        b = dolfinx_mpc.assemble_vector(form, self.mpc)
        B = np.zeros((b.getLocalSize(), self.size))
        for k in range(self.size):
            unit.value[:] = 0.0
            unit.value[k] = 1.0
            B[:, k] = self._assemble_condensed(form, b)
        unit.value[:] = 0.0
        b.destroy()
        return B

    def _assemble_condensed(self, form: fem.Form, b: PETSc.Vec | None = None) -> np.ndarray:
        """One condensed (periodic, corner rows zeroed) vector of ``form`` as an array
        ``(nloc,)``; ``b`` is a work vector to assemble into (a new one if None)."""
        own = b is None
        if own:
            b = dolfinx_mpc.assemble_vector(form, self.mpc)
        else:
            with b.localForm() as loc:
                loc.set(0.0)
            dolfinx_mpc.assemble_vector(form, self.mpc, b)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, self.bcs)
        out = b.array_r.copy()
        if own:
            b.destroy()
        return out

    def _dot(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``X^T Y`` over the distributed (owned) rows: ``(m, nloc) x (nloc, k)``."""
        return self.comm.allreduce(X.T @ Y, op=_sum())

    # ---------------------------------------------------------------------------------
    #: right-hand sides per dense block solve (bounds the memory of a batch)
    BLOCK = 256

    def solve_reduced(self, rhs: np.ndarray) -> np.ndarray:
        """Solve ``A X = rhs`` with the stored factorisation.

        On one process the columns go to the factor as dense blocks of :attr:`BLOCK`
        right-hand sides (``MatMatSolve``); otherwise one KSP solve per column.

        Parameters
        ----------
        rhs : (nloc, m) owned rows of ``m`` right-hand sides in the condensed space

        Returns
        -------
        X : (nloc, m) condensed solutions (slave entries zero; see :meth:`fluctuation`)
        """
        nloc, m = rhs.shape
        X = np.empty((nloc, m))
        if self.comm.size == 1 and m > 1:
            F = fe2petsc.factor_matrix(self.ksp)
            for j0 in range(0, m, self.BLOCK):
                j1 = min(m, j0 + self.BLOCK)
                X[:, j0:j1] = _mat_solve(F, rhs[:, j0:j1])
            return X
        b = self.A.createVecRight()
        x = self.A.createVecLeft()
        for j in range(m):
            b.array[:] = rhs[:, j]
            self.ksp.solve(b, x)
            reason = self.ksp.getConvergedReason()
            if reason < 0:
                raise SolverError(f"RVE linear solve failed (KSP converged reason {reason})")
            X[:, j] = x.array_r
        b.destroy()
        x.destroy()
        return X

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
        sigma = E @ self.mean_tensor.T - self._dot(W, self.B) / self.volume
        tangent = np.broadcast_to(self.effective_tensor, (E.shape[0],) + self.effective_tensor.shape)
        return sigma, tangent

    def commit(self) -> None:
        """Nothing to commit: a linear cell problem has no history."""

    def revert(self) -> None:
        """Nothing to revert: a linear cell problem has no history."""

    def fluctuation(self, E: np.ndarray) -> fem.Function:
        """The periodic fluctuation field for one macro gradient ``E`` (n,)."""
        E = np.asarray(E, dtype=float).reshape(-1)
        x = self.solve_reduced(self.B @ E[:, None])[:, 0]
        w = fem.Function(self.mpc.function_space, name="fluctuation")
        nloc = x.shape[0]
        w.x.array[:nloc] = x
        w.x.scatter_forward()
        self.mpc.backsubstitution(w)
        return w

    def averages(self, w: fem.Function, E: np.ndarray) -> tuple[np.ndarray, float]:
        """Volume averages computed directly from the fields (independent of
        :meth:`evaluate`; used to verify it): ``(<C (E + G w)>, <(E + G w) . C (E + G w)>)``."""
        G = gradient_operator(self.physics, self.gdim)
        Ec = fem.Constant(self.mesh, np.asarray(E, dtype=float))
        g = Ec + G(w)
        s = ufl.dot(self.tensor, g)
        flux = np.array([fem.assemble_scalar(fem.form(s[k] * ufl.dx)) for k in range(self.size)])
        energy = fem.assemble_scalar(fem.form(ufl.inner(s, g) * ufl.dx))
        flux = self.comm.allreduce(flux, op=_sum()) / self.volume
        energy = self.comm.allreduce(energy, op=_sum()) / self.volume
        return flux, energy

    def destroy(self) -> None:
        """Free the PETSc objects (collective)."""
        self.ksp.destroy()
        self.A.destroy()


class NonlinearCellProblem(CellProblem):
    """Nonlinear, history-dependent periodic cell problem template, shared by many macro
    points (collective on ``rve_mesh.mesh.comm``, normally ``MPI.COMM_SELF``).

    Each phase has a law (:class:`fe2.materials.Material`), integrated at all micro
    quadrature points of the phase in one vectorised call. For a macro gradient ``E``
    (Mandel strain, or ``F`` flattened for ``physics="finite_strain"``) Newton solves

        R(w; v) = int_Y  flux(E + G w, state) . G v  dx = 0    for all periodic v

    for the fluctuation ``w``, warm-started from the point's last converged ``w``, with
    backtracking (halving) when the residual grows or a law fails. The factorisation of
    the Jacobian at the converged state then solves the ``n`` sensitivity problems
    (``b_k = -int G v . T e_k``), giving the consistent homogenized tangent

        dSigma/dE = <T> - B^T A^-1 B / |Y|.

    Macro points are numbered ``0..N-1`` (:meth:`resize`); each has committed and trial
    micro state (fluctuation and every law's internal variables): :meth:`evaluate` works
    from the committed state and stores the trial state, :meth:`commit` /
    :meth:`revert` end a macro step. :meth:`get_state` / :meth:`set_state` give the
    committed state as arrays (serialisable).

    Extra parameters (beyond :class:`CellProblem`'s): ``rtol`` (residual norm relative to
    the larger of the residual the macro gradient alone causes in the elastic cell and the
    norm of the internal forces before periodic condensation), ``max_iterations``,
    ``quadrature_degree`` (default ``max(2 (degree - 1), 1)``).
    """

    #: halvings of a Newton step before the micro solve is declared failed
    MAX_CUTS = 8

    def __init__(self, rve_mesh: RVEMesh, phases: Sequence[Phase], physics: str = "elasticity",
                 degree: int = 1, petsc_options: Mapping[str, Any] | None = None,
                 source: str = "phases", rtol: float = 1e-10, max_iterations: int = 25,
                 quadrature_degree: int | None = None) -> None:
        if physics == "conduction":
            raise ValueError("a nonlinear cell problem is mechanical: physics 'elasticity' or 'finite_strain'")
        for ph in phases:
            if ph.law is None:
                raise ValueError(f"phase {ph.name!r} of a nonlinear cell problem needs a law")
            want = "finite" if physics == "finite_strain" else "small"
            if ph.law.kinematics != want:
                raise ValueError(f"phase {ph.name!r}: law kinematics {ph.law.kinematics!r} does not match "
                                 f"physics {physics!r}")
        super().__init__(rve_mesh, phases, physics=physics, degree=degree, petsc_options=petsc_options,
                         source=source)
        import basix
        import basix.ufl

        mesh, gdim, n = self.mesh, self.gdim, self.size
        self.rtol, self.max_iterations = rtol, max_iterations
        self.reference = reference_gradient(self.kinematics, gdim)
        qdeg = max(2 * (degree - 1), 1) if quadrature_degree is None else quadrature_degree
        cell = mesh.topology.cell_name()
        Qf = fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(n,), degree=qdeg))
        Qt = fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(n, n), degree=qdeg))
        self.flux_q = fem.Function(Qf, name="micro_flux")
        self.tangent_q = fem.Function(Qt, name="micro_tangent")
        points, weights = basix.make_quadrature(basix.CellType[cell], qdeg)
        nq = points.shape[0]
        tdim = mesh.topology.dim
        ncells = mesh.topology.index_map(tdim).size_local
        self._cells = np.arange(ncells, dtype=np.int32)
        self._qdofs = Qf.dofmap.list[:ncells].ravel()  # micro point -> quadrature dof
        self.num_micro_points = ncells * nq

        # micro point weights (affine cells): |cell| * w_q / sum(w)
        D0 = fem.functionspace(mesh, ("DG", 0))
        vol = dolfinx.fem.assemble_vector(fem.form(ufl.TestFunction(D0) * ufl.dx)).array[:ncells]
        self._weights = (vol[:, None] * (weights / weights.sum())[None, :]).ravel()

        # points of each phase (in micro-point order)
        tags = rve_mesh.cell_tags
        cell_tag = np.zeros(ncells, dtype=np.int64)
        owned = tags.indices < ncells
        cell_tag[tags.indices[owned]] = tags.values[owned]
        point_tag = np.repeat(cell_tag, nq)
        self._phase_points = [np.flatnonzero(point_tag == ph.tag) for ph in self.phases]

        G = gradient_operator(physics, gdim)
        V = self.V
        self.w = fem.Function(self.mpc.function_space, name="fluctuation")
        self.Ebar = fem.Constant(mesh, np.zeros(n))
        self._grad_expr = fem.Expression(self.Ebar + G(self.w), points)
        dxq = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": qdeg, "quadrature_scheme": "default"})
        v, dw = ufl.TestFunction(V), ufl.TrialFunction(V)
        self.unit = fem.Constant(mesh, np.zeros(n))
        self._R = fem.form(ufl.inner(self.flux_q, G(v)) * dxq)
        self._J = fem.form(ufl.inner(ufl.dot(self.tangent_q, G(dw)), G(v)) * dxq)
        self._Lt = fem.form(-ufl.inner(ufl.dot(self.tangent_q, self.unit), G(v)) * dxq)
        # left vectors of the sensitivity (T^T e_k): differ from -Lt when T is not symmetric
        self._Lt_left = fem.form(ufl.inner(ufl.dot(self.unit, self.tangent_q), G(v)) * dxq)
        # nonlocal (driven) damage: dsigma/d(drive) and d eps_eq/d eps at the micro points
        self._driven = [hasattr(ph.law, "integrate_driven") for ph in self.phases]
        self.damage_volume = float(sum(self._weights[idx].sum() for idx, d in zip(self._phase_points, self._driven)
                                       if d))
        self._dsd_q = fem.Function(Qf, name="dsigma_ddrive")
        self._deq_q = fem.Function(Qf, name="deq_deps")
        self._a_form = fem.form(ufl.inner(self._dsd_q, G(v)) * dxq)
        self._c_form = fem.form(ufl.inner(self._deq_q, G(v)) * dxq)
        self._ebar: float | None = None
        self.A_t = dolfinx_mpc.assemble_matrix(self._J, self.mpc, bcs=self.bcs)
        # Cholesky needs a symmetric Jacobian; softening laws have non-symmetric tangents
        self.symmetric = all(getattr(ph.law, "symmetric_tangent", True) for ph in self.phases)
        self.ksp_t = fe2petsc.direct_solver(self.A_t, fe2petsc.unique_prefix("fe2_rve_newton_"),
                                            petsc_options, symmetric=self.symmetric)
        self._r = dolfinx_mpc.assemble_vector(self._R, self.mpc)
        self._r_plain = dolfinx.fem.petsc.create_vector(self._R)
        self._dx = self._r.duplicate()
        self.nloc = self._r.getLocalSize()
        self.stats = {"solves": 0, "newton_iterations": 0, "cuts": 0}
        self.resize(0)

    # --- state bank ------------------------------------------------------------------------
    def _initial_states(self, N: int) -> list[np.ndarray]:
        return [np.broadcast_to(ph.law.initial_state(1)[0], (N, idx.size, ph.law.state_size)).copy()
                for ph, idx in zip(self.phases, self._phase_points)]

    def resize(self, N: int) -> None:
        """Serve ``N`` macro points, all in the virgin state (not collective)."""
        self.num_points = N
        self.committed = {"w": np.zeros((N, self.nloc)), "states": self._initial_states(N)}
        self.trial = {"w": self.committed["w"].copy(), "states": [s.copy() for s in self.committed["states"]]}

    def commit(self) -> None:
        self.committed = {"w": self.trial["w"].copy(), "states": [s.copy() for s in self.trial["states"]]}

    def revert(self) -> None:
        self.trial = {"w": self.committed["w"].copy(), "states": [s.copy() for s in self.committed["states"]]}

    def set_time_increment(self, dt: float) -> None:
        """Forward the pseudo-time increment to every rate-dependent phase law."""
        for ph in self.phases:
            if hasattr(ph.law, "set_time_increment"):
                ph.law.set_time_increment(dt)

    def internal_fields(self) -> dict[str, np.ndarray]:
        """RVE volume averages of the committed internal variables per macro point,
        ``{name: (N,)}`` (:func:`fe2.materials.law_fields`; a phase without the variable
        counts as zero, so ``damage`` is the volume-averaged damage and ``dissipation`` the
        energy dissipated per unit RVE volume)."""
        out: dict[str, np.ndarray] = {}
        for ph, idx, st in zip(self.phases, self._phase_points, self.committed["states"]):
            for name, vals in law_fields(ph.law, st).items():  # vals (N, points of phase)
                out[name] = out.get(name, 0.0) + vals @ self._weights[idx] / self.volume
        return {k: np.broadcast_to(v, (self.num_points,)).copy() for k, v in out.items()}

    def get_state(self) -> dict[str, np.ndarray]:
        """The committed state as named arrays: ``w`` ``(N, nloc)`` and
        ``state_<phase>`` ``(N, points of the phase, state size)``."""
        out = {"w": self.committed["w"].copy()}
        for ph, s in zip(self.phases, self.committed["states"]):
            out[f"state_{ph.name}"] = s.copy()
        return out

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a committed state from :meth:`get_state`'s arrays (trial = committed)."""
        w = np.asarray(state["w"], dtype=float)
        self.resize(w.shape[0])
        self.committed["w"][:] = w
        for k, ph in enumerate(self.phases):
            self.committed["states"][k][:] = state[f"state_{ph.name}"]
        self.revert()

    # --- one micro solve ------------------------------------------------------------------
    def _set_fluctuation(self, x: np.ndarray) -> None:
        self.w.x.array[: self.nloc] = x
        self.w.x.scatter_forward()
        self.mpc.backsubstitution(self.w)

    def _material(self, states: list[np.ndarray]) -> list[np.ndarray] | None:
        """Integrate every phase at the current ``w``; fill flux/tangent; return trial
        states, or None if a law fails (e.g. J <= 0).

        With a nonlocal drive (:attr:`_ebar` set, see :meth:`evaluate_nonlocal`) the
        damage phases are driven by ``eps_eq(x) + ebar - e_loc`` where ``e_loc`` is the
        average equivalent strain over the damage phases; the tangent filled in is the
        local one (``d/deps`` at fixed shift), the shift's derivatives are kept apart."""
        n = self.size
        grads = self._grad_expr.eval(self.mesh, self._cells).reshape(-1, n)
        flux = np.empty((self.num_micro_points, n))
        tang = np.empty((self.num_micro_points, n, n))
        ebar = self._ebar
        if ebar is not None:
            eqs = {k: ph.law.equivalent_of(grads[idx])
                   for k, (ph, idx) in enumerate(zip(self.phases, self._phase_points)) if self._driven[k]}
            self._eloc = sum(self._weights[self._phase_points[k]] @ e for k, (e, _) in eqs.items()) / self.damage_volume
            shift = ebar - self._eloc
            dsd = np.zeros((self.num_micro_points, n))
            deq = np.zeros((self.num_micro_points, n))
        trial = []
        for k, (ph, idx, st) in enumerate(zip(self.phases, self._phase_points, states)):
            try:
                if ebar is not None and self._driven[k]:
                    e, de = eqs[k]
                    f, C, ds, _, _, new = ph.law.integrate_driven(grads[idx], st, e + shift, (e, de))
                    t = C + ds[:, :, None] * de[:, None, :]
                    dsd[idx], deq[idx] = ds, de
                else:
                    f, t, new = ph.law.integrate(grads[idx], st)
            except SolverError:
                return None
            flux[idx], tang[idx] = f, t
            trial.append(new)
        if not (np.isfinite(flux).all() and np.isfinite(tang).all()):
            return None
        self.flux_q.x.array.reshape(-1, n)[self._qdofs] = flux
        self.tangent_q.x.array.reshape(-1, n * n)[self._qdofs] = tang.reshape(-1, n * n)
        if ebar is not None:
            self._dsd_q.x.array.reshape(-1, n)[self._qdofs] = dsd
            self._deq_q.x.array.reshape(-1, n)[self._qdofs] = deq
            self._dsd, self._deq = dsd, deq
        self._flux, self._tang, self._grads = flux, tang, grads
        return trial

    def _shift_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``a = dR/d(shift)`` and ``c = d e_loc/dw`` (condensed) at the current state."""
        return self._assemble_condensed(self._a_form), self._assemble_condensed(self._c_form) / self.damage_volume

    def _residual(self) -> tuple[float, float]:
        """Norm of the periodic (condensed) residual, and of the same internal forces
        assembled without the periodic condensation: the boundary tractions there do not
        cancel, so it measures the size of the forces (the residual's scale)."""
        r = self._r
        with r.localForm() as loc:
            loc.set(0.0)
        dolfinx_mpc.assemble_vector(self._R, self.mpc, r)
        r.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(r, self.bcs)
        plain = self._r_plain
        with plain.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(plain, self._R)
        plain.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return r.norm(), plain.norm()

    def _factorize(self) -> None:
        self.A_t.zeroEntries()
        dolfinx_mpc.assemble_matrix(self._J, self.mpc, bcs=self.bcs, A=self.A_t)
        self.ksp_t.setOperators(self.A_t)
        try:
            self.ksp_t.setUp()
        except PETSc.Error as err:
            raise SolverError(f"factorisation of the RVE Jacobian failed ({err})") from None

    def solve_point(self, Ebar: np.ndarray, x0: np.ndarray, states: list[np.ndarray], ebar: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], int, tuple | None]:
        """Newton for one macro gradient from fluctuation ``x0`` (condensed) and the
        committed ``states``; with ``ebar``, the damage phases are driven by the nonlocal
        equivalent strain (see :meth:`evaluate_nonlocal`).

        Returns ``(Sigma (n,), tangent (n, n), x (nloc,), trial states, iterations,
        nonlocal)`` where ``nonlocal`` is None or ``(dSigma/debar (n,), e_loc,
        de_loc/dE (n,), de_loc/debar)``; raises :class:`~fe2.errors.SolverError` (message
        with iteration and residual) if it does not converge.
        """
        self._ebar = ebar
        self.Ebar.value[:] = Ebar
        # residual scale: the imbalance the macro gradient alone causes, or the size of the
        # internal forces, whichever is larger
        r_ref = float(np.linalg.norm(self.B @ (np.asarray(Ebar) - self.reference)))
        x = np.array(x0, dtype=float)
        self._set_fluctuation(x)
        trial = self._material(states)
        if trial is None:
            raise SolverError("the micro material failed at the start of the solve (warm start)")
        r, r_forces = self._residual()
        tol = self.rtol * max(r_ref, r_forces)
        history = [r]
        it = 0
        while True:
            self._factorize()
            if r <= tol:
                break
            if it == self.max_iterations:
                raise SolverError(f"micro Newton did not converge in {it} iterations (residual {r:.3e}, "
                                  f"tolerance {tol:.3e}, residuals {' '.join(f'{h:.2e}' for h in history)})")
            self._r.scale(-1.0)
            self.ksp_t.solve(self._r, self._dx)
            dx = self._dx.array_r.copy()
            if ebar is not None:  # Jacobian J - a c^T (the shift depends on w): Sherman-Morrison
                a, c = self._shift_vectors()
                y = _mat_solve(fe2petsc.factor_matrix(self.ksp_t), a[:, None])[:, 0]
                dx += y * (c @ dx) / (1.0 - c @ y)
            alpha, cuts = 1.0, 0
            while True:
                x_new = x + alpha * dx
                self._set_fluctuation(x_new)
                trial_new = self._material(states)
                r_new, r_forces = self._residual() if trial_new is not None else (np.inf, 0.0)
                if np.isfinite(r_new) and (r_new < r or r <= 1e3 * tol):
                    break
                cuts += 1
                self.stats["cuts"] += 1
                if cuts > self.MAX_CUTS:
                    raise SolverError(f"micro Newton line search failed at iteration {it + 1} "
                                      f"(residual {r:.3e}, {self.MAX_CUTS} step halvings)")
                alpha *= 0.5
            # round-off floor: no progress although within 1000 x tol -> as good as it gets
            stagnated = r_new > 0.5 * r and r_new <= 1e3 * tol
            x, trial, r = x_new, trial_new, r_new
            tol = max(tol, self.rtol * r_forces)
            history.append(r)
            it += 1
            if stagnated:
                self._factorize()
                break
        # sensitivities with the factorisation of the converged Jacobian
        # dSigma_i/dE_k = <T>_ik + <e_i . T G(dw_k)>,  A dw_k = b_k = -int G(v) . T e_k
        Bt = self._assemble_unit_rhs(self._Lt, self.unit)
        mean_t = np.einsum("p,pij->ij", self._weights, self._tang) / self.volume
        Lt = -Bt if self.symmetric else self._assemble_unit_rhs(self._Lt_left, self.unit)
        sigma = self._weights @ self._flux / self.volume
        self.stats["solves"] += 1
        self.stats["newton_iterations"] += it
        if ebar is None:
            Xt = _mat_solve(fe2petsc.factor_matrix(self.ksp_t), Bt)
            return sigma, mean_t + self._dot(Lt, Xt) / self.volume, x, trial, it, None
        tangent, extra = self._nonlocal_sensitivities(Bt, Lt, mean_t)
        return sigma, tangent, x, trial, it, extra

    def _nonlocal_sensitivities(self, Bt: np.ndarray, Lt: np.ndarray, mean_t: np.ndarray
                                ) -> tuple[np.ndarray, tuple[np.ndarray, float, np.ndarray, float]]:
        """Sensitivities of ``(Sigma, e_loc)`` to ``(E, ebar)`` at the converged nonlocal state.

        With the shift ``s = ebar - e_loc(w, E)`` eliminated, the Jacobian is
        ``K = J - a c^T`` (``a = dR/ds``, ``c = de_loc/dw``, ``m = de_loc/dE`` at fixed w):
        ``K dw/dE_k = b_k + a m_k`` and ``K dw/debar = -a``, solved with J's factorisation
        and Sherman–Morrison. Then, with ``sbar = <dsigma/ds>``::

            dSigma/dE   = <T> + L^T dw/dE / |Y| - sbar (c . dw/dE + m)
            dSigma/debar = L^T dw/debar / |Y| + sbar (1 - c . dw/debar)
            de_loc/dE   = m + c . dw/dE,      de_loc/debar = c . dw/debar
        """
        n = self.size
        a, c = self._shift_vectors()
        m = self._weights @ self._deq / self.damage_volume
        sbar = self._weights @ self._dsd / self.volume
        X = _mat_solve(fe2petsc.factor_matrix(self.ksp_t), np.column_stack([Bt + np.outer(a, m), -a, a]))
        y, X = X[:, -1], X[:, :-1]
        cX = self._dot(c[:, None], X)[0]
        dW = X + np.outer(y, cX) / (1.0 - self._dot(c[:, None], y[:, None])[0, 0])
        cdW = self._dot(c[:, None], dW)[0]  # (n + 1,)
        LdW = self._dot(Lt, dW) / self.volume  # (n, n + 1)
        tangent = mean_t + LdW[:, :n] - np.outer(sbar, cdW[:n] + m)
        dsig_de = LdW[:, n] + sbar * (1.0 - cdW[n])
        return tangent, (dsig_de, float(self._eloc), m + cdW[:n], float(cdW[n]))

    def evaluate(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Homogenized fluxes ``(N, n)`` and consistent tangents ``(N, n, n)`` for the macro
        gradients ``E`` ``(N, n)`` of points ``0..N-1``, each from its committed state; the
        results become the trial state. A failed point raises
        :class:`~fe2.errors.SolverError` whose ``point`` attribute is its index."""
        return self._evaluate_points(E, None)[:2]

    def evaluate_nonlocal(self, E: np.ndarray, e_nl: np.ndarray) -> tuple[np.ndarray, ...]:
        """Gradient-regularized FE²: the RVE's damage is driven by the macro nonlocal
        equivalent strain ``e_nl`` ``(N,)``.

        Every damage point (a phase whose law has ``integrate_driven``) is driven by its own
        equivalent strain shifted by the same amount, ``eps_eq(x) + e_nl - e_loc``, where
        ``e_loc = <eps_eq>`` over the damage phases is the RVE's local equivalent strain
        (returned to the macro problem). A homogeneous RVE is therefore driven by exactly
        ``e_nl``: the single-scale implicit gradient model. Returns ``Sigma (N, n)``,
        ``dSigma/dE (N, n, n)``, ``dSigma/de_nl (N, n)``, ``e_loc (N,)``,
        ``de_loc/dE (N, n)``, ``de_loc/de_nl (N,)``, all consistent (micro sensitivities
        with the converged factorisation)."""
        if not any(self._driven):
            raise SolverError("gradient regularization needs an RVE phase with a damage law; "
                              f"phases: {', '.join(f'{p.name} ({type(p.law).__name__})' for p in self.phases)}")
        return self._evaluate_points(E, np.asarray(e_nl, dtype=float).reshape(-1))

    def _evaluate_points(self, E: np.ndarray, e_nl: np.ndarray | None) -> tuple[np.ndarray, ...]:
        E = np.atleast_2d(np.asarray(E, dtype=float))
        N, n = E.shape
        if N != self.num_points:
            self.resize(N)
        sigma = np.empty((N, n))
        tangent = np.empty((N, n, n))
        nl = (np.empty((N, n)), np.empty(N), np.empty((N, n)), np.empty(N)) if e_nl is not None else ()
        for i in range(N):
            try:
                s, t, x, st, _, extra = self.solve_point(E[i], self.committed["w"][i],
                                                         [c[i] for c in self.committed["states"]],
                                                         None if e_nl is None else float(e_nl[i]))
            except SolverError as err:
                e = SolverError(f"RVE at macro point {i}: {err}")
                e.point = i
                raise e from None
            finally:
                self._ebar = None
            sigma[i], tangent[i] = s, t
            for out, val in zip(nl, extra or ()):
                out[i] = val
            self.trial["w"][i] = x
            for k, s_k in enumerate(st):
                self.trial["states"][k][i] = s_k
        return (sigma, tangent, *nl)

    def micro_fields(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gradient, flux and tangent at the micro points of the last material evaluation:
        ``(P, n)``, ``(P, n)``, ``(P, n, n)``; :attr:`micro_weights` ``(P,)`` integrates them."""
        return self._grads, self._flux, self._tang

    @property
    def micro_weights(self) -> np.ndarray:
        """Integration weight of each micro point (sums to the cell volume)."""
        return self._weights

    def destroy(self) -> None:
        super().destroy()
        self.ksp_t.destroy()
        self.A_t.destroy()
        self._r.destroy()
        self._r_plain.destroy()
        self._dx.destroy()


def _mat_solve(F: PETSc.Mat, rhs: np.ndarray) -> np.ndarray:
    """``F^-1 rhs`` for a factored matrix and dense ``rhs`` ``(nloc, m)`` (one process)."""
    nloc, m = rhs.shape
    Bm = PETSc.Mat().createDense((nloc, m), array=np.asfortranarray(rhs), comm=PETSc.COMM_SELF)
    Xm = PETSc.Mat().createDense((nloc, m), comm=PETSc.COMM_SELF)
    Xm.setUp()
    try:
        F.matSolve(Bm, Xm)
    except PETSc.Error as err:
        raise SolverError(f"RVE solve with the stored factorisation failed ({err})") from None
    X = Xm.getDenseArray().copy()
    Bm.destroy()
    Xm.destroy()
    return X


def _sum():
    from mpi4py import MPI

    return MPI.SUM


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
