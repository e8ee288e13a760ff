"""Gradient-regularized damage: the RVE's nonlocal block tangent against finite
differences, a homogeneous RVE = the point law, the monolithic macro Newton, and FE² with a
homogeneous RVE = the single-scale implicit gradient model (Peerlings et al. 1996)."""

import numpy as np
import pytest
from mpi4py import MPI

from conftest import structured_rve
from fe2.damage import IsotropicDamage
from fe2.errors import SolverError
from fe2.materials import LinearElastic, MaterialPoints
from fe2.rve import NonlinearCellProblem, Phase
from test_nonlinear_fe2 import run
from test_softening import inclusion_rve

KW = dict(softening="exponential", beta=100.0)


def damage_rve(gdim, n=6, viscosity=0.0):
    law = IsotropicDamage(1.0, 0.2, 1e-3, gdim, viscosity=viscosity, **KW)
    phases = [Phase("matrix", 1, law=law), Phase("inclusion", 2, law=LinearElastic.isotropic(5.0, 0.2, gdim))]
    return NonlinearCellProblem(inclusion_rve(gdim, n), phases, rtol=1e-13)


def fd_block(rve, E, e, h=1e-9):
    """Central differences of (Sigma, e_loc) with respect to (E, e_nl), from the committed state."""
    n = E.size
    cols = []
    for k in range(n + 1):
        d = np.zeros(n + 1)
        d[k] = h
        p = rve.evaluate_nonlocal((E + d[:n])[None], np.array([e + d[n]]))
        m = rve.evaluate_nonlocal((E - d[:n])[None], np.array([e - d[n]]))
        cols.append(np.concatenate([p[0][0] - m[0][0], [p[3][0] - m[3][0]]]) / (2 * h))
    return np.array(cols).T  # (n + 1, n + 1)


def block(out):
    sig, C, S, el, dl_dE, dl_de = (o[0] for o in out)
    n = sig.size
    B = np.zeros((n + 1, n + 1))
    B[:n, :n], B[:n, n], B[n, :n], B[n, n] = C, S, dl_dE, dl_de
    return B


@pytest.mark.parametrize("dim", [2, 3])
def test_nonlocal_rve_block_tangent_matches_finite_differences(dim):
    # viscous in 3D: the coarse cube RVE localizes (snap-back) soon after the onset otherwise
    rve = damage_rve(dim, 6 if dim == 2 else 3, viscosity=0.0 if dim == 2 else 1.0)
    rve.set_time_increment(0.1)
    direction = np.array([1.0, -0.2, 0.3]) if dim == 2 else np.array([1.0, -0.2, -0.1, 0.2, 0.1, 0.3])
    for t in np.linspace(0.4e-3, 1.2e-3, 5):  # the nonlocal strain a bit behind the local one
        out = rve.evaluate_nonlocal((t * direction)[None], np.array([0.9 * t]))
        rve.commit()
    assert 0.01 < rve.internal_fields()["damage"][0] < 0.5
    E, e = 1.3e-3 * direction, 1.25e-3
    out = rve.evaluate_nonlocal(E[None], np.array([e]))
    B = block(out)
    # e_loc is the average equivalent strain over the damage phase
    law = rve.phases[0].law
    g, _, _ = rve.micro_fields()
    idx = rve._phase_points[0]
    w = rve.micro_weights[idx]
    assert out[3][0] == pytest.approx(w @ law.equivalent_of(g[idx])[0] / w.sum(), rel=1e-12)
    D = fd_block(rve, E, e)
    err = np.abs(B - D).max() / np.abs(B).max()
    assert err < 1e-5, (B, D)
    # every block is really there: dSigma/de_nl, de_loc/dE, and de_loc/de_nl (heterogeneous RVE)
    n = E.size
    assert np.abs(B[:n, n]).max() > 1e-2 * np.abs(B[:n, :n]).max()
    assert np.abs(B[n, :n]).max() > 0.1
    assert abs(B[n, n]) > 1e-4


def test_homogeneous_nonlocal_rve_is_the_driven_point_law():
    law = IsotropicDamage(1.0, 0.2, 1e-3, 2, **KW)
    rve = NonlinearCellProblem(structured_rve(2, 3), [Phase("m", 1, law=law)], rtol=1e-13)
    pts = MaterialPoints(law, 0)
    E = np.array([[1.5e-3, -2e-4, 3e-4], [2e-4, 1e-4, 0.0]])
    e = np.array([1.8e-3, 5e-4])
    a = rve.evaluate_nonlocal(E, e)
    b = pts.evaluate_nonlocal(E, e)
    for x, y in zip(a, b):
        assert np.allclose(x, y, rtol=1e-10, atol=1e-13)


def test_nonlocal_rve_without_damage_phase_is_refused():
    rve = NonlinearCellProblem(structured_rve(2, 2), [Phase("m", 1, law=LinearElastic.isotropic(1.0, 0.2, 2))])
    with pytest.raises(SolverError, match="needs an RVE phase with a damage law"):
        rve.evaluate_nonlocal(np.zeros((1, 3)), np.zeros(1))


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
    assert np.abs(fe2.problem.e.x.array - single.problem.e.x.array).max() < 1e-6 * np.abs(single.problem.e.x.array).max()
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
    from dolfinx import fem
    import ufl

    comm = MPI.COMM_WORLD
    peaks = []
    for length in (0.02, 0.3):
        p = run(plate_case("a", steps=2, ux=0.0015, length=length), tmp=tmp_path / f"l{length}").problem
        dx = ufl.Measure("dx", domain=p.mesh, metadata={"quadrature_degree": p.quadrature_degree})
        int_e = comm.allreduce(fem.assemble_scalar(fem.form(p.e * dx)), op=MPI.SUM)
        int_loc = p.integrate(p.e_local.x.array[p._qdofs_scalar])
        assert int_e == pytest.approx(int_loc, rel=1e-10)
        peaks.append(comm.allreduce(p.e.x.array.max(), op=MPI.MAX))
    assert peaks[1] < 0.8 * peaks[0]  # the longer length spreads the peak at the hole


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_gradient_fe2_one_and_two_ranks_agree(tmp_path):
    world = MPI.COMM_WORLD
    data = plate_case("rve", steps=4)
    base = world.bcast(str(tmp_path), root=0)
    serial = run(data, MPI.COMM_SELF, tmp=f"{base}/s{world.rank}")
    parallel = run(data, world, tmp=f"{base}/p")
    for s, p in zip(serial.summary["steps"], parallel.summary["steps"], strict=True):
        assert p["reaction_right_x"] == pytest.approx(s["reaction_right_x"], rel=1e-8)
        assert p["dissipated_energy"] == pytest.approx(s["dissipated_energy"], rel=1e-8, abs=1e-15)
