"""Throughput of the linear RVE template (:class:`fe2.micro.cell.CellProblem`) on one core.

For a series of periodic RVE meshes -- 2D circle inclusion and 3D sphere inclusion,
Lagrange P1 and P2, several element sizes ``h`` -- this measures

1. the set-up cost of a template: mesh load, ``CellProblem`` construction (after one
   warm-up construction per (dim, degree) so that the form JIT cache is warm; the
   warm-up is reported separately), and, re-measured on their own, matrix assembly,
   factorisation (symbolic + numeric on a fresh KSP), numeric re-factorisation,
   unit right-hand-side assembly and the sensitivity solves;
2. the throughput of ``CellProblem.evaluate(E)`` on a batch of random macro strains
   (one condensed solve with the stored factorisation per point; for reference also a
   one-KSPSolve-per-point loop and one preallocated multi-RHS KSPMatSolve), and the
   cost of one full *linear re-solve* (matrix + right-hand-side re-assembly, numeric
   re-factorisation, ``n`` sensitivity solves: what a nonlinear RVE pays per Newton
   iterate);
3. the fraction of that time spent inside PETSc factorisation and solves (``PCSetUp`` +
   ``MatSolve`` + ``MatMatSolve``, from the PETSc event log) versus everything else
   (Python, numpy, dolfinx assembly).

Run serially (MPI.COMM_SELF, one process, BLAS/OpenMP threads pinned to 1)::

    bash docker/fe2-env python3 benchmarks/rve_throughput.py            # full, ~7 min
    bash docker/fe2-env python3 benchmarks/rve_throughput.py --quick    # smoke test, < 1 min

Results go to ``benchmarks/results/rve_throughput.json`` (see ``benchmarks/README.md``
for the meaning of every field); a compact table is printed to stdout.
"""

from __future__ import annotations

import machine  # first: pins BLAS/OpenMP threads to one (one core) before numpy/PETSc load

import os  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "rve_throughput.json"

# (dim, degree, h): DOFs ~1e3 .. ~1e5 in 2D, ~1.5e3 .. ~4e4 (P1) / ~2.5e4 (P2) in 3D (unit
# cell, radius 0.25). 3D stops there: one MUMPS factorisation of the periodic 3D P1 RVE with
# 4.2e4 DOFs already takes ~60 s on one core here (PORD ordering, reference BLAS, cost
# ~ DOFs^2); larger 3D cases can be run with --cases, e.g. --cases 3:2:0.08.
FULL_CASES = [
    (2, 1, 0.05), (2, 1, 0.02), (2, 1, 0.01), (2, 1, 0.005),
    (2, 2, 0.1), (2, 2, 0.04), (2, 2, 0.02), (2, 2, 0.01),
    (3, 1, 0.15), (3, 1, 0.1), (3, 1, 0.07), (3, 1, 0.05), (3, 1, 0.04),
    (3, 2, 0.4), (3, 2, 0.2), (3, 2, 0.12), (3, 2, 0.1),
]
QUICK_CASES = [(2, 1, 0.05), (2, 2, 0.1), (3, 1, 0.2), (3, 2, 0.4)]

# PETSc events read from the log. Counted as "PETSc factorisation and solves" (never
# nested in one another on the code paths measured here): PCSetUp (factorisation, called
# explicitly), MatSolve and MatMatSolve (triangular solves with the factor, whether called
# through KSPSolve / KSPMatSolve or directly on the factor matrix, as fe2's batched
# solve_reduced does). The KSP wrappers and the factor sub-events are logged for reference.
PETSC_COUNTED_EVENTS = ("PCSetUp", "MatSolve", "MatMatSolve")
PETSC_EVENTS = PETSC_COUNTED_EVENTS + ("KSPSolve", "KSPMatSolve", "MatCholFctrSym", "MatCholFctrNum",
                                       "MatLUFactorSym", "MatLUFactorNum")
