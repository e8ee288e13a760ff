"""The batched micro engine: all macro points of a rank iterate their cell problems together.

:class:`BatchedEngine` solves exactly the micro problem of
:class:`fe2.micro.engines.reference.ReferenceEngine` (the *reference path*: same
Newton by the same rules, :mod:`fe2.micro.rules`, same sensitivities) for many macro
points at once, without any finite-element assembly:

- micro gradients, residuals, internal-force norms and the values of the condensed
  Jacobians come from the operators precomputed once per template
  (:class:`fe2.micro.operators.CellOperators`: ``g = E + B x``, ``r = B^T (W flux)``,
  ``K = S vec(K_e)``), for all active points in one vectorised expression each;
- every phase law is called once per iteration for all micro points of all active points;
- what is left per point is one numeric factorisation of its Jacobian (sharing one
  symbolic analysis, :class:`fe2.core.linalg.PatternSolver`) and the solves with it;
- **exact elastic shortcut**: a point whose micro tangents at the current iterate are all
  the phases' virgin ones (compared exactly: elasticity is decided from the tangent itself,
  so a point strained a few ulp past its yield surface, whose plastic multiplier vanishes
  against its accumulated plastic strain, keeps its plastic tangent) has exactly the
  elastic cell's Jacobian, so it is solved with the template's stored factorisation
  instead of a new one; and if it is elastic at convergence its consistent tangent is the
  elastic cell's homogenized tensor and its sensitivities the elastic cell's unit
  fluctuations (:attr:`fe2.micro.problem.MicroProblem.elastic_tangent`,
  :attr:`~fe2.micro.problem.MicroProblem.elastic_sensitivity`): no solve at all. A point
  that yields at its next iterate simply continues with its own factorisations, exactly as
  on the reference path;
- **first-order predictor**: each point's micro Newton starts from its last solution
  moved along the sensitivity ``dW/dE`` computed there for the consistent tangent,
  ``W0 = W + dW/dE (E - E_last)`` (kept in the template's state bank as the predictor;
  :meth:`~fe2.micro.engines.base.MicroEngine.start`, :attr:`BatchedEngine.warm_trial`).
  A point that stays elastic then starts at its exact solution and costs two vectorised
  law calls, and a later macro Newton iterate needs one micro iteration or none;
- **the monolithic scheme** (:attr:`fe2.micro.problem.MicroProblem.scheme`): no micro
  iteration at all. Each point is linearised once at its start: one factorisation gives
  its tangent and the Newton correction of its micro residual, the flux is condensed to
  first order in it, and the macro Newton takes the step (:mod:`fe2.micro.problem`). An
  elastic point's correction is a solve with the template's factorisation, and none if its
  residual is already within its tolerance.

Points that converge drop out of the batch; a point that fails is listed in the answer's
failures with the reason the reference path would give, the others' answers intact.

On a template distributed over a group of processes (``[parallel] ranks_per_rve``) every
process works on its own cells and micro points and their share of the free DOFs
(:class:`~fe2.micro.operators.CellOperators` exchanges the shared ones); the norms, volume
averages and dot products are summed over the group, a point's Jacobian is one distributed
matrix (:meth:`fe2.core.linalg.PatternSolver.distributed`), and every decision (converged,
elastic, failed, the line search's) is the group's, so the group runs one Newton per point
in step. Each process's answer is the whole point's.

Every evaluation also estimates what each point cost (the answer's ``cost``, in seconds):
its own factorisations and solves, its template solves and its share of the vectorised
material calls, each priced at this evaluation's measured average. This is the
measured cost by which the balancer distributes points over ranks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

from fe2.core import linalg
from fe2.core.errors import SolverError
from fe2.micro.engines.base import EngineAnswer, MicroEngine, NonlocalAnswer, PointBatch
from fe2.micro.phases import virgin_tangent

if TYPE_CHECKING:
    from fe2.micro.problem import MicroProblem

__all__ = ["BatchedEngine"]


class _Evaluation:
    """Material state of a set of points at given fluctuations (arrays over the points)."""

    __slots__ = ("dsd", "e_local", "elastic", "deq", "flux", "ok", "parts", "r", "rforces", "rnorm", "trial")


class BatchedEngine(MicroEngine):
    """Batched micro Newton for the micro ``problem`` of a template (collective on its
    communicator; see the module docstring).

    Besides the common counters it counts ``factorisations`` (numeric, per point),
    ``template_solves`` (solves with the elastic factorisation instead), ``shortcut``
    (evaluations answered without any factorisation) and ``lu_fallbacks`` (Cholesky
    factorisations that failed and were done by a pivoting LU instead,
    :class:`fe2.core.linalg.PatternSolver`).
    """

    name = "batched"
    counters = (*MicroEngine.counters, "factorisations", "template_solves", "shortcut", "lu_fallbacks")

    #: bytes of per-point micro arrays (fluxes, tangents) a batch may hold
    MEMORY = 64e6
    #: points per solve with the template's factorisation: fixed (the last group padded
    #: with zeros), because the round-off of a multi-column solve depends on its width, and
    #: a point's answer must not depend on the batch it is evaluated in (which the load
    #: balancer decides by measured time)
    TEMPLATE_GROUP = 16

    def __init__(self, problem: MicroProblem) -> None:
        super().__init__(problem)
        p = problem
        self.op = op = p.operators
        n, P = p.size, op.num_points
        chunk = max(1, int(self.MEMORY // (8 * max(P, 1) * n * (n + 2) * 3)))
        # (the same on every process of a distributed template: they solve the same points)
        self.chunk = p.comm.allreduce(chunk, op=MPI.MIN) if op.parallel else chunk
        #: each phase law's virgin tangent: a point whose micro tangents all equal them has
        #: the elastic cell's Jacobian
        self.virgin = [virgin_tangent(ph.law) for ph in p.phases]
        # the elastic shortcut needs the template's tensors to be the laws' virgin tangents
        # (they are unless a phase was given another tensor)
        self.shortcut = all(np.allclose(ph.tensor, v, rtol=1e-13, atol=0.0) for ph, v in zip(p.phases, self.virgin))
        #: start each micro Newton from a first-order prediction of the solution, from the
        #: point's last trial fluctuation and its sensitivity ``dW/dE`` (the solution of the
        #: previous macro iteration, or the committed one after a commit or revert:
        #: :meth:`start`) instead of the committed fluctuation: fewer iterations, the same
        #: solution where it is unique. Not with softening (driven damage) laws, whose cell
        #: problem may have several solutions: there the committed start of the reference
        #: path is kept.
        self.warm_trial = not p.nonlocal_form
        # J2, elasticity: positive definite, unless bordered by Lagrange multipliers
        definite = p.symmetric and p.kinematics == "small" and not op.border
        options = {**linalg.rve_solver_options(p.symmetric, definite, op.nnz, parallel=op.parallel,
                                               saddle=bool(op.border)),
                   **(p.petsc_options or {})}
        prefix = linalg.unique_prefix("fe2_rve_point_")
        if op.parallel:
            self.solver = linalg.PatternSolver.distributed(p.comm, op.num_rows, *op.coo, prefix, options,
                                                           symmetric=p.symmetric)
        else:
            self.solver = linalg.PatternSolver(op.indptr, op.indices, prefix, options, symmetric=p.symmetric)

    # --- material ------------------------------------------------------------------------
    def _integrate(self, law, g: np.ndarray, st: np.ndarray, drive_args) -> tuple:
        """One law call for ``m`` points' micro points: g ``(m, Pk, n)``, st ``(m, Pk, s)``."""
        m, Pk, n = g.shape
        flat_g, flat_s = g.reshape(m * Pk, n), st.reshape(m * Pk, st.shape[-1])
        if drive_args is None:
            f, t, new = law.integrate(flat_g, flat_s)
            ds = de = None
        else:
            e, de_, shift = drive_args
            f, C, ds, _, _, new = law.integrate_driven(flat_g, flat_s, (e + np.repeat(shift, Pk)), (e, de_))
            t = C + ds[:, :, None] * de_[:, None, :]
            ds, de = ds.reshape(m, Pk, n), de_.reshape(m, Pk, n)
        return f.reshape(m, Pk, n), t.reshape(m, Pk, n, n), new.reshape(m, Pk, new.shape[-1]), ds, de

    def _material(self, E: np.ndarray, X: np.ndarray, states: list[np.ndarray], drive: np.ndarray | None
                  ) -> _Evaluation:
        """Integrate every phase at fluctuations ``X`` ``(m, nfree)`` of macro gradients
        ``E`` ``(m, n)`` from committed ``states`` (per phase ``(m, Pk, s)``), as the
        reference engine does for one point, and form the residuals."""
        p, op = self.problem, self.op
        m, n = E.shape
        P = op.num_points
        g = op.gradients(E, X)
        ev = _Evaluation()
        ev.flux = np.empty((m, P, n))
        # the micro tangents stay per phase (a linear phase's: its constant tensor, a broadcast
        # view): only the points that need a Jacobian have them gathered (:meth:`_tangents`)
        ev.parts = []
        ev.ok = np.ones(m, dtype=bool)
        ev.elastic = np.ones(m, dtype=bool) if self.shortcut else np.zeros(m, dtype=bool)
        ev.trial = []
        weights = op.weights
        eqs = {}
        if drive is not None:
            ev.dsd, ev.deq = np.zeros((m, P, n)), np.zeros((m, P, n))
            e_loc = np.zeros(m)
            for k, (ph, idx, driven) in enumerate(zip(p.phases, p.phase_points, p.driven)):
                if driven:
                    e, de = ph.law.equivalent_of(g[:, idx].reshape(-1, n))
                    eqs[k] = (e, de)
                    e_loc += e.reshape(m, -1) @ weights[idx]
            ev.e_local = self.op.sum(e_loc) / p.damage_volume
            shift = drive - ev.e_local
        for k, (ph, idx, st) in enumerate(zip(p.phases, p.phase_points, states)):
            args = (*eqs[k], shift) if k in eqs else None
            try:
                f, t, new, ds, de = self._integrate(ph.law, g[:, idx], st, args)
            except SolverError:  # find the points that fail, one by one
                f, t = np.zeros((m, idx.size, n)), np.zeros((m, idx.size, n, n))
                new, ds, de = np.array(st, dtype=float), np.zeros((m, idx.size, n)), np.zeros((m, idx.size, n))
                for i in range(m):
                    one = None if args is None else (args[0].reshape(m, -1)[i], args[1].reshape(m, idx.size, n)[i],
                                                     args[2][i:i + 1])
                    try:
                        fi, ti, ni, dsi, dei = self._integrate(ph.law, g[i:i + 1, idx], st[i:i + 1], one)
                    except SolverError:
                        ev.ok[i] = False
                        continue
                    f[i], t[i], new[i] = fi[0], ti[0], ni[0]
                    if one is not None:
                        ds[i], de[i] = dsi[0], dei[0]
                if args is None:
                    ds = de = None
            ev.flux[:, idx] = f
            ev.parts.append(t)
            if ds is not None:
                ev.dsd[:, idx], ev.deq[:, idx] = ds, de
            ev.trial.append(new)
            if self.shortcut and not ph.law.linear:  # (a linear law's tangent is its virgin one)
                ev.elastic &= (t == self.virgin[k]).all(axis=(1, 2, 3))
        # (a NaN or an infinity anywhere makes a point's sums non-finite: one pass, no boolean copies;
        # a linear phase's tangent is its constant tensor)
        sums = ev.flux.sum(axis=(1, 2))
        for ph, t in zip(p.phases, ev.parts):
            if not ph.law.linear:
                sums += t.sum(axis=(1, 2, 3))
        ev.ok &= np.isfinite(sums)
        ev.ok = self._everywhere(ev.ok)
        ev.elastic = self._everywhere(ev.elastic & ev.ok)
        ev.r, ev.rforces = op.forces(np.where(ev.ok[:, None, None], ev.flux, 0.0))
        ev.rnorm = op.norms(ev.r)
        return ev

    def _tangents(self, ev: _Evaluation, rows: np.ndarray | None = None) -> np.ndarray:
        """The micro tangents ``(k, P, n, n)`` of the points ``rows`` of ``ev`` (all: None),
        gathered from the phases' parts."""
        p = self.problem
        m, P, n = ev.flux.shape
        out = np.empty((m if rows is None else rows.size, P, n, n))
        for idx, t in zip(p.phase_points, ev.parts):
            out[:, idx] = t if rows is None else t[rows]
        return out

    def _everywhere(self, flags: np.ndarray) -> np.ndarray:
        """``flags`` true on every process of the template."""
        if not self.op.parallel:
            return flags
        return self.op.sum(flags.astype(np.int64)) == self.problem.comm.size

    # --- linear algebra ---------------------------------------------------------------------
    def _template_solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve with the elastic template's factorisation: rhs ``(m, nfree, k)``."""
        op = self.op
        m, _, k = rhs.shape
        G = self.TEMPLATE_GROUP
        out = np.empty_like(rhs)
        full = np.zeros((self.problem.nloc, G * k))
        t0 = time.perf_counter()
        for a in range(0, m, G):  # always G points per solve (zero-padded): see TEMPLATE_GROUP
            g = min(G, m - a)
            full[:, g * k:] = 0.0
            full[op.free, : g * k] = rhs[a:a + g].transpose(1, 0, 2).reshape(op.nfree, g * k)
            X = self.problem.elastic_solve(full)[op.free, : g * k]
            out[a:a + g] = X.reshape(op.nfree, g, k).transpose(1, 0, 2)
        self._time[1] += time.perf_counter() - t0
        self._count["template_solves"] += m
        return out

    def _solve(self, tang: np.ndarray, elastic: np.ndarray, rhs: np.ndarray, failed: dict[int, str],
               ids: np.ndarray) -> np.ndarray:
        """``J^-1 rhs`` for ``m`` points (ids ``ids``) with micro tangents ``tang``
        ``(m, P, n, n)`` and right-hand sides ``(m, nfree, k)``: an elastic point with the
        template's factorisation, any other one with a numeric factorisation of its own
        Jacobian (all values formed in one vectorised call). A failed factorisation is
        recorded in ``failed`` and gives zeros."""
        out = np.zeros_like(rhs)
        if elastic.any():
            out[elastic] = self._template_solve(rhs[elastic])
            self._work[ids[elastic], 1] += 1
        own = np.flatnonzero(~elastic)
        if own.size:
            op = self.op
            t0 = time.perf_counter()
            values = op.jacobian_values(tang if own.size == len(tang) else tang[own], symmetric=self.problem.symmetric)
            for j, i in enumerate(own):
                try:
                    self.solver.factor(values[j])
                    out[i] = self.solver.solve(op.pad(rhs[i]))[:op.nfree]
                except SolverError as err:
                    failed.setdefault(int(ids[i]), str(err))
                self._count["factorisations"] += 1
            self._time[0] += time.perf_counter() - t0
            self._work[ids[own], 0] += 1
            self._count["lu_fallbacks"] = self.solver.fallbacks - self._fallbacks0
        return out

    # --- the batched Newton ---------------------------------------------------------------------
    def evaluate(self, batch: PointBatch) -> EngineAnswer:
        """The answers of the points of ``batch`` (:meth:`MicroEngine.evaluate
        <fe2.micro.engines.base.MicroEngine.evaluate>`), in chunks of :attr:`chunk` points."""
        t_start = time.perf_counter()
        E, W0, states, e_nl = batch
        N, n = E.shape
        self._count = dict.fromkeys(self.counters, 0)
        self._fallbacks0 = self.solver.fallbacks
        self._work = np.zeros((N, 3))  # per point: own factorisations, template solves, material calls
        self._time = [0.0, 0.0]  # seconds in own factorisations + solves, in template solves
        ans = EngineAnswer.empty(batch, n)
        for a in range(0, N, self.chunk):
            b = min(N, a + self.chunk)
            self._chunk(batch.take(slice(a, b)), a, ans)
        total = time.perf_counter() - t_start
        self._count["seconds"] = total
        work = self._work
        per = np.zeros(3)
        counts = work.sum(axis=0)
        spent = np.array([self._time[0], self._time[1], max(total - self._time[0] - self._time[1], 0.0)])
        np.divide(spent, counts, out=per, where=counts > 0)
        ans.cost = self.group_mean(work @ per)
        ans.counters = self._count
        return ans

    def _chunk(self, batch: PointBatch, offset: int, ans: EngineAnswer) -> None:
        """:meth:`evaluate` of the points ``offset..offset+m-1`` of ``ans`` (``batch``: their inputs)."""
        p, op = self.problem, self.op
        rules = p.rules
        E, W0, states, drive = batch
        m, n = E.shape
        max_it, max_cuts = rules.max_iterations, rules.max_cuts
        failed = ans.failures
        ids = np.arange(m) + offset
        x = np.array(W0[:, op.free], dtype=float)
        r_ref = op.norms((E - p.reference) @ p.unit_residual.T)
        cur = self._material(E, x, states, drive)
        self._work[ids, 2] += 1
        for i in np.flatnonzero(~cur.ok):
            failed[int(ids[i])] = rules.material_failed_at_start()
        tol = rules.tolerance(r_ref, cur.rforces, p.floor(E))
        if p.monolithic:  # one Newton step, taken by the macro Newton: the answer at the start
            self._answer(E, x, cur, np.zeros(m, dtype=int), drive, ids, np.zeros(m, dtype=bool), ans,
                         rules.ratio(cur.rnorm, tol))
            return
        r_prev = np.full(m, np.inf)
        it = np.zeros(m, dtype=int)
        history: list[list[float]] = [[] for _ in range(m)]
        active = cur.ok.copy()
        done = np.zeros(m, dtype=bool)
        factored = np.zeros(m, dtype=bool)  # points that needed a factorisation of their own
        check = active.copy()  # points with a new accepted iterate to test
        while True:
            idx = np.flatnonzero(check & active)
            if idx.size:
                rn = cur.rnorm[idx]
                for i, v in zip(idx, rn):
                    history[i].append(float(v))
                conv, tol[idx] = rules.converged(it[idx], rn, r_prev[idx], tol[idx], cur.rforces[idx])
                r_prev[idx] = rn
                done[idx[conv]] = True
                active[idx[conv]] = False
                for i in idx[~conv & ~np.isfinite(rn)]:
                    failed.setdefault(int(ids[i]), rules.not_finite())
                    active[i] = False
                for i in idx[~conv & np.isfinite(rn) & (it[idx] == max_it)]:
                    failed.setdefault(int(ids[i]), rules.no_convergence(int(it[i]), tol[i], history[i]))
                    active[i] = False
            upd = np.flatnonzero(active)
            if not upd.size:
                break
            # Newton updates of all active points
            rhs = -cur.r[upd][:, :, None]
            if drive is not None:
                a_vec = op.condensed(cur.dsd[upd])
                c_vec = op.condensed(cur.deq[upd]) / p.damage_volume
                rhs = np.concatenate([rhs, a_vec[:, :, None]], axis=2)
            factored[upd[~cur.elastic[upd]]] = True
            sol = self._solve(self._tangents(cur, upd), cur.elastic[upd], rhs, failed, ids[upd])
            dx = sol[:, :, 0]
            if drive is not None:  # J - a c^T: Sherman-Morrison
                y = sol[:, :, 1]
                cdx, cy = op.sum(np.einsum("pi,pi->p", c_vec, dx)), op.sum(np.einsum("pi,pi->p", c_vec, y))
                dx = dx + y * (cdx / (1.0 - cy))[:, None]
            for i in upd:
                if int(ids[i]) in failed:
                    active[i] = False
            keep = active[upd]
            upd, dx = upd[keep], dx[keep]
            base = x[upd].copy()
            r_old, tol_old = cur.rnorm[upd], tol[upd]
            alpha = np.ones(upd.size)
            cuts = np.zeros(upd.size, dtype=int)
            pending = np.arange(upd.size)
            while pending.size:
                pts = upd[pending]
                xt = base[pending] + alpha[pending, None] * dx[pending]
                ev = self._material(E[pts], xt, [s[pts] for s in states], None if drive is None else drive[pts])
                self._work[ids[pts], 2] += 1
                rn = np.where(ev.ok, ev.rnorm, np.inf)
                acc = rules.accept(r_old[pending], rn, tol_old[pending])
                self._store(cur, ev, pts[acc], np.flatnonzero(acc))
                x[pts[acc]] = xt[acc]
                it[pts[acc]] += 1
                rej = pending[~acc]
                cuts[rej] += 1
                self._count["cuts"] += rej.size
                for j in rej[cuts[rej] > max_cuts]:
                    i = upd[j]
                    failed.setdefault(int(ids[i]), rules.line_search_failed(int(it[i]) + 1, r_old[j]))
                    active[i] = False
                rej = rej[cuts[rej] <= max_cuts]
                alpha[rej] *= 0.5
                pending = rej
            check = np.zeros(m, dtype=bool)
            check[upd] = True
        self._answer(E, x, cur, it, drive, ids, factored, ans, rules.ratio(cur.rnorm, tol))

    @staticmethod
    def _store(cur: _Evaluation, ev: _Evaluation, dst: np.ndarray, src: np.ndarray) -> None:
        """Copy the evaluation of points ``src`` of ``ev`` into points ``dst`` of ``cur``."""
        for name in ("flux", "ok", "elastic", "r", "rforces", "rnorm"):
            getattr(cur, name)[dst] = getattr(ev, name)[src]
        for k, (t_cur, t_ev) in enumerate(zip(cur.parts, ev.parts)):
            if t_cur.strides[0] == 0:  # a linear phase's constant tensor: the same in both
                continue
            if not t_cur.flags.writeable:
                t_cur = cur.parts[k] = t_cur.copy()
            t_cur[dst] = t_ev[src]
        for t_cur, t_ev in zip(cur.trial, ev.trial):
            t_cur[dst] = t_ev[src]
        if hasattr(ev, "dsd"):
            cur.dsd[dst], cur.deq[dst], cur.e_local[dst] = ev.dsd[src], ev.deq[src], ev.e_local[src]

    def _answer(self, E, x, cur, it, drive, ids, factored, ans: EngineAnswer, ratio: np.ndarray) -> None:
        """Fluxes, consistent tangents (sensitivities with the Jacobian at ``x``) and the
        states of the points ``ids`` at fluctuations ``x`` into ``ans``, as the reference
        engine gives them; ``ratio``: their residual norms relative to their tolerances.

        A point whose micro tangents are all the phases' virgin ones (``cur.elastic``) has
        the elastic cell's Jacobian, so its tangent is the elastic cell's homogenized tensor
        and its sensitivities the elastic cell's unit fluctuations: no solve. Under the
        monolithic scheme the same factorisation also gives the Newton correction of the
        micro residual (:mod:`fe2.micro.problem`); an elastic point's is solved with the
        template's factorisation, unless its residual is already within its tolerance.
        Points already failed get meaningless answers; a failed factorisation is added to
        the failures."""
        p, op = self.problem, self.op
        failed = ans.failures
        m, n = E.shape
        V, w = p.volume, op.weights
        mono = p.monolithic
        sigma = op.sum(w @ cur.flux) / V  # (BLAS over the micro points, point by point)
        self._count["solves"] += m
        self._count["newton_iterations"] += int(it.sum())
        bad = np.isin(ids, list(failed))
        free = cur.elastic & ~bad
        self._count["shortcut"] += int((free & ~factored).sum())
        own = ~free & ~bad  # points that need their own factorisation
        dx = np.zeros((m, op.nfree))  # the monolithic scheme's Newton corrections
        if drive is None:
            # (every decision is the group's: the collective products run alike on all its processes)
            corr = free & (ratio > 1.0) if mono else np.zeros(m, dtype=bool)
            tangent = np.empty((m, n, n))
            dW = np.empty((m, p.nloc, n))
            easy = free | bad
            tangent[easy] = p.elastic_tangent
            dW[easy] = p.elastic_sensitivity
            need = np.flatnonzero(own | corr)  # the others' tangent and sensitivity are the elastic cell's
            if need.size:
                T = self._tangents(cur, need)
                Bt = -op.condensed(T)  # (k, nfree, n): columns -int G v . T e_k
                Lt = -Bt if p.symmetric else op.condensed(T.transpose(0, 1, 3, 2))
                rhs = np.concatenate([Bt, -cur.r[need][:, :, None]], axis=2) if mono else Bt
                X = np.zeros(rhs.shape)
                mine = own[need]
                if mine.any():
                    every = mine.all()  # (then no copies of the tangents and right-hand sides)
                    X[mine] = self._solve(T if every else T[mine], np.zeros(int(mine.sum()), dtype=bool),
                                          rhs if every else rhs[mine], failed, ids[need[mine]])
                if (~mine).any():  # elastic points off their solution: the template's factorisation
                    X[~mine, :, n] = self._template_solve(-cur.r[need[~mine]][:, :, None])[:, :, 0]
                    self._work[ids[need[~mine]], 1] += 1
                if mono:
                    dx[need] = X[:, :, n]
                    X = X[:, :, :n]
                    self._count["newton_iterations"] += need.size
                    sigma[need] += op.sum(np.matmul(Lt.transpose(0, 2, 1), dx[need][:, :, None])[:, :, 0]) / V
                mean_t = op.sum(w @ T.reshape(need.size, -1, n * n)).reshape(-1, n, n) / V
                tangent[need] = mean_t + op.sum(np.matmul(Lt.transpose(0, 2, 1), X)) / V
                dW[need] = op.to_full(X)[:, : p.nloc]
                tangent[need[~mine]] = p.elastic_tangent  # (an elastic point's, exactly)
                dW[need[~mine]] = p.elastic_sensitivity
            nl = None
        else:
            tang = self._tangents(cur)
            mean_t = op.sum(np.einsum("p,mpij->mij", w, tang)) / V
            Bt = -op.condensed(tang)  # (m, nfree, n): columns -int G v . T e_k
            Lt = -Bt if p.symmetric else op.condensed(tang.transpose(0, 1, 3, 2))
            a = op.condensed(cur.dsd)
            cv = op.condensed(cur.deq) / p.damage_volume
            mv = op.sum(np.einsum("p,mpi->mi", w, cur.deq)) / p.damage_volume
            sbar = op.sum(np.einsum("p,mpi->mi", w, cur.dsd)) / V
            rhs = np.concatenate([Bt + a[:, :, None] * mv[:, None, :], -a[:, :, None], a[:, :, None]], axis=2)
            Xa = self._solve(tang, free | bad, rhs, failed, ids)
            y, Xa = Xa[:, :, -1], Xa[:, :, :-1]
            cX = op.sum(np.einsum("ma,mak->mk", cv, Xa))
            cy = op.sum(np.einsum("ma,ma->m", cv, y))
            dW = Xa + y[:, :, None] * (cX / (1.0 - cy)[:, None])[:, None, :]
            cdW = op.sum(np.einsum("ma,mak->mk", cv, dW))
            LdW = op.sum(np.einsum("mai,mak->mik", Lt, dW)) / V
            tangent = mean_t + LdW[:, :, :n] - sbar[:, :, None] * (cdW[:, None, :n] + mv[:, None, :])
            dsig_de = LdW[:, :, n] + sbar * (1.0 - cdW[:, n:n + 1])
            nl = NonlocalAnswer(dsig_de, cur.e_local.copy(), mv + cdW[:, :n], cdW[:, n].copy())
            dW = None
        # (monolithic: the flux to first order in the correction, and the corrected fluctuation)
        part = EngineAnswer(sigma, tangent, op.to_full(x + dx)[:, : p.nloc], cur.trial, dW, nl)
        part.residual = ratio
        ans.put(ids, part)

    def destroy(self) -> None:
        self.solver.destroy()

