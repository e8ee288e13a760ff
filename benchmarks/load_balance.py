"""Load balancing of RVE evaluations: a strip whose plastic zone lies in one rank's part.

Case: a plane-strain strip ``[0, 4] x [0, 1]`` pulled along x (left edge fixed in x, the
bottom-left corner region held in y by the bottom edge), with its height reduced by 30 %
near the left end (``bar`` generator, ``imperfection_at = 0.2``), pulled to 0.6 % mean
strain: the plastic zone forms at x = 0.8 and stays there, inside the part of the first
rank when the strip is split across its length; the rest of the strip stays elastic.
Material: the plastic_plate RVE (J2 matrix, stiff elastic circular inclusions), P1 macro
mesh, a nonlinear RVE at every macro quadrature point.

Runs of the same case (each a separate process tree, one after the other): ``serial``
(1 rank), ``unbalanced`` (``mpirun -n 2``, ``[parallel] balance = false``), ``balanced``
(``mpirun -n 2``, the default), and ``serial_pair``: two independent serial runs at the
same time, which shows what running two processes at once costs on this machine (shared
caches, memory bandwidth, hyper-threads): ``T1 / T_pair`` is the efficiency a perfectly
balanced 2-rank run could reach here. Recorded for each: wall time of the run, the
RVE seconds of every rank (time in the micro engine, ``rve_statistics.seconds_per_rank``
of ``summary.json``), the RVE wall time (every evaluation timed on its slowest rank,
exchanges included: the ``time_rve_s`` of the steps), points moved, and the final
reaction (which must agree). Derived: the imbalance ``max / mean`` of the RVE seconds per
rank (summed over the run, so it hides imbalance that changes sides between evaluations),
and the 2-rank parallel efficiency ``T1 / (2 T2)`` of the whole run (``efficiency``) and of
its RVE evaluations (``rve_efficiency``).

    bash docker/fe2-env python3 benchmarks/load_balance.py            # ~3 min
    bash docker/fe2-env python3 benchmarks/load_balance.py --quick    # smoke test, ~20 s

Results: ``benchmarks/results/load_balance.json`` (see ``benchmarks/README.md``).
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

DEFAULT_OUTPUT = HERE / "results" / "load_balance.json"
FULL = {"n": 32, "ny": 8, "h": 0.1, "steps": 5, "u": 0.024}
QUICK = {"n": 12, "ny": 3, "h": 0.25, "steps": 2, "u": 0.03}
RUNS = {"serial": (1, True), "unbalanced": (2, False), "balanced": (2, True), "serial_pair": (1, True)}


def case_dict(size: dict, balance: bool) -> dict:
    """The notched strip (see the module docstring) as a case-file dictionary."""
    return {
        "title": "notched strip: plastic zone near the left end",
        "macro": {"mesh": {"generator": "bar", "width": 4.0, "height": 1.0, "structured": size["n"],
                           "cells_y": size["ny"], "imperfection": 0.3, "imperfection_width": 0.3,
                           "imperfection_at": 0.2},
                  "degree": 1, "material": "rve",
                  "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0},
                                {"boundary": "right", "component": "x", "value": size["u"]}]},
        "rve": {"generate": {"kind": "circle", "radius": 0.3, "h": size["h"]},
                "phases": {"matrix": {"tag": 1, "law": "j2", "E": 1.0, "nu": 0.3, "sigma_y": 0.01,
                                      "H_iso": 0.05, "Q": 0.003, "b": 50.0, "H_kin": 0.02},
                           "inclusion": {"tag": 2, "E": 10.0, "nu": 0.2}}},
        "loading": {"steps": size["steps"]},
        "solver": {"rtol": 1e-9, "atol": 1e-14, "max_iterations": 12},
        "output": {"format": "none"},
        "parallel": {"balance": balance},
    }


def run_one(args) -> None:
    """One run of the case on the ranks this process was started with (``--run-one``)."""
    from mpi4py import MPI

    from fe2.io.config import parse_case
    from fe2.twoscale import run

    size = QUICK if args.quick else FULL
    cfg = parse_case(case_dict(size, args.balance == "on"), "load_balance.py")
    run(cfg, MPI.COMM_WORLD, output=args.run_one, verbose=False, overwrite=True)


def main() -> None:
    parser = machine.parser(__doc__, DEFAULT_OUTPUT, "a small strip and RVE (smoke test)")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    parser.add_argument("--balance", choices=("on", "off"), default="on", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(args)
        return
    size = QUICK if args.quick else FULL
    record = machine.Record(Path(args.output), {
        "benchmark": "load_balance", "machine": machine.machine_info(), "quick": args.quick,
        "case": case_dict(size, True), "runs": {}})
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ranks, balance) in RUNS.items():
            out = Path(tmp) / name
            cmd = [sys.executable, str(Path(__file__).resolve()), "--run-one", str(out),
                   "--balance", "on" if balance else "off"] + (["--quick"] if args.quick else [])
            if ranks > 1:
                cmd = ["mpirun", "-n", str(ranks)] + cmd
            if name == "serial_pair":
                twin = [*cmd[:3], str(Path(tmp) / "twin"), *cmd[4:]]
                procs = [subprocess.Popen(c) for c in (cmd, twin)]
                if any(p.wait() for p in procs):
                    raise SystemExit("a run of the serial pair failed")
            else:
                subprocess.run(cmd, check=True)
            s = json.loads((out / "summary.json").read_text())
            st = s["rve_statistics"]
            per_rank = st["seconds_per_rank"]
            row = {"ranks": ranks, "balance": balance, "wall_seconds": s["wall_seconds"],
                   "rve_seconds_per_rank": per_rank,
                   "rve_wall_seconds": sum(st_["time_rve_s"] for st_ in s["steps"]),
                   "rve_imbalance": max(per_rank) / (sum(per_rank) / len(per_rank)),
                   "moved": st.get("moved", 0), "rve_evaluations": s["rve_evaluations"],
                   "macro_points": s["macro"]["quadrature_points"],
                   "factorisations": st["factorisations"], "shortcut": st["shortcut"],
                   "reaction_right_x": s["steps"][-1]["reaction_right_x"]}
            record.data["runs"][name] = row
            print(f"{name:>10}: {ranks} rank(s), wall {row['wall_seconds']:.1f} s, RVE wall "
                  f"{row['rve_wall_seconds']:.1f} s, RVE seconds per rank "
                  f"{', '.join(f'{t:.1f}' for t in per_rank)} (max/mean {row['rve_imbalance']:.2f}), "
                  f"moved {row['moved']}", flush=True)
            record.write()
    runs = record.data["runs"]
    t1 = runs["serial"]
    record.data["pair_efficiency"] = t1["wall_seconds"] / runs["serial_pair"]["wall_seconds"]
    print(f"two serial runs at once: T1 / T_pair = {record.data['pair_efficiency']:.3f} (the ceiling of a "
          f"2-rank efficiency on this machine)", flush=True)
    for name in ("unbalanced", "balanced"):
        r = runs[name]
        r["efficiency"] = t1["wall_seconds"] / (2.0 * r["wall_seconds"])
        r["rve_efficiency"] = t1["rve_wall_seconds"] / (2.0 * r["rve_wall_seconds"])
        r["reaction_difference"] = abs(r["reaction_right_x"] - t1["reaction_right_x"]) / abs(t1["reaction_right_x"])
        print(f"{name:>10}: T1/(2 T2) = {r['efficiency']:.3f} (RVE work alone {r['rve_efficiency']:.3f}); "
              f"reaction differs from serial by {r['reaction_difference']:.1e}", flush=True)
    record.finish()


if __name__ == "__main__":
    main()