PETSC_METHOD = ("PETSc.Log events: PETSc time = delta of (PCSetUp + MatSolve + MatMatSolve) 'time' "
                "from PETSc.Log.Event(name).getPerfInfo() over the measured region, divided by the "
                "time.perf_counter() wall time of that region (best repeat)")


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
#: Stop repeating a measurement once this much time has been spent on it (set by --repeat-budget).
REPEAT_BUDGET_S = 3.0


def measure(fn, repeats: int, clock: machine.PetscClock | None = None):
    """Run ``fn`` up to ``repeats`` times (at least once; no further repeat once
    ``REPEAT_BUDGET_S`` seconds have been spent on it); return (best wall time, PETSc
    event deltas of that repeat, return value of the last call)."""
    best, best_events, result = float("inf"), None, None
    spent = 0.0
    for _ in range(max(1, repeats)):
        if spent > 0.0 and spent + best > REPEAT_BUDGET_S:
            break
        gc.collect()
        before = clock.snapshot() if clock else None
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        spent += dt
        if clock:
            ev = machine.PetscClock.delta(before, clock.snapshot())
        if dt < best:
            best, best_events = dt, (ev if clock else None)
    return best, best_events, result


def petsc_time(events) -> float:
    return sum(events[name]["time"] for name in PETSC_COUNTED_EVENTS)


