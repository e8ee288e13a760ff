"""Softening (damage) in local FE²: the macro solve against the point law through the peak,
dissipated energy at both scales, homogeneous RVE = single scale, snap-back followed by
dissipation control. (The damaging RVE itself: tests/micro/test_damage_cell.py.)"""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.materials.damage import IsotropicDamage
from helpers import run_case as run
from helpers import serial_and_parallel

DAMAGE = {"law": "damage", "E": 1.0, "nu": 0.2, "kappa0": 1e-3, "softening": "linear", "kappa_u": 6e-3}


def bar_case(material="rve", phases=None, ux=0.012, steps=12, n=2, rve_generate=None, **loading):
    return {
        "title": "softening bar",
        "macro": {
            "degree": 1, "material": material,
            "mesh": {"generator": "rectangle", "width": 1.0, "height": 1.0, "structured": n},
            "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                          {"boundary": "bottom", "component": "y", "value": 0.0},
                          {"boundary": "right", "component": "x", "value": ux}],
        },
        "loading": {"steps": steps, **loading},
        "rve": {"rtol": 1e-12, "generate": rve_generate or {"kind": "laminate", "fractions": [0.5, 0.5], "h": 0.5},
                "phases": phases or {"a": dict(DAMAGE, tag=1), "b": dict(DAMAGE, tag=2)}},
        "solver": {"rtol": 1e-10, "atol": 1e-14, "max_iterations": 15},
        "output": {"format": "none"},
    }


def point_law_march(law, ex_values):
    """The plane-strain uniaxial-stress response of one point: eps = (ex, ey, 0) with
    sigma_yy = 0, i.e. ey = -nu/(1-nu) ex (damage scales C, so the ratio stays)."""
    nu = law.nu
    state = law.initial_state(1)
    out = []
    for ex in ex_values:
        eps = np.array([[ex, -nu / (1 - nu) * ex, 0.0]])
        sig, _, state = law.integrate(eps, state)
        out.append((sig[0, 0], state[0].copy()))
    return out


def test_single_scale_bar_follows_the_point_law_through_the_peak(tmp_path):
    res = run(bar_case(material="a"), tmp=tmp_path)
    steps = res.summary["steps"]
    assert res.summary["status"] == "completed"
    lam = np.array([s["load_factor"] for s in steps])
    force = np.array([s["reaction_right_x"] for s in steps])
    law = IsotropicDamage(1.0, 0.2, 1e-3, 2, softening="linear", kappa_u=6e-3)
    ref = point_law_march(law, 0.012 * lam)
    assert np.allclose(force, [r[0] for r in ref], rtol=1e-9, atol=1e-12)
    assert force.max() > 2 * force[-1] > 0  # well into the softening branch
    D = np.array([s["dissipated_energy"] for s in steps])
    assert np.allclose(D, [r[1][2] for r in ref], rtol=1e-9, atol=1e-14)  # unit area
    # external work: trapezoid of the force-displacement curve
    W = np.concatenate([[0.0], np.cumsum(0.5 * (force[1:] + force[:-1]) * np.diff(0.012 * lam))])
    W += 0.5 * force[0] * 0.012 * lam[0]
    assert np.allclose([s["external_work"] for s in steps], W, rtol=1e-9)


def test_homogeneous_damage_rve_reproduces_single_scale(tmp_path):
    fe2 = run(bar_case(material="rve", steps=6), tmp=tmp_path / "fe2")
    single = run(bar_case(material="a", steps=6), tmp=tmp_path / "single")
    for a, b in zip(fe2.summary["steps"], single.summary["steps"], strict=True):
        assert a["reaction_right_x"] == pytest.approx(b["reaction_right_x"], rel=1e-8)
        assert a["dissipated_energy"] == pytest.approx(b["dissipated_energy"], rel=1e-8, abs=1e-14)
    assert single.summary["steps"][-1]["dissipated_energy"] > 0


HETERO = {"matrix": dict(DAMAGE, tag=1, softening="exponential", beta=100.0, kappa_u=None, viscosity=0.02),
          "inclusion": {"law": "elastic", "tag": 2, "E": 5.0, "nu": 0.2}}
HETERO["matrix"].pop("kappa_u")


