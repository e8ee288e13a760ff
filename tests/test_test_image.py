"""docker/test-image, driven by a fake container engine (a shell script named docker on PATH
that records its calls): the build, the size and test counts in the report, and its errors.
The real build is run by hand (see the session notes); this checks the script's logic."""

import json
import os
import subprocess

import pytest
from mpi4py import MPI

from helpers import ROOT, serial_env

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns shell processes; serial run only")
SCRIPT = str(ROOT / "docker" / "test-image")

FAKE = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$1" in
  --version) echo "Docker version 0 (fake)" ;;
  info) exit 0 ;;
  image) if [ "$2" = inspect ] && [ "$3" = --format ]; then echo 123456789; fi; exit 0 ;;
  build) [ "${FAKE_BUILD:-ok}" = ok ] || { echo "step 3 failed" >&2; exit 1; }; exit 0 ;;
  run) cmd="${*: -1}"
       case "$cmd" in
         true) exit 0 ;;
         *pytest*) [ "${cmd#*mpirun}" != "$cmd" ] && n=4 || n=5
                   echo "....s [100%]"; echo "$n passed, 1 skipped in 1.50s (0:00:01)"; exit 0 ;;
         *"fe2 run"*) echo "  step 4 [t = 1 of 1 (100 %)]: 1 iteration"; exit 0 ;;
         *) echo "fe2 0.1.0 (fake)"; exit 0 ;;
       esac ;;
esac
"""


def run_script(tmp_path, *args, **env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(FAKE)
    (bin_dir / "docker").chmod(0o755)
    e = serial_env(FAKE_LOG=str(tmp_path / "calls.log"), **env)
    e["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    return subprocess.run(["bash", SCRIPT, "--engine", "docker", "--report", str(tmp_path / "r" / "report.json"),
                           *args], capture_output=True, text=True, env=e, timeout=120)


def test_build_and_tests_end_in_the_report(tmp_path):
    p = run_script(tmp_path)
    assert p.returncode == 0, p.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["engine"] == "docker" and report["route"] == "docker run" and report["passed"] is True
    assert report["size_bytes"] == "123456789" and report["base"] == "present"
    assert report["tests_serial"] == "5 passed, 1 skipped in 1.50s (0:00:01)"
    assert report["tests_mpi"] == "4 passed, 1 skipped in 1.50s (0:00:01)"
    assert report["default_job"].startswith("completed: step 4 [t = 1 of 1")
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert any(c.startswith(f"build -f {ROOT}/docker/Dockerfile -t fe2:test") for c in calls)
    assert any("mpirun -n 2 python3 -m pytest" in c for c in calls)
    assert "built fe2:test" in p.stderr and "123 MB" in p.stderr


def test_no_tests_says_so(tmp_path):
    p = run_script(tmp_path, "--no-tests")
    assert p.returncode == 0, p.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["could_not"] == ["run the test suite (--no-tests)"] and "tests_serial" not in report
    assert "could not: run the test suite (--no-tests)" in p.stderr


def test_a_failed_build_is_one_error(tmp_path):
    p = run_script(tmp_path, FAKE_BUILD="fail")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("test-image: error: the build failed (log: ")


@pytest.mark.parametrize("args,message", [(["--engine", "lxc"], "--engine must be docker or podman, got 'lxc'"),
                                          (["--frobnicate"], "unknown argument --frobnicate")])
def test_bad_arguments(tmp_path, args, message):
    p = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=serial_env(), timeout=60)
    assert p.returncode == 2 and message in p.stderr