def machine_info() -> dict:
    """The shared machine record plus what matters for RVE solves: BLAS/LAPACK in use and a
    dgemm rate, dolfinx_mpc/basix/ufl versions, and a hash of the fe2/micro/cell.py measured."""
    import basix
    import dolfinx_mpc
    import ufl

    info = machine.machine_info()
    blas = {}
    for name in ("libblas.so.3-x86_64-linux-gnu", "liblapack.so.3-x86_64-linux-gnu"):
        link = Path("/etc/alternatives") / name
        if link.is_symlink():
            blas[name.split(".so")[0]] = os.path.realpath(link)
    a = np.random.default_rng(1).standard_normal((800, 800))
    dgemm = min(_timed(lambda: a @ a) for _ in range(3))
    blas["numpy_dgemm_gflops_800"] = 2 * 800**3 / dgemm / 1e9
    info["blas"] = blas
    info["versions"].update({
        "dolfinx_mpc": getattr(dolfinx_mpc, "__version__", None) or _dist_version("dolfinx_mpc"),
        "basix": getattr(basix, "__version__", None),
        "ufl": getattr(ufl, "__version__", None),
    })
    info["fe2_cell_py_sha256"] = _sha256(HERE.parent / "fe2" / "micro" / "cell.py")
    return info


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    for dist in (name, name.replace("_", "-")):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _sha256(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def elastic_phases(gdim: int):
    from fe2.core.tensors import isotropic_stiffness
    from fe2.micro.phases import Phase

    # Stiff inclusion in a soft matrix (contrast 10), tags as in fe2.geometry.generators.
    return [Phase("matrix", 1, np.asarray(isotropic_stiffness(10.0, 0.3, gdim))),
            Phase("inclusion", 2, np.asarray(isotropic_stiffness(100.0, 0.25, gdim)))]


def time_constraint(rve_mesh, degree: int) -> float:
    """Wall time of building the fluctuation space, corner pins and periodic constraint
    (fe2.micro.boundary.periodic_constraint, as CellProblem.__init__ does)."""
    from dolfinx import fem

    from fe2.micro.boundary import periodic_constraint

    gdim = rve_mesh.mesh.geometry.dim
    t0 = time.perf_counter()
    V = fem.functionspace(rve_mesh.mesh, ("Lagrange", degree, (gdim,)))
    periodic_constraint(V, rve_mesh.box_min, rve_mesh.box_max)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------------------
def measure_setup(rve_mesh, dim: int, degree: int, args, clock) -> tuple[object, dict, dict]:
    """Construction of a template (JIT cache warm), and, re-measured on their own, matrix
    assembly, fresh factorisation, numeric re-factorisation, unit right-hand sides and the
    sensitivity solves. Returns the template, the ``setup`` record and the PETSc events."""
    from fe2.core import linalg
    from fe2.micro.cell import CellProblem

    reps = args.repeats
    phases = elastic_phases(dim)
    cp_holder = []

    def construct():
        if cp_holder:
            cp_holder.pop().destroy()
        cp = CellProblem(rve_mesh, phases, physics="elasticity", degree=degree)
        cp_holder.append(cp)
        return cp

    t_construct, ev_construct, cp = measure(construct, args.construct_repeats, clock)
    t_constraint = min(time_constraint(rve_mesh, degree) for _ in range(max(1, min(reps, 2))))
    # Factorisation inside that construction (PCSetUp event of the best run).
    construct_factor_s = ev_construct["PCSetUp"]["time"]
    # Large case: a factorisation costs more than the repeat budget, so skip the separate
    # fresh (re-)factorisation measurements and take them from the construction and the
    # full re-solve instead (saves two factorisations per case).
    reduced = construct_factor_s > REPEAT_BUDGET_S

    A2 = cp.assemble_matrix()
    t_asm, _, _ = measure(lambda: cp.assemble_matrix(A2), reps)
    events = {"construct": ev_construct}
    if not reduced:
        ksps = []

        def fresh_factorisation():
            while ksps:
                ksps.pop().destroy()
            ksp = linalg.direct_solver(A2, linalg.unique_prefix("bench_rve_"), None, symmetric=True)
            ksps.append(ksp)
            ksp.setUp()
            return ksp

        t_fact, events["factorize"], ksp2 = measure(fresh_factorisation, reps, clock)

        def refactorise():
            A2.stateIncrease()  # mark the values as changed (MatShift(0) would be a no-op)
            # PCSetUp sees the new state and re-factorises (numeric only, same pattern). Note:
            # ksp.setUp() alone would NOT do it; the re-factorisation would then happen lazily
            # inside the next KSPSolve.
            ksp2.getPC().setUp()

        t_refact, events["refactorize_numeric"], _ = measure(refactorise, reps, clock)
        ksp2.destroy()
        factorize_source = "separate: fresh KSP on a re-assembled matrix, ksp.setUp()"
    else:
        t_fact = construct_factor_s
        events["factorize"] = {k: v for k, v in ev_construct.items()
                               if k in ("PCSetUp", "MatCholFctrSym", "MatCholFctrNum", "MatLUFactorSym",
                                        "MatLUFactorNum")}
        t_refact, events["refactorize_numeric"] = None, None  # filled in from the full re-solve
        factorize_source = "PCSetUp inside the timed construction (large case, not re-measured)"
    A2.destroy()

    t_rhs, _, _ = measure(cp.unit_rhs, reps)
    t_sens, events["sensitivity_solves"], _ = measure(lambda: cp.solve_reduced(cp.B), reps, clock)
    setup = {
        "mesh_generate_s": None,
        "mesh_load_s": None,
        "construct_s": t_construct,
        "space_and_periodic_constraint_s": t_constraint,
        "assemble_matrix_s": t_asm,
        "factorize_s": t_fact,
        "factorize_in_construct_s": construct_factor_s,
        "refactorize_numeric_s": t_refact,
        "factorize_source": factorize_source,
        "assemble_unit_rhs_s": t_rhs,
        "sensitivity_solves_s": t_sens,
        "construct_other_s": t_construct - (t_constraint + t_asm + construct_factor_s + t_rhs + t_sens),
    }
    return cp, setup, events


def factor_info(cp) -> dict:
    """Size and cost of the MUMPS factorisation of a template (if MUMPS is the factoriser)."""
    from fe2.core import linalg

    try:
        F = linalg.factor_matrix(cp.ksp)
        return {"factor_entries": int(F.getMumpsInfog(29)),  # INFOG(29): entries in factors
                "factor_flops": float(F.getMumpsRinfog(3)),  # RINFOG(3): flops of elimination
                "mumps_ordering": int(F.getMumpsInfog(7))}   # INFOG(7): ordering used (2 AMF, 4 PORD)
    except Exception as exc:  # not MUMPS, or petsc4py without the accessors
        return {"factor_info_error": str(exc)}


def measure_evaluate(cp, args, clock, rng) -> tuple[dict, dict]:
    """``CellProblem.evaluate(E)`` on a batch of random macro strains, against a
    one-KSPSolve-per-point loop and one multi-RHS KSPMatSolve. Returns the record and the
    PETSc events."""
    from mpi4py import MPI
    from petsc4py import PETSc

    reps, N = args.repeats, args.batch
    E = rng.standard_normal((N, cp.size)) * 1e-3
    cp.evaluate(E[:2])  # warm-up (first solve allocates MUMPS work arrays)
    t_eval, ev_eval, (sigma, _) = measure(lambda: cp.evaluate(E), reps, clock)
    sigma_ref = E @ cp.effective_tensor.T  # linear cell problem: sigma = C_eff E
    eval_rel_err = float(np.max(np.abs(sigma - sigma_ref)) / max(np.max(np.abs(sigma_ref)), 1e-300))
    solve_per_point = (ev_eval["MatSolve"]["time"] + ev_eval["MatMatSolve"]["time"]) / N

    # Reference (fe2's parallel path, and its serial path before batching): one KSPSolve
    # per point, columns copied in and out of PETSc vectors in a Python loop.
    bv, xv = cp.A.createVecRight(), cp.A.createVecLeft()

    def eval_loop():
        R = cp.B @ E.T
        W = np.empty_like(R)
        for j in range(N):
            bv.array[:] = R[:, j]
            cp.ksp.solve(bv, xv)
            W[:, j] = xv.array_r
        return E @ cp.mean_tensor.T - (W.T @ cp.B) / cp.volume

    eval_loop()
    t_loop, ev_loop, sig_loop = measure(eval_loop, reps, clock)
    loop = {"loop_kspsolve_per_point_s": t_loop / N,
            "loop_kspsolve_petsc_fraction": petsc_time(ev_loop) / t_loop,
            "loop_kspsolve_python_overhead_per_point_s": (t_loop - petsc_time(ev_loop)) / N,
            "loop_kspsolve_rel_diff": float(np.max(np.abs(sig_loop - sigma)) / np.max(np.abs(sigma)))}
    bv.destroy()
    xv.destroy()

    # Reference (not in fe2): the same batch through one multi-RHS KSPMatSolve.
    batched = {}
    try:
        rhs = cp.B @ E.T
        nloc = rhs.shape[0]
        Bd = PETSc.Mat().createDense([nloc, N], array=np.asfortranarray(rhs).ravel(order="F"), comm=MPI.COMM_SELF)
        Xd = PETSc.Mat().createDense([nloc, N], comm=MPI.COMM_SELF)
        Bd.assemble()
        Xd.assemble()

        def eval_matsolve():
            R = cp.B @ E.T
            Bd.getDenseArray()[:] = R
            cp.ksp.matSolve(Bd, Xd)
            W = Xd.getDenseArray()
            return E @ cp.mean_tensor.T - (W.T @ cp.B) / cp.volume

        eval_matsolve()
        t_ms, ev_ms, sig_ms = measure(eval_matsolve, reps, clock)
        batched = {"batched_matsolve_per_point_s": t_ms / N,
                   "batched_matsolve_petsc_fraction": petsc_time(ev_ms) / t_ms,
                   "batched_matsolve_rel_diff": float(np.max(np.abs(sig_ms - sigma)) / np.max(np.abs(sigma)))}
        Bd.destroy()
        Xd.destroy()
    except Exception as exc:
        batched = {"batched_matsolve_error": f"{type(exc).__name__}: {exc}"}
    record = {
        "batch": N,
        "evaluate_batch_s": t_eval,
        "evaluate_per_point_s": t_eval / N,
        "evaluations_per_second": N / t_eval,
        "evaluate_petsc_solve_per_point_s": solve_per_point,
        "evaluate_python_overhead_per_point_s": t_eval / N - solve_per_point,
        "evaluate_rel_error_vs_Ceff": eval_rel_err,
        **loop,
        **batched,
    }
    return record, {"evaluate": ev_eval, "loop_kspsolve": ev_loop}


def measure_full_resolve(cp, args, clock) -> tuple[dict, dict, tuple]:
    """One full linear re-solve (what a nonlinear RVE pays per Newton iterate): matrix
    re-assembly, numeric re-factorisation, unit right-hand sides, ``n`` sensitivity solves,
    on the template's own matrix and KSP (re-assembly gives the same values, so the template
    stays valid). Returns the record, the PETSc events and the best run's parts."""
    n = cp.size
    bvec = cp.A.createVecRight()
    xvec = cp.A.createVecLeft()
    parts = []

    def full_resolve():
        t0 = time.perf_counter()
        cp.assemble_matrix(cp.A)
        t1 = time.perf_counter()
        cp.ksp.getPC().setUp()  # numeric re-factorisation, symbolic analysis reused
        t2 = time.perf_counter()
        Bn = cp.unit_rhs()
        t3 = time.perf_counter()
        W = np.empty_like(Bn)
        for k in range(n):
            bvec.array[:] = Bn[:, k]
            cp.ksp.solve(bvec, xvec)
            W[:, k] = xvec.array_r
        C_eff = cp.mean_tensor - (Bn.T @ W) / cp.volume
        t4 = time.perf_counter()
        parts.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3))
        return C_eff

    t_full, ev_full, C_full = measure(full_resolve, args.repeats, clock)
    bvec.destroy()
    xvec.destroy()
    best = min(parts, key=sum)
    record = {
        "full_resolve_s": t_full,
        "full_resolves_per_second": 1.0 / t_full,
        "full_resolve_parts_s": {"assemble_matrix": best[0], "refactorize_numeric": best[1],
                                 "assemble_unit_rhs": best[2], "sensitivity_solves": best[3]},
        "full_resolve_numeric_factorisations": sum(ev_full[k]["count"] for k in ("MatCholFctrNum", "MatLUFactorNum")),
        "full_resolve_rel_error_vs_Ceff": float(np.max(np.abs(C_full - cp.effective_tensor))
                                                / np.max(np.abs(cp.effective_tensor))),
    }
    return record, ev_full, best


