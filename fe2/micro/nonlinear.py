"""The nonlinear, history-dependent periodic cell problem: an RVE at every macro point.

:class:`NonlinearCellProblem` is a template shared by all macro points of a rank, like
the linear :class:`~fe2.micro.cell.CellProblem`, and a
:class:`~fe2.materials.base.PointMaterial`: ``evaluate(E)`` solves the cell problem of
every macro point from its committed micro state (fluctuation and every law's internal
variables, kept in a :class:`~fe2.materials.state.StateBank`) and returns the
homogenized fluxes and consistent tangents.

Micro solve of one point (:meth:`NonlinearCellProblem.solve_point`): for the macro gradient
``E`` (Mandel strain, ``F`` flattened for ``physics="finite_strain"``, or the temperature
gradient for ``physics="conduction"``) Newton
(:func:`fe2.solvers.newton.newton`) solves

    R(w; v) = int_Y  flux(E + G w, state) . G v  dx = 0    for all periodic v

for the fluctuation ``w``, warm-started from the point's last converged ``w``, halving a
step whose residual grows or whose law fails. The factorisation of the Jacobian at the
converged state then solves the ``n`` sensitivity problems (``b_k = -int G v . T e_k``),
giving the consistent homogenized tangent

    dSigma/dE = <T> - B^T A^-1 B / |Y|.

A point asked again for exactly the input of its last answer gets that answer back with no
solve (its trial state is that answer's). This happens at the first macro iterate of every
load-controlled step, which evaluates each point at its committed macro gradient: the
converged stress and consistent tangent there are already known. A fresh solve would
return the same stress but, at a point left on its yield surface, an elastic or a plastic
tangent by the sign of round-off (which differs between rank counts). Laws that depend on
the time increment always solve.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import dolfinx
import dolfinx.fem.petsc
import dolfinx_mpc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from fe2.core import linalg
from fe2.core import physics as physics_registry
from fe2.core.errors import SolverError, point_failure
from fe2.core.kinematics import measure
from fe2.materials.base import NonlocalResponse
from fe2.materials.state import StateBank
from fe2.micro.batched import BatchedEngine
from fe2.micro.cell import CellProblem, Phase
from fe2.micro.operators import CellOperators
from fe2.parallel.balance import LoadBalancer
from fe2.parallel.layout import StateLayout
from fe2.solvers.newton import newton

if TYPE_CHECKING:
    from fe2.geometry.rvemesh import RVEMesh

__all__ = ["ENGINES", "NonlinearCellProblem", "NonlocalSensitivity", "PointSolution"]

#: the micro engines a nonlinear cell problem can use
ENGINES = ("batched", "reference")
#: the residual's round-off floor, relative to the internal forces the elastic stress of the
#: macro gradient would cause (:meth:`NonlinearCellProblem.force_floor`)
ROUNDOFF = 1e-13


class NonlocalSensitivity(NamedTuple):
    """The nonlocal part of a point's answer (gradient-regularized FE²)."""

    dflux_de: np.ndarray  #: (n,) dSigma / d e_nl
    e_local: float  #: the RVE's local equivalent strain
    de_local_dE: np.ndarray  #: (n,)
    de_local_de: float


class PointSolution(NamedTuple):
    """What :meth:`NonlinearCellProblem.solve_point` returns for one macro point."""

    flux: np.ndarray  #: (n,) homogenized flux
    tangent: np.ndarray  #: (n, n) consistent homogenized tangent
    fluctuation: np.ndarray  #: (nloc,) converged condensed fluctuation
    states: list[np.ndarray]  #: trial internal state of each phase, (points of the phase, state size)
    iterations: int  #: micro Newton iterations
    nonlocal_: NonlocalSensitivity | None  #: with a nonlocal drive, else None
    #: (nloc, n) dw/dE, the sensitivity of the fluctuation (without a nonlocal drive)
    sensitivity: np.ndarray | None = None


