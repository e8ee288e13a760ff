"""Load stepping and path following of a :class:`~fe2.macro.problem.MacroProblem`.

:func:`follow` drives the macro problem along its loading in the pseudo-time ``lam`` (each
Dirichlet value and traction is its value times its amplitude at ``lam``, or times ``lam``
itself: then ``lam`` is the load factor; :mod:`fe2.macro.loads`) and yields every
converged, committed step.
The controls are registered in :data:`CONTROLS` (``[loading] control``), one class each:

``load`` (default, :class:`LoadControl`)
    The load factor is prescribed: equal steps (or the listed factors) and the amplitudes'
    corners (:func:`load_factors`), each halved when
    it fails (a micro or macro solve that does not converge) down to ``min_step``, grown
    by ``growth`` after an easy step. With prescribed displacements this is displacement
    control; it passes a peak load but stops where the equilibrium path turns back
    (snap-back): there no state exists at the next, larger load factor.

``dissipation`` (:class:`DissipationControl`)
    Dissipation-based arc length (Gutiérrez 2004; Verhoosel, Remmers & Gutiérrez 2009).
    Load control until a step dissipates more than ``dissipation_onset`` times its external
    work; from then on each step prescribes the energy ``dtau`` it dissipates and the load
    factor is an unknown. For a material that unloads secantly (damage) the energy
    dissipated between two equilibrium states (0 -> 1) is, exactly,

        Delta D = (G0 (lam1 - lam0) - lam0 (G1 - G0)) / 2,

    with ``G = w . f_int(x) - f_hat . x`` (:meth:`~fe2.macro.pattern.LoadPattern.conjugate_force`:
    ``w`` the prescribed displacements and ``f_hat`` the tractions at load factor 1), the
    difference between the work done (trapezoidal, as ``MacroProblem.work`` counts it) and
    the change of the stored energy ``lam G / 2``. The constraint ``Delta D = dtau`` is
    added to the equilibrium equations and Newton (:class:`BorderedSystem`) solves for
    ``(x, lam)`` together (a
    bordered system: two solves with one factorisation per iteration, the Jacobian's
    border ``dG/dx = K^T w - f_hat`` from the consistent tangent). Dissipation grows
    monotonically along any path, also where force and displacement both decrease, so
    snap-back is followed. Each step starts from a secant predictor (the last step's
    increment scaled by ``dtau / Delta D_last``); ``dtau`` is halved when a step fails and
    grown by ``growth`` after an easy one up to ``dissipation_increment`` (if set), and
    reduced so that the predicted load increment stays below the nominal step.
    If load control fails before any step has dissipated enough (brittle snap-back right
    at the onset of damage), dissipation control starts from the last converged state with
    ``dtau = dissipation_onset x`` the stored energy ``lam G / 2`` and a predictor just
    past that state. When a dissipation-controlled step fails three times in a row (at a
    bifurcation of a local softening continuum, damage points next to the band can cycle
    between loading and unloading from one Newton iterate to the next), one
    load-controlled step of the nominal size is tried before halving further. When the
    predicted load factor reaches the final one, the last steps are load-controlled again
    so that the run ends exactly at the final load.
    Intermediate ``factors`` are not visited once dissipation control has started.

All functions are collective on the problem's communicator. The module imports no
PETSc or dolfinx, so that configuration validation can read :data:`CONTROLS`
(:func:`follow` imports :mod:`fe2.macro.pattern` when it runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fe2.core.errors import SolverError
from fe2.solvers.newton import NewtonReport, newton

if TYPE_CHECKING:
    from fe2.macro.pattern import LoadPattern
    from fe2.macro.problem import MacroProblem

__all__ = ["BorderedSystem", "CONTROLS", "ControlSpec", "DissipationControl", "FALLBACK_FAILURES", "LoadControl",
           "Step", "dissipation_increment", "dissipation_newton", "follow", "load_factors"]

#: failed dissipation-controlled attempts in a row after which one load-controlled step is tried
FALLBACK_FAILURES = 3


@dataclass
class Step:
    """A converged, committed load step."""

    number: int
    load_factor: float
    report: NewtonReport
    control: str  #: ``"load"`` or ``"dissipation"``
    dissipation: float  #: energy dissipated in the step, ``(G0 dlam - lam0 dG) / 2``
    wall: float  #: seconds spent on the step (failed attempts excluded)
    material_points: int = 0  #: material (RVE) evaluations on all ranks, failed attempts included
    #: the path-following state after the step (plain numbers, see :func:`follow`'s ``resume``)
    state: dict = field(default_factory=dict)
    #: the solution of the step before (local array of ``problem.x``), for ``resume``
    x_prev: np.ndarray | None = None


def load_factors(loading) -> list[float]:
    """The pseudo-times (load factors) that the load-controlled steps of a ``[loading]``
    table end at: ``factors``, or ``steps`` equal steps to ``end_time`` (default: the last
    time point of the amplitudes, or 1), and every time point of the amplitudes before the
    end (where a load may turn round) that is not within 1e-9 end times of those."""
    amplitudes = getattr(loading, "amplitudes", None) or {}
    corners = sorted({float(p[0]) for table in amplitudes.values() for p in table})
    if loading.factors is not None:
        times = [float(f) for f in loading.factors]
    else:
        end = loading.end_time if getattr(loading, "end_time", None) is not None else (
            corners[-1] if corners and corners[-1] > 0 else 1.0)
        times = [end * (k + 1) / loading.steps for k in range(loading.steps)]
    end = times[-1]
    tol = 1e-9 * end
    return sorted(times + [c for c in corners if tol < c < end - tol and min(abs(c - t) for t in times) > tol])


def dissipation_increment(G0: float, lam0: float, G: float, lam: float) -> float:
    """Energy dissipated between equilibrium states ``(lam0, G0)`` and ``(lam, G)`` of a
    secantly unloading body: ``(G0 (lam - lam0) - lam0 (G - G0)) / 2``."""
    return 0.5 * (G0 * (lam - lam0) - lam0 * (G - G0))


# --- the bordered arc-length system -------------------------------------------------------
class BorderedSystem:
    """Equilibrium plus the constraint ``Delta D = dtau`` from the committed state
    ``(lam0, G0)``, unknowns ``(x, lam)``, as a :class:`~fe2.solvers.newton.NewtonSystem`.

    Converged when the equilibrium residual is below ``max(rtol r_ref, atol)`` (``r_ref``:
    the first residual or the residual of the predicted load increment at fixed ``x``,
    whichever is larger) and the constraint error below ``rtol dtau``. Each update is two
    solves with one factorisation (the Jacobian's border ``dG/dx = K^T w - f_hat`` from the
    consistent tangent). ``pattern`` is the load pattern of ``problem``."""

    unknown = "x"

    def __init__(self, problem: MacroProblem, pattern: LoadPattern, lam0: float, G0: float, lam: float,
                 dtau: float, rtol: float, atol: float, report: NewtonReport) -> None:
        self.problem, self.pattern, self.lam0, self.G0, self.lam, self.dtau = problem, pattern, lam0, G0, lam, dtau
        self.rtol, self.atol, self.report = rtol, atol, report
        self.d1, self.d2, self.aux = (problem.b.duplicate() for _ in range(3))
        self.r_ref: float | None = None
        self.g = 0.0
        self.g_floor = 1e-13 * abs(lam0 * G0)

    def destroy(self) -> None:
        for v in (self.d1, self.d2, self.aux):
            v.destroy()

    def _assemble(self) -> float:
        p = self.problem
        t0 = time.perf_counter()
        r = p.assemble_residual()
        self.g = dissipation_increment(self.G0, self.lam0, self.pattern.conjugate_force(), self.lam) - self.dtau
        self.pattern.load_derivative(self.d2)  # d(residual)/d(lam), solved in place in solve_update
        if self.r_ref is None:
            self.r_ref = max(r, abs(self.lam - self.lam0) * self.d2.norm())
        self.report.time_macro += time.perf_counter() - t0
        return r if np.isfinite(self.g) else float("nan")

    def residual(self) -> float:
        self.problem.set_load(self.lam)
        self.problem.update_material(self.report)
        return self._assemble()

    def converged(self, iteration: int, norm: float) -> bool:
        settled = self.problem.unsettled_points() == 0  # (collective: on every iteration)
        equilibrium = norm <= max(self.rtol * self.r_ref, self.atol) and iteration > 0 or norm <= self.atol
        return equilibrium and settled and abs(self.g) <= max(self.rtol * self.dtau, self.g_floor)

    def solve_update(self) -> float:
        p, d1, d2, aux = self.problem, self.d1, self.d2, self.aux
        t0 = time.perf_counter()
        p.assemble_jacobian()
        p.solve(p.b, d1)
        p.solve(d2.copy(aux), d2)
        self.pattern.conjugate_force_gradient(aux)  # dG/dx
        cd1, cd2 = aux.dot(d1), aux.dot(d2)
        # x + dx with dx = -d1 - dlam d2 satisfies linearized equilibrium; the linearized
        # constraint g - lam0/2 dG/dx . dx + G0/2 dlam = 0 gives dlam
        denom = 0.5 * (self.G0 + self.lam0 * cd2)
        if not abs(denom) > 1e-12 * (abs(self.G0) + abs(self.lam0 * cd2)):
            raise SolverError("the dissipation constraint is singular here (the tangent response "
                              "dissipates no energy, e.g. elastic unloading); use load control")
        self.dlam = -(self.g + 0.5 * self.lam0 * cd1) / denom
        d1.axpy(self.dlam, d2)  # the whole update, negated
        self.report.time_macro += time.perf_counter() - t0
        return d1.norm()

    def step(self, alpha: float) -> float:
        p = self.problem
        p.add_to_solution(-alpha, self.d1)
        self.lam += alpha * self.dlam
        p.set_load(self.lam)
        p.update_material(self.report)
        return self._assemble()

    def accept(self, norm: float, new_norm: float) -> bool:
        return True

    def status(self) -> str:
        return f"  dissipation error {self.g:+.3e}  load factor {self.lam:.8g}"


def dissipation_newton(problem: MacroProblem, pattern: LoadPattern, lam0: float, G0: float, lam: float,
                       dtau: float, rtol: float, atol: float, max_iterations: int,
                       log: Callable[[str], None] | None = None,
                       stop: Callable[[], None] | None = None) -> tuple[NewtonReport, float]:
    """Newton on the :class:`BorderedSystem` from the current ``x`` (a predictor) and load
    factor ``lam``, ``pattern`` the load pattern of ``problem``. Returns the report and the
    load factor reached; a material failure or a singular constraint ends it with
    ``report.failure`` set. ``stop``: see :func:`~fe2.solvers.newton.newton`."""
    rep = NewtonReport()
    system = BorderedSystem(problem, pattern, lam0, G0, lam, dtau, rtol, atol, rep)
    try:
        newton(system, max_iterations, log=log, report=rep, stop=stop)
    except SolverError as err:  # a material (RVE) failure or a singular system: raised on all ranks
        rep.converged = False
        rep.failure = str(err)
        if log:
            log(f"    failure: {err}")
    finally:
        system.destroy()
    return rep, system.lam


# --- the path and its controls ---------------------------------------------------------------
@dataclass
class _Path:
    """The last converged point of the path and what every control needs to know."""

    problem: Any
    loading: Any
    solver: Any
    say: Callable[[str], None]  #: what the path does: failures, cut-backs, changes of control
    log: Callable[[str], None] | None  #: Newton iterations
    targets: list[float]
    lam: float = 0.0  #: load factor of the last converged step
    k: int = 0  #: converged steps
    G: float = 0.0  #: conjugate force there (dissipation control only)
    lam_prev: float = 0.0  #: load factor of the step before
    x_prev: np.ndarray = field(default_factory=lambda: np.zeros(0))  #: solution of the step before
    points: int = 0  #: material evaluations since the last converged step (all ranks, failed attempts too)
    #: asked before every step and Newton update whether to go on (raises to stop), or None
    stop: Callable[..., None] | None = None
    #: the problem's load pattern (controls that track dissipation only)
    pattern: LoadPattern | None = None

    def attempt(self, msg: str) -> None:
        """Announce an attempt at a step: shown with the Newton iterations it introduces."""
        if self.log is not None:
            self.log(msg)

    @property
    def lam_end(self) -> float:
        return self.targets[-1]

    @property
    def nominal_end(self) -> float:
        """The nominal increment of the last load step."""
        t = self.targets
        return t[-1] - t[-2] if len(t) > 1 else t[-1]

    @property
    def tol(self) -> float:
        return 1e-12 * max(1.0, abs(self.lam_end))


@dataclass
class Attempt:
    """A converged (not yet committed) attempt at the next step."""

    report: NewtonReport
    load_factor: float
    control: str


class CannotProceed(SolverError):
    """Load control failed at its smallest increment (``lam_try``: the factor it tried)."""

    def __init__(self, message: str, lam_try: float) -> None:
        super().__init__(message)
        self.lam_try = lam_try


class LoadControl:
    """The load factor is prescribed: the next target of :func:`load_factors` (or, when
    ``landing``, the final one), approached in increments of ``dlam`` that are halved when
    a step fails, down to ``min_step``, and grown by ``growth`` after an easy step up to
    the target's nominal increment."""

    name = "load"
    #: the control needs the conjugate force G of every step
    tracks_dissipation = False

    def __init__(self, path: _Path) -> None:
        self.path = path
        self.dlam = path.targets[0]
        self.current_target: float | None = None
        self.nominal = self.dlam
        self.landing = False

    def attempt(self) -> Attempt | None:
        """Try the next step: an :class:`Attempt` when it converged; None after a failure
        that leaves a smaller increment to try; :class:`CannotProceed` when none is left."""
        p = self.path
        problem, lam = p.problem, p.lam
        target = p.lam_end if self.landing else next(t for t in p.targets if t > lam + p.tol)
        i = p.targets.index(target)
        self.nominal = nominal = target - (p.targets[i - 1] if i else 0.0)
        if target != self.current_target:  # a new target: its nominal increment caps the step
            self.dlam = min(self.dlam, nominal) if self.current_target is not None else nominal
            self.current_target = target
        lam_try = min(lam + self.dlam, target)
        if target - lam_try < 1e-9 * nominal:  # do not leave a sliver before the target
            lam_try = target
        p.attempt(f"  step {p.k + 1}: load factor {lam_try:.6g} (increment {lam_try - lam:.3g})")
        problem.set_load(lam_try)
        problem.set_time_increment(lam_try - lam)
        rep = problem.newton(p.solver.rtol, p.solver.atol, p.solver.max_iterations, log=p.log, stop=p.stop)
        p.points += problem.comm.allreduce(rep.material_points)
        if rep.converged:
            return Attempt(rep, lam_try, "load")
        problem.revert()
        self.dlam = 0.5 * (lam_try - lam)
        reason = rep.failure or "no convergence"
        if self.dlam < p.loading.min_step:
            raise CannotProceed(f"cannot proceed beyond load factor {lam:.6g}: the step to {lam_try:.6g} failed "
                                f"({reason}) and halving it would go below min_step = {p.loading.min_step:g}",
                                lam_try)
        p.say(f"    step failed ({reason}); cutting the increment to {self.dlam:.3g}")
        return None

    def converged(self, attempt: Attempt, dissipated: float, work: float) -> None:
        """After the step of ``attempt`` was committed (it dissipated ``dissipated`` and the
        external forces did ``work``): grow the increment after an easy step."""
        if attempt.report.iterations <= self.path.loading.easy_iterations:
            self.dlam = min(self.dlam * self.path.loading.growth, self.nominal)

    STATE = ("dlam", "current_target", "nominal", "landing")

    def state(self) -> dict[str, Any]:
        """What the control needs to go on after a restart (plain numbers)."""
        return {k: getattr(self, k) for k in self.STATE}

    def restore(self, state: dict[str, Any]) -> None:
        """Take :meth:`state` back; a target the (changed) loading no longer has is dropped."""
        for k in self.STATE:
            setattr(self, k, state[k])
        if self.current_target not in self.path.targets:
            self.current_target = None


