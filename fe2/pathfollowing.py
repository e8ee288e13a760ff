"""Load stepping and path following of a :class:`~fe2.macro.MacroProblem`.

:func:`follow` drives the macro problem along its loading (all Dirichlet values and
tractions scaled by one load factor ``lam``) and yields every converged, committed step.
Two controls (``[loading] control``):

``load`` (default)
    The load factor is prescribed: equal steps (or the listed factors), each halved when
    it fails (a micro or macro solve that does not converge) down to ``min_step``, grown
    by ``growth`` after an easy step. With prescribed displacements this is displacement
    control; it passes a peak load but stops where the equilibrium path turns back
    (snap-back): there no state exists at the next, larger load factor.

``dissipation``
    Dissipation-based arc length (Gutiérrez 2004; Verhoosel, Remmers & Gutiérrez 2009).
    Load control until a step dissipates more than ``dissipation_onset`` times its external
    work; from then on each step prescribes the energy ``dtau`` it dissipates and the load
    factor is an unknown. For a material that unloads secantly (damage) the energy
    dissipated between two equilibrium states (0 -> 1) is, exactly,

        Delta D = (G0 (lam1 - lam0) - lam0 (G1 - G0)) / 2,

    with ``G = w . f_int(x) - f_hat . x`` (:meth:`~fe2.macro.MacroProblem.conjugate_force`:
    ``w`` the prescribed displacements and ``f_hat`` the tractions at load factor 1), the
    difference between the work done (trapezoidal, as ``MacroProblem.work`` counts it) and
    the change of the stored energy ``lam G / 2``. The constraint ``Delta D = dtau`` is
    added to the equilibrium equations and Newton solves for ``(x, lam)`` together (a
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
    load-controlled step of the nominal size is tried before halving further. When the predicted load factor reaches the final one, the
    last steps are load-controlled again so that the run ends exactly at the final load.
    Intermediate ``factors`` are not visited once dissipation control has started.

All functions are collective on the problem's communicator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from petsc4py import PETSc

from fe2.errors import SolverError
from fe2.macro import MacroProblem, NewtonReport

CONTROLS = ("load", "dissipation")
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


def load_factors(loading) -> list[float]:
    """The load factors of the load-controlled steps of a ``[loading]`` table."""
    if loading.factors is not None:
        return list(loading.factors)
    n = loading.steps
    return [(k + 1) / n for k in range(n)]


def dissipation_increment(G0: float, lam0: float, G: float, lam: float) -> float:
    """Energy dissipated between equilibrium states ``(lam0, G0)`` and ``(lam, G)`` of a
    secantly unloading body: ``(G0 (lam - lam0) - lam0 (G - G0)) / 2``."""
    return 0.5 * (G0 * (lam - lam0) - lam0 * (G - G0))


def dissipation_newton(problem: MacroProblem, lam0: float, G0: float, lam: float, dtau: float,
                       rtol: float, atol: float, max_iterations: int,
                       log: Callable[[str], None] | None = None) -> tuple[NewtonReport, float]:
    """Newton on equilibrium plus the constraint ``Delta D = dtau`` from the committed
    state ``(lam0, G0)``, starting at the current ``x`` (a predictor) and load factor
    ``lam``. Returns the report and the load factor reached. Converged when the
    equilibrium residual is below ``max(rtol r_ref, atol)`` (``r_ref``: the first
    residual or the residual of the predicted load increment at fixed ``x``, whichever is
    larger) and the constraint error below ``rtol dtau``."""
    rep = NewtonReport()
    vecs = [problem.b.duplicate() for _ in range(3)]
    try:
        lam = _bordered_newton(problem, lam0, G0, lam, dtau, rtol, atol, max_iterations, log, rep, *vecs)
    except SolverError as err:  # a material (RVE) failure or a singular system: raised on all ranks
        rep.converged = False
        rep.failure = str(err)
        if log:
            log(f"    failure: {err}")
    finally:
        for v in vecs:
            v.destroy()
    return rep, lam


def _bordered_newton(problem: MacroProblem, lam0: float, G0: float, lam: float, dtau: float, rtol: float,
                     atol: float, max_iterations: int, log: Callable[[str], None] | None, rep: NewtonReport,
                     d1: PETSc.Vec, d2: PETSc.Vec, aux: PETSc.Vec) -> float:
    problem.set_load(lam)
    problem.evaluate(rep)
    r_ref = None
    g_floor = 1e-13 * abs(lam0 * G0)
    for it in range(max_iterations + 1):
        t0 = time.perf_counter()
        r = problem.assemble_residual()
        g = dissipation_increment(G0, lam0, problem.conjugate_force(), lam) - dtau
        problem.load_derivative(d2)  # d(residual)/d(lam), solved in place below
        if r_ref is None:
            r_ref = max(r, abs(lam - lam0) * d2.norm())
        rep.residuals.append(r)
        rep.iterations = it
        if log:
            upd = f"  |dx| = {rep.updates[-1]:.3e}" if rep.updates else ""
            log(f"    newton {it:2d}: |R| = {r:.3e}  dissipation error {g:+.3e}  load factor {lam:.8g}{upd}")
        if not (np.isfinite(r) and np.isfinite(g)):
            rep.failure = "residual is not finite"
            return lam
        if (r <= max(rtol * r_ref, atol) and it > 0 or r <= atol) and abs(g) <= max(rtol * dtau, g_floor):
            rep.converged = True
            rep.time_macro += time.perf_counter() - t0
            return lam
        if it == max_iterations:
            rep.failure = f"no convergence in {max_iterations} Newton iterations"
            return lam
        problem.assemble_jacobian()
        problem.solve(problem.b, d1)
        problem.solve(d2.copy(aux), d2)
        problem.conjugate_force_gradient(aux)  # dG/dx
        cd1, cd2 = aux.dot(d1), aux.dot(d2)
        # x + dx with dx = -d1 - dlam d2 satisfies linearized equilibrium; the linearized
        # constraint g - lam0/2 dG/dx . dx + G0/2 dlam = 0 gives dlam
        denom = 0.5 * (G0 + lam0 * cd2)
        if not abs(denom) > 1e-12 * (abs(G0) + abs(lam0 * cd2)):
            raise SolverError("the dissipation constraint is singular here (the tangent response "
                              "dissipates no energy, e.g. elastic unloading); use load control")
        dlam = -(g + 0.5 * lam0 * cd1) / denom
        d1.axpy(dlam, d2)  # the whole update, negated
        problem.add_to_solution(-1.0, d1)
        lam += dlam
        problem.set_load(lam)
        rep.updates.append(d1.norm())
        rep.time_macro += time.perf_counter() - t0
        problem.evaluate(rep)
    return lam


def follow(problem: MacroProblem, loading, solver, log: Callable[[str], None] | None = None) -> Iterator[Step]:
    """Drive ``problem`` from load factor 0 to the last of :func:`load_factors` with the
    control ``loading.control``; yield each converged step after committing it.

    ``loading`` and ``solver`` are :class:`fe2.config.LoadingConfig` and
    :class:`fe2.config.SolverConfig` (or objects with the same attributes). Raises
    :class:`~fe2.errors.SolverError` ("cannot proceed beyond load factor ...") when a step
    fails at the smallest increment; the steps yielded before are committed.
    """
    say = log or (lambda msg: None)
    control = getattr(loading, "control", "load")
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r} (one of {', '.join(CONTROLS)})")
    targets = load_factors(loading)
    lam_end = targets[-1]
    nominal_end = lam_end - targets[-2] if len(targets) > 1 else lam_end
    tol = 1e-12 * max(1.0, abs(lam_end))
    lam, k = 0.0, 0
    dlam, current_target = targets[0], None
    mode = "load"  # -> "dissipation" after the onset, -> "landing" for the final load-controlled steps
    G = problem.conjugate_force() if control == "dissipation" else 0.0
    x_prev, lam_prev, dD_last = problem.u_committed.copy(), 0.0, 0.0
    dtau = dtau_min = 0.0
    dtau_max = getattr(loading, "dissipation_increment", None) or np.inf
    first_increment = None  # predictor load increment of the first dissipation step after load control failed
    failures, fell_back = 0, False  # failed dissipation steps in a row; load control tried since
    points = 0  # material evaluations since the last converged step (all ranks, failed attempts too)

    while lam < lam_end - tol:
        t0 = time.perf_counter()
        if mode == "dissipation":
            if first_increment is not None:  # right after load control failed: just past its last state
                dlam_pred = first_increment
                ratio = dlam_pred / (lam - lam_prev)
            else:
                ratio = dtau / dD_last
                dlam_pred = ratio * (lam - lam_prev)
            if dlam_pred > nominal_end:  # little dissipation per load: keep the load increment nominal
                ratio *= nominal_end / dlam_pred
                dtau *= nominal_end / dlam_pred
                dlam_pred = nominal_end
            if lam + dlam_pred >= lam_end - tol:
                mode, dlam = "landing", min(dlam_pred, lam_end - lam)
                say(f"  the final load factor {lam_end:.6g} is near: load control again")
                continue
            say(f"  step {k + 1}: dissipation control, dissipated energy {dtau:.4g} "
                f"(predicted load factor {lam + dlam_pred:.6g})")
            problem.add_to_solution(ratio, problem.u_committed - x_prev)
            problem.set_time_increment(abs(dlam_pred))
            rep, lam_try = dissipation_newton(problem, lam, G, lam + dlam_pred, dtau, solver.rtol, solver.atol,
                                              solver.max_iterations, log)
            points += problem.comm.allreduce(rep.material_points)
            if rep.converged and lam_try > lam_end + tol:
                problem.revert()
                mode, dlam = "landing", min(dlam_pred, lam_end - lam) if dlam_pred > 0 else lam_end - lam
                say(f"    load factor {lam_try:.6g} passes the final one: load control again")
                continue
            if not rep.converged:
                problem.revert()
                dtau *= 0.5
                failures += 1
                reason = rep.failure or "no convergence"
                if failures >= FALLBACK_FAILURES and not fell_back:
                    # e.g. a bifurcation where damage points cycle between loading and unloading
                    mode, fell_back = "load", True
                    dlam = nominal_end  # a larger step can land clearly on one branch where small ones cycle
                    say(f"    step failed ({reason}); {failures} failures under dissipation control: "
                        "trying load control")
                    continue
                if dtau < dtau_min:
                    raise SolverError(
                        f"cannot proceed beyond load factor {lam:.6g} (dissipation control): the step dissipating "
                        f"{2 * dtau:.3g} failed ({reason}) and halving it would go below "
                        f"{dtau_min:.3g} (min_step as a fraction of the nominal step)")
                say(f"    step failed ({reason}); cutting the dissipation increment to {dtau:.3g}")
                continue
        else:
            target = lam_end if mode == "landing" else next(t for t in targets if t > lam + tol)
            i = targets.index(target)
            nominal = target - (targets[i - 1] if i else 0.0)
            if target != current_target:  # a new target: its nominal increment caps the step
                dlam = min(dlam, nominal) if current_target is not None else nominal
                current_target = target
            lam_try = min(lam + dlam, target)
            if target - lam_try < 1e-9 * nominal:  # do not leave a sliver before the target
                lam_try = target
            say(f"  step {k + 1}: load factor {lam_try:.6g} (increment {lam_try - lam:.3g})")
            problem.set_load(lam_try)
            problem.set_time_increment(lam_try - lam)
            rep = problem.newton(solver.rtol, solver.atol, solver.max_iterations, log=log)
            points += problem.comm.allreduce(rep.material_points)
            if not rep.converged:
                problem.revert()
                dlam = 0.5 * (lam_try - lam)
                reason = rep.failure or "no convergence"
                if dlam < loading.min_step:
                    psi = 0.5 * lam * G  # stored energy
                    if control == "dissipation" and mode == "load" and k > 0 and psi > 0 and not fell_back:
                        mode, first_increment = "dissipation", lam_try - lam
                        dtau = min(loading.dissipation_onset * psi, dtau_max)
                        dtau_min = dtau * loading.min_step / nominal
                        say(f"    load control cannot pass load factor {lam:.6g}: dissipation control from here, "
                            f"first dissipation increment {dtau:.3g} ({loading.dissipation_onset:g} x the stored "
                            "energy)")
                        continue
                    raise SolverError(
                        f"cannot proceed beyond load factor {lam:.6g}: the step to {lam_try:.6g} failed "
                        f"({reason}) and halving it would go below min_step = {loading.min_step:g}"
                        + ("; dissipation control failed there too" if fell_back else ""))
                say(f"    step failed ({reason}); cutting the increment to {dlam:.3g}")
                continue
        # converged: commit, and remember what the next predictor needs
        work0 = problem.work
        x_prev, lam_prev = problem.u_committed.copy(), lam
        problem.commit()
        G_new = problem.conjugate_force(committed=True) if control == "dissipation" else 0.0
        dD = dissipation_increment(G, lam, G_new, lam_try)
        step_control = "dissipation" if mode == "dissipation" else "load"
        G, lam, k = G_new, lam_try, k + 1
        failures, fell_back = 0, False
        easy = rep.iterations <= loading.easy_iterations
        if mode == "dissipation":
            dD_last, first_increment = dD, None
            if easy:
                dtau = min(dtau * loading.growth, dtau_max)
        else:
            if easy:
                dlam = min(dlam * loading.growth, nominal)
            if (control == "dissipation" and mode == "load" and dD > 0
                    and dD > loading.dissipation_onset * (problem.work - work0)):
                mode, dtau, dD_last = "dissipation", min(dD, dtau_max), dD
                dtau_min = dD * loading.min_step / nominal
                say(f"    the step dissipated {dD:.4g} ({dD / (problem.work - work0):.1%} of its work): "
                    "dissipation control from here")
        yield Step(k, lam, rep, step_control, dD, time.perf_counter() - t0, points)
        points = 0
