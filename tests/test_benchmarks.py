"""The benchmark scripts still run (smoke test; speed itself is never asserted)."""

import json
import subprocess
import sys

import pytest
from mpi4py import MPI

from helpers import ROOT, serial_env

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns a serial process; serial run only")


def run_quick(script: str, out) -> dict:
    """Run ``benchmarks/<script> --quick`` in a serial process; its JSON output."""
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--output", str(out)],
                       capture_output=True, text=True, env=serial_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(out.read_text())


def test_rve_throughput_quick_writes_consistent_json(tmp_path):
    data = run_quick("rve_throughput.py", tmp_path / "bench.json")
    assert data["cases"], "no case measured"
    for case in data["cases"]:
        assert case["dofs"] > 0
        assert case["evaluations_per_second"] > 0 and case["full_resolves_per_second"] > 0
        assert 0.0 < case["petsc_fraction"]["evaluate"] <= 1.0


def test_fe2_vs_dns_quick_writes_consistent_json(tmp_path):
    data = run_quick("fe2_vs_dns.py", tmp_path / "dns.json")
    rows = data["table"] if "table" in data else data["cases"]
    assert len(rows) >= 2
    for row in rows:
        assert row["dns_dofs"] > 0 and 0 <= row["force_error_rel"] < 0.2
        assert 0 <= row["displacement_error_rel"] < 0.2


def test_mesh_objectivity_quick_writes_json_and_plot(tmp_path):
    data = run_quick("mesh_objectivity.py", tmp_path / "mo.json")
    assert data["complete"] and len(data["runs"]) == 4
    for r in data["runs"]:
        if r["variant"] == "gradient":
            assert r["status"] == "completed"
        if r["status"] == "completed":
            assert r["peak_force"] > r["final_force"] > 0  # through the peak
            assert 0 < r["dissipated_energy"] < r["external_work"] * 1.05
            assert 0 < r["band_width_half_max"] <= 10.0
    assert (tmp_path / "mo.png").stat().st_size > 10_000