class DissipationControl:
    """Dissipation-based arc length (see the module docstring): load control until the
    onset, then steps that prescribe their dissipated energy ``dtau``, one load-controlled
    step after :data:`FALLBACK_FAILURES` failures in a row, and load control again to land
    on the final load factor."""

    name = "dissipation"
    tracks_dissipation = True

    def __init__(self, path: _Path) -> None:
        self.path = path
        self.load = LoadControl(path)
        self.mode = "load"  # -> "dissipation" after the onset, -> "landing" for the final load-controlled steps
        self.dD_last = 0.0
        self.dtau = self.dtau_min = 0.0
        self.dtau_max = path.loading.dissipation_increment or np.inf
        self.first_increment: float | None = None  # predictor increment right after load control failed
        self.failures, self.fell_back = 0, False  # failed dissipation steps in a row; load control tried since

    def _land(self, dlam: float) -> None:
        self.mode, self.load.landing, self.load.dlam = "landing", True, dlam

    STATE = ("mode", "dD_last", "dtau", "dtau_min", "first_increment", "failures", "fell_back")

    def state(self) -> dict[str, Any]:
        """What the control needs to go on after a restart (plain numbers)."""
        return {**{k: getattr(self, k) for k in self.STATE}, "load": self.load.state()}

    def restore(self, state: dict[str, Any]) -> None:
        """Take :meth:`state` back."""
        for k in self.STATE:
            setattr(self, k, state[k])
        self.load.restore(state["load"])

    def attempt(self) -> Attempt | None:
        """As :meth:`LoadControl.attempt`; raises :class:`~fe2.core.errors.SolverError` when
        the path cannot be followed further."""
        if self.mode != "dissipation":
            return self._load_attempt()
        p = self.path
        problem, lam = p.problem, p.lam
        if self.first_increment is not None:  # right after load control failed: just past its last state
            dlam_pred = self.first_increment
            ratio = dlam_pred / (lam - p.lam_prev)
        else:
            ratio = self.dtau / self.dD_last
            dlam_pred = ratio * (lam - p.lam_prev)
        if dlam_pred > p.nominal_end:  # little dissipation per load: keep the load increment nominal
            ratio *= p.nominal_end / dlam_pred
            self.dtau *= p.nominal_end / dlam_pred
            dlam_pred = p.nominal_end
        if lam + dlam_pred >= p.lam_end - p.tol:
            self._land(min(dlam_pred, p.lam_end - lam))
            p.say(f"  the final load factor {p.lam_end:.6g} is near: load control again")
            return None
        p.attempt(f"  step {p.k + 1}: dissipation control, dissipated energy {self.dtau:.4g} "
              f"(predicted load factor {lam + dlam_pred:.6g})")
        problem.add_to_solution(ratio, problem.u_committed - p.x_prev)
        problem.set_time_increment(abs(dlam_pred))
        rep, lam_try = dissipation_newton(problem, p.pattern, lam, p.G, lam + dlam_pred, self.dtau, p.solver.rtol,
                                          p.solver.atol, p.solver.max_iterations, p.log, p.stop)
        p.points += problem.comm.allreduce(rep.material_points)
        if rep.converged and lam_try > p.lam_end + p.tol:
            problem.revert()
            self._land(min(dlam_pred, p.lam_end - lam) if dlam_pred > 0 else p.lam_end - lam)
            p.say(f"    load factor {lam_try:.6g} passes the final one: load control again")
            return None
        if rep.converged:
            return Attempt(rep, lam_try, "dissipation")
        problem.revert()
        self.dtau *= 0.5
        self.failures += 1
        reason = rep.failure or "no convergence"
        if self.failures >= FALLBACK_FAILURES and not self.fell_back:
            # e.g. a bifurcation where damage points cycle between loading and unloading
            self.mode, self.fell_back = "load", True
            self.load.dlam = p.nominal_end  # a larger step can land clearly on one branch where small ones cycle
            p.say(f"    step failed ({reason}); {self.failures} failures under dissipation control: "
                  "trying load control")
            return None
        if self.dtau < self.dtau_min:
            raise SolverError(
                f"cannot proceed beyond load factor {lam:.6g} (dissipation control): the step dissipating "
                f"{2 * self.dtau:.3g} failed ({reason}) and halving it would go below "
                f"{self.dtau_min:.3g} (min_step as a fraction of the nominal step)")
        p.say(f"    step failed ({reason}); cutting the dissipation increment to {self.dtau:.3g}")
        return None

    def _load_attempt(self) -> Attempt | None:
        p = self.path
        try:
            return self.load.attempt()
        except CannotProceed as err:
            psi = 0.5 * p.lam * p.G  # stored energy
            if self.mode == "load" and p.k > 0 and psi > 0 and not self.fell_back:
                self.mode, self.first_increment = "dissipation", err.lam_try - p.lam
                self.dtau = min(p.loading.dissipation_onset * psi, self.dtau_max)
                self.dtau_min = self.dtau * p.loading.min_step / self.load.nominal
                p.say(f"    load control cannot pass load factor {p.lam:.6g}: dissipation control from here, "
                      f"first dissipation increment {self.dtau:.3g} ({p.loading.dissipation_onset:g} x the stored "
                      "energy)")
                return None
            raise SolverError(str(err) + ("; dissipation control failed there too" if self.fell_back else "")) \
                from None

    def converged(self, attempt: Attempt, dissipated: float, work: float) -> None:
        """After a committed step: grow ``dtau`` (or the load increment) after an easy step;
        switch to dissipation control once a load-controlled step dissipated more than
        ``dissipation_onset`` of its work."""
        p, loading = self.path, self.path.loading
        self.failures, self.fell_back = 0, False
        if self.mode == "dissipation":
            self.dD_last, self.first_increment = dissipated, None
            if attempt.report.iterations <= loading.easy_iterations:
                self.dtau = min(self.dtau * loading.growth, self.dtau_max)
            return
        self.load.converged(attempt, dissipated, work)
        if self.mode == "load" and dissipated > 0 and dissipated > loading.dissipation_onset * work:
            self.mode, self.dtau, self.dD_last = "dissipation", min(dissipated, self.dtau_max), dissipated
            self.dtau_min = dissipated * loading.min_step / self.load.nominal
            p.say(f"    the step dissipated {dissipated:.4g} ({dissipated / work:.1%} of its work): "
                  "dissipation control from here")


