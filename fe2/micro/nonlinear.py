"""The nonlinear, history-dependent cell problem: an RVE at every macro point.

:class:`NonlinearCellProblem` is a template shared by all macro points of a rank, like
the linear :class:`~fe2.micro.cell.CellProblem`, and a
:class:`~fe2.materials.base.PointMaterial`: ``evaluate(E)`` solves the cell problem of
every macro point from its committed micro state (fluctuation and every law's internal
variables, kept in a :class:`~fe2.materials.state.StateBank`) and returns the
homogenized fluxes and consistent tangents.

The template builds the immutable description of its micro problem
(:attr:`NonlinearCellProblem.problem`, :class:`~fe2.micro.problem.MicroProblem`) and hands
it to its micro engine (:mod:`fe2.micro.engines`: ``"batched"`` or ``"reference"``), which
solves

    R(w; v) = int_Y  flux(E + G w, state) . G v  dx = 0    for all periodic v

for the fluctuation ``w`` of each point by the rules of :mod:`fe2.micro.rules` and returns
the homogenized flux, the consistent tangent from the sensitivities

    dSigma/dE = <T> - B^T A^-1 B / |Y|,

the trial state and the predictor ``dw/dE`` of the next evaluation. The template keeps the
history: it gives the engine each point's committed state and predictor, stores the
answers as trial state, commits and reverts, and reports the first failed point. With a
load balancer (:mod:`fe2.parallel.balance`) the evaluations spread over the ranks, with
any engine.

How the micro Newton is coupled to the macro one is the description's ``scheme``
(:mod:`fe2.micro.problem`): ``"nested"`` (the default here: every evaluation answers the
converged cell problem) or ``"monolithic"`` (FE² runs' default, ``[solver] scheme``: every
evaluation is one micro Newton step; :attr:`NonlinearCellProblem.settled` says which points
are solved, and the macro Newton iterates until all are).

A point asked again for exactly the input of its last (settled) answer gets that answer
back with no solve (its trial state is that answer's). This happens at the first macro iterate of every
load-controlled step, which evaluates each point at its committed macro gradient: the
converged stress and consistent tangent there are already known. A fresh solve would
return the same stress but, at a point left on its yield surface, an elastic or a plastic
tangent by the sign of round-off (which differs between rank counts). Laws that depend on
the time increment always solve.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from mpi4py import MPI

from fe2.core import physics as physics_registry
from fe2.core.errors import SolverError, point_failure
from fe2.materials.base import NonlocalResponse
from fe2.materials.state import StateBank
from fe2.micro.cell import CellProblem
from fe2.micro.engines import engine_class
from fe2.micro.engines.base import MicroEngine, PointBatch, Predictor
from fe2.micro.phases import Phase
from fe2.micro.problem import MicroProblem
from fe2.micro.rules import NewtonRules
from fe2.parallel.balance import LoadBalancer
from fe2.parallel.layout import StateLayout

if TYPE_CHECKING:
    from fe2.geometry.rvemesh import RVEMesh

__all__ = ["NonlinearCellProblem"]


class NonlinearCellProblem(CellProblem):
    """Nonlinear, history-dependent periodic cell problem template, shared by many macro
    points (collective on ``rve_mesh.mesh.comm``, normally ``MPI.COMM_SELF``).

    Each phase has a law (:class:`fe2.materials.base.Law`), integrated at all micro
    quadrature points of the phase in one vectorised call (see the module docstring for
    the micro problem and the engines).

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
    elastic cell and the norm of the internal forces before periodic condensation; see
    :mod:`fe2.micro.rules`), ``max_iterations``, ``quadrature_degree`` (of the micro
    points; default :func:`fe2.core.quadrature.default_degree`, ``max(2 (degree - 1), 1)``
    on affine cells), ``engine``: a name in :data:`fe2.micro.engines.ENGINES`:
    ``"batched"`` (default: all points together, no assembly) or ``"reference"`` (one
    point at a time with dolfinx and dolfinx_mpc assembly: the slow, obviously-correct
    path the batched engine is tested against). Both run on a template distributed over
    several processes, every solve collective on them.
    """

    linear = False

    def __init__(self, rve_mesh: RVEMesh, phases: Sequence[Phase], physics: str = "elasticity",
                 degree: int = 1, petsc_options: Mapping[str, Any] | None = None,
                 source: str = "phases", rtol: float = 1e-10, max_iterations: int = 25,
                 quadrature_degree: int | None = None, engine: str = "batched", boundary: str = "periodic",
                 scheme: str = "nested") -> None:
        engine_type = engine_class(engine)
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
        self.reference = spec.reference_gradient(self.gdim)
        self.num_micro_points = self.quadrature.num_points
        driven = [ph.law.driven for ph in self.phases]
        damage_volume = self.comm.allreduce(float(sum(self.micro_weights[idx].sum()
                                                      for idx, d in zip(self.phase_points, driven) if d)))
        #: the immutable description of the micro problem that the engine gets
        self.problem = MicroProblem(
            space=self.space, quadrature=self.quadrature, kinematics=self.kinematics, size=self.size,
            phases=self.phases, phase_points=tuple(self.phase_points), volume=self.volume,
            damage_volume=damage_volume, reference=self.reference, unit_residual=self.B_residual,
            force_gram=self._unit_force_gram(), elastic_solver=self.ksp,
            rules=NewtonRules(rtol=rtol, max_iterations=max_iterations),
            elastic_tangent=self._elastic_tangent(), elastic_sensitivity=self.unit_fluctuations,
            petsc_options=petsc_options, scheme="nested" if any(driven) else scheme)
        self.nonlocal_form = self.problem.nonlocal_form
        #: the name of the micro engine (:data:`fe2.micro.engines.ENGINES`)
        self.engine_name = engine
        self._engine_type = engine_type
        self._engine: MicroEngine | None = None
        #: the work done on this rank so far (:meth:`statistics`)
        self.stats: dict[str, float] = {"reused": 0, **dict.fromkeys(engine_type.counters, 0)}
        #: spreads the engine's points over the macro ranks (:meth:`balance_over`)
        self.balancer: LoadBalancer | None = None
        self._state_keys = [f"state_{ph.name}" for ph in self.phases]
        self.bank = StateBank()
        self.resize(0)

    @property
    def engine(self) -> MicroEngine:
        """The micro engine (made on first use: collective on the template's communicator then)."""
        if self._engine is None:
            self._engine = self._engine_type(self.problem)
        return self._engine

    @property
    def rules(self) -> NewtonRules:
        """The micro Newton's rules (:mod:`fe2.micro.rules`)."""
        return self.problem.rules

    def set_rules(self, **changes: Any) -> None:
        """Change rules of the micro Newton (e.g. ``max_iterations=1``): a new description
        of the micro problem, and a new engine at the next evaluation (collective on the
        template's communicator: the old engine is destroyed)."""
        self.problem = self.problem.with_rules(**changes)
        if self._engine is not None:
            self._engine.destroy()
            self._engine = None

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
        # the predictor of w (the engines' start, :meth:`fe2.micro.engines.base.MicroEngine.start`):
        # the macro gradient of the last solution and dw/dE there (zero: no prediction)
        self.bank.allocate("predictor_E", np.zeros(self.size), N)
        self.bank.allocate("predictor_dwdE", np.zeros((self.nloc, self.size)), N)
        # the last answer and its input (macro gradient, nonlocal drive, kind: 0 no answer
        # yet, 1 local, 2 driven): asked again for the same input from the same committed
        # state, a point answers without a solve (:meth:`_to_solve`)
        self.bank.allocate("answer_input", np.zeros(self.size + 2), N)
        virgin = np.zeros(self._answer_size)
        virgin[-1] = 1.0  # no residual yet, nothing to settle
        self.bank.allocate("answer", virgin, N)
        for ph, idx, key in zip(self.phases, self.phase_points, self._state_keys):
            virgin = np.broadcast_to(ph.law.initial_state(1)[0], (idx.size, ph.law.state_size))
            self.bank.allocate(key, virgin, N)

    @functools.cached_property
    def layout(self) -> StateLayout:
        """The partition-independent layout of the per-point state (checkpoints; collective
        on the template's communicator the first time)."""
        return StateLayout(self.space, self.quadrature, dict(zip(self._state_keys, self.phase_points)),
                           (self.box_min, self.box_max))

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

    def unloading_tangent(self) -> np.ndarray | None:
        """The elastic cell's homogenized tensor at every point (small strain, no softening
        phase: a plastic RVE unloads elastically)."""
        p = self.problem
        if self.kinematics != "small" or p.nonlocal_form or any(ph.law.driven for ph in p.phases):
            return None
        return np.broadcast_to(p.elastic_tangent, (self.num_points, *p.elastic_tangent.shape))

    def upgrade_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        state = dict(state)
        answer = state.get("answer")
        if answer is not None and answer.shape[1:] == (self._answer_size - 2,):
            # a checkpoint of fe2 before the monolithic scheme: its answers were converged
            pad = np.broadcast_to([0.0, 1.0], (answer.shape[0], 2))
            state["answer"] = np.concatenate([answer, pad], axis=1)
        return state

    def set_local_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a committed state in this process's own layout (the bank's arrays)."""
        self.bank.set_state(self.upgrade_state(state))
        self.num_points = self.bank.committed["w"].shape[0]
        if self.balancer is not None:
            self.balancer.resize(self.num_points)

    def balance_over(self, comm: MPI.Comm) -> None:
        """Let the engine spread the evaluations of the points of all ranks of ``comm`` (the
        macro communicator) by measured cost (:class:`~fe2.parallel.balance.LoadBalancer`);
        every later :meth:`evaluate` is then collective on ``comm``. No effect on one rank. A
        template distributed over a group balances with the other groups' templates:
        ``comm`` joins rank ``j`` of every group (:meth:`fe2.parallel.groups.GroupMaterial.balance_between`)."""
        if comm.size > 1:
            self.balancer = LoadBalancer(comm)
            self.balancer.resize(self.num_points)

    def statistics(self) -> dict[str, float]:
        """Micro work done on this rank so far: ``reused`` (evaluations answered by the
        point's last answer, asked again for the same input: no solve), the engine's
        counters summed over its evaluations (:attr:`fe2.micro.engines.base.MicroEngine.counters`:
        ``solves`` (point evaluations), ``newton_iterations``, ``cuts``, ``seconds`` (in the
        engine), ``factorisations`` (numeric, of a point's own Jacobian) and, with the
        batched engine, ``template_solves`` (solves with the elastic cell's factorisation
        instead), ``shortcut`` (evaluations that needed no factorisation of their own) and
        ``lu_fallbacks`` (Cholesky factorisations a pivoting LU did instead)) and, when
        balanced, ``moved`` (evaluations of other ranks' points done here)."""
        out: dict[str, float] = dict(self.stats)
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
        op = self.problem.operators
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
        the micro gradients from the compiled expression (as the reference engine has them)."""
        N, n = E.shape
        out = np.zeros(N)
        known = True
        Ec, w, expr = self._micro_gradient
        for i in range(N):
            Ec.value[:] = E[i]
            self.space.set_fluctuation(w, self.bank.committed["w"][i])
            g = self.quadrature.evaluate(expr, n)
            for ph, idx, key in zip(self.phases, self.phase_points, self._state_keys):
                zz = ph.law.out_of_plane_stress(g[idx], self.bank.committed[key][i])
                if zz is None:
                    known = False
                    break
                out[i] += zz @ self.micro_weights[idx]
        if not all(self.comm.allgather(known)):
            return None
        return self.comm.allreduce(out) / self.volume

    def _elastic_tangent(self) -> np.ndarray:
        """The elastic cell's homogenized tensor as the engines average it: the phases'
        tensors over the micro points' weights (collective), less ``B^T W / |Y|`` (the
        effective tensor's mean part integrates the phase volumes exactly, which differs on
        curved cells integrated below the default degree)."""
        w = self.micro_weights
        mean = sum(w[idx].sum() * np.asarray(ph.tensor, float) for ph, idx in zip(self.phases, self.phase_points))
        mean = self.comm.allreduce(mean) / self.volume
        return mean - self.space.dot(self.B, self.unit_fluctuations) / self.volume

    def _unit_force_gram(self) -> np.ndarray:
        """``S^T S`` (``n x n``), ``S`` the internal forces of the phases' elastic stress of
        each unit macro gradient, assembled without the periodic condensation (collective)."""
        S = self.space.unit_vectors(self._L, self.E, condensed=False)
        return self.comm.allreduce(S.T @ S, op=MPI.SUM)

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
        """Floats of a stored answer: flux, tangent, (nonlocal form) the sensitivities, and
        the micro residual relative to its tolerance (:attr:`EngineAnswer.residual
        <fe2.micro.engines.base.EngineAnswer.residual>`, under the monolithic scheme; 0: no
        residual yet in the load step) and whether it is settled (:attr:`settled`)."""
        n = self.size
        return n + n * n + (2 * n + 2 if self.nonlocal_form else 0) + 2

    @property
    def scheme(self) -> str:
        """How the micro Newton is coupled to the macro one (:attr:`fe2.micro.problem.MicroProblem.scheme`;
        an RVE with a nonlocally driven damage phase is always nested)."""
        return self.problem.scheme

    @property
    def settled(self) -> np.ndarray:
        """``(N,)`` whether each point's cell problem is solved at its last answer: always
        under the nested scheme; under the monolithic one, once its micro residual is within
        its tolerance (or stagnates within the rules' slack of it over the evaluations of a
        load step: :meth:`fe2.micro.rules.NewtonRules.settled`)."""
        return self.bank.trial["answer"][:, -1] == 1.0

    def unsettled_points(self) -> int:
        """Points whose cell problem is not yet solved at their last answer (:attr:`settled`):
        the macro Newton iterates until there are none (not collective)."""
        return int(np.count_nonzero(~self.settled))

    def commit(self) -> None:
        self.bank.trial["answer"][:, -2] = 0.0  # the next step has no earlier residual
        super().commit()

    def revert(self) -> None:
        super().revert()
        self.bank.trial["answer"][:, -2] = 0.0

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
        same = np.all(last[:, :n] == E, axis=1) & self.settled
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
        if todo.size or self.balancer is not None:
            self._solve(todo, E[todo], None if e_nl is None else e_nl[todo])
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


    def point_batch(self, rows: np.ndarray, E: np.ndarray, e_nl: np.ndarray | None = None) -> PointBatch:
        """The engine's input for points ``rows`` with macro gradients ``E`` ``(m, n)`` (and
        nonlocal drives ``e_nl``): their committed states and the engine's start from their
        committed fluctuations and predictors (:meth:`fe2.micro.engines.base.MicroEngine.start`)."""
        committed, trial = self.bank.committed, self.bank.trial
        start = self.engine.start(E, rows, committed["w"],
                                  Predictor(trial["w"], trial["predictor_dwdE"], trial["predictor_E"]))
        return PointBatch(E, start, [committed[key][rows] for key in self._state_keys], e_nl)

    def _solve(self, todo: np.ndarray, E: np.ndarray, e_nl: np.ndarray | None) -> None:
        """Solve points ``todo`` (macro gradients ``E``) with the engine, balanced over the
        ranks if so set (then collective, also when ``todo`` is empty)."""
        trial = self.bank.trial
        engine = self.engine
        batch = self.point_batch(todo, E, e_nl)
        if self.balancer is not None:
            ans = self.balancer.evaluate(engine, batch, points=todo)
        else:
            ans = engine.evaluate(batch)
        for key, value in ans.counters.items():
            self.stats[key] = self.stats.get(key, 0) + value
        if ans.failures:
            first = min(ans.failures)
            raise point_failure(int(todo[first]), ans.failures[first])
        answers = trial["answer"]
        if self.problem.monolithic:
            ratio = np.full(todo.size, np.nan) if ans.residual is None else ans.residual
            if np.isnan(ratio).any():  # (an engine that did not say: never count such a point solved)
                raise RuntimeError(f"micro engine {engine.name!r} did not report the micro residual of "
                                   f"{int(np.isnan(ratio).sum())} points (EngineAnswer.residual)")
            # stagnation counts only between evaluations at the same macro gradient (the settle
            # rounds at an equilibrium), not across macro iterates
            n = self.size
            same = np.all(trial["answer_input"][todo, :n] == E, axis=1)
            answers[todo, -1] = self.rules.settled(ratio, np.where(same, answers[todo, -2], 0.0))
            answers[todo, -2] = ratio
        else:  # (converged: the residual's round-off is of no further use)
            answers[todo, -2:] = 0.0, 1.0
        self._store(todo, ans.flux, ans.tangent, ans.nonlocal_)
        trial["w"][todo] = ans.fluctuation
        if ans.sensitivity is not None:
            trial["predictor_dwdE"][todo] = ans.sensitivity
            trial["predictor_E"][todo] = E
        for key, s_k in zip(self._state_keys, ans.states):
            trial[key][todo] = s_k

    def _snapshot_state(self, E: np.ndarray, point: int | None, trial: bool = False
                        ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Macro point ``point``'s committed (or ``trial``) fluctuation and phase states."""
        if point is None or not 0 <= point < self.num_points:
            raise ValueError(f"a nonlinear cell's snapshot needs the index of one of its {self.num_points} macro "
                             f"points, got {point!r}")
        state = self.bank.trial if trial else self.bank.committed
        return state["w"][point], [state[key][point] for key in self._state_keys]

    def destroy(self) -> None:
        if self._engine is not None:
            self._engine.destroy()
        super().destroy()
