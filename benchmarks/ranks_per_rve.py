"""RVEs on sub-communicators (``[parallel] ranks_per_rve``): when is a group of ranks per RVE
worth it?

RVEs: ``big``, a 3D unit cell of ``n^3`` hexahedra split into tetrahedra (dolfinx
``create_box``, P1, n = 32: 107,811 fluctuation DOFs) with a centred cubic inclusion of
half the edge; ``small``, the same with n = 8 (2,187 DOFs). Phases: a J2 matrix (the
plastic_plate law) and a 10 times stiffer elastic inclusion. An *evaluation* is one macro
point's micro solve at a macro strain 1.5 times the matrix's yield strain along x (plastic:
several micro Newton iterations, each with a factorisation, then the consistent tangent),
from the virgin state.

1. ``per_evaluation``: the big RVE at one point, on 1 rank (``ranks_per_rve = 1``:
   CHOLMOD) and on 2 ranks as one group (``ranks_per_rve = 2``: MUMPS over both), each with
   the batched and the reference micro engine.
   Recorded: the seconds of the evaluation (the slowest rank's), the seconds to build the
   template (mesh, constraint, elastic factorisation), and each rank's peak resident memory
   (``ru_maxrss``) with what the process held before the template was built.
2. ``throughput``: 2 ranks, ``points`` macro points of each RVE (half on each rank),
   evaluated by two groups of 1 rank (each rank its own points) and by one group of 2 ranks
   (the group all points together), both with the batched engine: macro points per second.

Each configuration runs in its own process tree (``mpirun -n 2`` for two ranks), one after
the other, BLAS single-threaded.

    bash docker/fe2-env python3 benchmarks/ranks_per_rve.py            # ~40 min
    bash docker/fe2-env python3 benchmarks/ranks_per_rve.py --quick    # smoke test, ~30 s
    bash docker/fe2-env python3 benchmarks/ranks_per_rve.py --only per_evaluation:big:2

``--only`` runs the configurations whose label (``section:rve:ranks_per_rve:engine``)
starts with one of the given prefixes (comma-separated); the ratios are computed from
what ran.

Results: ``benchmarks/results/ranks_per_rve.json`` (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import machine  # first: pins BLAS/OpenMP threads to one per rank

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent

DEFAULT_OUTPUT = HERE / "results" / "ranks_per_rve.json"
FULL = {"big": 32, "small": 8, "points": {"big": 2, "small": 16}}
QUICK = {"big": 6, "small": 3, "points": {"big": 2, "small": 4}}
#: the matrix law (the plastic_plate example's J2) and the inclusion's stiffness
J2 = {"E": 1.0, "nu": 0.3, "sigma_y": 0.01, "H_iso": 0.2, "Q": 0.005, "b": 50.0, "H_kin": 0.1}
STIFF = 10.0


def rve(comm, n: int):
    """The cubic cell of ``n^3`` hexahedra (6 tetrahedra each), inclusion tag 2."""
    from types import SimpleNamespace

    import numpy as np
    from dolfinx import mesh as dmesh

    m = dmesh.create_box(comm, [np.zeros(3), np.ones(3)], [n, n, n])
    tdim = m.topology.dim
    imap = m.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    mid = dmesh.compute_midpoints(m, tdim, cells)
    tags = dmesh.meshtags(m, tdim, cells, np.where(np.all(np.abs(mid - 0.5) < 0.25, axis=1), 2, 1).astype(np.int32))
    return SimpleNamespace(mesh=m, cell_tags=tags, box_min=np.zeros(3), box_max=np.ones(3), path=f"box n={n}")


def worker(args) -> None:
    """One configuration on the ranks this process was started with (``--worker``): prints
    one JSON line (rank 0)."""
    import resource
    import time

    import numpy as np
    from mpi4py import MPI

    from fe2.materials import LinearElastic
    from fe2.materials.plasticity import J2Plasticity
    from fe2.micro.phases import Phase
    from fe2.parallel.groups import GroupMaterial, RankGroups
    from fe2.micro.nonlinear import NonlinearCellProblem

    world = MPI.COMM_WORLD
    size = QUICK if args.quick else FULL
    n = size[args.rve]
    groups = RankGroups(world, args.per_rve)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    phases = [Phase("matrix", 1, law=J2Plasticity(J2["E"], J2["nu"], J2["sigma_y"], 3, H_iso=J2["H_iso"], Q=J2["Q"],
                                                  b=J2["b"], H_kin=J2["H_kin"])),
              Phase("inclusion", 2, law=LinearElastic.isotropic(STIFF, 0.2, 3))]
    world.barrier()
    t0 = time.perf_counter()
    cell = NonlinearCellProblem(rve(groups.comm, n), phases, rtol=1e-10, engine=args.engine)
    world.barrier()
    t_build = time.perf_counter() - t0
    material = GroupMaterial(cell, groups.comm) if args.per_rve > 1 else cell
    points = args.points // world.size + (1 if world.rank < args.points % world.size else 0)  # this rank's
    eps_y = J2["sigma_y"] / J2["E"]
    rng = np.random.default_rng(world.rank)
    E = np.zeros((points, 6))
    E[:, 0] = 1.5 * eps_y * (1.0 + 0.1 * rng.uniform(size=points))
    E[:, 1:3] = -0.3 * E[:, :1]
    world.barrier()
    t0 = time.perf_counter()
    sigma, _ = material.evaluate(E)
    t_eval = world.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    stats = cell.statistics()
    row = {"rve": args.rve, "n": n, "dofs": cell.num_dofs, "ranks": world.size, "ranks_per_rve": args.per_rve,
           "engine": cell.engine_name, "points": world.allreduce(points), "build_seconds": t_build,
           "evaluation_seconds": t_eval, "points_per_second": world.allreduce(points) / t_eval,
           "peak_rss_mb_per_rank": world.allgather(peak), "rss_before_template_mb_per_rank": world.allgather(before),
           "newton_iterations_rank0": stats.get("newton_iterations", 0),
           "sigma_xx_first_point": float(world.bcast(sigma[0, 0] if world.rank == 0 else None))}
    if world.rank == 0:
        print("RESULT " + json.dumps(row), flush=True)


#: (section, rve, ranks, ranks_per_rve, engine, points)
def configurations(size: dict) -> list[tuple[str, str, int, int, str, int]]:
    out = [("per_evaluation", "big", ranks, ranks, engine, 1)
           for ranks in (1, 2) for engine in ("batched", "reference")]
    for r in ("small", "big"):
        p = size["points"][r]
        out += [("throughput", r, 2, 1, "batched", p), ("throughput", r, 2, 2, "batched", p)]
    return out


def label(config: tuple) -> str:
    section, r, _, per_rve, engine, _ = config
    return f"{section}:{r}:{per_rve}:{engine}"


def main() -> None:
    parser = machine.parser(__doc__, DEFAULT_OUTPUT, "small RVEs (smoke test)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rve", choices=("big", "small"), default="big", help=argparse.SUPPRESS)
    parser.add_argument("--per-rve", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="batched", help=argparse.SUPPRESS)
    parser.add_argument("--points", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--only", default="", help="run only the configurations whose label "
                        "(section:rve:ranks_per_rve:engine) starts with one of these comma-separated prefixes")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    size = QUICK if args.quick else FULL
    record = machine.Record(Path(args.output), {
        "benchmark": "ranks_per_rve", "machine": machine.machine_info(), "quick": args.quick,
        "sizes": size, "per_evaluation": [], "throughput": []})
    with tempfile.TemporaryDirectory() as tmp:
        prefixes = [p for p in args.only.split(",") if p]
        for config in configurations(size):
            if prefixes and not any(label(config).startswith(p) for p in prefixes):
                continue
            section, r, ranks, per_rve, engine, points = config
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--rve", r, "--per-rve", str(per_rve),
                   "--engine", engine, "--points", str(points)] + (["--quick"] if args.quick else [])
            if ranks > 1:
                cmd = ["mpirun", "-n", str(ranks)] + cmd
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
            lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode or not lines:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
            row = json.loads(lines[0][len("RESULT "):])
            record.data[section].append(row)
            print(f"{section}: {r} RVE ({row['dofs']} DOFs), {ranks} rank(s), ranks_per_rve {per_rve}, "
                  f"{row['engine']} engine, {row['points']} point(s): {row['evaluation_seconds']:.2f} s "
                  f"({row['points_per_second']:.3g} points/s), template {row['build_seconds']:.1f} s, peak RSS "
                  f"{', '.join(f'{m:.0f}' for m in row['peak_rss_mb_per_rank'])} MB", flush=True)
            record.write()
    per = {(row["ranks_per_rve"], row["engine"]): row["evaluation_seconds"] for row in record.data["per_evaluation"]}
    ratios = {}  # time of one evaluation, 1 rank / group of 2 (a speed-up of the group)
    for engine in ("batched", "reference"):
        if (1, engine) in per and (2, engine) in per:
            ratios[f"group_speedup_{engine}"] = per[(1, engine)] / per[(2, engine)]
    if (2, "batched") in per and (2, "reference") in per:
        ratios["group_batched_vs_reference"] = per[(2, "reference")] / per[(2, "batched")]
    for r in ("small", "big"):
        rows = {row["ranks_per_rve"]: row for row in record.data["throughput"] if row["rve"] == r}
        if 1 in rows and 2 in rows:  # points per second, one group of 2 / two groups of 1
            ratios[f"throughput_ratio_{r}"] = rows[2]["points_per_second"] / rows[1]["points_per_second"]
    record.data.update(ratios)
    print("; ".join(f"{k} = {v:.3g}" for k, v in ratios.items()), flush=True)
    record.finish()


if __name__ == "__main__":
    main()
