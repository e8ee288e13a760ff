"""The benchmark scripts still run (smoke test; speed itself is never asserted)."""

import json
import os
import subprocess
import sys

import pytest
from mpi4py import MPI

from conftest import ROOT

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns a serial process; serial run only")


def test_rve_throughput_quick_writes_consistent_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rve_throughput.py"), "--quick",
                        "--output", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["cases"], "no case measured"
    for case in data["cases"]:
        assert case["dofs"] > 0
        assert case["evaluations_per_second"] > 0 and case["full_resolves_per_second"] > 0
        assert 0.0 < case["petsc_fraction"]["evaluate"] <= 1.0


def test_fe2_vs_dns_quick_writes_consistent_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    out = tmp_path / "dns.json"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fe2_vs_dns.py"), "--quick",
                        "--output", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = data["table"] if "table" in data else data["cases"]
    assert len(rows) >= 2
    for row in rows:
        assert row["dns_dofs"] > 0 and 0 <= row["force_error_rel"] < 0.2
        assert 0 <= row["displacement_error_rel"] < 0.2
