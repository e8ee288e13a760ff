"""``[parallel] ranks_per_rve``: under ``mpirun -n 2``, a run whose RVEs are each solved by
both ranks together (one group of 2) ends where the run with one RVE per rank ends, to
1e-10: every step's reactions and internal variables, the fields, and the RVE states of the
final checkpoint (one partition-independent layout: a checkpoint of either can restart the
other); an RVE snapshot written by the group equals the one-rank snapshot. Serially a group
of one is the plain run, and a spawned run on 4 ranks as two groups of 2 balances its
evaluations between the groups and ends where the serial run ends."""

import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fe2.micro.engines import ENGINES
from helpers import J2_TABLE, plastic_plate_case, run_case, spawn

WORLD = MPI.COMM_WORLD

DAMAGE = {"law": "damage", "E": 1.0, "nu": 0.2, "kappa0": 1e-3, "softening": "exponential", "beta": 100.0}


def small_case(kind: str, per_rve: int) -> dict:
    """A 2 x 1 rectangle of 4 triangles (4 macro points) pulled along x in 3 steps; a circular
    elastic inclusion in a J2 or damaging matrix (gradient-regularized for 'gradient')."""
    matrix = dict(J2_TABLE, tag=1) if kind == "j2" else dict(DAMAGE, tag=1)
    pull = 0.03 if kind == "j2" else 1.4e-3
    case = {
        "title": f"ranks_per_rve {per_rve}: {kind}",
        "macro": {"degree": 1, "mesh": {"generator": "rectangle", "width": 2.0, "height": 1.0, "structured": 2,
                                        "cells_y": 1},
                  "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0},
                                {"boundary": "right", "component": "x", "value": pull}]},
        "loading": {"steps": 3},
        "rve": {"rtol": 1e-12, "generate": {"kind": "circle", "radius": 0.3, "h": 0.25},
                "phases": {"matrix": matrix, "inclusion": {"law": "elastic", "tag": 2, "E": 5.0, "nu": 0.2}}},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 15},
        "parallel": {"ranks_per_rve": per_rve},
        "output": {"format": "xdmf", "checkpoint_every": 3,
                   "rve_snapshots": [{"name": "largest", "max": "equivalent_plastic_strain" if kind == "j2"
                                      else "damage"}]},
    }
    if kind == "gradient":
        case["macro"]["regularization"] = "gradient"
        case["macro"]["nonlocal_length"] = 0.3
    return case


def final_checkpoint(folder: str) -> dict[str, dict[int, np.ndarray]]:
    """The RVE states of the last checkpoint by point id."""
    import h5py

    root = Path(folder) / "checkpoint"
    pointer = json.loads((root / "latest.json").read_text())
    out: dict[str, dict[int, np.ndarray]] = {}
    for f in sorted((root / pointer["folder"]).glob("rank-*.h5")):
        with h5py.File(f, "r") as h:
            ids = h["points"][:]
            for name in h["state"]:
                out.setdefault(name, {}).update(zip(ids.tolist(), h["state"][name][:]))
    return out


@pytest.mark.parametrize("kind", ["j2", "damage", "gradient"])
def test_one_group_of_all_ranks_ends_like_one_rve_per_rank(tmp_path, kind):
    base = WORLD.bcast(str(tmp_path), root=0)
    one = run_case(small_case(kind, 1), WORLD, tmp=f"{base}/one")
    group = run_case(small_case(kind, WORLD.size), WORLD, tmp=f"{base}/group")
    for a, b in zip(one.summary["steps"], group.summary["steps"], strict=True):
        keys = [k for k in a if k.startswith(("reaction_", "dissipat", "external_work", "displacement_"))]
        assert keys
        scale = max(abs(a[k]) for k in keys)
        for k in keys:
            assert abs(a[k] - b[k]) <= 1e-10 * scale, (k, a[k], b[k])
    f1, f2 = one.problem.internal_fields(), group.problem.internal_fields()
    name = "equivalent_plastic_strain" if kind == "j2" else "damage"
    assert WORLD.allreduce(float(f1[name].max()), op=MPI.MAX) > 0.0  # the RVEs yielded or damaged
    for key in f1:
        assert np.abs(f1[key] - f2[key]).max(initial=0.0) <= 1e-10 * max(np.abs(f1[key]).max(initial=0.0), 1e-300)
    # the checkpoints: the same states point by point, in the same layout
    if WORLD.rank == 0:
        s1, s2 = final_checkpoint(f"{base}/one"), final_checkpoint(f"{base}/group")
        assert sorted(s1) == sorted(s2) and "w" in s1
        for key in s1:
            assert sorted(s1[key]) == sorted(s2[key])
            x = np.array([s1[key][i] for i in sorted(s1[key])])
            y = np.array([s2[key][i] for i in sorted(s2[key])])
            assert np.abs(x - y).max(initial=0.0) <= 1e-9 * max(np.abs(x).max(initial=0.0), 1e-300), key
        # the group's snapshot is the one-rank snapshot
        m1, m2 = (json.loads(open(f"{base}/{d}/summary.json").read())["steps"][-1]["rve_snapshots"][0]
                  for d in ("one", "group"))
        assert m1["point"] == m2["point"]
        assert np.allclose(m1["rve_average_stress"], m2["rve_average_stress"], rtol=1e-9, atol=1e-12)
        assert np.allclose(m2["rve_average_stress"], m2["macro_stress"], rtol=1e-9, atol=1e-12)
    WORLD.barrier()


