"""3D FE²: a beam (box generator) against the single-scale homogenized solution (linear
phases), a homogeneous J2 or Neo-Hooke RVE against single-scale J2 / Neo-Hooke, 1 vs 2
ranks, reactions that balance the applied load, and the 3D example cases."""

import dataclasses

import numpy as np
import pytest
from mpi4py import MPI

from fe2 import twoscale
from fe2.io import config
from helpers import J2_TABLE, gathered_field, relmax, serial_and_parallel
from helpers import run_case as run

LAMINATE = {"kind": "laminate", "dim": 3, "fractions": [0.5, 0.5], "normal": 1, "h": 0.5}
ELASTIC = {"soft": {"tag": 1, "E": 1.0, "nu": 0.3}, "stiff": {"tag": 2, "E": 8.0, "nu": 0.25}}
NEO_HOOKE = {"law": "neo_hooke", "E": 1.0, "nu": 0.3}
AXES = "xyz"


def beam(phases, physics="elasticity", material="rve", right=None, traction=None, steps=2):
    """A 2 x 1 x 1 box clamped on the left, pulled on the right by displacements ``right``
    ({axis: value}) and/or a ``traction``."""
    dirichlet = [{"boundary": "left", "component": c, "value": 0.0} for c in AXES]
    dirichlet += [{"boundary": "right", "component": c, "value": v} for c, v in (right or {}).items()]
    return {
        "title": "3D beam",
        "macro": {"degree": 1, "material": material,
                  "mesh": {"generator": "box", "width": 2.0, "height": 1.0, "depth": 1.0, "structured": 2},
                  "dirichlet": dirichlet,
                  "traction": [{"boundary": "right", "value": traction}] if traction else []},
        "loading": {"steps": steps},
        "rve": {"physics": physics, "rtol": 1e-12, "generate": LAMINATE, "phases": phases},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 12},
        "output": {"format": "none"},
    }


def test_linear_3d_fe2_equals_homogenized_single_scale_and_balances(tmp_path):
    load = [0.01, 0.002, -0.003]
    fe2 = run(beam(ELASTIC, traction=load), tmp=tmp_path / "fe2")
    hom = run(beam(ELASTIC, material="homogenized", traction=load), tmp=tmp_path / "hom")
    assert fe2.problem.gdim == 3 and fe2.summary["rve"]["dofs"] > 0
    assert relmax(fe2.problem.u.x.array, hom.problem.u.x.array) < 1e-10
    for a, b in zip(fe2.summary["steps"], hom.summary["steps"], strict=True):
        for c in AXES:
            assert a[f"reaction_left_{c}"] == pytest.approx(b[f"reaction_left_{c}"], rel=1e-9, abs=1e-14)
    last = fe2.summary["steps"][-1]
    for c, t in zip(AXES, load):  # the clamp carries the traction resultant (right face area 1)
        assert last[f"force_right_{c}"] == pytest.approx(t, rel=1e-12)
        assert last[f"reaction_left_{c}"] + last[f"force_right_{c}"] == pytest.approx(0.0, abs=1e-12)
    C = np.array(fe2.summary["rve"]["effective_tensor_mandel"])
    assert C.shape == (6, 6) and np.linalg.eigvalsh(C).min() > 0


@pytest.mark.parametrize("physics,law,right", [("elasticity", J2_TABLE, {"x": 0.03, "y": -0.02}),
                                               ("finite_strain", NEO_HOOKE, {"x": 0.3, "z": 0.1})])
def test_homogeneous_rve_equals_single_scale_in_3d(tmp_path, physics, law, right):
    phases = {"a": dict(law, tag=1), "b": dict(law, tag=2)}
    fe2 = run(beam(phases, physics, right=right, steps=3), tmp=tmp_path / "fe2")
    single = run(beam(phases, physics, material="a", right=right, steps=3), tmp=tmp_path / "single")
    assert fe2.summary["status"] == single.summary["status"] == "completed"
    assert relmax(fe2.problem.u.x.array, single.problem.u.x.array) < 1e-8
    for a, b in zip(fe2.summary["steps"], single.summary["steps"], strict=True):
        for c in right:
            assert a[f"reaction_right_{c}"] == pytest.approx(b[f"reaction_right_{c}"], rel=1e-8)
            assert a[f"reaction_left_{c}"] == pytest.approx(-a[f"reaction_right_{c}"], rel=1e-9)  # balance
    if physics == "elasticity":  # really plastic: the force-displacement curve bends
        r = [s["reaction_right_x"] for s in single.summary["steps"]]
        assert r[2] - r[1] < 0.8 * r[0]


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_plastic_3d_fe2_one_and_two_ranks_agree(tmp_path):
    phases = {"matrix": dict(J2_TABLE, tag=1), "inclusion": {"law": "elastic", "tag": 2, "E": 10.0, "nu": 0.2}}
    serial, parallel = serial_and_parallel(beam(phases, right={"x": 0.03, "y": -0.02}), tmp_path)
    xs, vs = gathered_field(serial.problem.u, MPI.COMM_SELF)
    xp, vp = gathered_field(parallel.problem.u, MPI.COMM_WORLD)
    assert np.array_equal(xs, xp)
    assert np.abs(vs - vp).max() < 1e-10 * np.abs(vs).max()
    for s, p in zip(serial.summary["steps"], parallel.summary["steps"], strict=True):
        for key in ("reaction_right_x", "reaction_right_y", "reaction_left_z"):
            assert p[key] == pytest.approx(s[key], rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("name,load", [("composite_beam_3d", "reaction_right_y"),
                                       ("hyperelastic_block_3d", "reaction_right_x")])
def test_3d_examples_first_step(tmp_path, name, load):
    cfg = config.example_case(name)
    cfg = dataclasses.replace(cfg, loading=dataclasses.replace(cfg.loading, factors=(0.25,)),
                              output=dataclasses.replace(cfg.output, format="none"))
    out = MPI.COMM_WORLD.bcast(str(tmp_path), root=0)
    res = twoscale.run(cfg, MPI.COMM_WORLD, output=out, verbose=False)
    assert res.problem.gdim == 3
    step = res.summary["steps"][-1]
    assert step["load_factor"] == 0.25 and step["newton_iterations"] <= 6
    assert abs(step[load]) > 0
    other = "reaction_left_y" if name == "composite_beam_3d" else "reaction_left_x"
    assert step[other] == pytest.approx(-step[load], rel=1e-9)  # equilibrium
