"""Where the time of a nonlinear RVE evaluation goes: the micro engine's baseline.

For J2 composite RVEs (a J2 matrix with a stiff elastic inclusion, as in
``fe2_vs_dns.py``) of several sizes in 2D and 3D, a batch of macro points is evaluated at
three load levels along random macro strain directions (elastic; first plastic; further
plastic, each committed before the next), as the first macro Newton iterate of a load step
would, and once more at a strain changed by 0.1 % (``correction``), as a later iterate
would. Per level it records, per macro point evaluation:

- the wall time, and the share of it spent inside PETSc's numeric factorisation and
  triangular solves (``PCSetUp`` + ``MatSolve`` + ``MatMatSolve`` from the PETSc event log),
  the part a faster engine cannot remove;
- numeric factorisations and micro Newton iterations per evaluation;

and per case the bytes of history per macro point (the state bank: fluctuation and every
law's internal variables), what checkpoints and load balancing move around.

Three variants (engine / coupling scheme) are measured in the same run, one after the
other on the same RVE, points and load levels (``--variants``, ``--engine`` filters them):
``reference/nested`` (the per-point path with dolfinx assembly), ``batched/nested``
(:mod:`fe2.micro.engines.batched`, which also reports the evaluations its exact elastic
shortcut answered) and ``batched/monolithic`` (one micro Newton step per evaluation,
:mod:`fe2.micro.problem`). A nested evaluation converges every point; a monolithic one is
one Newton step, so a monolithic level is evaluated again at the same strain until every
point is settled (``settle_evaluations``), committed, and its ``correction`` is one
evaluation at the changed strain from that committed state (the factorisations per plastic
point of a later macro iterate). The monolithic variant then restores the level's start
state and settles at the changed strain before committing, so that every variant enters
the next level from the same committed state as the nested ones. Each level records the
norm of the homogenized stresses and their largest difference from the first variant's
(settled monolithic against nested), so the JSON shows that the variants computed the
same numbers.

    bash docker/fe2-env python3 benchmarks/micro_engine.py            # full, a few minutes
    bash docker/fe2-env python3 benchmarks/micro_engine.py --quick    # smoke test

Results go to ``benchmarks/results/micro_engine.json`` (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import machine  # first: pins BLAS/OpenMP threads to one (one core) before numpy/PETSc load

import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "micro_engine.json"

#: (dim, element size of the RVE mesh); P1
FULL_CASES = [(2, 0.2), (2, 0.1), (2, 0.05), (3, 0.4), (3, 0.25), (3, 0.15)]
QUICK_CASES = [(2, 0.25), (3, 0.5)]
LEVELS = (0.5, 1.5, 2.5)  #: macro strain levels in units of the matrix yield strain (elastic, then plastic)
CORRECTION = 1e-3  #: relative change of the macro strain in the second evaluation of a level
COUNTED = ("PCSetUp", "MatSolve", "MatMatSolve")
EVENTS = COUNTED + ("MatCholFctrNum", "MatLUFactorNum")


def phases(gdim: int):
    from fe2.materials import J2Plasticity, LinearElastic
    from fe2.micro.phases import Phase

    return [Phase("matrix", 1, law=J2Plasticity(1.0, 0.3, 0.01, gdim, H_iso=0.1, Q=0.002, b=50.0)),
            Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, gdim))]


def strain_directions(gdim: int, N: int, seed: int) -> np.ndarray:
    """``N`` unit macro strain directions (Mandel), deviatoric-dominated so that the matrix yields."""
    n = 3 if gdim == 2 else 6
    d = np.random.default_rng(seed).standard_normal((N, n))
    return d / np.linalg.norm(d, axis=1)[:, None]


#: the variants measured by default: engine/scheme
VARIANTS = ("reference/nested", "batched/nested", "batched/monolithic")
#: evaluations at one strain after which an unsettled monolithic batch is an error
MAX_SETTLE = 50


def variant(text: str) -> tuple[str, str]:
    """``"engine/scheme"`` -> ``(engine, scheme)`` (argparse type)."""
    import argparse

    from fe2.micro.engines import ENGINES
    from fe2.micro.rules import SCHEMES

    engine, _, scheme = text.partition("/")
    if engine not in ENGINES or scheme not in SCHEMES:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ENGINE/SCHEME with ENGINE one of {', '.join(ENGINES)} "
                                         f"and SCHEME one of {', '.join(SCHEMES)}")
    return engine, scheme


def factorisations(ev: dict) -> int:
    """Numeric factorisations in PETSc events ``ev`` (Cholesky and LU)."""
    return ev["MatCholFctrNum"]["count"] + ev["MatLUFactorNum"]["count"]


def timed(rve, E: np.ndarray, clock) -> tuple[np.ndarray, dict]:
    """One ``rve.evaluate(E)``: the stresses and what it cost per point evaluation."""
    N = E.shape[0]
    stats0 = rve.statistics()
    before = clock.snapshot()
    t0 = time.perf_counter()
    sigma, _ = rve.evaluate(E)
    wall = time.perf_counter() - t0
    ev = machine.PetscClock.delta(before, clock.snapshot())
    stats = rve.statistics()
    return sigma, {
        "seconds_per_evaluation": wall / N,
        "petsc_factorisation_and_solve_share": sum(ev[k]["time"] for k in COUNTED) / wall,
        "factorisations_per_evaluation": factorisations(ev) / N,
        "newton_iterations_per_evaluation": (stats["newton_iterations"] - stats0["newton_iterations"]) / N,
        "shortcut_fraction": (stats.get("shortcut", 0) - stats0.get("shortcut", 0)) / N,
        "events": {k: v for k, v in ev.items() if v["count"]},
    }


def settle(rve, E: np.ndarray, clock) -> tuple[np.ndarray, int, int]:
    """Evaluate at ``E`` until no point is unsettled (at once under the nested scheme): the
    stresses, the evaluations that took, and the factorisations they made."""
    count = made = 0
    sigma = None
    while rve.unsettled_points():
        if count == MAX_SETTLE:
            raise RuntimeError(f"{rve.unsettled_points()} points still unsettled after {MAX_SETTLE} evaluations")
        before = clock.snapshot()
        sigma, _ = rve.evaluate(E)
        made += factorisations(machine.PetscClock.delta(before, clock.snapshot()))
        count += 1
    return sigma, count, made


def difference(sigma: np.ndarray, ref: np.ndarray | None) -> float | None:
    """max |sigma - ref| / max |ref| over the batch (None without a reference)."""
    return None if ref is None else float(np.abs(sigma - ref).max() / np.abs(ref).max())


def run_case(dim: int, h: float, engine: str, scheme: str, args, clock, workdir: Path,
             reference: list | None = None) -> tuple[dict, list]:
    """One variant on one RVE: its JSON record, and the stresses of each level (first
    evaluation or settled, and settled correction) to compare the next variants with
    (``reference``: those of the first variant, or None)."""
    from mpi4py import MPI

    from fe2.geometry import generators
    from fe2.micro.nonlinear import NonlinearCellProblem
    from fe2.geometry.rvemesh import load_rve_mesh

    path = workdir / f"{'circle' if dim == 2 else 'sphere'}_h{h:g}.msh"
    if not path.exists():
        generators.generate("circle" if dim == 2 else "sphere", path, radius=0.3, h=h)
    rve = NonlinearCellProblem(load_rve_mesh(path, MPI.COMM_SELF), phases(dim), rtol=1e-10, engine=engine,
                               scheme=scheme)
    mono = scheme == "monolithic"
    N = args.batch
    directions = strain_directions(dim, N, args.seed)
    eps_y = 0.01 / 1.0
    rve.evaluate(0.1 * eps_y * directions[:1])  # warm-up: MUMPS work arrays, JIT caches
    rve.resize(N)
    levels, stresses = [], []
    for k, level in enumerate(LEVELS):
        E = level * eps_y * directions
        E1 = (1.0 + CORRECTION) * E
        ref = reference[k] if reference else (None, None)
        start = rve.get_state() if mono else None  # the level's committed start state
        # the first macro iterate of a load step: one evaluation (one Newton step if monolithic)
        sigma_first, first = timed(rve, E, clock)
        unsettled = rve.unsettled_points()
        sigma, settle_evaluations, settle_made = settle(rve, E, clock)
        sigma = sigma_first if sigma is None else sigma
        if mono:  # a later macro iterate: one Newton step at the changed strain from the settled state
            rve.commit()
            plastic = rve.internal_fields()["equivalent_plastic_strain"]
            _, cor = timed(rve, E1, clock)
            cor["unsettled_points_after"] = rve.unsettled_points()
            _, cor["settle_evaluations"], _ = settle(rve, E1, clock)
            # back to the level's start, from which the nested variants reach E1 and commit
            rve.set_state(start)
            sigma1, _ = rve.evaluate(E1)
            sigma1 = settle(rve, E1, clock)[0] if rve.unsettled_points() else sigma1
        else:  # a later macro iterate: converged at the changed strain from the level's start state
            sigma1, cor = timed(rve, E1, clock)
            cor["unsettled_points_after"] = rve.unsettled_points()  # (0: nested converges every point)
            cor["settle_evaluations"] = 0
        rve.commit()
        if not mono:
            plastic = rve.internal_fields()["equivalent_plastic_strain"]
        plastic_points = int(np.sum(plastic > 0))
        f_cor = cor["factorisations_per_evaluation"] * N
        levels.append({
            "strain_level_over_yield": level,
            **{key: v for key, v in first.items() if key != "events"},
            "plastic_points": plastic_points,
            "stress_norm": float(np.linalg.norm(sigma)),
            "stress_difference_rel": difference(sigma, ref[0]),
            "unsettled_points_after_first": unsettled,
            "settle_evaluations": settle_evaluations,
            "settle_factorisations_per_evaluation": settle_made / N,
            **({"stress_norm_first_evaluation": float(np.linalg.norm(sigma_first)),
                "stress_difference_rel_first_evaluation": difference(sigma_first, ref[0])} if mono else {}),
            "events": first["events"],
            "correction": {
                **{key: v for key, v in cor.items() if key != "events"},
                "factorisations_per_plastic_point": f_cor / plastic_points if plastic_points else None,
                "stress_norm": float(np.linalg.norm(sigma1)),
                "stress_difference_rel": difference(sigma1, ref[1]),
            },
        })
        stresses.append((sigma, sigma1))
    state = rve.get_state()
    result = {
        "dim": dim, "h": h, "engine": engine, "scheme": scheme, "dofs": int(rve.num_dofs),
        "condensed_dofs": int(rve.nloc), "micro_points": int(rve.num_micro_points), "batch": N,
        "state_bytes_per_point": sum(v.nbytes for v in state.values()) / N,
        "state_arrays": {k: list(v.shape[1:]) for k, v in state.items()},
        "levels": levels,
    }
    rve.destroy()
    return result, stresses


def summary_row(case: dict) -> dict:
    """The figures to compare between variants and code versions, in ms per point evaluation."""
    elastic, last = case["levels"][0], case["levels"][-1]
    return {"dim": case["dim"], "h": case["h"], "dofs": case["dofs"], "engine": case["engine"],
            "scheme": case["scheme"],
            "elastic_ms_per_evaluation": 1e3 * elastic["seconds_per_evaluation"],
            "plastic_ms_per_evaluation": 1e3 * last["seconds_per_evaluation"],
            "correction_ms_per_evaluation": 1e3 * last["correction"]["seconds_per_evaluation"],
            "correction_factorisations_per_plastic_point": last["correction"]["factorisations_per_plastic_point"],
            "correction_petsc_share": last["correction"]["petsc_factorisation_and_solve_share"],
            "settle_evaluations": [lv["settle_evaluations"] for lv in case["levels"]],
            "max_stress_difference_rel": max(
                (d for lv in case["levels"] for d in (lv["stress_difference_rel"],
                                                      lv["correction"]["stress_difference_rel"]) if d is not None),
                default=None)}


def main(argv=None) -> int:
    ap = machine.parser(__doc__, DEFAULT_OUTPUT, "two small cases, 4 points (smoke test)")
    ap.add_argument("--batch", type=int, default=None, help="macro points per evaluation (default 16; 4 quick)")
    ap.add_argument("--variants", type=variant, nargs="+", default=[variant(v) for v in VARIANTS],
                    metavar="ENGINE/SCHEME",
                    help=f"engine/scheme variants measured, one after the other on each RVE; the first is the one "
                         f"the others' stresses are compared with (default {' '.join(VARIANTS)})")
    ap.add_argument("--engine", choices=("both", "batched", "reference"), default="both",
                    help="only the variants of this micro engine (default both)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.batch = args.batch or (4 if args.quick else 16)
    variants = [v for v in dict.fromkeys(args.variants) if args.engine in ("both", v[0])]
    if not variants:
        ap.error(f"no variant of engine {args.engine!r} among --variants")

    from petsc4py import PETSc

    if not machine.runs_serially("micro_engine.py"):
        return 2
    PETSc.Log.begin()
    clock = machine.PetscClock(EVENTS)
    cases = QUICK_CASES if args.quick else FULL_CASES
    out = {"benchmark": "micro_engine", "machine": machine.machine_info(),
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "config": {"quick": args.quick, "batch": args.batch, "engine": args.engine, "seed": args.seed,
                      "variants": [f"{e}/{s}" for e, s in variants],
                      "levels_over_yield": LEVELS, "rve": "circle/sphere inclusion r = 0.3, P1; J2 matrix "
                      "(E 1, nu 0.3, sigma_y 0.01, H_iso 0.1, Q 0.002, b 50), elastic inclusion (E 10, nu 0.2)",
                      "petsc_share": "(PCSetUp + MatSolve + MatMatSolve) / wall time of the batch evaluation",
                      "correction": f"second evaluation of each level at (1 + {CORRECTION:g}) times the strain",
                      "correction_monolithic": "the level evaluated again at its strain until no point is unsettled "
                                               "and committed; then one evaluation (one Newton step) at the "
                                               "changed strain. Afterwards the level's start state is restored "
                                               "and settled at the changed strain, as the nested variants commit",
                      "stress_difference": "max |sigma - sigma_first| / max |sigma_first| over the batch, against "
                                           "the first variant on the same RVE (settled stresses)"},
           "cases": [], "summary": []}
    record = machine.Record(args.output, out)
    write = record.write

    with tempfile.TemporaryDirectory(prefix="fe2-micro-engine-") as tmp:
        for dim, h in cases:
            reference = None
            for engine, scheme in variants:
                res, stresses = run_case(dim, h, engine, scheme, args, clock, Path(tmp), reference)
                reference = reference or stresses
                out["cases"].append(res)
                out["summary"].append(summary_row(res))
                write()
                last = res["levels"][-1]
                cor = last["correction"]
                row = out["summary"][-1]
                diff = row["max_stress_difference_rel"]
                print(f"{dim}D h={h:<5g} {res['dofs']:>6d} DOFs {engine:>9s}/{scheme:<10s}: elastic "
                      f"{row['elastic_ms_per_evaluation']:7.2f} ms; plastic level "
                      f"{1e3 * last['seconds_per_evaluation']:8.2f} ms/evaluation, PETSc share "
                      f"{100 * last['petsc_factorisation_and_solve_share']:5.1f} %, "
                      f"{last['factorisations_per_evaluation']:.1f} factorisations, settled after "
                      f"{last['settle_evaluations']} more; correction "
                      f"{1e3 * cor['seconds_per_evaluation']:8.2f} ms, "
                      f"PETSc {100 * cor['petsc_factorisation_and_solve_share']:5.1f} %, "
                      f"{cor['factorisations_per_evaluation']:.2f} factorisations "
                      f"({cor['factorisations_per_plastic_point'] or 0:.2f} per plastic point); "
                      f"{res['state_bytes_per_point']:.0f} bytes of state per point; stresses "
                      + ("(the reference)" if diff is None else f"within {diff:.1e}"), flush=True)
    record.finish()
    return 0

if __name__ == "__main__":
    sys.exit(main())
