"""Heat conduction laws: closed-form flux, finite-difference tangent, Fourier limit,
monotonicity, and invalid parameters."""

import numpy as np
import pytest

from fe2.materials.conduction import LinearConduction, NonlinearConduction
from fe2.materials.registry import build


@pytest.mark.parametrize("gdim", [2, 3])
def test_nonlinear_conduction_closed_form_and_fd_tangent(gdim):
    law = NonlinearConduction(2.0, 0.5, gdim)
    rng = np.random.default_rng(gdim)
    g = rng.normal(size=(6, gdim))
    flux, tangent, state = law.integrate(g, law.initial_state(6))
    assert state.shape == (6, 0)
    # flux = k (1 + |g|^2 / g_ref^2) g, parallel to g
    mag2 = (g**2).sum(axis=1)
    np.testing.assert_allclose(flux, (2.0 * (1 + mag2 / 0.25))[:, None] * g, rtol=1e-14)
    # at |g| = g_ref the conductivity has doubled
    e = np.zeros((1, gdim))
    e[0, 0] = 0.5
    assert law.integrate(e, law.initial_state(1)).flux[0, 0] == pytest.approx(2 * 2.0 * 0.5, rel=1e-15)
    # tangent = central differences
    h = 1e-6
    for n in range(g.shape[0]):
        fd = np.zeros((gdim, gdim))
        for k in range(gdim):
            d = np.zeros(gdim)
            d[k] = h
            fd[:, k] = (law.integrate((g[n] + d)[None], law.initial_state(1)).flux[0]
                        - law.integrate((g[n] - d)[None], law.initial_state(1)).flux[0]) / (2 * h)
        assert np.abs(fd - tangent[n]).max() < 1e-7 * np.abs(tangent[n]).max()
        # symmetric positive definite: the smallest eigenvalue is k(|g|) > k
        assert np.abs(tangent[n] - tangent[n].T).max() == 0.0
        assert np.linalg.eigvalsh(tangent[n]).min() == pytest.approx(2.0 * (1 + mag2[n] / 0.25), rel=1e-12)


def test_small_gradient_is_fourier_and_linear_law():
    law = NonlinearConduction(3.0, 10.0, 2)
    g = np.array([[1e-4, -2e-4]])
    flux, tangent, _ = law.integrate(g, law.initial_state(1))
    lin = build("conduction", {"k": 3.0}, 2)
    f_lin, t_lin, _ = lin.integrate(g, lin.initial_state(1))
    assert np.abs(flux - f_lin).max() < 1e-9 * np.abs(f_lin).max()
    assert np.abs(tangent - t_lin).max() < 1e-8
    np.testing.assert_array_equal(t_lin[0], 3.0 * np.eye(2))
    assert lin.linear and not law.linear and lin.kinematics == law.kinematics == "scalar"


def test_anisotropic_linear_conduction():
    K = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 4.0]])
    law = LinearConduction(K)
    g = np.array([[1.0, 2.0, -1.0], [0.0, 0.0, 1.0]])
    flux, tangent, _ = law.integrate(g, law.initial_state(2))
    np.testing.assert_allclose(flux, [[3.0, 2.5, -4.0], [0.0, 0.0, 4.0]], rtol=1e-15)
    assert tangent.shape == (2, 3, 3) and law.gdim == 3


@pytest.mark.parametrize("make,match", [
    (lambda: NonlinearConduction(-1.0, 1.0, 2), "k must be > 0"),
    (lambda: NonlinearConduction(1.0, 0.0, 2), "grad_ref must be > 0"),
    (lambda: NonlinearConduction(1.0, 1.0, 1), "gdim must be 2 or 3"),
    (lambda: LinearConduction(np.eye(4)), "2x2 or 3x3"),
    (lambda: LinearConduction.isotropic(0.0, 2), "k must be > 0"),
])
def test_invalid_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()
