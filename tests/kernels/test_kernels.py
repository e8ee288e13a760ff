"""The compiled point kernels (:mod:`fe2.kernels`) against their numpy references: the same
numbers to 1e-12 on mixed elastic and plastic points of every law variant, in 2D and 3D;
elastic points with exactly the elastic tangent; the same errors where a local Newton fails."""

import numpy as np
import pytest

from fe2 import kernels
from fe2.core.errors import SolverError
from fe2.materials.plasticity import J2Plasticity

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="compiled kernels off (FE2_KERNELS=numpy or no numba)")

HARDENING = {"perfect": {}, "linear": {"H_iso": 0.05}, "voce": {"H_iso": 0.05, "Q": 0.01, "b": 30.0},
             "mixed": {"H_iso": 0.05, "Q": 0.01, "b": 30.0, "H_kin": 0.02}}


def rel(a, b):
    return np.abs(np.asarray(a) - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("gdim", [2, 3])
@pytest.mark.parametrize("hardening", sorted(HARDENING))
def test_j2_kernel_equals_numpy(gdim, hardening):
    law = J2Plasticity(1.0, 0.3, 0.01, gdim, **HARDENING[hardening])
    n = 3 if gdim == 2 else 6
    rng = np.random.default_rng(7)
    eps = 0.02 * rng.standard_normal((400, n))
    eps[::3] *= 0.01  # every third point elastic
    with kernels.numpy_only():
        committed = law.integrate(0.8 * eps, law.initial_state(400)).state  # a plastic history
    for strain in (eps, 0.5 * eps, -eps):  # further loading, unloading, reversal
        got = law.integrate(strain, committed)
        with kernels.numpy_only():
            want = law.integrate(strain, committed)
        for a, b in zip(got, want):
            assert rel(a, b) < 1e-12
        elastic = got.state[:, 12] == committed[:, 12]
        if strain is eps:
            assert 0 < elastic.sum() < 400
        C = law.C3[np.ix_(*[[0, 1, 5] if gdim == 2 else list(range(6))] * 2)]
        assert np.array_equal(got.tangent[elastic], np.broadcast_to(C, got.tangent[elastic].shape))
    assert not np.shares_memory(got.state, committed)


def test_j2_kernel_failure_raises_the_numpy_error():
    law = J2Plasticity(1.0, 0.3, 0.01, 2, H_iso=0.05, Q=0.01, b=30.0)
    law.newton_maxiter = 1
    eps = np.array([[0.05, -0.02, 0.03], [1e-5, 0.0, 0.0]])
    with pytest.raises(SolverError, match=r"J2 return mapping did not converge at 1 points in 1 iterations"):
        law.integrate(eps, law.initial_state(2))


def composite_rve(gdim, degree, boundary):
    """A small J2 composite RVE (the template whose operators the cell kernels use)."""
    from fe2.materials import LinearElastic
    from fe2.micro.nonlinear import NonlinearCellProblem
    from fe2.micro.phases import Phase
    from helpers import inclusion_rve

    law = J2Plasticity(1.0, 0.3, 0.01, gdim, H_iso=0.05)
    phases = [Phase("m", 1, law=law), Phase("i", 2, law=LinearElastic.isotropic(5.0, 0.2, gdim))]
    return NonlinearCellProblem(inclusion_rve(gdim, 3), phases, degree=degree, boundary=boundary)


@pytest.mark.parametrize("boundary", ["periodic", "minimal", "linear"])
@pytest.mark.parametrize("gdim, degree", [(2, 1), (2, 2), (3, 1)])
def test_jacobian_kernel_equals_numpy(gdim, degree, boundary):
    """The compiled values of condensed micro Jacobians (periodic slaves scattered onto their
    masters, a Lagrange border's constant entries) equal the numpy operators', for any
    tangent and, with symmetric tangents, from the upper triangles alone; a point's values
    do not depend on the batch (to the last bit)."""
    rve = composite_rve(gdim, degree, boundary)
    op = rve.problem.operators
    rng = np.random.default_rng(3)
    T = rng.standard_normal((5, op.num_points, rve.size, rve.size))
    for tangent, symmetric in ((T, False), (T + T.transpose(0, 1, 3, 2), True)):
        got = op.jacobian_values(tangent, symmetric=symmetric)
        with kernels.numpy_only():
            want = op.jacobian_values(tangent, symmetric=symmetric)
        assert rel(got, want) < 1e-12
        assert np.array_equal(op.jacobian_values(tangent[2:3], symmetric=symmetric)[0], got[2])


@pytest.mark.parametrize("gdim", [2, 3])
def test_neo_hooke_kernel_equals_numpy(gdim):
    from fe2.materials.hyperelasticity import NeoHooke

    law = NeoHooke(1.0, 0.3, gdim)
    rng = np.random.default_rng(5)
    F = np.eye(gdim).ravel() + 0.3 * rng.standard_normal((300, gdim * gdim))
    F = F[np.linalg.det(F.reshape(-1, gdim, gdim)) > 0.05]
    got = law.integrate(F, np.zeros((F.shape[0], 0)))
    with kernels.numpy_only():
        want = law.integrate(F, np.zeros((F.shape[0], 0)))
    assert rel(got.flux, want.flux) < 1e-12 and rel(got.tangent, want.tangent) < 1e-12
    F[7] = np.diag([-1.0] + [1.0] * (gdim - 1)).ravel()  # inverted: the numpy error
    with pytest.raises(SolverError, match=r"Neo-Hooke: det F <= 0 .* at 1 of"):
        law.integrate(F, np.zeros((F.shape[0], 0)))


@pytest.mark.parametrize("gdim", [2, 3])
def test_conduction_kernel_equals_numpy(gdim):
    from fe2.materials.conduction import NonlinearConduction

    law = NonlinearConduction(1.5, 0.5, gdim)
    g = np.random.default_rng(2).standard_normal((200, gdim))
    got = law.integrate(g, np.zeros((200, 0)))
    with kernels.numpy_only():
        want = law.integrate(g, np.zeros((200, 0)))
    assert rel(got.flux, want.flux) < 1e-12 and rel(got.tangent, want.tangent) < 1e-12


@pytest.mark.parametrize("gdim", [2, 3])
@pytest.mark.parametrize("variant", ["exponential", "linear", "viscous", "mazars"])
def test_damage_kernels_equal_numpy(gdim, variant):
    """Local and driven damage, loading from a damaged state, unloading and reloading."""
    from fe2.materials.damage import IsotropicDamage

    kw = {"linear": {"softening": "linear", "kappa_u": 5e-3}, "viscous": {"viscosity": 0.3},
          "mazars": {"equivalent_strain": "mazars"}}.get(variant, {})
    law = IsotropicDamage(1.0, 0.2, 1e-3, gdim, **kw)
    law.set_time_increment(0.1)
    n = 3 if gdim == 2 else 6
    rng = np.random.default_rng(4)
    eps = 4e-3 * rng.standard_normal((300, n))
    eps[::4] *= 0.05  # some points below the damage threshold
    with kernels.numpy_only():
        committed = law.integrate(0.6 * eps, law.initial_state(300)).state
    assert (committed[:, 1] > 0).any() and (committed[:, 1] == 0).any()
    drive = law.equivalent_of(eps)[0] * 1.1
    for strain in (eps, 0.3 * eps, 1.4 * eps):
        got = [law.integrate(strain, committed), law.integrate_driven(strain, committed, drive),
               law.equivalent_of(strain)]
        with kernels.numpy_only():
            want = [law.integrate(strain, committed), law.integrate_driven(strain, committed, drive),
                    law.equivalent_of(strain)]
        for g, w in zip(got, want):
            for a, b in zip(g, w):
                assert rel(a, b) < 1e-12


@pytest.mark.parametrize("boundary", ["periodic", "minimal", "linear"])
@pytest.mark.parametrize("gdim, degree", [(2, 1), (2, 2), (3, 1)])
def test_cell_kernels_equal_numpy(gdim, degree, boundary):
    """The compiled micro gradients ``E + B x``, internal forces (condensed residual and
    the norm of the uncondensed forces) and condensed columns ``B^T W T`` (vectors and
    matrices per micro point) equal the operators' sparse products, in the layout the laws
    take; a point's values do not depend on the batch."""
    rve = composite_rve(gdim, degree, boundary)
    op = rve.problem.operators
    rng = np.random.default_rng(8)
    E, X = rng.standard_normal((4, rve.size)), rng.standard_normal((4, op.nfree))
    flux = rng.standard_normal((4, op.num_points, rve.size))
    T = rng.standard_normal((4, op.num_points, rve.size, rve.size + 1))
    got = op.gradients(E, X), *op.forces(flux), op.condensed(T), op.condensed(flux)
    with kernels.numpy_only():
        want = op.gradients(E, X), *op.forces(flux), op.condensed(T), op.condensed(flux)
    for a, b in zip(got, want):
        assert a.shape == b.shape and rel(a, b) < 1e-12
    assert np.array_equal(op.gradients(E[1:2], X[1:2])[0], got[0][1])
    assert np.array_equal(op.forces(flux[2:3])[0][0], got[1][2])
    assert np.array_equal(op.condensed(T[3:4])[0], got[3][3])