class _MicroNewton:
    """The micro cell problem of one point as a :class:`~fe2.solvers.newton.NewtonSystem`.

    Convergence: the residual norm below ``rtol`` times the larger of the residual the
    macro gradient alone causes in the elastic cell (``r_ref``) and the norm of the
    internal forces before the periodic condensation (their scale, updated every
    iteration), but not below the round-off of forces of the strain's size (``floor``,
    :meth:`NonlinearCellProblem.force_floor`: a homogeneous cell unloaded to zero stress has
    neither a reference residual nor internal forces), or stagnation within 1000 times that
    tolerance.
    Line search: a step is taken if its residual is finite and smaller, or once within
    1000 times the tolerance."""

    unknown = "w"

    def __init__(self, cell: NonlinearCellProblem, x0: np.ndarray, states: list[np.ndarray], r_ref: float,
                 floor: float) -> None:
        self.cell, self.x, self.states, self.r_ref, self.floor = cell, x0, states, r_ref, floor
        self.trial: list[np.ndarray] | None = None
        self.tol = self.r_forces = 0.0
        self.r_prev = np.inf

    def residual(self) -> float:
        c = self.cell
        c._set_fluctuation(self.x)
        self.trial = c._material(self.states)
        if self.trial is None:
            raise SolverError("the micro material failed at the start of the solve (warm start)")
        r, self.r_forces = c._residual()
        self.tol = max(c.rtol * max(self.r_ref, self.r_forces), self.floor)
        return r

    def converged(self, iteration: int, norm: float) -> bool:
        stagnated = False
        if iteration > 0:
            stagnated = norm > 0.5 * self.r_prev and norm <= 1e3 * self.tol
            self.tol = max(self.tol, self.cell.rtol * self.r_forces)
        self.r_prev = norm
        return stagnated or norm <= self.tol

    def solve_update(self) -> float:
        c = self.cell
        c._factorize()
        c._r.scale(-1.0)
        dx = c.solve_reduced(c._r.array_r[:, None], c.ksp_t)[:, 0]
        if c._drive is not None:  # Jacobian J - a c^T (the shift depends on w): Sherman-Morrison
            a, cv = c._shift_vectors()
            y = c.solve_reduced(a[:, None], c.ksp_t)[:, 0]
            dx += y * c._dot(cv, dx) / (1.0 - c._dot(cv, y))
        self.base, self.dx = self.x, dx
        return c.norm(dx)

    def step(self, alpha: float) -> float:
        c = self.cell
        x_new = self.base + alpha * self.dx
        c._set_fluctuation(x_new)
        trial_new = c._material(self.states)
        if trial_new is None:
            return np.inf
        r_new, self.r_forces = c._residual()
        self.x, self.trial = x_new, trial_new
        return r_new

    def accept(self, norm: float, new_norm: float) -> bool:
        return bool(np.isfinite(new_norm) and (new_norm < norm or norm <= 1e3 * self.tol))

    def status(self) -> str:
        return ""


