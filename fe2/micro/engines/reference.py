"""The reference micro engine: one macro point at a time, with dolfinx and dolfinx_mpc assembly.

:class:`ReferenceEngine` is the slow, obviously-correct path that the batched engine
(:mod:`fe2.micro.engines.batched`) is tested against. For the macro gradient ``E`` of one
point (Mandel strain, ``F`` flattened for ``physics="finite_strain"``, or the temperature
gradient for ``physics="conduction"``) Newton (:func:`fe2.solvers.newton.newton`, by the
rules of :mod:`fe2.micro.rules`) solves

    R(w; v) = int_Y  flux(E + G w, state) . G v  dx = 0    for all periodic v

for the fluctuation ``w``, from the point's committed ``w``, halving a step whose residual
grows or whose law fails: the micro fluxes and tangents fill quadrature functions, and the
residual and Jacobian are assembled through the periodic constraint. The factorisation of
the Jacobian at the converged state then solves the ``n`` sensitivity problems
(``b_k = -int G v . T e_k``), giving the consistent homogenized tangent

    dSigma/dE = <T> - B^T A^-1 B / |Y|.

With a nonlocal drive (gradient-regularized FE²) the damage phases are driven by their own
equivalent strain shifted by ``drive - e_loc`` (see
:meth:`fe2.micro.nonlinear.NonlinearCellProblem.evaluate_nonlocal`); the shift's
derivatives enter the Jacobian as a rank-one update (Sherman–Morrison) and the
sensitivities as :meth:`ReferenceEngine._nonlocal_sensitivities` says.

Its forms, matrices and solver are made with the engine, so a run with the batched engine
compiles and assembles none of them. Works on a template distributed over several
processes, every solve collective on them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import dolfinx
import dolfinx.fem.petsc
import dolfinx_mpc
import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc

from fe2.core import linalg
from fe2.core.errors import SolverError
from fe2.core.kinematics import measure
from fe2.micro.engines.base import EngineAnswer, MicroEngine, NonlocalAnswer, PointBatch
from fe2.solvers.newton import newton

if TYPE_CHECKING:
    from fe2.micro.problem import MicroProblem

__all__ = ["ReferenceEngine"]


class _MicroNewton:
    """The micro cell problem of one point as a :class:`~fe2.solvers.newton.NewtonSystem`,
    converged and line-searched by the rules of :mod:`fe2.micro.rules`."""

    unknown = "w"

    def __init__(self, engine: ReferenceEngine, x0: np.ndarray, states: list[np.ndarray], r_ref: float,
                 floor: float) -> None:
        self.engine, self.x, self.states, self.r_ref, self.floor = engine, x0, states, r_ref, floor
        self.rules = engine.problem.rules
        self.trial: list[np.ndarray] | None = None
        self.tol = self.r_forces = 0.0
        self.r_prev = np.inf

    def residual(self) -> float:
        e = self.engine
        e._set_fluctuation(self.x)
        self.trial = e._material(self.states)
        if self.trial is None:
            raise SolverError(self.rules.material_failed_at_start())
        r, self.r_forces = e._residual()
        self.tol = float(self.rules.tolerance(self.r_ref, self.r_forces, self.floor))
        return r

    def converged(self, iteration: int, norm: float) -> bool:
        conv, tol = self.rules.converged(iteration, norm, self.r_prev, self.tol, self.r_forces)
        self.tol = float(tol)
        self.r_prev = norm
        return bool(conv)

    def solve_update(self) -> float:
        e = self.engine
        space = e.problem.space
        e._factorize()
        e._r.scale(-1.0)
        dx = space.solve(e._r.array_r[:, None], e.ksp)[:, 0]
        if e._drive is not None:  # Jacobian J - a c^T (the shift depends on w): Sherman-Morrison
            a, cv = e._shift_vectors()
            y = space.solve(a[:, None], e.ksp)[:, 0]
            dx += y * space.dot(cv, dx) / (1.0 - space.dot(cv, y))
        self.base, self.dx = self.x, dx
        return space.norm(dx)

    def step(self, alpha: float) -> float:
        e = self.engine
        x_new = self.base + alpha * self.dx
        e._set_fluctuation(x_new)
        trial_new = e._material(self.states)
        if trial_new is None:
            return np.inf
        r_new, self.r_forces = e._residual()
        self.x, self.trial = x_new, trial_new
        return r_new

    def accept(self, norm: float, new_norm: float) -> bool:
        return bool(self.rules.accept(norm, new_norm, self.tol))

    def status(self) -> str:
        return ""


class ReferenceEngine(MicroEngine):
    """The per-point micro engine of the micro ``problem`` of a template (collective on its
    communicator; see the module docstring). Besides the common counters it counts
    ``factorisations`` (of a point's Jacobian: one per Newton update and one at the
    converged state)."""

    name = "reference"
    counters = (*MicroEngine.counters, "factorisations")

    def __init__(self, problem: MicroProblem) -> None:
        super().__init__(problem)
        p = problem
        space, qp, n = p.space, p.quadrature, p.size
        mesh, V = space.mesh, space.V
        Qf, Qt = qp.space((n,)), qp.space((n, n))
        self.flux_q = fem.Function(Qf, name="micro_flux")
        self.tangent_q = fem.Function(Qt, name="micro_tangent")
        self._qdofs = qp.dofs(Qf)  # micro point -> quadrature dof
        self.num_micro_points = qp.num_points
        G = measure(p.kinematics, p.gdim)
        #: the macro gradient of the point being solved, its fluctuation and the micro gradient
        self.macro_gradient, self.w, self._grad_expr = space.micro_gradient(qp, p.kinematics, n)
        dxq = qp.dx
        v, dw = ufl.TestFunction(V), ufl.TrialFunction(V)
        self.unit = fem.Constant(mesh, np.zeros(n))
        self._R = fem.form(ufl.inner(self.flux_q, G(v)) * dxq)
        self._J = fem.form(ufl.inner(ufl.dot(self.tangent_q, G(dw)), G(v)) * dxq)
        self._Lt = fem.form(-ufl.inner(ufl.dot(self.tangent_q, self.unit), G(v)) * dxq)
        # left vectors of the sensitivity (T^T e_k): differ from -Lt when T is not symmetric
        self._Lt_left = fem.form(ufl.inner(ufl.dot(self.unit, self.tangent_q), G(v)) * dxq)
        # nonlocal (driven) damage: dsigma/d(drive) and d eps_eq/d eps at the micro points
        self._dsd_q = fem.Function(Qf, name="dsigma_ddrive")
        self._deq_q = fem.Function(Qf, name="deq_deps")
        self._a_form = fem.form(ufl.inner(self._dsd_q, G(v)) * dxq)
        self._c_form = fem.form(ufl.inner(self._deq_q, G(v)) * dxq)
        #: the nonlocal equivalent strain driving the damage phases of the point being solved
        self._drive: float | None = None
        self.A = space.matrix(self._J)
        #: the bordered Jacobian (a ``"minimal"`` boundary condition), else A
        self.M = self.A if space.border is None else space.border.matrix(self.A)
        # Cholesky needs a symmetric Jacobian; softening laws have non-symmetric tangents
        self.ksp = linalg.direct_solver(self.M, linalg.unique_prefix("fe2_rve_newton_"), p.petsc_options,
                                        symmetric=p.symmetric)
        self._r = dolfinx_mpc.assemble_vector(self._R, space.mpc)
        self._r_plain = dolfinx.fem.petsc.create_vector(self._R)
        #: the counters of the evaluation under way
        self._count = dict.fromkeys(self.counters, 0)

    # --- the engine contract ------------------------------------------------------------
    def evaluate(self, batch: PointBatch) -> EngineAnswer:
        """The points of ``batch`` one at a time (:meth:`solve_point`)."""
        t_start = time.perf_counter()
        self._count = counts = dict.fromkeys(self.counters, 0)
        ans = EngineAnswer.empty(batch, self.problem.size)
        for i in range(batch.size):
            t0 = time.perf_counter()
            try:
                sol = self.solve_point(batch.gradient[i], batch.start[i], [s[i] for s in batch.states],
                                       None if batch.drive is None else float(batch.drive[i]))
            except SolverError as err:
                ans.failures[i] = str(err)
                continue
            finally:
                self._drive = None
                ans.cost[i] = time.perf_counter() - t0
            ans.put(np.array([i]), sol)
        counts["seconds"] = time.perf_counter() - t_start
        ans.cost = self.group_mean(ans.cost)
        ans.counters = counts
        return ans

    # --- one point ------------------------------------------------------------------------
    def solve_point(self, E: np.ndarray, x0: np.ndarray, states: list[np.ndarray], drive: float | None = None
                    ) -> EngineAnswer:
        """Newton for one macro gradient ``E`` ``(n,)`` from fluctuation ``x0`` (condensed)
        and the committed ``states`` of the phases; with ``drive``, the damage phases are
        driven by that nonlocal equivalent strain. The answer is one row (no cost, no
        counters: :meth:`evaluate` keeps those). Raises
        :class:`~fe2.core.errors.SolverError` (message with iteration and residuals) if it
        does not converge."""
        p = self.problem
        space, n = p.space, p.size
        self._drive = drive
        self.macro_gradient.value[:] = E
        # residual scale: the imbalance the macro gradient alone causes, or the size of the
        # internal forces, whichever is larger
        r_ref = space.norm(p.unit_residual @ (np.asarray(E) - p.reference))
        system = _MicroNewton(self, np.array(x0, dtype=float), states, r_ref, float(p.floor(E)[0]))
        if p.monolithic:  # one Newton step, taken by the macro Newton: linearise at the start
            norm = system.residual()
            it = 0
        else:
            rep = newton(system, p.rules.max_iterations, max_cuts=p.rules.max_cuts)
            self._count["cuts"] += rep.cuts
            if not rep.converged:
                raise SolverError(self._failure(rep, system.tol))
            norm, it = rep.residuals[-1], rep.iterations
        ratio = float(p.rules.ratio(norm, system.tol))
        self._factorize()  # the Jacobian there, for the sensitivities (and the monolithic correction)
        # dSigma_i/dE_k = <T>_ik + <e_i . T G(dw_k)>,  A dw_k = b_k = -int G(v) . T e_k
        Bt = space.unit_vectors(self._Lt, self.unit)
        # volume averages over the micro points of every process of the template
        w = p.weights
        mean_t = p.comm.allreduce(np.einsum("p,pij->ij", w, self._tang)) / p.volume
        Lt = -Bt if p.symmetric else space.unit_vectors(self._Lt_left, self.unit)
        sigma = p.comm.allreduce(w @ self._flux) / p.volume
        self._count["solves"] += 1
        self._count["newton_iterations"] += it
        states = [s[None] for s in system.trial]
        if drive is None:
            x = system.x
            if p.monolithic:  # with the Newton correction dx = -K^-1 r and the flux to first order in it
                X = space.solve(np.column_stack([Bt, -self._r.array_r]), self.ksp)
                Xt, dx = X[:, :n], X[:, n]
                sigma = sigma + space.dot(Lt, dx[:, None])[:, 0] / p.volume
                x = x + dx
                self._count["newton_iterations"] += 1
            else:
                Xt = space.solve(Bt, self.ksp)
            tangent = mean_t + space.dot(Lt, Xt) / p.volume
            return EngineAnswer(sigma[None], tangent[None], x[None], states, sensitivity=Xt[None],
                                residual=np.array([ratio]))
        tangent, extra = self._nonlocal_sensitivities(Bt, Lt, mean_t)
        return EngineAnswer(sigma[None], tangent[None], system.x[None], states,
                            nonlocal_=NonlocalAnswer(*(np.asarray(a)[None] for a in extra)), residual=np.array([ratio]))

    def _failure(self, rep, tol: float) -> str:
        """What a micro Newton that did not converge says, by the rules (the Newton driver's
        report: the residuals of the accepted iterates and why it stopped)."""
        rules = self.problem.rules
        if not np.isfinite(rep.residuals[-1]):
            return rules.not_finite()
        if rep.failure.startswith("line search"):
            return rules.line_search_failed(rep.iterations + 1, rep.residuals[-1])
        return rules.no_convergence(rep.iterations, tol, rep.residuals)

    def _nonlocal_sensitivities(self, Bt: np.ndarray, Lt: np.ndarray, mean_t: np.ndarray
                                ) -> tuple[np.ndarray, NonlocalAnswer]:
        """Sensitivities of ``(Sigma, e_loc)`` to ``(E, drive)`` at the converged nonlocal state.

        With the shift ``s = drive - e_loc(w, E)`` eliminated, the Jacobian is
        ``K = J - a c^T`` (``a = dR/ds``, ``c = de_loc/dw``, ``m = de_loc/dE`` at fixed w):
        ``K dw/dE_k = b_k + a m_k`` and ``K dw/ddrive = -a``, solved with J's factorisation
        and Sherman–Morrison. Then, with ``sbar = <dsigma/ds>``::

            dSigma/dE   = <T> + L^T dw/dE / |Y| - sbar (c . dw/dE + m)
            dSigma/ddrive = L^T dw/ddrive / |Y| + sbar (1 - c . dw/ddrive)
            de_loc/dE   = m + c . dw/dE,      de_loc/ddrive = c . dw/ddrive
        """
        p = self.problem
        space, n = p.space, p.size
        a, c = self._shift_vectors()
        m = p.comm.allreduce(p.weights @ self._deq) / p.damage_volume
        sbar = p.comm.allreduce(p.weights @ self._dsd) / p.volume
        X = space.solve(np.column_stack([Bt + np.outer(a, m), -a, a]), self.ksp)
        y, X = X[:, -1], X[:, :-1]
        cX = space.dot(c[:, None], X)[0]
        dW = X + np.outer(y, cX) / (1.0 - space.dot(c[:, None], y[:, None])[0, 0])
        cdW = space.dot(c[:, None], dW)[0]  # (n + 1,)
        LdW = space.dot(Lt, dW) / p.volume  # (n, n + 1)
        tangent = mean_t + LdW[:, :n] - np.outer(sbar, cdW[:n] + m)
        dsig_de = LdW[:, n] + sbar * (1.0 - cdW[n])
        return tangent, NonlocalAnswer(dsig_de, float(self._e_local), m + cdW[:n], float(cdW[n]))

    def _set_fluctuation(self, x: np.ndarray) -> None:
        self.problem.space.set_fluctuation(self.w, x)

    def _material(self, states: list[np.ndarray]) -> list[np.ndarray] | None:
        """Integrate every phase at the current ``w``; fill flux/tangent; return trial
        states, or None if a law fails (e.g. J <= 0).

        With a nonlocal drive (:attr:`_drive` set) the damage phases are driven by
        ``eps_eq(x) + drive - e_loc`` where ``e_loc`` is the average equivalent strain over
        the damage phases; the tangent filled in is the local one (``d/deps`` at fixed
        shift), the shift's derivatives are kept apart."""
        p = self.problem
        n = p.size
        weights = p.weights
        grads = p.quadrature.evaluate(self._grad_expr, n)
        flux = np.empty((self.num_micro_points, n))
        tang = np.empty((self.num_micro_points, n, n))
        drive = self._drive
        driven = p.driven
        if drive is not None:
            eqs = {k: ph.law.equivalent_of(grads[idx])
                   for k, (ph, idx) in enumerate(zip(p.phases, p.phase_points)) if driven[k]}
            local = float(sum(weights[p.phase_points[k]] @ e for k, (e, _) in eqs.items()))
            self._e_local = p.comm.allreduce(local) / p.damage_volume
            shift = drive - self._e_local
            dsd = np.zeros((self.num_micro_points, n))
            deq = np.zeros((self.num_micro_points, n))
        trial = []
        for k, (ph, idx, st) in enumerate(zip(p.phases, p.phase_points, states)):
            try:
                if drive is not None and driven[k]:
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
        self._flux, self._tang = flux, tang
        return trial

    def _shift_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``a = dR/d(shift)`` and ``c = d e_loc/dw`` (condensed) at the current state."""
        space = self.problem.space
        return space.vector(self._a_form), space.vector(self._c_form) / self.problem.damage_volume

    def _residual(self) -> tuple[float, float]:
        """Norm of the periodic (condensed) residual, and of the same internal forces
        assembled without the periodic condensation: the boundary tractions there do not
        cancel, so it measures the size of the forces (the residual's scale)."""
        space = self.problem.space
        r = self._r
        with r.localForm() as loc:
            loc.set(0.0)
        dolfinx_mpc.assemble_vector(self._R, space.mpc, r)
        r.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(r, space.bcs)
        if space.border is not None:
            r.array[:] = space.border.project(r.array_r)
        space.assemble_plain(self._R, self._r_plain)
        return r.norm(), self._r_plain.norm()

    def _factorize(self) -> None:
        space = self.problem.space
        space.matrix(self._J, self.A)
        if space.border is not None:
            space.border.matrix(self.A, self.M)
        self.ksp.setOperators(self.M)
        linalg.factorise(self.ksp, "factorisation of the RVE Jacobian")
        self._count["factorisations"] += 1

    def destroy(self) -> None:
        self.ksp.destroy()
        if self.M is not self.A:
            self.M.destroy()
        self.A.destroy()
        self._r.destroy()
        self._r_plain.destroy()
