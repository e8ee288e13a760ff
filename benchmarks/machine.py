"""Bookkeeping shared by the benchmark scripts: one core per process, and a record of the
machine a figure was measured on (written into every benchmark's JSON).

Import this module first in a benchmark script: it pins the BLAS/OpenMP threads before
numpy or PETSc (MUMPS) are loaded, and puts the checkout first on ``sys.path``, so that a
benchmark measures the checkout's fe2.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
for _v in THREAD_VARS:  # one core per process (MPI ranks are the parallelism)
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def git_head(repo: Path = ROOT) -> str | None:
    """HEAD commit read from .git directly (git itself may be missing in the runtime)."""
    try:
        head = (repo / ".git" / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        ref_file = repo / ".git" / ref
        if ref_file.is_file():
            return ref_file.read_text().strip()
        packed = repo / ".git" / "packed-refs"
        for line in packed.read_text().splitlines() if packed.is_file() else []:
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """Platform, CPU model, cores, load, thread pinning, library versions, git commit."""
    import dolfinx
    import numpy as np
    import petsc4py
    from petsc4py import PETSc

    cpu = None
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.lower().startswith("model name")), None)
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "cores_available": affinity,
        "loadavg_at_start": load,
        "threads_env": {v: os.environ.get(v) for v in THREAD_VARS},
        "versions": {"dolfinx": dolfinx.__version__, "petsc4py": petsc4py.__version__,
                     "petsc": ".".join(str(v) for v in PETSc.Sys.getVersion()), "numpy": np.__version__},
        "git_commit": git_head(),
    }


class PetscClock:
    """Cumulative times and counts of PETSc log events (``PETSc.Log.begin()`` must be on):
    ``snapshot()`` before and after a region, ``delta(before, after)`` per event."""

    def __init__(self, events) -> None:
        from petsc4py import PETSc

        self.events = {name: PETSc.Log.Event(name) for name in events}

    def snapshot(self) -> dict[str, tuple[float, int]]:
        out = {}
        for name, ev in self.events.items():
            info = ev.getPerfInfo()
            out[name] = (float(info["time"]), int(info["count"]))
        return out

    @staticmethod
    def delta(before, after) -> dict[str, dict[str, float]]:
        return {k: {"time": after[k][0] - before[k][0], "count": after[k][1] - before[k][1]} for k in before}


def runs_serially(script: str) -> bool:
    """Whether this process runs alone; under ``mpirun`` a one-line message (rank 0) and
    False: ``script`` measures one core."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.size == 1:
        return True
    if MPI.COMM_WORLD.rank == 0:
        print(f"{script} measures one core: run it serially, not under mpirun", file=sys.stderr)
    return False


def parser(doc: str, default_output: Path, quick: str, output: str = "JSON output") -> argparse.ArgumentParser:
    """The command line every benchmark starts from: the first paragraph of its docstring
    ``doc`` as description, ``--quick`` (help ``quick``) and ``--output`` (a path, default
    ``default_output``)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--output", type=Path, default=default_output, help=f"{output} (default {default_output})")
    return ap


class Record:
    """A benchmark's JSON result, rewritten after every finished case so that a killed run
    leaves what it measured: ``record.data`` is the dict; :meth:`write` stamps
    ``wall_seconds``; :meth:`finish` sets ``complete`` and says where it went."""

    def __init__(self, path: Path, data: dict) -> None:
        self.path, self.data, self._t0 = Path(path), data, time.perf_counter()
        self.data.setdefault("complete", False)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self) -> None:
        self.data["wall_seconds"] = time.perf_counter() - self._t0
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")

    def finish(self) -> None:
        self.data["complete"] = True
        self.write()
        print(f"wrote {self.path} ({self.data['wall_seconds']:.0f} s)")
