"""Checkpoint and restart: a run killed with SIGKILL after a step and restarted from its
last checkpoint ends exactly where an uninterrupted run ends (reactions, displacement and
nonlocal field, every RVE's committed state), on the same or another number of ranks; its
history and XDMF time series go on without duplicated or missing steps.

The runs are separate processes (``mpirun -n 2`` for two ranks, :func:`helpers.spawn`)
killed by a wrapper that sends SIGKILL to itself right after the checkpoint of a given step
is written; the final checkpoints (written after the last step, keyed by
partition-independent ids) are compared.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from helpers import NONLINEAR_CONDUCTION, plastic_plate_case, run_case, spawn, thermal_case, xdmf_stamps

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns its own runs (and mpirun); serial run only")

DAMAGE = {"law": "damage", "E": 1.0, "nu": 0.2, "kappa0": 1e-3, "softening": "exponential", "beta": 100.0}


def plastic_case():
    return plastic_plate_case("restart: plastic")


def damage_case():
    """Gradient-regularized damage past the peak under dissipation control."""
    return {
        "title": "restart: gradient damage, dissipation control",
        "macro": {"degree": 1, "regularization": "gradient", "nonlocal_length": 0.2,
                  "mesh": {"generator": "plate_with_hole", "h": 0.25, "h_hole": 0.1, "radius": 0.3},
                  "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0},
                                {"boundary": "right", "component": "x", "value": 0.004}]},
        "loading": {"steps": 8, "control": "dissipation"},
        "rve": {"rtol": 1e-12, "generate": {"kind": "laminate", "fractions": [0.5, 0.5], "h": 0.5},
                "phases": {"a": dict(DAMAGE, tag=1), "b": dict(DAMAGE, tag=2, kappa0=1.2e-3)}},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 15},
        "output": {"format": "none", "checkpoint_every": 2},
    }


def final_state(results: Path) -> dict[str, dict[int, np.ndarray]]:
    """Everything the last checkpoint of ``results`` holds, by partition-independent id."""
    import h5py

    pointer = json.loads((results / "checkpoint" / "latest.json").read_text())
    out: dict[str, dict[int, np.ndarray]] = {}
    for f in sorted((results / "checkpoint" / pointer["folder"]).glob("rank-*.h5")):
        with h5py.File(f, "r") as h:
            for group, key in (("fields", "cells"), ("state", "points")):
                ids = h[key][:]
                for name in h[group]:
                    rows = h[group][name][:]
                    out.setdefault(f"{group}/{name}", {}).update(zip(ids.tolist(), rows))
    return out


def assert_same_end(a: Path, b: Path, tol: float) -> None:
    """Same final checkpoint (fields, RVE states) and history (steps, load factors, reactions)."""
    sa, sb = final_state(a), final_state(b)
    assert sorted(sa) == sorted(sb)
    for name in sa:
        assert sorted(sa[name]) == sorted(sb[name]), name
        x = np.array([sa[name][i] for i in sorted(sa[name])])
        y = np.array([sb[name][i] for i in sorted(sb[name])])
        assert np.abs(x - y).max(initial=0.0) <= tol * max(np.abs(x).max(initial=0.0), 1e-300), name
    ha, hb = (json.loads((d / "summary.json").read_text())["steps"] for d in (a, b))
    assert [s["step"] for s in hb] == list(range(1, len(ha) + 1)) == [s["step"] for s in ha]
    assert [s["load_factor"] for s in hb] == pytest.approx([s["load_factor"] for s in ha], rel=tol, abs=0)
    keys = [k for k in ha[-1] if k.startswith(("reaction_", "heat_in_"))]
    ra, rb = (np.array([[s[k] for k in keys] for s in h]) for h in (ha, hb))
    assert np.abs(ra - rb).max() <= tol * np.abs(ra).max()  # relative to the largest reaction
    rows = (b / "history.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [s["step"] for s in hb]


def test_plastic_run_killed_and_restarted_ends_like_an_uninterrupted_one(tmp_path):
    case = plastic_case()
    ref = tmp_path / "ref"
    run_case(case, MPI.COMM_SELF, tmp=ref)
    # serial: killed after step 2, restarted serially
    one = tmp_path / "one"
    spawn(case, one, kill_after=2)
    summary = json.loads((one / "summary.json").read_text())
    assert summary["status"] == "running" and len(summary["steps"]) == 2  # a killed run shows as one
    assert len((one / "history.csv").read_text().splitlines()) == 1 + 2
    crossed = tmp_path / "one_to_two"
    shutil.copytree(one, crossed)
    spawn(case, one, restart=True)
    assert_same_end(ref, one, 1e-12)
    done = json.loads((one / "summary.json").read_text())
    assert done["status"] == "completed"
    assert [(r["step"], r["ranks"], r["checkpoint_ranks"]) for r in done["restarts"]] == [(2, 1, 1)]
    # the time series: every step once, the restarted part on the restarted run's mesh
    lam = [s["load_factor"] for s in done["steps"]]
    assert [t for t, _ in xdmf_stamps(one / "fields.xdmf")] == lam
    assert (one / "fields.p0.h5").is_file() and (one / "fields.h5").is_file()
    # two ranks: killed after step 2 and restarted on two ranks; the same end as two ranks
    # without a stop, and (to the round-off between rank counts) as one rank
    ref2, two = tmp_path / "ref2", tmp_path / "two"
    spawn(case, ref2, ranks=2)
    spawn(case, two, ranks=2, kill_after=2)
    back = tmp_path / "two_to_one"
    shutil.copytree(two, back)
    spawn(case, two, ranks=2, restart=True)
    assert_same_end(ref2, two, 1e-12)
    assert_same_end(ref, two, 1e-10)
    # a checkpoint of two ranks restarted on one, and the other way round
    spawn(case, back, ranks=1, restart=True)
    assert_same_end(ref, back, 1e-10)
    spawn(case, crossed, ranks=2, restart=True)
    assert_same_end(ref, crossed, 1e-10)
    restarts = json.loads((crossed / "summary.json").read_text())["restarts"]
    assert [(r["ranks"], r["checkpoint_ranks"]) for r in restarts] == [(2, 1)]


def test_gradient_damage_under_dissipation_control_restarts_exactly(tmp_path):
    case = damage_case()
    ref = tmp_path / "ref"
    res = run_case(case, MPI.COMM_SELF, tmp=ref)
    steps = res.summary["steps"]
    controls = [s["control"] for s in steps]
    # the checkpoint after step 4 is inside the arc-length part, with the path state to go on
    assert controls[3] == "dissipation" and len(steps) > 6
    run = tmp_path / "run"
    spawn(case, run, kill_after=4)
    spawn(case, run, restart=True)
    assert_same_end(ref, run, 1e-12)
    assert [s["control"] for s in json.loads((run / "summary.json").read_text())["steps"]] == controls


def test_thermal_run_killed_and_restarted_ends_like_an_uninterrupted_one(tmp_path):
    case = thermal_case(NONLINEAR_CONDUCTION, steps=3, output="xdmf")
    ref = tmp_path / "ref"
    run_case(case, MPI.COMM_SELF, tmp=ref)
    run = tmp_path / "run"
    spawn(case, run, kill_after=1)
    spawn(case, run, ranks=2, restart=True)
    assert_same_end(ref, run, 1e-10)
    assert {"fields/x", "state/w"} <= set(final_state(run))  # temperatures and RVE fluctuations compared


def test_changed_physics_is_refused_and_allowed_changes_are_not(tmp_path):
    case = plastic_case()
    case["loading"]["steps"] = 2
    run = tmp_path / "run"
    run_case(case, MPI.COMM_SELF, tmp=run)
    changed = json.loads(json.dumps(case))
    changed["rve"]["phases"]["matrix"]["sigma_y"] = 0.02
    changed["macro"]["dirichlet"][2]["value"] = 0.04
    from fe2.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"physics changed: .*macro\.dirichlet\[2\]\.value \(0\.03 -> 0\.04\); "
                                          r"rve\.phases\.matrix\.sigma_y \(0\.01 -> 0\.02\)"):
        run_case(changed, MPI.COMM_SELF, tmp=run, restart=True)
    # a larger final load factor (more steps of the same size), other output: allowed
    longer = json.loads(json.dumps(case))
    longer["loading"] = {"factors": [0.5, 1.0, 1.5]}
    longer["output"]["format"] = "none"
    res = run_case(longer, MPI.COMM_SELF, tmp=run, restart=True)
    assert [s["load_factor"] for s in res.summary["steps"]] == [0.5, 1.0, 1.5]
    assert [s["step"] for s in res.summary["steps"]] == [1, 2, 3]


def test_restart_without_a_checkpoint_says_so(tmp_path):
    from fe2.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no checkpoint to restart from"):
        run_case(plastic_case(), MPI.COMM_SELF, tmp=tmp_path / "empty", restart=True)


def test_strain_cycle_killed_while_unloading_restarts_exactly(tmp_path):
    """A load history: killed in the reverse branch of a cycle (after the turning point),
    restarted on two ranks, it ends like the uninterrupted run; the steps still end at the
    amplitude's corner."""
    case = plastic_case()
    case["macro"]["dirichlet"][2]["amplitude"] = "cycle"
    case["loading"] = {"steps": 4, "amplitudes": {"cycle": [[0, 0], [1, 1], [2, -0.5]]}}
    ref = tmp_path / "ref"
    run_case(case, MPI.COMM_SELF, tmp=ref)
    steps = json.loads((ref / "summary.json").read_text())["steps"]
    assert [s["load_factor"] for s in steps] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert steps[-1]["reaction_right_x"] < 0 < steps[1]["reaction_right_x"]  # it did turn round
    run = tmp_path / "run"
    spawn(case, run, kill_after=3)
    spawn(case, run, ranks=2, restart=True)
    assert_same_end(ref, run, 1e-10)