class NonlinearCellProblem(CellProblem):
    """Nonlinear, history-dependent periodic cell problem template, shared by many macro
    points (collective on ``rve_mesh.mesh.comm``, normally ``MPI.COMM_SELF``).

    Each phase has a law (:class:`fe2.materials.base.Law`), integrated at all micro
    quadrature points of the phase in one vectorised call (see the module docstring for
    the micro Newton and the sensitivities).

    Macro points are numbered ``0..N-1`` (:meth:`resize`); each has committed and trial
    micro state in :attr:`bank`: ``w`` ``(N, nloc)`` (fluctuation) and
    ``state_<phase>`` ``(N, points of the phase, state size)``, the predictor of ``w``
    (``predictor_E``, ``predictor_dwdE``) and the point's last answer with its input
    (``answer``, ``answer_input``). :meth:`evaluate` works from the committed state and
    stores the trial state; a point asked again for its last answer's input gets that
    answer without a solve. :meth:`commit` /
    :meth:`revert` end a macro step, :meth:`get_state` / :meth:`set_state` give and take
    the committed state as named arrays.

    Extra parameters (beyond :class:`~fe2.micro.cell.CellProblem`'s): ``rtol`` (residual
    norm relative to the larger of the residual the macro gradient alone causes in the
    elastic cell and the norm of the internal forces before periodic condensation),
    ``max_iterations``, ``quadrature_degree`` (of the micro points; default
    :func:`fe2.core.quadrature.default_degree`, ``max(2 (degree - 1), 1)`` on affine cells),
    ``engine``: ``"batched"`` (default: all points together, no assembly, see
    :mod:`fe2.micro.batched`) or ``"reference"`` (one point at a time with dolfinx and
    dolfinx_mpc assembly, :meth:`solve_point`: the slow, obviously-correct path the
    batched engine is tested against). Both run on a template distributed over several
    processes, every solve collective on them.
    """

    #: halvings of a Newton step before the micro solve is declared failed
    MAX_CUTS = 8
    linear = False

    def __init__(self, rve_mesh: RVEMesh, phases: Sequence[Phase], physics: str = "elasticity",
                 degree: int = 1, petsc_options: Mapping[str, Any] | None = None,
                 source: str = "phases", rtol: float = 1e-10, max_iterations: int = 25,
                 quadrature_degree: int | None = None, engine: str = "batched", boundary: str = "periodic") -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown micro engine {engine!r}; choose one of {', '.join(ENGINES)}")
        spec = physics_registry.get(physics)
        for ph in phases:
            if ph.law is None:
                raise ValueError(f"phase {ph.name!r} of a nonlinear cell problem needs a law")
            if ph.law.kinematics != spec.kinematics:
                raise ValueError(f"phase {ph.name!r}: law kinematics {ph.law.kinematics!r} does not match "
                                 f"physics {physics!r}")
        # the template's forms use the micro points' rule: its matrix is the elastic Jacobian
        super().__init__(rve_mesh, phases, physics=physics, degree=degree, petsc_options=petsc_options,
                         source=source, boundary=boundary, quadrature_degree=quadrature_degree)
        mesh, gdim, n = self.mesh, self.gdim, self.size
        self.rtol, self.max_iterations = rtol, max_iterations
        self.reference = spec.reference_gradient(gdim)
        qp = self.quadrature
        Qf, Qt = qp.space((n,)), qp.space((n, n))
        self.flux_q = fem.Function(Qf, name="micro_flux")
        self.tangent_q = fem.Function(Qt, name="micro_tangent")
        self._qdofs = qp.dofs(Qf)  # micro point -> quadrature dof
        self.num_micro_points = qp.num_points

        G = measure(self.kinematics, gdim)
        V = self.V
        #: the macro gradient of the point being solved, its fluctuation and the micro gradient
        self.macro_gradient, self.w, self._grad_expr = self._micro_gradient
        dxq = qp.dx
        v, dw = ufl.TestFunction(V), ufl.TrialFunction(V)
        self.unit = fem.Constant(mesh, np.zeros(n))
        self._R = fem.form(ufl.inner(self.flux_q, G(v)) * dxq)
        self._J = fem.form(ufl.inner(ufl.dot(self.tangent_q, G(dw)), G(v)) * dxq)
        self._Lt = fem.form(-ufl.inner(ufl.dot(self.tangent_q, self.unit), G(v)) * dxq)
        # left vectors of the sensitivity (T^T e_k): differ from -Lt when T is not symmetric
        self._Lt_left = fem.form(ufl.inner(ufl.dot(self.unit, self.tangent_q), G(v)) * dxq)
        # nonlocal (driven) damage: dsigma/d(drive) and d eps_eq/d eps at the micro points
        self._driven = [ph.law.driven for ph in self.phases]
        self.nonlocal_form = any(self._driven)
        self.damage_volume = self.comm.allreduce(float(sum(self.micro_weights[idx].sum()
                                                           for idx, d in zip(self.phase_points, self._driven) if d)))
        self._dsd_q = fem.Function(Qf, name="dsigma_ddrive")
        self._deq_q = fem.Function(Qf, name="deq_deps")
        self._a_form = fem.form(ufl.inner(self._dsd_q, G(v)) * dxq)
        self._c_form = fem.form(ufl.inner(self._deq_q, G(v)) * dxq)
        #: the nonlocal equivalent strain driving the damage phases of the point being solved
        self._drive: float | None = None
        self.A_t = self.system_matrix(self._J)
        #: the bordered Jacobian (a ``"minimal"`` boundary condition), else A_t
        self.M_t = self.A_t if self.border is None else self.border.matrix(self.A_t)
        # Cholesky needs a symmetric Jacobian; softening laws have non-symmetric tangents
        self.symmetric = all(ph.law.symmetric_tangent for ph in self.phases)
        self.ksp_t = linalg.direct_solver(self.M_t, linalg.unique_prefix("fe2_rve_newton_"),
                                          petsc_options, symmetric=self.symmetric)
        self._r = dolfinx_mpc.assemble_vector(self._R, self.mpc)
        self._r_plain = dolfinx.fem.petsc.create_vector(self._R)
        self._force_gram = self._unit_force_gram()
        self.nloc = self._r.getLocalSize()
        self.stats = {"solves": 0, "newton_iterations": 0, "cuts": 0, "reused": 0}
        self.petsc_options = petsc_options
        #: ``"batched"`` (:class:`~fe2.micro.batched.BatchedEngine`) or ``"reference"``
        #: (:meth:`solve_point` point by point)
        self.engine = engine
        self._batched: BatchedEngine | None = None
        self._operators: CellOperators | None = None  # the batched engine's, or made for out_of_plane_stress
        #: spreads the batched engine's points over the macro ranks (:meth:`balance_over`)
        self.balancer: LoadBalancer | None = None
        self._state_keys = [f"state_{ph.name}" for ph in self.phases]
        self.bank = StateBank()
        self.resize(0)

    @property
    def micro_weights(self) -> np.ndarray:
        """Integration weight of each micro point (sums to the cell volume)."""
        return self.quadrature.volumes

    # --- state ------------------------------------------------------------------------------
    def resize(self, N: int) -> None:
        """Serve ``N`` macro points, all in the virgin state (not collective)."""
        self.num_points = N
        if self.balancer is not None:
            self.balancer.resize(N)
        self.bank.allocate("w", np.zeros(self.nloc), N)
        # the batched engine's predictor of w (BatchedEngine.warm_trial): the macro gradient
        # of the last solution and dw/dE there (zero: no prediction); both engines keep it
        self.bank.allocate("predictor_E", np.zeros(self.size), N)
        self.bank.allocate("predictor_dwdE", np.zeros((self.nloc, self.size)), N)
        # the last answer and its input (macro gradient, nonlocal drive, kind: 0 no answer
        # yet, 1 local, 2 driven): asked again for the same input from the same committed
        # state, a point answers without a solve (:meth:`_to_solve`)
        self.bank.allocate("answer_input", np.zeros(self.size + 2), N)
        self.bank.allocate("answer", np.zeros(self._answer_size), N)
        for ph, idx, key in zip(self.phases, self.phase_points, self._state_keys):
            virgin = np.broadcast_to(ph.law.initial_state(1)[0], (idx.size, ph.law.state_size))
            self.bank.allocate(key, virgin, N)

    @functools.cached_property
    def layout(self) -> StateLayout:
        """The partition-independent layout of the per-point state (checkpoints; collective
        on the template's communicator the first time)."""
        return StateLayout(self)

    def get_state(self) -> dict[str, np.ndarray]:
        """The committed state as named arrays ``(N, ...)`` (copies). On one process the
        fluctuation and the micro points are in the partition-independent order of
        :attr:`layout`, so that a checkpoint can be read by a template distributed over a
        group; on several, each process's own part (:class:`fe2.parallel.groups.GroupMaterial`
        gathers them)."""
        state = self.bank.get_state()
        return self.layout.gather(state, [self.num_points]) if self.comm.size == 1 else state

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a committed state from :meth:`get_state`'s arrays (trial = committed)."""
        self.set_local_state(self.layout.scatter(state) if self.comm.size == 1 else state)

    def set_local_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a committed state in this process's own layout (the bank's arrays)."""
        self.bank.set_state(state)
        self.num_points = self.bank.committed["w"].shape[0]
        if self.balancer is not None:
            self.balancer.resize(self.num_points)

    def balance_over(self, comm: MPI.Comm) -> None:
        """Let the batched engine spread the evaluations of the points of all ranks of
        ``comm`` (the macro communicator) by measured cost
        (:class:`~fe2.parallel.balance.LoadBalancer`); every later :meth:`evaluate` is then
        collective on ``comm``. No effect on one rank or with the reference engine. A
        template distributed over a group balances with the other groups' templates:
        ``comm`` joins rank ``j`` of every group (:meth:`fe2.parallel.groups.GroupMaterial.balance_between`)."""
        if comm.size > 1 and self.engine == "batched":
            self.balancer = LoadBalancer(comm)
            self.balancer.resize(self.num_points)

    def statistics(self) -> dict[str, float]:
        """Micro work done on this rank so far: ``solves`` (point evaluations),
        ``newton_iterations``, ``cuts``, ``reused`` (evaluations answered by the point's
        last answer, asked again for the same input: no solve) and, with the batched engine, ``factorisations``
        (numeric, of a point's own Jacobian), ``template_solves`` (solves with the elastic
        cell's factorisation instead), ``shortcut`` (evaluations that needed no
        factorisation of their own), ``seconds`` (in the engine) and, when balanced,
        ``moved`` (evaluations of other ranks' points done here)."""
        out: dict[str, float] = dict(self.stats)
        if self._batched is not None:
            out.update(self._batched.stats)
            out["seconds"] = self._batched.seconds
        if self.balancer is not None:
            out["moved"] = self.balancer.stats["moved"]
        return out

    def set_time_increment(self, dt: float) -> None:
        """Forward the pseudo-time increment to every rate-dependent phase law."""
        for ph in self.phases:
            if ph.law.rate_dependent:
                ph.law.set_time_increment(dt)

    def internal_fields(self) -> dict[str, np.ndarray]:
        """RVE volume averages of the committed internal variables per macro point,
        ``{name: (N,)}`` (:meth:`fe2.materials.base.Law.fields`; a phase without the variable
        counts as zero, so ``damage`` is the volume-averaged damage and ``dissipation`` the
        energy dissipated per unit RVE volume). Collective on a template on several processes."""
        out: dict[str, np.ndarray] = {}
        for ph, idx, key in zip(self.phases, self.phase_points, self._state_keys):
            for name, vals in ph.law.fields(self.bank.committed[key]).items():  # vals (N, points of phase)
                out[name] = out.get(name, 0.0) + vals @ self.micro_weights[idx] / self.volume
        if self.comm.size > 1:  # the same names on every process (each has points of every phase)
            out = {k: self.comm.allreduce(np.broadcast_to(v, (self.num_points,)).copy()) for k, v in out.items()}
        return {k: np.broadcast_to(v, (self.num_points,)).copy() for k, v in out.items()}

    def out_of_plane_stress(self, grad: np.ndarray) -> np.ndarray | None:
        """Plane strain: the RVE average of every phase law's
        :meth:`~fe2.materials.base.Law.out_of_plane_stress` at each point's committed
        fluctuation and state, for the committed macro gradients ``grad`` ``(N, n)``; None in
        3D, for conduction, or when a law cannot say (collective on a template on several
        processes)."""
        if self.gdim != 2 or self.kinematics == "scalar":
            return None
        E = np.atleast_2d(np.asarray(grad, dtype=float))
        N, n = E.shape
        if N != self.num_points:
            return None
        if self.comm.size > 1:
            return self._out_of_plane_distributed(E)
        if self._operators is None:
            self._operators = self._batched.op if self._batched is not None else CellOperators(self, self.quadrature)
        op = self._operators
        g = op.gradients(E, self.bank.committed["w"][:, op.free])
        out = np.zeros(N)
        for ph, idx, key in zip(self.phases, self.phase_points, self._state_keys):
            st = self.bank.committed[key]
            zz = ph.law.out_of_plane_stress(g[:, idx].reshape(-1, n), st.reshape(N * idx.size, st.shape[-1]))
            if zz is None:
                return None
            out += zz.reshape(N, -1) @ op.weights[idx]
        return out / self.volume

    def _out_of_plane_distributed(self, E: np.ndarray) -> np.ndarray | None:
        """:meth:`out_of_plane_stress` of a template on several processes: point by point,
        the micro gradients from the compiled expression (as :meth:`solve_point` has them)."""
        N, n = E.shape
        out = np.zeros(N)
        known = True
        for i in range(N):
            self.macro_gradient.value[:] = E[i]
            self._set_fluctuation(self.bank.committed["w"][i])
            g = self.quadrature.evaluate(self._grad_expr, n)
            for ph, idx, key in zip(self.phases, self.phase_points, self._state_keys):
                zz = ph.law.out_of_plane_stress(g[idx], self.bank.committed[key][i])
                if zz is None:
                    known = False
                    break
                out[i] += zz @ self.micro_weights[idx]
        if not all(self.comm.allgather(known)):
            return None
        return self.comm.allreduce(out) / self.volume

    # --- one micro solve ------------------------------------------------------------------
    def _set_fluctuation(self, x: np.ndarray) -> None:
        self.w.x.array[: self.nloc] = x
        self.w.x.scatter_forward()
        self.mpc.backsubstitution(self.w)

    def _material(self, states: list[np.ndarray]) -> list[np.ndarray] | None:
        """Integrate every phase at the current ``w``; fill flux/tangent; return trial
        states, or None if a law fails (e.g. J <= 0).

        With a nonlocal drive (:attr:`_drive` set, see :meth:`evaluate_nonlocal`) the
        damage phases are driven by ``eps_eq(x) + drive - e_loc`` where ``e_loc`` is the
        average equivalent strain over the damage phases; the tangent filled in is the
        local one (``d/deps`` at fixed shift), the shift's derivatives are kept apart."""
        n = self.size
        weights = self.micro_weights
        grads = self.quadrature.evaluate(self._grad_expr, n)
        flux = np.empty((self.num_micro_points, n))
        tang = np.empty((self.num_micro_points, n, n))
        drive = self._drive
        if drive is not None:
            eqs = {k: ph.law.equivalent_of(grads[idx])
                   for k, (ph, idx) in enumerate(zip(self.phases, self.phase_points)) if self._driven[k]}
            local = float(sum(weights[self.phase_points[k]] @ e for k, (e, _) in eqs.items()))
            self._e_local = self.comm.allreduce(local) / self.damage_volume
            shift = drive - self._e_local
            dsd = np.zeros((self.num_micro_points, n))
            deq = np.zeros((self.num_micro_points, n))
        trial = []
        for k, (ph, idx, st) in enumerate(zip(self.phases, self.phase_points, states)):
            try:
                if drive is not None and self._driven[k]:
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
        if drive is not None:
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
        if self.border is not None:
            r.array[:] = self.border.project(r.array_r)
        self._assemble_plain(self._R, self._r_plain)
        return r.norm(), self._r_plain.norm()

    def _unit_force_gram(self) -> np.ndarray:
        """``S^T S`` (``n x n``), ``S`` the internal forces of the phases' elastic stress of
        each unit macro gradient, assembled without the periodic condensation (collective)."""
        S = self._assemble_unit_rhs(condensed=False)
        return self.comm.allreduce(S.T @ S, op=MPI.SUM)

    def force_floor(self, E: np.ndarray) -> np.ndarray:
        """The round-off floor of the micro residual at macro gradients ``E`` (``(n,)`` or
        ``(m, n)`` -> ``(m,)``): :data:`ROUNDOFF` times the norm of the internal forces
        (uncondensed) that the phases' elastic stress of ``E - reference`` would cause. A
        state of that strain has forces of this size somewhere in its sums (the stress is
        ``C (eps - eps_p)``), so its residual cannot be trusted below it, even where the
        stress itself is zero (not collective)."""
        d = np.atleast_2d(np.asarray(E, float)) - self.reference
        return ROUNDOFF * np.sqrt(np.maximum(np.einsum("mi,ij,mj->m", d, self._force_gram, d), 0.0))

    def _factorize(self) -> None:
        self.system_matrix(self._J, self.A_t)
        if self.border is not None:
            self.border.matrix(self.A_t, self.M_t)
        self.ksp_t.setOperators(self.M_t)
        linalg.factorise(self.ksp_t, "factorisation of the RVE Jacobian")

    def solve_point(self, E: np.ndarray, x0: np.ndarray, states: list[np.ndarray], drive: float | None = None
                    ) -> PointSolution:
        """Newton for one macro gradient ``E`` ``(n,)`` from fluctuation ``x0`` (condensed)
        and the committed ``states`` of the phases; with ``drive``, the damage phases are
        driven by that nonlocal equivalent strain (see :meth:`evaluate_nonlocal`). Raises
        :class:`~fe2.core.errors.SolverError` (message with iteration and residuals) if it
        does not converge."""
        self._drive = drive
        self.macro_gradient.value[:] = E
        # residual scale: the imbalance the macro gradient alone causes, or the size of the
        # internal forces, whichever is larger
        r_ref = self.norm(self.B_residual @ (np.asarray(E) - self.reference))
        system = _MicroNewton(self, np.array(x0, dtype=float), states, r_ref, float(self.force_floor(E)[0]))
        rep = newton(system, self.max_iterations, max_cuts=self.MAX_CUTS)
        self.stats["cuts"] += rep.cuts
        if not rep.converged:
            if rep.failure.startswith("no convergence"):
                raise SolverError(
                    f"micro Newton did not converge in {rep.iterations} iterations (residual {rep.residuals[-1]:.3e}, "
                    f"tolerance {system.tol:.3e}, residuals {' '.join(f'{h:.2e}' for h in rep.residuals)})")
            raise SolverError(f"micro Newton {rep.failure}")
        self._factorize()  # the converged Jacobian, for the sensitivities
        it = rep.iterations
        # dSigma_i/dE_k = <T>_ik + <e_i . T G(dw_k)>,  A dw_k = b_k = -int G(v) . T e_k
        Bt = self._assemble_unit_rhs(self._Lt, self.unit)
        # volume averages over the micro points of every process of the template
        mean_t = self.comm.allreduce(np.einsum("p,pij->ij", self.micro_weights, self._tang)) / self.volume
        Lt = -Bt if self.symmetric else self._assemble_unit_rhs(self._Lt_left, self.unit)
        sigma = self.comm.allreduce(self.micro_weights @ self._flux) / self.volume
        self.stats["solves"] += 1
        self.stats["newton_iterations"] += it
        if drive is None:
            Xt = self.solve_reduced(Bt, self.ksp_t)
            return PointSolution(sigma, mean_t + self._dot(Lt, Xt) / self.volume, system.x, system.trial, it, None,
                                 Xt)
        tangent, extra = self._nonlocal_sensitivities(Bt, Lt, mean_t)
        return PointSolution(sigma, tangent, system.x, system.trial, it, extra)

    def _nonlocal_sensitivities(self, Bt: np.ndarray, Lt: np.ndarray, mean_t: np.ndarray
                                ) -> tuple[np.ndarray, NonlocalSensitivity]:
        """Sensitivities of ``(Sigma, e_loc)`` to ``(E, drive)`` at the converged nonlocal state.

        With the shift ``s = drive - e_loc(w, E)`` eliminated, the Jacobian is
        ``K = J - a c^T`` (``a = dR/ds``, ``c = de_loc/dw``, ``m = de_loc/dE`` at fixed w):
        ``K dw/dE_k = b_k + a m_k`` and ``K dw/ddrive = -a``, solved with J's factorisation
        and Sherman–Morrison. Then, with ``sbar = <dsigma/ds>``::

            dSigma/dE   = <T> + L^T dw/dE / |Y| - sbar (c . dw/dE + m)
            dSigma/ddrive = L^T dw/ddrive / |Y| + sbar (1 - c . dw/ddrive)
            de_loc/dE   = m + c . dw/dE,      de_loc/ddrive = c . dw/ddrive
        """
        n = self.size
        a, c = self._shift_vectors()
        m = self.comm.allreduce(self.micro_weights @ self._deq) / self.damage_volume
        sbar = self.comm.allreduce(self.micro_weights @ self._dsd) / self.volume
        X = self.solve_reduced(np.column_stack([Bt + np.outer(a, m), -a, a]), self.ksp_t)
        y, X = X[:, -1], X[:, :-1]
        cX = self._dot(c[:, None], X)[0]
        dW = X + np.outer(y, cX) / (1.0 - self._dot(c[:, None], y[:, None])[0, 0])
        cdW = self._dot(c[:, None], dW)[0]  # (n + 1,)
        LdW = self._dot(Lt, dW) / self.volume  # (n, n + 1)
        tangent = mean_t + LdW[:, :n] - np.outer(sbar, cdW[:n] + m)
        dsig_de = LdW[:, n] + sbar * (1.0 - cdW[n])
        return tangent, NonlocalSensitivity(dsig_de, float(self._e_local), m + cdW[:n], float(cdW[n]))

    # --- the point material ------------------------------------------------------------------
    def evaluate(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Homogenized fluxes ``(N, n)`` and consistent tangents ``(N, n, n)`` for the macro
        gradients ``E`` ``(N, n)`` of points ``0..N-1``, each from its committed state; the
        results become the trial state. A failed point raises
        :class:`~fe2.core.errors.SolverError` whose ``point`` attribute is its index."""
        return self._evaluate_points(E, None)[:2]

    def evaluate_nonlocal(self, E: np.ndarray, e_nl: np.ndarray) -> NonlocalResponse:
        """Gradient-regularized FE²: the RVE's damage is driven by the macro nonlocal
        equivalent strain ``e_nl`` ``(N,)``.

        Every damage point (a phase whose law is :attr:`~fe2.materials.base.Law.driven`) is
        driven by its own equivalent strain shifted by the same amount,
        ``eps_eq(x) + e_nl - e_loc``, where ``e_loc = <eps_eq>`` over the damage phases is
        the RVE's local equivalent strain (returned to the macro problem). A homogeneous RVE
        is therefore driven by exactly ``e_nl``: the single-scale implicit gradient model.
        All derivatives are consistent (micro sensitivities with the converged factorisation)."""
        if not self.nonlocal_form:
            raise SolverError("gradient regularization needs an RVE phase with a damage law; "
                              f"phases: {', '.join(f'{p.name} ({type(p.law).__name__})' for p in self.phases)}")
        return NonlocalResponse(*self._evaluate_points(E, np.asarray(e_nl, dtype=float).reshape(-1)))

    @property
    def _answer_size(self) -> int:
        """Floats of a stored answer: flux, tangent and (nonlocal form) the sensitivities."""
        n = self.size
        return n + n * n + (2 * n + 2 if self.nonlocal_form else 0)

    def _to_solve(self, E: np.ndarray, e_nl: np.ndarray | None) -> np.ndarray:
        """Indices of the points that need a micro solve: all but those whose last answer
        (trial, from the committed state) was for exactly this input. The first macro
        iterate of a load step evaluates every point at its committed macro gradient; its
        converged answer is then already known, and is independent of the round-off that
        would decide, at a point left exactly on its yield surface, between an elastic and
        a plastic tangent. Rate-dependent laws always solve (the time increment changes)."""
        if any(ph.law.rate_dependent for ph in self.phases):
            return np.arange(E.shape[0])
        last, n = self.bank.trial["answer_input"], E.shape[1]
        same = np.all(last[:, :n] == E, axis=1)
        same &= last[:, n + 1] == 1.0 if e_nl is None else (last[:, n + 1] == 2.0) & (last[:, n] == e_nl)
        return np.flatnonzero(~same)

    def _evaluate_points(self, E: np.ndarray, e_nl: np.ndarray | None) -> tuple[np.ndarray, ...]:
        E = np.atleast_2d(np.asarray(E, dtype=float))
        N, n = E.shape
        if N != self.num_points:
            self.resize(N)
        trial = self.bank.trial
        todo = self._to_solve(E, e_nl)
        self.stats["reused"] += N - todo.size
        if self.engine == "batched":
            self._solve_batched(todo, E[todo], None if e_nl is None else e_nl[todo])
        else:
            self._solve_reference(todo, E, e_nl)
        trial["answer_input"][todo, :n] = E[todo]
        trial["answer_input"][todo, n] = 0.0 if e_nl is None else e_nl[todo]
        trial["answer_input"][todo, n + 1] = 1.0 if e_nl is None else 2.0
        ans = trial["answer"]
        out = [ans[:, :n].copy(), ans[:, n:n + n * n].reshape(N, n, n).copy()]
        if e_nl is not None:
            k = n + n * n
            out += [ans[:, k:k + n].copy(), ans[:, k + n].copy(), ans[:, k + n + 1:k + 2 * n + 1].copy(),
                    ans[:, k + 2 * n + 1].copy()]
        return tuple(out)

    def _store(self, rows, sigma: np.ndarray, tangent: np.ndarray, nl) -> None:
        """Put answers of points ``rows`` into the trial ``answer``."""
        n = self.size
        ans = self.bank.trial["answer"]
        ans[rows, :n] = sigma
        ans[rows, n:n + n * n] = np.reshape(tangent, np.shape(sigma)[:-1] + (n * n,))
        if nl:
            k = n + n * n
            ans[rows, k:k + n], ans[rows, k + n] = nl[0], nl[1]
            ans[rows, k + n + 1:k + 2 * n + 1], ans[rows, k + 2 * n + 1] = nl[2], nl[3]

    def _solve_batched(self, todo: np.ndarray, E: np.ndarray, e_nl: np.ndarray | None) -> None:
        """Solve points ``todo`` (macro gradients ``E``) with the batched engine, balanced
        over the ranks if so set (then collective, also when ``todo`` is empty)."""
        committed, trial = self.bank.committed, self.bank.trial
        if self._batched is None:
            self._batched = BatchedEngine(self)
        if not todo.size and self.balancer is None:
            return
        if self._batched.warm_trial:  # first-order prediction from the last solution
            W0 = trial["w"][todo] + np.einsum("mak,mk->ma", trial["predictor_dwdE"][todo],
                                              E - trial["predictor_E"][todo])
        else:
            W0 = committed["w"][todo]
        args = (E, W0, [committed[key][todo] for key in self._state_keys], e_nl)
        if self.balancer is not None:
            sigma, tangent, W, states, nl, dW = self.balancer.evaluate(self._batched, *args, points=todo)
        else:
            failures: dict[int, str] = {}
            sigma, tangent, W, states, nl, dW = self._batched.evaluate(*args, failures=failures)
            if failures:
                first = min(failures)
                raise point_failure(int(todo[first]), failures[first])
        self._store(todo, sigma, tangent, nl)
        trial["w"][todo] = W
        if dW is not None:
            trial["predictor_dwdE"][todo] = dW
            trial["predictor_E"][todo] = E
        for key, s_k in zip(self._state_keys, states):
            trial[key][todo] = s_k

    def _solve_reference(self, todo: np.ndarray, E: np.ndarray, e_nl: np.ndarray | None) -> None:
        """Solve points ``todo`` one at a time (:meth:`solve_point`)."""
        committed, trial = self.bank.committed, self.bank.trial
        for i in todo.tolist():
            try:
                sol = self.solve_point(E[i], committed["w"][i], [committed[key][i] for key in self._state_keys],
                                       None if e_nl is None else float(e_nl[i]))
            except SolverError as err:
                raise point_failure(i, str(err)) from None
            finally:
                self._drive = None
            self._store(i, sol.flux, sol.tangent, sol.nonlocal_)
            trial["w"][i] = sol.fluctuation
            if sol.sensitivity is not None:
                trial["predictor_dwdE"][i], trial["predictor_E"][i] = sol.sensitivity, E[i]
            for key, s_k in zip(self._state_keys, sol.states):
                trial[key][i] = s_k

    def _snapshot_state(self, E: np.ndarray, point: int | None) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Macro point ``point``'s committed fluctuation and phase states."""
        if point is None or not 0 <= point < self.num_points:
            raise ValueError(f"a nonlinear cell's snapshot needs the index of one of its {self.num_points} macro "
                             f"points, got {point!r}")
        committed = self.bank.committed
        return committed["w"][point], [committed[key][point] for key in self._state_keys]

    def micro_fields(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gradient, flux and tangent at the micro points of the last macro point of the
        last :meth:`evaluate`, at its converged fluctuation: ``(P, n)``, ``(P, n)``,
        ``(P, n, n)``; :attr:`micro_weights` ``(P,)`` integrates them. (With a
        :attr:`balancer`, the last point this rank evaluated, which may be another rank's.)"""
        return self._grads, self._flux, self._tang

    def destroy(self) -> None:
        super().destroy()
        if self._batched is not None:
            self._batched.destroy()
        self.ksp_t.destroy()
        if self.M_t is not self.A_t:
            self.M_t.destroy()
        self.A_t.destroy()
        self._r.destroy()
        self._r_plain.destroy()
