"""Does a long run grow in memory? Resident memory per step of a cyclic FE² run.

A J2 composite square (``plastic_cycle``'s RVE and macro mesh) is stretched and compressed
in ``--cycles`` strain cycles (+-1 %) over ``--steps`` load steps (default 40 and 1,000),
with field output, checkpoints and an RVE snapshot every step as in a real run, in this
process (serially; ``mpirun -n 2`` works too: every rank records its own memory). After
every converged step the resident set size (``VmRSS`` of ``/proc/self/status``) is
recorded with the step's wall time. The figure of merit is the growth after the first 50
steps, ``(RSS_last - RSS_50) / RSS_50`` (the first steps load libraries, compile kernels and
fill caches); leaked PETSc objects, growing Python lists and files kept open would show
there. Also recorded: the time per step over the run (a run that slows down as it goes,
e.g. rewriting a growing file every step).

    bash docker/fe2-env python3 benchmarks/long_run.py              # 1,000 steps, a few minutes
    bash docker/fe2-env python3 benchmarks/long_run.py --quick      # 60 steps

Results: ``benchmarks/results/long_run.json`` (``rss_mb[k]`` and ``step_s[k]`` per step per
rank, ``growth_after_50``, ``step_s_first_100`` / ``step_s_last_100`` medians).
"""

from __future__ import annotations

import machine  # first: pins BLAS/OpenMP threads to one per rank

import datetime  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "long_run.json"


def rss_mb() -> float:
    """This process's resident set size in MB (``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def case(steps: int, cycles: int, fields: bool = True, checkpoints: bool = True, snapshot: bool = True) -> dict:
    """The cyclic case: ``cycles`` strain cycles 0 -> +1 % -> -1 % -> 0 in ``steps`` steps."""
    from fe2.io import config

    text = config.example_text("plastic_cycle")
    import tomllib

    data = tomllib.loads(text)
    data["macro"].pop("traction", None)
    table = [[0.0, 0.0]]
    for c in range(cycles):
        table += [[4 * c + 1.0, 1.0], [4 * c + 3.0, -1.0], [4 * c + 4.0, 0.0]]
    data["loading"] = {"steps": steps, "end_time": 4.0 * cycles, "amplitudes": {"cycle": table}}
    data["output"] = {"format": "xdmf" if fields else "none", "checkpoint_every": 1 if checkpoints else 0,
                      "rve_snapshots": [{"name": "rve", "point": [0.5, 0.5], "steps": "last"}] if snapshot else []}
    return data


def main(argv=None) -> int:
    ap = machine.parser(__doc__, DEFAULT_OUTPUT, "60 steps in 3 cycles")
    ap.add_argument("--steps", type=int, help="load steps (default 1000; 60 with --quick)")
    ap.add_argument("--cycles", type=int, help="strain cycles (default 40; 3 with --quick)")
    ap.add_argument("--without", nargs="+", default=[], choices=("fields", "checkpoints", "snapshot"),
                    help="leave this output out (to find what grows)")
    args = ap.parse_args(argv)
    from mpi4py import MPI

    from fe2 import twoscale
    from fe2.io import config

    comm = MPI.COMM_WORLD
    steps = args.steps or (60 if args.quick else 1000)
    cycles = args.cycles or (3 if args.quick else 40)
    cfg = config.parse_case(case(steps, cycles, **dict.fromkeys(args.without, False)), "long_run")
    rss, wall = [], []
    record_step = twoscale._record

    def record(step, *rest, **kw):  # after every converged step: the memory and the step's time
        row = record_step(step, *rest, **kw)
        rss.append(rss_mb())
        wall.append(step.wall)
        if comm.rank == 0 and len(rss) % 100 == 0:
            print(f"  step {len(rss)}: {rss[-1]:.1f} MB, {wall[-1]:.3f} s", flush=True)
        return row

    twoscale._record = record
    rec = machine.Record(args.output, {
        "benchmark": "long_run", "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {**machine.machine_info(), "mpi_ranks": comm.size},
        "config": {"steps": steps, "cycles": cycles, "without": args.without,
                   "case": "plastic_cycle's RVE and mesh, strain cycles +-1 %, xdmf output, a checkpoint and an RVE "
                           "snapshot every step (less --without)"}})
    with tempfile.TemporaryDirectory(prefix="fe2-long-") as tmp:
        out = comm.bcast(tmp, root=0)
        t0 = time.perf_counter()
        result = twoscale.run(cfg, comm, output=out, verbose=False)
        total = time.perf_counter() - t0
    rss_all, wall_all = comm.gather(rss, root=0), comm.gather(wall, root=0)
    if comm.rank == 0:
        k = min(50, len(rss) - 1)
        growth = [(r[-1] - r[k]) / r[k] for r in rss_all]
        n = min(100, len(wall) // 2)
        rec.data.update({
            "complete_steps": len(rss), "status": result.summary["status"], "run_seconds": total,
            "rss_mb": rss_all, "step_s": wall_all, "growth_after_50": growth,
            "rss_mb_at_50": [r[k] for r in rss_all], "rss_mb_last": [r[-1] for r in rss_all],
            "step_s_first_100": statistics.median(wall[:n]), "step_s_last_100": statistics.median(wall[-n:])})
        print(f"{len(rss)} steps in {total:.0f} s; RSS {rss[k]:.1f} MB at step {k} -> {rss[-1]:.1f} MB at the end "
              f"(growth {100 * max(growth):.2f} %); median step {rec.data['step_s_first_100']:.3f} s first, "
              f"{rec.data['step_s_last_100']:.3f} s last", flush=True)
        rec.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
