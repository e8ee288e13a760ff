"""docker/fe2-env: its error messages and its direct mode (run where dolfinx is importable)."""

import subprocess

import pytest
from mpi4py import MPI

from helpers import ROOT, serial_env

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns shell processes; serial run only")
LAUNCHER = str(ROOT / "docker" / "fe2-env")


def launch(*args, env=None, user=None):
    base = serial_env(**(env or {}))
    cmd = ["bash", LAUNCHER, *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=base, timeout=120)


def test_no_command_is_a_usage_error():
    p = launch()
    assert p.returncode == 2
    assert "fe2-env: error: no command given" in p.stderr


def test_direct_mode_runs_the_checkout():
    p = launch("python3", "-c", "import fe2, sys; print(fe2.__file__)")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(ROOT / "fe2" / "__init__.py")


def test_not_root_is_reported(tmp_path):
    p = launch("true", env={"FE2_FORCE_ROOTFS": "1", "FE2_RUNTIME_CACHE": str(tmp_path)}, user=65534)
    assert p.returncode == 2
    assert "needs root" in p.stderr and "Traceback" not in p.stderr


def test_unreachable_mirror_is_reported(tmp_path):
    p = launch("true", env={"FE2_FORCE_ROOTFS": "1", "FE2_RUNTIME_CACHE": str(tmp_path),
                            "FE2_MIRROR": "http://127.0.0.1:9/debian"})
    assert p.returncode == 2
    assert "cannot reach the Debian mirror http://127.0.0.1:9/debian" in p.stderr
    assert not any(tmp_path.glob("rootfs-*"))  # nothing half-built is left behind
