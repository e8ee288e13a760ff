"""The batch job scripts of ``docker/jobs/`` run locally, without a scheduler: a fake
``srun``/``scontrol`` (SLURM) and ``qsub``/``qstat`` (PBS) on ``PATH`` stand in for it.

SLURM: the time-limit signal (``--signal=B:USR1``, sent to the batch shell) stops fe2
cleanly; the script requeues the job, and the requeued job continues from the checkpoint
to the same end as an uninterrupted run. PBS: the script gives fe2 ``--max-wall`` from the
job's walltime and submits the continuation when fe2 stops."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mpi4py import MPI

from helpers import ROOT, serial_env

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="runs the job scripts itself; serial run only")

CASE = """
title = "job script: plastic plate"
[macro]
degree = 1
[macro.mesh]
generator = "plate_with_hole"
h = 0.3
h_hole = 0.15
radius = 0.3
[[macro.dirichlet]]
boundary = "left"
component = "x"
value = 0.0
[[macro.dirichlet]]
boundary = "bottom"
component = "y"
value = 0.0
[[macro.dirichlet]]
boundary = "right"
component = "x"
value = 0.03
[loading]
steps = STEPS
[rve]
rtol = 1e-12
[rve.generate]
kind = "circle"
radius = 0.3
h = 0.25
[rve.phases.matrix]
law = "j2"
tag = 1
E = 1.0
nu = 0.3
sigma_y = 0.01
H_iso = 0.2
[rve.phases.inclusion]
law = "elastic"
tag = 2
E = 10.0
nu = 0.2
[solver]
rtol = 1e-10
atol = 1e-14
[output]
format = "none"
checkpoint_every = 3
"""


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake(bin_dir, "srun", 'exec "$@"')  # the ranks get the signal srun passes on
    fake(bin_dir, "scontrol", 'echo "scontrol $*" >> "$FAKE_SCHEDULER_LOG"')
    fake(bin_dir, "qsub", 'echo "qsub $*" >> "$FAKE_SCHEDULER_LOG"')
    fake(bin_dir, "qstat", 'echo "    Resource_List.walltime = 00:00:02"')
    env = serial_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONPATH=str(ROOT),
                     PATH=f"{bin_dir}:{ROOT / 'docker' / 'bin'}:{os.environ['PATH']}",
                     FAKE_SCHEDULER_LOG=str(tmp_path / "scheduler.log"), FE2_CASE="case.toml", FE2_RESULTS="results",
                     FE2=f"{sys.executable} -m fe2")
    env.update(extra)
    return env


def history(results: Path) -> list[dict[str, str]]:
    with open(results / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("launch", ["srun", "mpirun -n 2"])
def test_slurm_job_stops_at_the_time_limit_signal_and_its_requeue_ends_like_one_run(tmp_path, launch):
    (tmp_path / "case.toml").write_text(CASE.replace("STEPS", "12"))
    env = job_env(tmp_path, SLURM_JOB_ID="4242", FE2_LAUNCH=launch)
    script = ["bash", str(ROOT / "docker" / "jobs" / "slurm.sh")]
    job = subprocess.Popen(script, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "results"
    deadline = time.monotonic() + 240
    while not ((results / "history.csv").exists() and len(history(results)) >= 2):
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.1)
    job.send_signal(signal.SIGUSR1)  # what SLURM sends the batch shell before the time limit
    out, err = job.communicate(timeout=240)
    assert job.returncode == 5, err
    assert "Traceback" not in err
    stopped = json.loads((results / "summary.json").read_text())
    k = len(stopped["steps"])
    assert stopped["status"] == "interrupted" and 2 <= k < 12
    assert json.loads((results / "checkpoint" / "latest.json").read_text())["step"] == k
    assert f"fe2: stopped by SIGUSR1 after step {k}" in err and "--restart results" in err
    assert (tmp_path / "scheduler.log").read_text() == "scontrol requeue 4242\n"
    assert "requeueing job 4242" in out

    requeued = subprocess.run(script, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert requeued.returncode == 0, requeued.stderr
    assert (tmp_path / "scheduler.log").read_text() == "scontrol requeue 4242\n"  # not requeued again
    done = json.loads((results / "summary.json").read_text())
    assert done["status"] == "completed" and [r["step"] for r in done["restarts"]] == [k]

    ref = subprocess.run([sys.executable, "-m", "fe2", "run", "case.toml", "-o", "ref", "-q"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=240)
    assert ref.returncode == 0, ref.stderr
    rows, ref_rows = history(results), history(tmp_path / "ref")
    assert [r["step"] for r in rows] == [str(i) for i in range(1, 13)]  # none missing, none twice
    for a, b in zip(rows, ref_rows):
        assert float(a["load_factor"]) == float(b["load_factor"])
        assert float(a["reaction_right_x"]) == pytest.approx(float(b["reaction_right_x"]), rel=1e-12)


def test_pbs_job_stops_before_the_walltime_and_submits_its_continuation(tmp_path):
    (tmp_path / "case.toml").write_text(CASE.replace("STEPS", "40"))  # longer than 1 s
    # qstat says the walltime is 2 s; with a margin of 1 s fe2 gets --max-wall 1
    env = job_env(tmp_path, PBS_O_WORKDIR=str(tmp_path), PBS_JOBID="77.server", FE2_MARGIN="1", FE2_LAUNCH="env",
                  FE2_SCRIPT=str(ROOT / "docker" / "jobs" / "pbs.sh"))
    script = ["bash", str(ROOT / "docker" / "jobs" / "pbs.sh")]
    first = subprocess.run(script, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert first.returncode == 5, first.stderr
    assert "fe2: stopped by the wall-clock limit (--max-wall) of 1 s" in first.stderr
    submitted = (tmp_path / "scheduler.log").read_text().split()
    assert submitted[:2] == ["qsub", "-v"] and submitted[-1] == str(ROOT / "docker" / "jobs" / "pbs.sh")
    assert "FE2_CASE=case.toml" in submitted[2] and "FE2_RESULTS=results" in submitted[2]
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    # the continuation, with time enough: it restarts if a step had converged and completes
    env["FE2_MAX_WALL"] = "600"
    second = subprocess.run(script, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr
    done = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert done["status"] == "completed" and len(done["steps"]) == 40
    assert len(done.get("restarts", [])) == (1 if summary["steps"] else 0)