@pytest.mark.skipif(WORLD.size > 1, reason="spawns mpirun -n 4 itself; serial run only")
@pytest.mark.parametrize("engine", list(ENGINES))
def test_two_groups_of_two_balance_between_them_and_end_like_one_rank(tmp_path, engine):
    """4 ranks (oversubscribed here) as two groups of 2 with ``balance``, with each engine:
    the plastic zone at the hole makes one group's points dearer, evaluations move to the
    other group (every rank j of a group sends its part of a point's state to rank j of the
    other; both ranks of a group decide alike, from the group's costs), and the run ends
    where the serial run ends: the same reactions and RVE states to 1e-10."""
    case = plastic_plate_case("two groups of two, balanced")
    case["rve"]["engine"] = engine
    case["loading"] = {"steps": 2}
    case["output"] = {"format": "none", "checkpoint_every": 2}
    run_case(case, MPI.COMM_SELF, tmp=tmp_path / "one")
    spawn(dict(case, parallel={"ranks_per_rve": 2, "balance": True}), tmp_path / "groups", ranks=4)
    one, groups = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "groups"))
    assert groups["ranks"] == 4 and groups["status"] == "completed"
    assert groups["rve_statistics"]["moved"] > 0  # evaluations were balanced between the groups
    assert groups["rve_statistics"]["factorisations"] > 0  # plastic: distributed Jacobians of the points
    for a, b in zip(one["steps"], groups["steps"], strict=True):
        keys = [k for k in a if k.startswith("reaction_")]
        scale = max(abs(a[k]) for k in keys)
        assert all(abs(a[k] - b[k]) <= 1e-10 * scale for k in keys), (a, b)
    s1, s2 = final_checkpoint(str(tmp_path / "one")), final_checkpoint(str(tmp_path / "groups"))
    assert sorted(s1) == sorted(s2) and "w" in s1
    for key in s1:
        x = np.array([s1[key][i] for i in sorted(s1[key])])
        y = np.array([s2[key][i] for i in sorted(s2[key])])
        assert np.abs(x - y).max(initial=0.0) <= 1e-9 * max(np.abs(x).max(initial=0.0), 1e-300), key


def test_3d_plastic_run_with_one_group_of_all_ranks_ends_like_one_rve_per_rank(tmp_path):
    """A 2 x 1 x 1 box clamped on the left and pulled past yield on the right, a J2 laminate
    RVE (3D, P1): ``ranks_per_rve = 1`` and ``= WORLD.size`` (the batched engine on the
    distributed 3D template) give the same reactions to 1e-10 at every step."""
    dirichlet = [{"boundary": "left", "component": c, "value": 0.0} for c in "xyz"]
    dirichlet += [{"boundary": "right", "component": "x", "value": 0.04}]

    def case(per_rve):
        return {"title": f"3D, ranks_per_rve {per_rve}",
                "macro": {"degree": 1, "dirichlet": dirichlet,
                          "mesh": {"generator": "box", "width": 2.0, "height": 1.0, "depth": 1.0, "structured": 1}},
                "loading": {"steps": 2},
                "rve": {"rtol": 1e-12, "phases": {"a": dict(J2_TABLE, tag=1),
                                                  "b": {"law": "elastic", "tag": 2, "E": 2.0, "nu": 0.25}},
                        "generate": {"kind": "laminate", "dim": 3, "fractions": [0.5, 0.5], "normal": 1, "h": 0.5}},
                "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 12},
                "parallel": {"ranks_per_rve": per_rve},
                "output": {"format": "none"}}

    base = WORLD.bcast(str(tmp_path), root=0)
    one = run_case(case(1), WORLD, tmp=f"{base}/one")
    group = run_case(case(WORLD.size), WORLD, tmp=f"{base}/group")
    assert one.problem.gdim == 3 and group.summary["status"] == "completed"
    stats = group.summary["rve_statistics"]
    assert stats["factorisations"] > 0  # plastic: the RVE's own Jacobians
    for a, b in zip(one.summary["steps"], group.summary["steps"], strict=True):
        keys = [k for k in a if k.startswith("reaction_")]
        scale = max(abs(a[k]) for k in keys)
        assert all(abs(a[k] - b[k]) <= 1e-10 * scale for k in keys), (a, b)
    r = [s["reaction_right_x"] for s in one.summary["steps"]]
    assert r[1] - r[0] < 0.9 * r[0]  # past yield: the curve bends