def test_killed_run_restarts_with_another_ranks_per_rve(tmp_path):
    """A run on 2 ranks with one RVE per rank, killed after step 2, goes on with both ranks
    solving each RVE together (and the other way round, restarted serially): the states are
    gathered per point in one layout, so the ends equal an uninterrupted serial run's."""
    case = plastic_case()
    ref = tmp_path / "ref"
    run_case(case, MPI.COMM_SELF, tmp=ref)
    for first, then, ranks_then in ((1, 2, 2), (2, 1, 1)):
        out = tmp_path / f"k{first}_to_k{then}"
        spawn(dict(case, parallel={"ranks_per_rve": first}), out, ranks=2, kill_after=2)
        assert len(json.loads((out / "summary.json").read_text())["steps"]) == 2
        spawn(dict(case, parallel={"ranks_per_rve": then}), out, ranks=ranks_then, restart=True)
        assert_same_end(ref, out, 1e-10)
        done = json.loads((out / "summary.json").read_text())
        assert done["status"] == "completed"
        assert [(r["step"], r["ranks"], r["checkpoint_ranks"]) for r in done["restarts"]] == [(2, ranks_then, 2)]


# --- restarts that used to crash (issue 32's catalogue) -------------------------------------
def linear_case() -> dict:
    """The default job's kind of run: a linear RVE (no material state), checkpoints on."""
    case = plastic_case()
    case["loading"]["steps"] = 2
    case["rve"]["phases"]["matrix"] = {"law": "elastic", "tag": 1, "E": 1.0, "nu": 0.3}
    return case


