"""Closed forms in fe2.core.tensors against numbers from the literature and identities."""

import numpy as np
import pytest

from fe2.core import tensors as T


def test_plane_strain_laminate_reference_values():
    # E = 1 and 10, nu = 0.3, equal fractions, layers normal to y; Voigt [xx, yy, xy]
    C = T.laminate_tensor([T.isotropic_stiffness(1, 0.3, 2), T.isotropic_stiffness(10, 0.3, 2)],
                          [0.5, 0.5], normal=1, gdim=2)
    V = T.mandel_to_voigt_stiffness(C)
    assert V[0, 0] == pytest.approx(6.493506, abs=5e-7)
    assert V[0, 1] == pytest.approx(1.048951, abs=5e-7)
    assert V[1, 1] == pytest.approx(2.447552, abs=5e-7)
    assert V[2, 2] == pytest.approx(0.699301, abs=5e-7)
    assert V[0, 2] == V[1, 2] == 0.0


def test_laminate_conduction_is_arithmetic_along_and_harmonic_across():
    K = T.laminate_tensor([np.eye(3), 10 * np.eye(3)], [0.3, 0.7], normal=0, gdim=3, physics="conduction")
    assert K[1, 1] == pytest.approx(0.3 + 7.0, rel=1e-14)
    assert K[0, 0] == pytest.approx(1 / (0.3 + 0.07), rel=1e-14)


def test_laminate_of_identical_layers_is_the_layer():
    C = T.isotropic_stiffness(3.0, 0.25, 3)
    assert np.allclose(T.laminate_tensor([C, C], [0.4, 0.6], 2, 3), C, rtol=1e-14, atol=1e-14)


def test_voigt_mandel_roundtrip_and_energy():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(6, 6))
    C = A @ A.T
    assert np.allclose(T.voigt_to_mandel_stiffness(T.mandel_to_voigt_stiffness(C)), C)
    e_m = rng.normal(size=6)
    e_v = T.mandel_to_voigt_strain(e_m)
    s_v = T.mandel_to_voigt_stiffness(C) @ e_v
    # the same energy in both notations
    assert e_m @ C @ e_m == pytest.approx(e_v @ s_v, rel=1e-13)
    assert np.allclose(T.mandel_to_voigt_stress(C @ e_m), s_v)


@pytest.mark.parametrize("gdim", [2, 3])
def test_isotropic_projection_recovers_moduli(gdim):
    E, nu = 2.0, 0.3
    lam, mu = T.lame(E, nu)
    kappa = lam + mu if gdim == 2 else lam + 2 * mu / 3
    k, m = T.isotropic_projection(T.isotropic_stiffness(E, nu, gdim), gdim)
    assert k == pytest.approx(kappa, rel=1e-14)
    assert m == pytest.approx(mu, rel=1e-14)


@pytest.mark.parametrize("gdim", [2, 3])
def test_hashin_shtrikman_between_voigt_and_reuss(gdim):
    k1, m1 = (T.plane_strain_bulk_shear(1, 0.3) if gdim == 2 else (1.0, 0.5))
    k2, m2 = (T.plane_strain_bulk_shear(10, 0.2) if gdim == 2 else (10.0, 6.0))
    f = [0.7, 0.3]
    (kl, ku), (ml, mu) = T.hashin_shtrikman_elastic([k1, k2], [m1, m2], f, gdim)
    assert 1 / (f[0] / k1 + f[1] / k2) < kl < ku < f[0] * k1 + f[1] * k2
    assert 1 / (f[0] / m1 + f[1] / m2) < ml < mu < f[0] * m1 + f[1] * m2
    kl_c, ku_c = T.hashin_shtrikman_conduction([1.0, 10.0], f, gdim)
    assert 1 / (0.7 + 0.03) < kl_c < ku_c < 0.7 + 3.0
    # 2D conduction HS upper bound for a dilute inclusion: Maxwell-Garnett value
    assert T.hashin_shtrikman_conduction([1.0, 10.0], [0.9, 0.1], 2)[0] == pytest.approx(
        1 + 2 * 0.1 * 9 / (11 - 0.1 * 9), rel=1e-14)


def test_von_mises_equivalent_strain_cauchy_and_hencky_closed_forms():
    from fe2.core.tensors import cauchy_stress, equivalent_strain, hencky_strain, von_mises

    s = np.diag([2.0, 0.0, 0.0])
    assert von_mises(s) == pytest.approx(2.0, rel=1e-15)
    assert von_mises(np.eye(3) * 5.0) == pytest.approx(0.0, abs=1e-14)  # hydrostatic
    shear = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert von_mises(shear) == pytest.approx(np.sqrt(3.0), rel=1e-15)
    assert equivalent_strain(np.diag([0.01, -0.005, -0.005])) == pytest.approx(0.01, rel=1e-14)
    F = np.diag([1.2, 0.9, 1.0])
    assert hencky_strain(F) == pytest.approx(np.diag(np.log([1.2, 0.9, 1.0])), abs=1e-15)
    P = np.array([[1.0, 0.2, 0.0], [0.1, 0.5, 0.0], [0.0, 0.0, 0.3]])
    R = np.array([[0.6, -0.8, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])  # a rotation: J = 1
    sigma = cauchy_stress(P, R)
    assert sigma == pytest.approx(P @ R.T, abs=1e-15)
    stacked = cauchy_stress(np.stack([P, 2 * P]), np.stack([np.eye(3), 2 * np.eye(3)]))
    assert stacked[1] == pytest.approx(2 * P @ (2 * np.eye(3)).T / 8.0, abs=1e-15)
