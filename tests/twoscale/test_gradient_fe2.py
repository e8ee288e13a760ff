"""Gradient-regularized damage FE²: the monolithic macro Newton, and FE² with a homogeneous
RVE = the single-scale implicit gradient model (Peerlings et al. 1996). (The nonlocal RVE
itself: tests/micro/test_damage_cell.py.)"""

import numpy as np
import pytest
from mpi4py import MPI

from helpers import run_case as run
from helpers import serial_and_parallel

DAMAGE = {"law": "damage", "E": 1.0, "nu": 0.2, "kappa0": 1e-3, "softening": "exponential", "beta": 100.0}


def plate_case(material="rve", phases=None, steps=8, ux=0.004, length=0.2, **loading):
    return {
        "title": "gradient damage plate",
        "macro": {
            "degree": 1, "material": material, "regularization": "gradient", "nonlocal_length": length,
            "mesh": {"generator": "plate_with_hole", "h": 0.25, "h_hole": 0.1, "radius": 0.3},
            "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                          {"boundary": "bottom", "component": "y", "value": 0.0},
                          {"boundary": "right", "component": "x", "value": ux}],
        },
        "loading": {"steps": steps, **loading},
        "rve": {"rtol": 1e-12, "generate": {"kind": "laminate", "fractions": [0.5, 0.5], "h": 0.5},
                "phases": phases or {"a": dict(DAMAGE, tag=1), "b": dict(DAMAGE, tag=2)}},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 15},
        "output": {"format": "none"},
    }


@pytest.mark.parametrize("control", ["load", "dissipation"])
def test_homogeneous_rve_gradient_fe2_equals_single_scale_peerlings(tmp_path, control):
    fe2 = run(plate_case("rve", control=control), tmp=tmp_path / "fe2")
    single = run(plate_case("a", control=control), tmp=tmp_path / "single")
    a, b = fe2.summary["steps"], single.summary["steps"]
    assert len(a) == len(b) and [s["control"] for s in a] == [s["control"] for s in b]
    assert np.allclose([s["load_factor"] for s in a], [s["load_factor"] for s in b], rtol=1e-8, atol=0)
    if control == "dissipation":  # the arc length took over, and ended exactly at the final load
        assert sum(s["control"] == "dissipation" for s in a) >= 3 and a[-1]["load_factor"] == 1.0
    fa = np.array([s["reaction_right_x"] for s in a])
    fb = np.array([s["reaction_right_x"] for s in b])
    assert np.abs(fa - fb).max() < 1e-6 * np.abs(fb).max()
    ea, eb = fe2.problem.e.x.array, single.problem.e.x.array
    assert np.abs(ea - eb).max() < 1e-6 * np.abs(eb).max()
    Da, Db = a[-1]["dissipated_energy"], b[-1]["dissipated_energy"]
    assert Da == pytest.approx(Db, rel=1e-6) and Db > 0
    assert fb.max() > 1.2 * fb[-1]  # through the peak, into softening


def convergence_orders(res):
    r = np.asarray(res)
    r = r[r > 1e-13 * r[0]]
    return np.log(r[2:] / r[1:-1]) / np.log(r[1:-1] / r[:-2])


def test_monolithic_newton_converges_quadratically(tmp_path):
    res = run(plate_case("a", steps=8), tmp=tmp_path)
    damaging = [s for s in res.summary["steps"] if len(s["residuals"]) >= 4]
    assert damaging
    orders = np.concatenate([convergence_orders(s["residuals"])[-1:] for s in damaging])
    assert np.median(orders) > 1.8, orders


def test_nonlocal_strain_conserves_the_mean_and_smooths_the_peak(tmp_path):
    # q = 1 in the weak form with natural boundary conditions: int e_nl = int e_loc for any l
    import ufl
    from dolfinx import fem

    from fe2.macro.observables import Observables

    comm = MPI.COMM_WORLD
    peaks = []
    for length in (0.02, 0.3):
        p = run(plate_case("a", steps=2, ux=0.0015, length=length), tmp=tmp_path / f"l{length}").problem
        dx = ufl.Measure("dx", domain=p.mesh, metadata={"quadrature_degree": p.quadrature_degree})
        int_e = comm.allreduce(fem.assemble_scalar(fem.form(p.e * dx)), op=MPI.SUM)
        int_loc = Observables(p).integral(p.formulation.local_strain_at_points())
        assert int_e == pytest.approx(int_loc, rel=1e-10)
        peaks.append(comm.allreduce(p.e.x.array.max(), op=MPI.MAX))
    assert peaks[1] < 0.8 * peaks[0]  # the longer length spreads the peak at the hole


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_gradient_fe2_one_and_two_ranks_agree(tmp_path):
    serial, parallel = serial_and_parallel(plate_case("rve", steps=4), tmp_path)
    for s, p in zip(serial.summary["steps"], parallel.summary["steps"], strict=True):
        assert p["reaction_right_x"] == pytest.approx(s["reaction_right_x"], rel=1e-8)
        assert p["dissipated_energy"] == pytest.approx(s["dissipated_energy"], rel=1e-8, abs=1e-15)