def test_a_linear_run_restarts(tmp_path):
    """A run whose material has no state (linear RVE) restarts, also from a checkpoint of
    an older fe2 that wrote no ``state`` group at all; it goes on to the same end."""
    import h5py

    case = linear_case()
    ref = run_case(case, MPI.COMM_SELF, tmp=tmp_path / "ref")
    run = tmp_path / "run"
    run_case(case, MPI.COMM_SELF, tmp=run)
    longer = json.loads(json.dumps(case))
    longer["loading"] = {"factors": [0.5, 1.0, 1.5]}
    res = run_case(longer, MPI.COMM_SELF, tmp=run, restart=True)
    assert [s["step"] for s in res.summary["steps"]] == [1, 2, 3]
    assert res.summary["steps"][1]["reaction_right_x"] == ref.summary["steps"][1]["reaction_right_x"]
    for path in (run / "checkpoint").glob("step-*/rank-*.h5"):  # as an older fe2 wrote them
        with h5py.File(path, "a") as h:
            assert len(h["state"]) == 0
            del h["state"]
    res = run_case(longer, MPI.COMM_SELF, tmp=run, restart=True)
    assert [s["step"] for s in res.summary["steps"]] == [1, 2, 3]


def test_changed_degree_and_mesh_content_are_refused_before_anything_is_read(tmp_path):
    """A restart whose RVE degree, phases or RVE mesh *content* changed is refused with the
    physics-changed line (they used to end in numpy shape errors while the state was read)."""
    from fe2.core.errors import ConfigError
    from fe2.geometry import generators

    mesh = tmp_path / "rve.msh"
    generators.generate("circle", mesh, radius=0.3, h=0.25)
    case = plastic_case()
    case["loading"]["steps"] = 2
    case["rve"].pop("generate")
    case["rve"]["mesh"] = str(mesh)
    run = tmp_path / "run"
    res = run_case(case, MPI.COMM_SELF, tmp=run)
    assert set(res.summary["input_sha256"]) == {"rve.mesh"}
    degree = json.loads(json.dumps(case))
    degree["rve"]["degree"] = 2
    with pytest.raises(ConfigError, match=r"physics changed: rve\.degree \(1 -> 2\)"):
        run_case(degree, MPI.COMM_SELF, tmp=run, restart=True)
    phases = json.loads(json.dumps(case))
    phases["rve"]["phases"]["inclusion"]["law"] = "j2"
    phases["rve"]["phases"]["inclusion"].update(sigma_y=0.05)
    with pytest.raises(ConfigError, match=r"physics changed: .*rve\.phases\.inclusion\.law"):
        run_case(phases, MPI.COMM_SELF, tmp=run, restart=True)
    generators.generate("circle", mesh, radius=0.25, h=0.25)  # same file name, another mesh
    with pytest.raises(ConfigError, match=r"physics changed: rve\.mesh = '.*rve\.msh': the file's content"):
        run_case(case, MPI.COMM_SELF, tmp=run, restart=True)


