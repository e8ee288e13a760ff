"""A full disk (here: a file size limit, ``RLIMIT_FSIZE``, as ``ulimit -f`` sets it) stops a
run with one line naming the file, status ``failed`` with the reason in ``summary.json``,
the last complete checkpoint and every earlier converged step readable (a field stamp that
would not fit is not started: HDF5 would damage the whole file); ``--restart`` after space
is freed goes on from there to the same end."""

import csv
import json
import resource
import subprocess
import sys

import h5py
import pytest
from mpi4py import MPI

from helpers import J2_TABLE, ROOT, case_toml, serial_env, xdmf_stamps

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns its own runs; serial run only")

#: single scale (J2 at every macro point): the fields grow with the steps, the checkpoint does not
CASE = {
    "title": "full disk",
    "macro": {"degree": 1, "material": "matrix",
              "mesh": {"generator": "plate_with_hole", "h": 0.06, "h_hole": 0.03, "radius": 0.3},
              "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                            {"boundary": "bottom", "component": "y", "value": 0.0},
                            {"boundary": "right", "component": "x", "value": 0.03}]},
    "loading": {"steps": 8},
    "rve": {"generate": {"kind": "circle", "radius": 0.3, "h": 0.25},
            "phases": {"matrix": dict(J2_TABLE, tag=1), "inclusion": {"law": "elastic", "tag": 2, "E": 10.0,
                                                                        "nu": 0.2}}},
    "output": {"format": "xdmf", "checkpoint_every": 1},
}


def run(tmp_path, out, restart=False, limit=None):
    """``fe2 run case.toml -o out [--restart]`` with file sizes limited to ``limit`` bytes."""
    (tmp_path / "case.toml").write_text(case_toml(CASE))
    env = serial_env(PYTHONPATH=str(ROOT))

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [sys.executable, "-m", "fe2", "run", "case.toml", "-q", "-o", str(out), *(["--restart"] if restart else [])]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
                          preexec_fn=cap if limit else None)


def history(folder):
    with open(folder / "history.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if not k.startswith("time_")} for row in csv.DictReader(fh)]


def test_a_full_disk_stops_the_run_in_one_line_and_a_restart_goes_on(tmp_path):
    ref = tmp_path / "ref"
    assert run(tmp_path, ref).returncode == 0
    steps = CASE["loading"]["steps"]
    fields = (ref / "fields.h5").stat().st_size
    others = max(p.stat().st_size for p in ref.rglob("*") if p.is_file() and p.name != "fields.h5")
    assert fields > 3 * others  # (the case is made so: the fields outgrow every other file)
    limit = others + fields // 2  # the fields of about the middle step no longer fit
    out = tmp_path / "run"
    p = run(tmp_path, out, limit=limit)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    # (Open MPI may also warn that its shared memory cannot take the file size limit)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("fe2:")]
    assert len(lines) == 1 and "fields.h5: no room for the fields of t = " in lines[0], lines
    assert f"files are limited to {limit} bytes (ulimit -f)" in lines[0], lines
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"] in lines[0]
    done = len(summary["steps"])
    assert 1 < done < steps
    latest = json.loads((out / "checkpoint" / "latest.json").read_text())
    assert latest["step"] == done  # (the next step converged; its fields failed, so no checkpoint of it)
    with h5py.File(out / "checkpoint" / latest["folder"] / "rank-0000.h5", "r") as h:  # readable, whole
        assert json.loads(h.attrs["meta"])["state"]["k"] == done
    assert history(out)[:done] == history(ref)[:done]
    with h5py.File(out / "fields.h5", "r") as h:  # the earlier steps' fields read back
        assert len(h["Function"]["displacement"]) >= done
    q = run(tmp_path, out, restart=True)  # space freed: no limit
    assert q.returncode == 0, q.stderr[-2000:]
    assert history(out) == history(ref)
    assert [t for t, _ in xdmf_stamps(out / "fields.xdmf")] == [t for t, _ in xdmf_stamps(ref / "fields.xdmf")]
