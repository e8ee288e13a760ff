"""Damage in RVEs: consistent tangents against finite differences while damaging (local and
viscous), RVE-averaged internal variables, and the nonlocal (driven) RVE of
gradient-regularized FE²: its block tangent against finite differences, a homogeneous RVE
equal to the driven point law, and the refusal of an RVE without a damage phase."""

import numpy as np
import pytest

from fe2.core.errors import SolverError
from fe2.materials import LinearElastic, MaterialPoints
from fe2.materials.damage import IsotropicDamage
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.phases import Phase
from helpers import inclusion_rve, rel, rve_fd_tangent, structured_rve

KW = dict(softening="exponential", beta=100.0)


def damage_phases(gdim, **kw):
    law = IsotropicDamage(1.0, 0.2, 1e-3, gdim, **{"softening": "exponential", "beta": 100.0, **kw})
    return [Phase("matrix", 1, law=law), Phase("inclusion", 2, law=LinearElastic.isotropic(5.0, 0.2, gdim))]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("eta, t_max", [(0.0, 0.7e-3), (1.0, 1.6e-3)])
def test_rve_tangent_matches_finite_differences_while_damaging(dim, eta, t_max):
    # rate independent up to the RVE's peak; viscous (eta = 1, dt = 0.1) beyond it
    rve = NonlinearCellProblem(inclusion_rve(dim, 6 if dim == 2 else 3), damage_phases(dim, viscosity=eta),
                               rtol=1e-13)
    rve.set_time_increment(0.1)
    direction = np.array([1.0, -0.2, 0.3]) if dim == 2 else np.array([1.0, -0.2, -0.1, 0.2, 0.1, 0.3])
    for t in np.linspace(0.4e-3, t_max, 7):  # load in steps, as a macro solve would
        rve.evaluate((t * direction)[None])
        rve.commit()
    omega = rve.internal_fields()["damage"][0]
    assert 0.005 < omega < 0.5  # damaging, not broken
    for E in (1.05 * t_max * direction, 0.95 * t_max * direction):  # further loading, then unloading
        s, C = rve.evaluate(E[None])
        assert rel(rve_fd_tangent(rve, E, 1e-9), C[0]) < 2e-5
    # the loading tangent is not symmetric and softer than the secant in the load direction
    s, C = rve.evaluate((1.05 * t_max * direction)[None])
    assert np.abs(C[0] - C[0].T).max() > 1e-3 * np.abs(C[0]).max()
    assert direction @ C[0] @ direction < direction @ rve.effective_tensor @ direction


def test_rve_internal_fields_are_volume_averages():
    rve = NonlinearCellProblem(inclusion_rve(2, 4), damage_phases(2, viscosity=1.0), rtol=1e-12)
    E = np.array([[3e-3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    rve.evaluate(E)
    rve.commit()
    f = rve.internal_fields()
    st = rve.get_state()["state_matrix"]  # matrix points (N, P, 4)
    w = rve.micro_weights[rve.phase_points[0]]
    assert f["damage"][0] == pytest.approx(w @ st[0, :, 1] / rve.volume, rel=1e-14)
    assert f["damage"][1] == 0.0 and f["dissipation"][1] == 0.0
    assert f["dissipation"][0] == pytest.approx(w @ st[0, :, 2] / rve.volume, rel=1e-14)
    # the inclusion (a quarter of the cell) does not damage: the average is below 3/4
    assert 0.0 < f["damage"][0] < 0.75


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
    g = rve.snapshot(E, 0, trial=True).gradient
    idx = rve.phase_points[0]
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
