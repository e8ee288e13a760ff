"""FE² runs: against the single-scale homogenized solution, and across rank counts."""

import dataclasses
import json

import numpy as np
import pytest
from mpi4py import MPI

from fe2 import twoscale
from fe2.io import config
from fe2.io.results import read_history
from helpers import FIELDS, gathered_field, xdmf_stamps

SMALL_CASE = {
    "title": "small FE2 test",
    "macro": {
        "degree": 2,
        "mesh": {"generator": "plate_with_hole", "h": 0.25, "h_hole": 0.1, "radius": 0.3},
        "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                      {"boundary": "bottom", "component": "y", "value": 0.0},
                      {"boundary": "top", "component": "y", "value": 0.002}],
        "traction": [{"boundary": "right", "value": [0.01, 0.003]}],
    },
    "loading": {"steps": 2},
    "rve": {"generate": {"kind": "circle", "radius": 0.25, "h": 0.1},
            "phases": {"matrix": {"tag": 1, "E": 1.0, "nu": 0.3},
                       "inclusion": {"tag": 2, "E": 8.0, "nu": 0.25}}},
    "solver": {"rtol": 1e-12, "atol": 1e-15},
}


def case(boundary="periodic", **macro_overrides):
    data = json.loads(json.dumps(SMALL_CASE))
    data["macro"].update(macro_overrides)
    data["rve"]["boundary"] = boundary
    return config.parse_case(data, "small-case")


def test_fe2_with_linear_phases_equals_homogenized_single_scale(tmp_path):
    comm = MPI.COMM_WORLD
    out = comm.bcast(str(tmp_path), root=0)
    a = twoscale.run(case(material="rve"), comm, output=f"{out}/fe2", verbose=False)
    b = twoscale.run(case(material="homogenized"), comm, output=f"{out}/hom", verbose=False)
    ua, ub = a.problem.u.x.array, b.problem.u.x.array
    assert np.abs(ua - ub).max() < 1e-10 * np.abs(ub).max()
    for ka, kb in zip(a.summary["steps"], b.summary["steps"]):
        for key in ("reaction_left_x", "reaction_bottom_y", "reaction_top_y"):
            assert ka[key] == pytest.approx(kb[key], rel=1e-9, abs=1e-14)
    # equilibrium: support reactions balance the applied traction resultant
    last = a.summary["steps"][-1]
    assert last["reaction_left_x"] + last["force_right_x"] == pytest.approx(0.0, abs=1e-12)
    assert a.summary["rve_evaluations"] > 0 and b.summary["status"] == "completed"
    if comm.rank == 0:
        rows = read_history(f"{out}/fe2/history.csv")
        assert [float(r["load_factor"]) for r in rows] == [0.5, 1.0]
        assert all(int(r["newton_iterations"]) == 1 for r in rows)  # linear: one Newton step
        assert (tmp_path / "fe2" / "fields.h5").exists()
        # one temporal collection, one time stamp per converged step, each with every field ParaView will show
        assert xdmf_stamps(tmp_path / "fe2" / "fields.xdmf") == [(t, FIELDS)
                                                                  for t in (0.5, 1.0)]


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_one_and_two_ranks_agree(tmp_path):
    world = MPI.COMM_WORLD
    out = world.bcast(str(tmp_path), root=0)
    serial = twoscale.run(case(), MPI.COMM_SELF, output=f"{out}/serial{world.rank}", verbose=False)
    parallel = twoscale.run(case(), world, output=f"{out}/parallel", verbose=False)
    assert world.allreduce(parallel.problem.num_owned_points, op=MPI.MIN) > 0  # both ranks own macro points
    xs, vs = gathered_field(serial.problem.u, MPI.COMM_SELF)
    xp, vp = gathered_field(parallel.problem.u, world)
    assert xs.shape == xp.shape and np.array_equal(xs, xp)
    assert np.abs(vs - vp).max() < 1e-10 * np.abs(vs).max()
    for s, p in zip(serial.summary["steps"], parallel.summary["steps"]):
        assert p["reaction_left_x"] == pytest.approx(s["reaction_left_x"], rel=1e-10)
    assert parallel.summary["rve_evaluations"] == serial.summary["rve_evaluations"]


def test_default_case_runs_and_balances(tmp_path):
    comm = MPI.COMM_WORLD
    out = comm.bcast(str(tmp_path), root=0)
    cfg = config.default_case()
    cfg = dataclasses.replace(cfg, loading=dataclasses.replace(cfg.loading, steps=1))
    res = twoscale.run(cfg, comm, output=f"{out}/default", verbose=False)
    step = res.summary["steps"][-1]
    assert step["reaction_left_x"] == pytest.approx(-0.01, rel=1e-10)  # traction 0.01 on a unit edge
    assert abs(step["reaction_bottom_y"]) < 1e-12
    C = np.array(res.summary["rve"]["effective_tensor_mandel"])
    assert np.abs(C - C.T).max() < 1e-12 and np.linalg.eigvalsh(C).min() > 0


def test_micro_boundary_conditions_in_fe2(tmp_path):
    """FE² under the linear and minimal micro conditions equals the single-scale solution
    with that condition's apparent tensor, which brackets the periodic one: pulled by the
    same top displacement, the plate needs the largest force with linear, the smallest with
    minimal."""
    comm = MPI.COMM_WORLD
    out = comm.bcast(str(tmp_path), root=0)
    top = {}
    for bc in ("linear", "periodic", "minimal"):
        kw = {"traction": [], "degree": 1}
        a = twoscale.run(case(bc, material="rve", **kw), comm, output=f"{out}/{bc}-fe2", verbose=False)
        b = twoscale.run(case(bc, material="homogenized", **kw), comm, output=f"{out}/{bc}-hom", verbose=False)
        assert np.abs(a.problem.u.x.array - b.problem.u.x.array).max() < 1e-10 * np.abs(b.problem.u.x.array).max()
        assert a.summary["rve"]["boundary"] == bc
        top[bc] = a.summary["steps"][-1]["reaction_top_y"]
        assert top[bc] == pytest.approx(b.summary["steps"][-1]["reaction_top_y"], rel=1e-9)
    assert top["linear"] > 1.001 * top["periodic"] > 1.002 * top["minimal"] > 0
