"""Clean stops: a signal on any one rank, or the wall-clock limit, stops every rank at the
same point; the run keeps its converged steps, writes a checkpoint of the last one (also
when ``checkpoint_every`` would not have), says ``interrupted``, and a restart from there
ends exactly where an uninterrupted run ends. And a results folder is never silently
replaced."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fe2 import twoscale
from fe2.core.errors import ConfigError, Interrupted
from fe2.core.stopping import SIGNALS, StopRequest
from helpers import plastic_plate_case, run_case


def plastic_case(every: int = 3) -> dict:
    return plastic_plate_case("stop: plastic", every)


def folder(tmp_path, name: str) -> Path:
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path / name), root=0))


@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_stop_request_signal_on_one_rank_stops_all(sig):
    comm = MPI.COMM_WORLD
    before = {s: signal.getsignal(s) for s in SIGNALS}
    with StopRequest(comm) as stop:
        stop()  # nothing yet: no raise
        if comm.rank == comm.size - 1:
            os.kill(os.getpid(), sig)  # the handler records it; the process lives on
        with pytest.raises(Interrupted, match=f"^{sig.name}$"):
            stop()
    assert {s: signal.getsignal(s) for s in SIGNALS} == before  # handlers given back


def test_stop_request_wall_clock_limit():
    comm = MPI.COMM_WORLD
    start = comm.bcast(time.perf_counter(), root=0) if comm.size == 1 else time.perf_counter()
    stop = StopRequest(comm, max_wall=100.0, start=start)
    stop(upcoming=50.0)  # 0 + 50 < 100
    # one rank expects a step of 200 s: every rank stops
    with pytest.raises(Interrupted, match=r"^the wall-clock limit \(--max-wall\) of 100 s$"):
        stop(upcoming=200.0 if comm.rank == 0 else 0.0)
    late = StopRequest(comm, max_wall=100.0, start=time.perf_counter() - (150.0 if comm.rank == comm.size - 1 else 0))
    with pytest.raises(Interrupted):
        late()
    with pytest.raises(ValueError):
        StopRequest(comm, max_wall=0.0)


def test_signal_stops_the_run_and_a_restart_ends_where_an_uninterrupted_run_ends(tmp_path, monkeypatch):
    comm = MPI.COMM_WORLD
    ref = run_case(plastic_case(), tmp=folder(tmp_path, "ref"))
    record = twoscale._record

    def record_then_signal(step, *args):
        row = record(step, *args)
        if step.number == 2 and comm.rank == comm.size - 1:  # one rank only, as a scheduler might
            os.kill(os.getpid(), signal.SIGTERM)
        return row

    monkeypatch.setattr(twoscale, "_record", record_then_signal)
    out = folder(tmp_path, "run")
    with pytest.raises(Interrupted) as info:
        run_case(plastic_case(every=3), tmp=out)
    monkeypatch.undo()
    err = info.value
    assert str(err) == (f"stopped by SIGTERM after step 2 (load factor 0.5); checkpoint of step 2 in "
                        f"{out}/checkpoint/")
    assert err.restartable and err.results == out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and len(summary["steps"]) == 2
    assert summary["interrupted"] == {"reason": "SIGTERM", "step": 2, "load_factor": 0.5, "checkpoint_step": 2}
    # checkpoint_every = 3 would not have written step 2: the stop did
    assert json.loads((out / "checkpoint" / "latest.json").read_text())["step"] == 2
    with pytest.raises(ConfigError, match="holds the results of another run 'stop: plastic' "
                                          r"\(status interrupted, 2 converged steps, a checkpoint\)"):
        run_case(plastic_case(), tmp=out)

    res = run_case(plastic_case(every=3), tmp=out, restart=True)
    assert res.summary["status"] == "completed" and "interrupted" not in res.summary
    assert [s["step"] for s in res.summary["steps"]] == [1, 2, 3, 4]
    for a, b in zip(res.summary["steps"], ref.summary["steps"]):
        for key in ("load_factor", "reaction_right_x", "reaction_left_x", "external_work"):
            assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-15), key
    assert res.summary["displacement_norm"] == pytest.approx(ref.summary["displacement_norm"], rel=1e-12)


def test_wall_clock_limit_before_the_first_step_leaves_nothing_to_continue(tmp_path):
    out = folder(tmp_path, "run")
    with pytest.raises(Interrupted) as info:
        twoscale_run(plastic_case(), out, max_wall=1e-6)
    assert not info.value.restartable
    assert str(info.value) == ("stopped by the wall-clock limit (--max-wall) of 1e-06 s after step 0 (load factor 0); "
                               "no step had converged, so there is nothing to continue from")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == []
    assert not (out / "checkpoint").exists()
    # a folder without converged steps holds no results: a new run may use it
    res = twoscale_run(plastic_case(), out)
    assert res.summary["status"] == "completed"


def twoscale_run(case: dict, out: Path, **kwargs):
    from fe2.io import config

    cfg = config.parse_case(json.loads(json.dumps(case)), "test-case")
    return twoscale.run(cfg, MPI.COMM_WORLD, output=out, verbose=False, **kwargs)


def test_overwrite_replaces_every_file_of_the_old_run(tmp_path):
    out = folder(tmp_path, "run")
    case = plastic_case()
    case["loading"] = {"factors": [0.5]}
    first = twoscale_run(case, out)
    if MPI.COMM_WORLD.rank == 0:
        (out / "fields.p0.h5").write_bytes(b"stale")  # as a restart leaves it
        (out / "notes.txt").write_text("the user's own file")
    MPI.COMM_WORLD.barrier()
    case["loading"] = {"factors": [0.25]}
    second = twoscale_run(case, out, overwrite=True)
    assert [s["load_factor"] for s in second.summary["steps"]] == [0.25]
    assert first.summary["steps"][0]["load_factor"] == 0.5
    assert not (out / "fields.p0.h5").exists() and (out / "notes.txt").read_text() == "the user's own file"
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,0.25,")
    assert json.loads((out / "checkpoint" / "latest.json").read_text())["load_factor"] == 0.25


def test_generated_rve_mesh_is_kept_in_the_results_folder(tmp_path):
    out = folder(tmp_path, "run")
    case = plastic_case()
    case["loading"] = {"factors": [0.1]}
    res = twoscale_run(case, out)
    assert res.summary["rve"]["mesh"] == str(out / "rve.msh")
    assert (out / "rve.msh").read_text().startswith("$MeshFormat")
    assert np.isfinite(res.summary["displacement_norm"])
