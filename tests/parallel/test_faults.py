"""A fault on one rank ends every rank at once, with one message: an exception inside the
micro engine or the balancer's answer exchange, a checkpoint write or a snapshot write,
injected on rank 1 of ``mpirun -n 2 fe2 run`` only. A user-facing error (here a MeshError)
is printed once and the run ends with its exit status well before the 20 s in which ranks
wait for each other (they used to sit in the balancer's second alltoall until then); an
internal error prints its traceback on its rank and ends every rank (status 4)."""

import subprocess
import sys
import time

import pytest
from mpi4py import MPI

from helpers import ROOT, case_toml, plastic_plate_case, serial_env

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="runs mpirun itself; serial run only")

#: patches applied on rank 1 before fe2 runs: where the fault is injected
INJECT = r"""
import sys
from mpi4py import MPI
site, kind = sys.argv[1], sys.argv[2]
if MPI.COMM_WORLD.rank == 1:
    from fe2.core.errors import MeshError
    def fault(*args, **kwargs):
        raise MeshError("injected fault") if kind == "user" else ZeroDivisionError("injected fault")
    def after(n, method):
        calls = [0]
        def patched(*args, **kwargs):
            calls[0] += 1
            if calls[0] > n:
                fault()
            return method(*args, **kwargs)
        return patched
    if site == "engine":
        from fe2.micro.engines.batched import BatchedEngine
        BatchedEngine.evaluate = after(2, BatchedEngine.evaluate)
    elif site == "exchange":
        from fe2.micro.engines.base import EngineAnswer
        EngineAnswer.take = after(4, EngineAnswer.take)
    elif site == "checkpoint":
        import h5py
        h5py.Group.create_dataset = after(0, h5py.Group.create_dataset)
    elif site == "snapshot":
        import fe2.io.snapshots as snapshots
        snapshots._write_rve = after(0, snapshots._write_rve)
from fe2.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("kind", ["user", "internal"])
@pytest.mark.parametrize("site", ["engine", "exchange", "checkpoint", "snapshot"])
def test_a_fault_on_one_rank_ends_every_rank_at_once(tmp_path, site, kind):
    case = plastic_plate_case("fault on one rank")
    case["loading"]["steps"] = 2
    case["output"]["rve_snapshots"] = [{"name": "s", "point": [0.9, 0.9]}]
    toml = tmp_path / "case.toml"
    toml.write_text(case_toml(case))
    env = serial_env(PYTHONPATH=str(ROOT), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "-n", "2", sys.executable, "-c", INJECT, site, kind, "run", str(toml), "-q",
           "-o", str(tmp_path / "out")]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    took = time.monotonic() - t0
    assert took < 15.0, f"the ranks waited for each other ({took:.0f} s): {p.stderr[-1500:]}"
    assert "injected fault" in p.stderr
    if kind == "user":
        assert p.returncode == 2, p.stderr[-1500:]
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("fe2: error:")]
        assert len(lines) == 1 and "injected fault" in lines[0] and "Traceback" not in p.stderr, p.stderr[-1500:]
    else:
        assert p.returncode != 0 and "Traceback" in p.stderr and "ZeroDivisionError: injected fault" in p.stderr

