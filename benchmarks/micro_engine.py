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

Both micro engines are measured in the same run, one after the other on the same RVE,
points and load levels (``--engine`` picks one): ``reference`` (the per-point path with
dolfinx assembly) and ``batched`` (:mod:`fe2.micro.engines.batched`), which also reports the
evaluations its exact elastic shortcut answered. Each level records the norm of the
homogenized stresses, so the JSON shows that both engines computed the same numbers.

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


def run_case(dim: int, h: float, engine: str, args, clock, workdir: Path) -> dict:
    from mpi4py import MPI

    from fe2.geometry import generators
    from fe2.micro.nonlinear import NonlinearCellProblem
    from fe2.geometry.rvemesh import load_rve_mesh

    path = workdir / f"{'circle' if dim == 2 else 'sphere'}_h{h:g}.msh"
    if not path.exists():
        generators.generate("circle" if dim == 2 else "sphere", path, radius=0.3, h=h)
    rve = NonlinearCellProblem(load_rve_mesh(path, MPI.COMM_SELF), phases(dim), rtol=1e-10, engine=engine)
    N = args.batch
    directions = strain_directions(dim, N, args.seed)
    eps_y = 0.01 / 1.0
    rve.evaluate(0.1 * eps_y * directions[:1])  # warm-up: MUMPS work arrays, JIT caches
    rve.resize(N)
    levels = []
    for level in LEVELS:
        E = level * eps_y * directions
        stats0 = rve.statistics()
        before = clock.snapshot()
        t0 = time.perf_counter()
        sigma, _ = rve.evaluate(E)
        wall = time.perf_counter() - t0
        stats = rve.statistics()
        ev = machine.PetscClock.delta(before, clock.snapshot())
        # a macro Newton correction: the same points again at a slightly different strain
        stats1 = rve.statistics()
        before1 = clock.snapshot()
        t1 = time.perf_counter()
        rve.evaluate((1.0 + CORRECTION) * E)
        wall1 = time.perf_counter() - t1
        ev1 = machine.PetscClock.delta(before1, clock.snapshot())
        stats2 = rve.statistics()
        rve.commit()
        petsc = sum(ev[k]["time"] for k in COUNTED)
        plastic = rve.internal_fields()["equivalent_plastic_strain"]
        levels.append({
            "strain_level_over_yield": level,
            "seconds_per_evaluation": wall / N,
            "petsc_factorisation_and_solve_share": petsc / wall,
            "factorisations_per_evaluation": (ev["MatCholFctrNum"]["count"] + ev["MatLUFactorNum"]["count"]) / N,
            "newton_iterations_per_evaluation": (stats["newton_iterations"] - stats0["newton_iterations"]) / N,
            "shortcut_fraction": (stats.get("shortcut", 0) - stats0.get("shortcut", 0)) / N,
            "plastic_points": int(np.sum(plastic > 0)),
            "stress_norm": float(np.linalg.norm(sigma)),
            "events": {k: v for k, v in ev.items() if v["count"]},
            "correction": {
                "seconds_per_evaluation": wall1 / N,
                "petsc_factorisation_and_solve_share": sum(ev1[k]["time"] for k in COUNTED) / wall1,
                "factorisations_per_evaluation": (ev1["MatCholFctrNum"]["count"] + ev1["MatLUFactorNum"]["count"]) / N,
                "newton_iterations_per_evaluation": (stats2["newton_iterations"] - stats1["newton_iterations"]) / N,
            },
        })
    state = rve.get_state()
    result = {
        "dim": dim, "h": h, "engine": engine, "dofs": int(rve.num_dofs), "condensed_dofs": int(rve.nloc),
        "micro_points": int(rve.num_micro_points), "batch": N,
        "state_bytes_per_point": sum(v.nbytes for v in state.values()) / N,
        "state_arrays": {k: list(v.shape[1:]) for k, v in state.items()},
        "levels": levels,
    }
    rve.destroy()
    return result


def main(argv=None) -> int:
    ap = machine.parser(__doc__, DEFAULT_OUTPUT, "two small cases, 4 points (smoke test)")
    ap.add_argument("--batch", type=int, default=None, help="macro points per evaluation (default 16; 4 quick)")
    ap.add_argument("--engine", choices=("both", "batched", "reference"), default="both",
                    help="micro engine(s) measured (default both, one after the other)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.batch = args.batch or (4 if args.quick else 16)

    from petsc4py import PETSc

    if not machine.runs_serially("micro_engine.py"):
        return 2
    PETSc.Log.begin()
    clock = machine.PetscClock(EVENTS)
    cases = QUICK_CASES if args.quick else FULL_CASES
    out = {"benchmark": "micro_engine", "machine": machine.machine_info(),
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "config": {"quick": args.quick, "batch": args.batch, "engine": args.engine, "seed": args.seed,
                      "levels_over_yield": LEVELS, "rve": "circle/sphere inclusion r = 0.3, P1; J2 matrix "
                      "(E 1, nu 0.3, sigma_y 0.01, H_iso 0.1, Q 0.002, b 50), elastic inclusion (E 10, nu 0.2)",
                      "petsc_share": "(PCSetUp + MatSolve + MatMatSolve) / wall time of the batch evaluation",
                      "correction": f"second evaluation of each level at (1 + {CORRECTION:g}) times the strain"},
           "cases": []}
    record = machine.Record(args.output, out)
    write = record.write

    with tempfile.TemporaryDirectory(prefix="fe2-micro-engine-") as tmp:
        engines = ("reference", "batched") if args.engine == "both" else (args.engine,)
        for dim, h in cases:
            for engine in engines:
                res = run_case(dim, h, engine, args, clock, Path(tmp))
                out["cases"].append(res)
                write()
                last = res["levels"][-1]
                cor = last["correction"]
                print(f"{dim}D h={h:<5g} {res['dofs']:>6d} DOFs {engine:>9s}: plastic level "
                      f"{1e3 * last['seconds_per_evaluation']:8.2f} ms/evaluation, PETSc share "
                      f"{100 * last['petsc_factorisation_and_solve_share']:5.1f} %, "
                      f"{last['factorisations_per_evaluation']:.1f} factorisations; correction "
                      f"{1e3 * cor['seconds_per_evaluation']:8.2f} ms, "
                      f"PETSc {100 * cor['petsc_factorisation_and_solve_share']:5.1f} %, "
                      f"{cor['factorisations_per_evaluation']:.1f} factorisations; "
                      f"{res['state_bytes_per_point']:.0f} bytes of state per point", flush=True)
    record.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
