"""Which sparse factoriser is fastest for RVE Jacobians: the measurement behind the
defaults of :func:`fe2.core.linalg.rve_solver_options`.

For periodic RVE meshes of several sizes in 2D and 3D (a circle/sphere inclusion, P1),
the condensed Jacobian of the batched micro engine (:class:`fe2.micro.operators.CellOperators`)
is factorised over and over with the same sparsity pattern, as the engine does per macro
point: once with symbolic analysis, then ``--repeat`` numeric factorisations that reuse it.
Symmetric matrices (elastic/plastic tangents: Cholesky) and non-symmetric ones (a damage-like
tangent ``C + a x b``: LU) are measured with every factoriser PETSc offers here. Per
factoriser: numeric factorisation time (median), one solve, a block of ``n`` solves (the
sensitivities), the factor's entries, and the error of a solve against the first
factoriser's.

    bash docker/fe2-env python3 benchmarks/factorisers.py            # full, a few minutes
    bash docker/fe2-env python3 benchmarks/factorisers.py --quick    # smoke test

Results go to ``benchmarks/results/factorisers.json`` (see ``benchmarks/README.md``).
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
DEFAULT_OUTPUT = HERE / "results" / "factorisers.json"

FULL_CASES = [(2, 0.1), (2, 0.05), (2, 0.025), (3, 0.4), (3, 0.25), (3, 0.15)]
QUICK_CASES = [(2, 0.25), (3, 0.5)]
CHOLESKY = ("cholmod", "mumps", "petsc")
LU = ("umfpack", "klu", "superlu", "mumps", "petsc")


def jacobians(dim: int, h: float, workdir: Path):
    """The engine's operators for an RVE, and symmetric / non-symmetric Jacobian values."""
    from mpi4py import MPI

    from fe2.materials import LinearElastic
    from fe2.geometry import generators
    from fe2.micro.phases import Phase
    from fe2.micro.nonlinear import NonlinearCellProblem
    from fe2.micro.operators import CellOperators
    from fe2.geometry.rvemesh import load_rve_mesh

    path = workdir / f"{'circle' if dim == 2 else 'sphere'}_h{h:g}.msh"
    generators.generate("circle" if dim == 2 else "sphere", path, radius=0.3, h=h)
    phases = [Phase("matrix", 1, law=LinearElastic.isotropic(1.0, 0.3, dim)),
              Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, dim))]
    cell = NonlinearCellProblem(load_rve_mesh(path, MPI.COMM_SELF), phases, engine="reference")
    op = CellOperators(cell.space, cell.quadrature, cell.kinematics)
    n, P = cell.size, op.num_points
    T = np.empty((1, P, n, n))
    for ph, idx in zip(cell.phases, cell.phase_points):
        T[0, idx] = ph.tensor
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((P, n)), rng.standard_normal((P, n))
    T_unsym = T + 0.05 * a[None, :, :, None] * b[None, :, None, :]
    out = op, op.jacobian_values(T)[0], op.jacobian_values(T_unsym)[0], cell.num_dofs
    cell.destroy()
    return out


def measure(op, values, solver: str, symmetric: bool, repeat: int) -> dict:
    from petsc4py import PETSc

    from fe2.core import linalg

    opts = {"pc_type": "cholesky" if symmetric else "lu", "pc_factor_mat_solver_type": solver}
    try:
        ps = linalg.PatternSolver(op.indptr, op.indices, linalg.unique_prefix("bench_factor_"), opts,
                                  symmetric=symmetric)
        rhs = np.random.default_rng(1).standard_normal((op.nfree, op.size))
        t0 = time.perf_counter()
        ps.factor(values)
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            ps.factor(values)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(repeat):
            x1 = ps.solve(rhs[:, 0])
        one = (time.perf_counter() - t0) / repeat
        t0 = time.perf_counter()
        for _ in range(repeat):
            X = ps.solve(rhs)
        block = (time.perf_counter() - t0) / repeat
        res = {"solver": ps.solver_type, "first_factorisation_s": first,
               "numeric_factorisation_s": float(np.median(times)), "solve_s": one, "block_solve_s": block,
               "factor_bytes": ps.factor_bytes(), "solution": X, "x1": x1}
        ps.destroy()
        return res
    except (PETSc.Error, Exception) as err:  # a factoriser this PETSc does not offer for this matrix type
        return {"solver": solver, "error": str(err).splitlines()[0][:200]}


def main(argv=None) -> int:
    ap = machine.parser(__doc__, DEFAULT_OUTPUT, "two small cases, few repetitions (smoke test)")
    ap.add_argument("--repeat", type=int, default=None, help="numeric factorisations per measurement (default 20)")
    args = ap.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 20)


    if not machine.runs_serially("factorisers.py"):
        return 2
    out = {"benchmark": "factorisers", "machine": machine.machine_info(),
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "config": {"quick": args.quick, "repeat": repeat,
                      "rve": "circle/sphere inclusion r = 0.3, P1, condensed periodic Jacobian of the batched engine",
                      "symmetric": "elastic tangents (matrix E 1 nu 0.3, inclusion E 10 nu 0.2): Cholesky",
                      "non_symmetric": "the same plus 0.05 a x b per micro point (random a, b): LU"},
           "cases": [], "fastest": {}}
    record = machine.Record(args.output, out)
    write = record.write

    with tempfile.TemporaryDirectory(prefix="fe2-factorisers-") as tmp:
        for dim, h in (QUICK_CASES if args.quick else FULL_CASES):
            op, sym, unsym, ndofs = jacobians(dim, h, Path(tmp))
            case = {"dim": dim, "h": h, "dofs": int(ndofs), "free_dofs": int(op.nfree), "nnz": int(op.nnz),
                    "symmetric": [], "non_symmetric": []}
            for key, values, symmetric, solvers in (("symmetric", sym, True, CHOLESKY),
                                                    ("non_symmetric", unsym, False, LU)):
                ref = None
                for solver in solvers:
                    r = measure(op, values, solver, symmetric, repeat)
                    if "error" not in r:
                        X = r.pop("solution")
                        r.pop("x1")
                        ref = X if ref is None else ref
                        r["relative_difference"] = float(np.abs(X - ref).max() / np.abs(ref).max())
                        # what a point costs: one factorisation and its n sensitivity solves
                        r["per_point_s"] = r["numeric_factorisation_s"] + r["block_solve_s"]
                    case[key].append(r)
                ok = [r for r in case[key] if "error" not in r]
                best = min(ok, key=lambda r: r["per_point_s"])
                case[f"fastest_{key}"] = best["solver"]
                print(f"{dim}D h={h:<6g} {op.nfree:>7d} free DOFs {key:>13s}: "
                      + ", ".join(f"{r['solver']} {1e3 * r['per_point_s']:.3f} ms" for r in ok)
                      + f"  -> {best['solver']}", flush=True)
            out["cases"].append(case)
            write()
    record.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
