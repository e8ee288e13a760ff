"""How long each embedded example takes: the figures the README quotes.

Every example (``fe2 run --example NAME``) runs as its own process tree, ``mpirun -n RANKS
fe2 run --example NAME -q`` (``--ranks``, default 2), ``--repeat`` times (default 3; the
median is the figure), results into a temporary folder. Per example: the wall times of the
runs (the whole process: start-up, set-up, every step, output), their median, and what the
run reported in its ``summary.json`` (status, steps, its own ``wall_seconds``, RVE
evaluations). The README's example list cites the medians of the newest full run.

    bash docker/fe2-env python3 benchmarks/examples.py                 # all, ~5 min
    bash docker/fe2-env python3 benchmarks/examples.py --quick         # plate_with_hole, once, 1 rank

Results: ``benchmarks/results/examples.json``.
"""

from __future__ import annotations

import machine  # first: pins BLAS/OpenMP threads to one per rank

import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "examples.json"


def run_once(name: str, ranks: int, folder: Path) -> dict:
    """One run of example ``name`` on ``ranks`` ranks into ``folder``: wall seconds and its summary."""
    cmd = [sys.executable, "-m", "fe2", "run", "--example", name, "-q", "--overwrite", "-o", str(folder)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    env = {**os.environ, "PYTHONPATH": str(machine.ROOT), "OMPI_ALLOW_RUN_AS_ROOT": "1",
           "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=machine.ROOT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"examples.py: fe2 run --example {name} failed ({p.returncode}): {p.stderr[-2000:]}")
    summary = json.loads((folder / "summary.json").read_text())
    return {"wall_s": wall, "status": summary["status"], "steps": len(summary["steps"]),
            "run_wall_s": summary["wall_seconds"], "rve_evaluations": summary.get("rve_evaluations", 0)}


def main(argv=None) -> int:
    ap = machine.parser(__doc__, DEFAULT_OUTPUT, "plate_with_hole only, once, on one rank")
    ap.add_argument("--examples", nargs="+", help="the examples to time (default: all)")
    ap.add_argument("--ranks", type=int, help="MPI ranks per run (default 2; 1 with --quick)")
    ap.add_argument("--repeat", type=int, help="runs per example; the median is the figure (default 3)")
    args = ap.parse_args(argv)
    from fe2.io import config

    names = args.examples or (["plate_with_hole"] if args.quick else config.example_names())
    unknown = sorted(set(names) - set(config.example_names()))
    if unknown:
        ap.error(f"unknown examples {unknown}; known: {', '.join(config.example_names())}")
    ranks = args.ranks or (1 if args.quick else 2)
    repeat = args.repeat or (1 if args.quick else 3)
    record = machine.Record(args.output, {
        "benchmark": "examples", "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {**machine.machine_info(), "mpi_ranks": ranks},
        "config": {"ranks": ranks, "repeat": repeat, "command": f"mpirun -n {ranks} fe2 run --example NAME -q"},
        "examples": {}})
    with tempfile.TemporaryDirectory(prefix="fe2-examples-") as tmp:
        for name in names:
            runs = [run_once(name, ranks, Path(tmp) / name) for _ in range(repeat)]
            walls = [r["wall_s"] for r in runs]
            record.data["examples"][name] = {
                "wall_s": walls, "median_wall_s": statistics.median(walls),
                **{k: runs[-1][k] for k in ("status", "steps", "rve_evaluations")},
                "run_wall_s": [r["run_wall_s"] for r in runs]}
            print(f"{name:22s} {statistics.median(walls):7.1f} s (median of {repeat} on {ranks} rank"
                  f"{'s' if ranks > 1 else ''}; {runs[-1]['steps']} steps)", flush=True)
            record.write()
    record.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