@dataclass(frozen=True)
class ControlSpec:
    """A path-following control of the registry.

    ``needs_damage``: it assumes a material that dissipates by damage (secant unloading);
    ``proportional``: it assumes that all loads are scaled by one load factor (no amplitudes).
    """

    name: str
    doc: str
    make: type
    needs_damage: bool = False
    proportional: bool = False


#: name -> :class:`ControlSpec` (``[loading] control``)
CONTROLS: dict[str, ControlSpec] = {c.name: c for c in (
    ControlSpec("load", "the load factor is prescribed step by step: displacement control for prescribed "
                        "displacements", LoadControl),
    ControlSpec("dissipation", "dissipation-based arc length, Gutierrez 2004: after the onset each step prescribes "
                               "the energy it dissipates and the load factor becomes an unknown, so snap-back is "
                               "followed; the last steps are load-controlled again to end exactly at the final "
                               "factor; needs a ``damage`` phase and proportional loads (no amplitudes)",
                DissipationControl, needs_damage=True, proportional=True),
)}


def follow(problem: MacroProblem, loading, solver, log: Callable[[str], None] | None = None,
           resume: tuple[dict[str, Any], np.ndarray] | None = None,
           stop: Callable[..., None] | None = None, say: Callable[[str], None] | None = None) -> Iterator[Step]:
    """Drive ``problem`` from load factor 0 to the last of :func:`load_factors` with the
    control ``loading.control``; yield each converged step after committing it.

    ``loading`` and ``solver`` are :class:`fe2.io.config.LoadingConfig` and
    :class:`fe2.io.config.SolverConfig` (or objects with the same attributes). Raises
    :class:`~fe2.core.errors.SolverError` ("cannot proceed beyond load factor ...") when a
    step fails at the smallest increment; the steps yielded before are committed.

    ``resume``: go on from a step yielded before (a restart): that step's ``state`` and the
    solution of the step before it (``x_prev``, the local array of ``problem.x``); the
    problem must hold that step's committed state.

    ``log`` gets the Newton iterations and the announcement of every attempt at a step,
    ``say`` (default ``log``) what the path does besides: failed steps and cut-backs, changes
    of control.

    ``stop`` (a :class:`fe2.core.stopping.StopRequest`): called before every attempt at a
    step, with ``upcoming`` = the duration of the last converged step, and before every
    Newton update; what it raises (:class:`~fe2.core.errors.Interrupted`) propagates, with
    the problem left in the unfinished step (:meth:`MacroProblem.revert` takes it back to
    the last yielded step).
    """
    from fe2.macro.pattern import LoadPattern, proportional  # dolfinx: see the module docstring

    name = loading.control
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r} (one of {', '.join(CONTROLS)})")
    if CONTROLS[name].proportional and not proportional(problem):
        raise ValueError(f"control {name!r} needs proportional loads (no amplitudes)")
    path = _Path(problem, loading, solver, say or log or (lambda msg: None), log, load_factors(loading), stop=stop)
    control = CONTROLS[name].make(path)
    if control.tracks_dissipation:
        path.pattern = LoadPattern(problem)
    if resume is None:
        path.G = path.pattern.conjugate_force() if control.tracks_dissipation else 0.0
        path.x_prev = problem.u_committed.copy()
    else:
        state, path.x_prev = resume[0], np.array(resume[1], dtype=float)
        path.lam, path.k, path.G, path.lam_prev = state["lam"], state["k"], state["G"], state["lam_prev"]
        control.restore(state["control"])
    last_wall = 0.0
    while path.lam < path.lam_end - path.tol:
        t0 = time.perf_counter()
        if stop is not None:
            stop(upcoming=last_wall)
        attempt = control.attempt()
        if attempt is None:
            continue
        # converged: commit, and remember what the next predictor needs
        work0 = problem.work
        path.x_prev, path.lam_prev = problem.u_committed.copy(), path.lam
        problem.commit()
        G_new = path.pattern.conjugate_force(committed=True) if control.tracks_dissipation else 0.0
        dD = dissipation_increment(path.G, path.lam, G_new, attempt.load_factor)
        path.G, path.lam, path.k = G_new, attempt.load_factor, path.k + 1
        control.converged(attempt, dD, problem.work - work0)
        state = {"lam": path.lam, "k": path.k, "G": path.G, "lam_prev": path.lam_prev, "control": control.state()}
        last_wall = time.perf_counter() - t0
        yield Step(path.k, path.lam, attempt.report, attempt.control, dD, last_wall, path.points, state, path.x_prev)
        path.points = 0
