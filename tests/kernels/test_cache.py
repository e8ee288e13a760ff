"""The compiled kernels' cache: importing fe2 points numba at ``$FE2_KERNEL_CACHE`` before
dolfinx imports numba (it used to be the source tree's ``__pycache__``), and four fe2 runs
started at once on an empty cache (different cases, different folders) all finish with the
results of a lone run."""

import csv
import os
import subprocess
import sys
import time

import pytest
from mpi4py import MPI

from helpers import ROOT, serial_env

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns its own runs; serial run only")

#: examples that use different kernels: J2 (two of them), Neo-Hooke, nonlinear conduction
EXAMPLES = ("plastic_plate", "plastic_cycle", "hyperelastic_plate", "thermal_plate")


def history(folder):
    """The history rows without the timings (which differ from run to run)."""
    with open(folder / "history.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if not k.startswith("time_")} for row in csv.DictReader(fh)]


def start(example, out, cache):
    env = serial_env(PYTHONPATH=str(ROOT), FE2_KERNEL_CACHE=str(cache))
    env.pop("NUMBA_CACHE_DIR", None)
    return subprocess.Popen([sys.executable, "-m", "fe2", "run", "--example", example, "-q", "-o", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out.parent)


def test_four_runs_at_once_on_an_empty_kernel_cache(tmp_path):
    cache = tmp_path / "cache"
    source_cache = ROOT / "fe2" / "kernels" / "__pycache__"
    before = {p.name: p.stat().st_mtime for p in source_cache.glob("*.nbi")} if source_cache.is_dir() else {}
    t0 = time.time()
    runs = {ex: start(ex, tmp_path / f"together_{ex}", cache) for ex in EXAMPLES}
    for ex, p in runs.items():
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, f"{ex}: {err[-2000:]}"
    indexes = list(cache.rglob("*.nbi"))
    assert indexes, "the kernels were not cached in FE2_KERNEL_CACHE"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    after = {p.name: p.stat().st_mtime for p in source_cache.glob("*.nbi")} if source_cache.is_dir() else {}
    assert not [n for n, t in after.items() if t >= t0 and before.get(n) != t], "numba wrote into the source tree"
    for ex in EXAMPLES:  # one at a time, on the now warm cache
        p = start(ex, tmp_path / f"alone_{ex}", cache)
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, f"{ex}: {err[-2000:]}"
        assert history(tmp_path / f"together_{ex}") == history(tmp_path / f"alone_{ex}"), ex
    assert os.environ.get("FE2_KERNEL_CACHE") != str(cache)  # (the test's own process untouched)