def run_case(dim, degree, h, mesh_path, gen_info, args, clock, rng) -> dict:
    """Every measurement of one (dim, degree, h) case (see the module docstring)."""
    from mpi4py import MPI

    from fe2.geometry.rvemesh import load_rve_mesh

    t_load, _, rve_mesh = measure(lambda: load_rve_mesh(mesh_path, MPI.COMM_SELF), args.repeats)
    cp, setup, events = measure_setup(rve_mesh, dim, degree, args, clock)
    setup.update(mesh_generate_s=gen_info["generate_s"], mesh_load_s=t_load, total_s=t_load + setup["construct_s"])
    factor = factor_info(cp)
    evaluate, ev_evaluate = measure_evaluate(cp, args, clock, rng)
    full, ev_full, best = measure_full_resolve(cp, args, clock)
    if setup["refactorize_numeric_s"] is None:  # large case: from the full re-solve
        setup["refactorize_numeric_s"] = best[1]
        events["refactorize_numeric"] = {k: v for k, v in ev_full.items()
                                         if k in ("PCSetUp", "MatCholFctrNum", "MatLUFactorNum")}
    tdim = rve_mesh.mesh.topology.dim
    result = {
        "dim": dim,
        "degree": degree,
        "h": h,
        "dofs": int(cp.num_dofs),
        "matrix_rows": int(cp.A.getSize()[0]),
        "nodes": int(gen_info["num_nodes"]),
        "cells": int(rve_mesh.mesh.topology.index_map(tdim).size_global),
        "strain_size": cp.size,
        **factor,
        "setup": setup,
        **evaluate,
        **full,
        "petsc_fraction": {
            "evaluate": petsc_time(ev_evaluate["evaluate"]) / evaluate["evaluate_batch_s"],
            "full_resolve": petsc_time(ev_full) / full["full_resolve_s"],
            "setup_construct": petsc_time(events["construct"]) / setup["construct_s"],
        },
        "petsc_events_s": {
            "evaluate": {k: v for k, v in ev_evaluate["evaluate"].items() if v["count"]},
            "loop_kspsolve": {k: v for k, v in ev_evaluate["loop_kspsolve"].items() if v["count"]},
            "full_resolve": {k: v for k, v in ev_full.items() if v["count"]},
            "factorize": {k: v for k, v in events["factorize"].items() if v["count"]},
            "sensitivity_solves": {k: v for k, v in events["sensitivity_solves"].items() if v["count"]},
            "refactorize_numeric": {k: v for k, v in events["refactorize_numeric"].items() if v["count"]},
        },
    }
    cp.destroy()
    return result


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------
def print_table(cases, file=sys.stdout) -> None:
    head = (f"{'dim':>3} {'deg':>3} {'h':>6} {'dofs':>7} {'load':>6} {'constr':>7} {'factor':>7} "
            f"{'eval/s':>8} {'us/pt':>8} {'ovh/pt':>7} {'loop/pt':>8} {'full/s':>8} {'PETSc%ev':>8} "
            f"{'PETSc%full':>10}")
    print(head, file=file)
    print("-" * len(head), file=file)
    for c in cases:
        s = c["setup"]
        loop = c.get("loop_kspsolve_per_point_s", float("nan"))
        print(f"{c['dim']:>3} {c['degree']:>3} {c['h']:>6g} {c['dofs']:>7d} {s['mesh_load_s']:>6.3f} "
              f"{s['construct_s']:>7.3f} {s['factorize_s']:>7.3f} {c['evaluations_per_second']:>8.1f} "
              f"{1e6 * c['evaluate_per_point_s']:>8.1f} "
              f"{1e6 * c['evaluate_python_overhead_per_point_s']:>7.1f} {1e6 * loop:>8.1f} "
              f"{c['full_resolves_per_second']:>8.3g} {100 * c['petsc_fraction']['evaluate']:>7.1f}% "
              f"{100 * c['petsc_fraction']['full_resolve']:>9.1f}%", file=file)
    print("load/constr/factor: s; eval/s, us/pt: CellProblem.evaluate() per macro point; ovh/pt: part of us/pt "
          "outside PETSc solves; loop/pt: reference one-KSPSolve-per-point loop; full/s: full linear "
          "re-solves per second", file=file)