def damage_folder(kind: str, folder: Path) -> None:
    """Damage a results folder as a crash, a full disk or another tool might."""
    if kind == "truncated checkpoint":
        path = next((folder / "checkpoint").glob("step-*/rank-0000.h5"))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "empty history":
        (folder / "history.csv").write_bytes(b"")
    elif kind == "non-UTF-8 history":
        (folder / "history.csv").write_bytes(b"step,load\n1,\xe9\xff\n")
    elif kind == "truncated fields.xdmf":
        path = folder / "fields.xdmf"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "summary not an object":
        (folder / "summary.json").write_text("[1, 2]\n")
    elif kind == "missing checkpoint step":
        shutil.rmtree(next((folder / "checkpoint").glob("step-*")))


@pytest.mark.parametrize("kind, error", [
    ("truncated checkpoint", r"step-000002/rank-0000\.h5: not a readable checkpoint file \(.*\); the newest "
                             r"checkpoint is damaged"),
    ("truncated fields.xdmf", r"fields\.xdmf: damaged \(.*\), so a restart cannot continue its time series: move "
                              r"it and fields\.h5 aside"),
    ("missing checkpoint step", r"checkpoint/latest\.json names the checkpoint folder step-000002, which is "
                                r"missing"),
    ("empty history", None),
    ("non-UTF-8 history", None),
    ("summary not an object", None),
])
def test_a_damaged_results_folder_is_one_line_or_recovered(tmp_path, kind, error):
    """Every damage ends a restart in one line naming the file, or is recovered where that
    is safe: ``history.csv`` is rewritten from the checkpoint's rows (the same file as the
    undamaged run's); the folder check of a run without ``--restart`` still says what the
    folder holds. Nothing of the results is removed either way."""
    from fe2.core.errors import ConfigError

    case = plastic_case()
    case["loading"]["steps"] = 2
    case["output"]["format"] = "xdmf"
    ref = tmp_path / "ref"
    run_case(case, MPI.COMM_SELF, tmp=ref)
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    damage_folder(kind, run)
    before = sorted(p.name for p in run.rglob("*"))
    with pytest.raises(ConfigError, match="holds the results of another run"):
        run_case(case, MPI.COMM_SELF, tmp=run)
    if error is None:
        run_case(case, MPI.COMM_SELF, tmp=run, restart=True)
        assert (run / "history.csv").read_bytes() == (ref / "history.csv").read_bytes()
    else:
        with pytest.raises(ConfigError, match=error):
            run_case(case, MPI.COMM_SELF, tmp=run, restart=True)
        assert sorted(p.name for p in run.rglob("*")) == before


def test_a_restart_that_makes_no_progress_leaves_no_trace_but_its_line_in_summary(tmp_path):
    """Killed after step 1; a restart stopped by its wall-clock limit before any step; a
    second restart to the end. ``summary.json`` lists both restarts (it listed the last
    only: the first wrote no checkpoint of its own), the fields of the steps are in one
    earlier segment plus the last run's file (the stopped restart used to leave a segment
    holding only its mesh), and the time series has every step once."""
    from fe2 import twoscale
    from fe2.core.errors import Interrupted
    from fe2.io import config

    case = plastic_case()
    case["loading"]["steps"] = 3
    case["output"]["format"] = "xdmf"
    run = tmp_path / "run"
    spawn(case, run, kill_after=1)
    cfg = config.parse_case(json.loads(json.dumps(case)), "test-case")
    with pytest.raises(Interrupted):
        twoscale.run(cfg, MPI.COMM_SELF, output=str(run), verbose=False, restart=True, max_wall=1e-9)
    assert sorted(p.name for p in run.glob("fields*.h5")) == ["fields.h5", "fields.p0.h5"]
    res = run_case(case, MPI.COMM_SELF, tmp=run, restart=True)
    assert [r["step"] for r in res.summary["restarts"]] == [1, 1]
    assert [s["step"] for s in res.summary["steps"]] == [1, 2, 3]
    assert sorted(p.name for p in run.glob("fields*.h5")) == ["fields.h5", "fields.p0.h5"]
    assert [t for t, _ in xdmf_stamps(run / "fields.xdmf")] == [s["load_factor"] for s in res.summary["steps"]]