def test_local_fe2_passes_the_peak_with_adaptive_steps(tmp_path):
    data = bar_case(phases=HETERO, ux=0.008, steps=16, n=2, rve_generate={"kind": "circle", "radius": 0.3, "h": 0.25},
                    min_step=1e-3)
    res = run(data, tmp=tmp_path)
    steps = res.summary["steps"]
    force = np.array([s["reaction_right_x"] for s in steps])
    D = np.array([s["dissipated_energy"] for s in steps])
    assert res.summary["status"] == "completed"
    assert force.max() > 1.3 * force[-1]  # past the peak
    assert np.all(np.diff(D) >= -1e-15) and D[-1] > 0
    # at 4 % of the peak force nearly all the work is dissipated (W = psi + D up to the
    # second-order error of the trapezoidal increments, a few % over these steps)
    W = steps[-1]["external_work"]
    assert 0.8 * W < D[-1] < 1.1 * W


def snap_back_case(material="rve", control="dissipation"):
    """A bar 10 x 1, 10 % thinner at mid-length, 11 x 1 cells, steep exponential softening
    (beta = 500): the band is one column of cells, 1/11 of the length, so the path snaps back."""
    steep = dict(DAMAGE, softening="exponential", beta=500.0, nu=0.2)
    steep.pop("kappa_u")
    data = bar_case(material, phases={"a": dict(steep, tag=1), "b": dict(steep, tag=2)}, ux=0.02, steps=10,
                    control=control, min_step=1e-3)
    data["macro"]["mesh"] = {"generator": "bar", "width": 10.0, "height": 1.0, "structured": 11, "cells_y": 1,
                             "imperfection": 0.1, "imperfection_width": 1.0}
    data["solver"]["max_iterations"] = 12
    return data


def test_fe2_snap_back_stops_load_control_and_is_followed_by_dissipation_control(tmp_path):
    with pytest.raises(Exception, match="cannot proceed beyond load factor"):
        run(snap_back_case(control="load"), tmp=tmp_path / "load")
    fe2 = run(snap_back_case(), tmp=tmp_path / "fe2")
    single = run(snap_back_case(material="a"), tmp=tmp_path / "single")
    a, b = fe2.summary["steps"], single.summary["steps"]
    assert fe2.summary["status"] == "completed" and a[-1]["load_factor"] == 1.0
    lam = np.array([s["load_factor"] for s in a])
    force = np.array([s["reaction_right_x"] for s in a])
    peak = int(np.argmax(force))
    assert lam[peak + 1:].min() < lam[peak] - 0.005  # snap-back: past the peak, the end displacement went back
    assert force[-1] < 0.1 * force[peak]
    # the homogeneous RVE follows the single-scale path step by step
    assert len(a) == len(b)
    assert np.allclose(lam, [s["load_factor"] for s in b], rtol=1e-8, atol=0)
    assert np.allclose(force, [s["reaction_right_x"] for s in b], rtol=1e-8, atol=1e-14)
    # dissipated energy: the material's own int Y d omega against the energy balance W - lam u F / 2
    # (exact for damage; the material's trapezoidal rule in time differs by its discretization error)
    D, W = a[-1]["dissipated_energy"], a[-1]["external_work"]
    D_balance = W - 0.5 * lam[-1] * 0.02 * force[-1]
    assert D == pytest.approx(D_balance, rel=0.1) and D_balance > 0.9 * W  # coarse steps: ~8 % apart here


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_local_damage_fe2_one_and_two_ranks_agree(tmp_path):
    data = bar_case(phases=HETERO, ux=0.004, steps=4, n=2, rve_generate={"kind": "circle", "radius": 0.3, "h": 0.25},
                    min_step=1e-3)
    serial, parallel = serial_and_parallel(data, tmp_path)
    a, b = serial.summary["steps"], parallel.summary["steps"]
    assert len(a) == len(b) and a[-1]["dissipated_energy"] > 0  # damaging
    for s, p in zip(a, b, strict=True):
        assert p["load_factor"] == s["load_factor"]
        assert p["reaction_right_x"] == pytest.approx(s["reaction_right_x"], rel=1e-8)
        assert p["dissipated_energy"] == pytest.approx(s["dissipated_energy"], rel=1e-8, abs=1e-15)