def main(argv=None) -> int:
    ap = machine.parser(__doc__, DEFAULT_OUTPUT, "tiny smoke-test run (4 small cases, < 1 min)")
    ap.add_argument("--batch", type=int, default=None, help="macro points per evaluate() call (default 64; 16 quick)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per timing, best taken (default 3; 2 quick)")
    ap.add_argument("--construct-repeats", type=int, default=None,
                    help="repeats of the CellProblem construction (default 2; 1 quick)")
    ap.add_argument("--repeat-budget", type=float, default=3.0,
                    help="no further repeat of a measurement once this many seconds were spent on it (default 3)")
    ap.add_argument("--only", choices=("2", "3"), default=None, help="run only 2D or only 3D cases")
    ap.add_argument("--cases", nargs="+", metavar="DIM:DEGREE:H", default=None,
                    help="run these cases instead, e.g. --cases 3:1:0.04 3:2:0.08")
    ap.add_argument("--mesh-dir", type=Path, default=None,
                    help="keep generated meshes here (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.batch = args.batch or (16 if args.quick else 64)
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.construct_repeats = args.construct_repeats or (1 if args.quick else 2)
    global REPEAT_BUDGET_S
    REPEAT_BUDGET_S = args.repeat_budget

    from mpi4py import MPI
    from petsc4py import PETSc

    if not machine.runs_serially("rve_throughput.py"):
        return 2
    PETSc.Log.begin()
    clock = machine.PetscClock(PETSC_EVENTS)

    from fe2.micro.cell import CellProblem
    from fe2.geometry.generators import generate
    from fe2.geometry.rvemesh import load_rve_mesh

    cases = QUICK_CASES if args.quick else FULL_CASES
    if args.cases:
        try:
            cases = [(int(d), int(k), float(h)) for d, k, h in (c.split(":") for c in args.cases)]
        except ValueError:
            ap.error("--cases: each case is DIM:DEGREE:H, e.g. 2:1:0.01")
        if any(d not in (2, 3) or k not in (1, 2) or h <= 0 for d, k, h in cases):
            ap.error("--cases: DIM must be 2 or 3, DEGREE 1 or 2, H > 0")
    if args.only:
        cases = [c for c in cases if c[0] == int(args.only)]
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    host = machine_info()
    print(f"machine: {host['cpu_model']}, {host['cores']} cores, {host['platform']}; "
          f"dolfinx {host['versions']['dolfinx']}, PETSc {host['versions']['petsc']}", flush=True)

    with tempfile.TemporaryDirectory(prefix="fe2-bench-") as tmp:
        mesh_dir = args.mesh_dir or Path(tmp)
        mesh_dir.mkdir(parents=True, exist_ok=True)
        meshes: dict[tuple[int, float], tuple[Path, dict]] = {}

        def get_mesh(dim, h):
            key = (dim, h)
            if key not in meshes:
                path = mesh_dir / f"{'circle' if dim == 2 else 'sphere'}_h{h:g}.msh"
                t0 = time.perf_counter()
                g = generate("circle" if dim == 2 else "sphere", path, h=h)
                meshes[key] = (path, {"generate_s": time.perf_counter() - t0, "num_nodes": g.num_nodes})
            return meshes[key]

        # JIT warm-up: one construction per (dim, degree), on that group's smallest mesh.
        warmups = []
        for dim, degree in sorted({(c[0], c[1]) for c in cases}):
            h = max(c[2] for c in cases if c[:2] == (dim, degree))
            path, _ = get_mesh(dim, h)
            rm = load_rve_mesh(path, MPI.COMM_SELF)
            t0 = time.perf_counter()
            cp = CellProblem(rm, elastic_phases(dim), physics="elasticity", degree=degree)
            warmups.append({"dim": dim, "degree": degree, "h": h, "dofs": int(cp.num_dofs),
                            "construct_s": time.perf_counter() - t0})
            cp.destroy()
            print(f"warm-up construction dim={dim} P{degree} h={h:g}: {warmups[-1]['construct_s']:.2f} s "
                  "(includes form JIT compilation if the cache was cold)", flush=True)

        results = []
        out = {
            "machine": host,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "config": {
                "quick": args.quick, "batch": args.batch, "repeats": args.repeats,
                "construct_repeats": args.construct_repeats, "repeat_budget_s": args.repeat_budget,
                "seed": args.seed, "comm": "MPI.COMM_SELF (serial)", "physics": "elasticity",
                "phases": {"matrix": {"tag": 1, "E": 10.0, "nu": 0.3},
                           "inclusion": {"tag": 2, "E": 100.0, "nu": 0.25}},
                "geometry": {"2": "unit square, circle radius 0.25 (fe2.geometry.generators 'circle')",
                             "3": "unit cube, sphere radius 0.25 (fe2.geometry.generators 'sphere')"},
                "solver": "fe2.core.linalg.DIRECT_CHOLESKY (preonly + cholesky, MUMPS), default options",
                "timing": ("time.perf_counter(); best of up to `repeats` runs (construction: "
                           "`construct_repeats`), fewer once `repeat_budget_s` is spent"),
                "petsc_fraction_method": PETSC_METHOD,
            },
            "jit_warmup": warmups,
            "cases": results,
            "complete": False,
            "total_wall_s": None,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)

        def write():
            out["total_wall_s"] = time.perf_counter() - t_start
            args.output.write_text(json.dumps(out, indent=2) + "\n")

        for dim, degree, h in cases:
            path, info = get_mesh(dim, h)
            t0 = time.perf_counter()
            res = run_case(dim, degree, h, path, info, args, clock, rng)
            res["case_wall_s"] = time.perf_counter() - t0
            results.append(res)
            print(f"  dim={dim} P{degree} h={h:<6g} dofs={res['dofs']:>7d}  eval/s={res['evaluations_per_second']:9.1f}"
                  f"  full/s={res['full_resolves_per_second']:8.2f}  ({res['case_wall_s']:.1f} s)", flush=True)
            write()  # partial results survive an interrupted run
            gc.collect()
        out["complete"] = True
        write()

    print()
    print_table(results)
    print(f"\nwrote {args.output} (total {out['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
