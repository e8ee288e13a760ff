"""Isotropic damage: closed-form uniaxial responses, energy balance, tangents against FD.

Pure numpy; every number asserted here could come out wrong if a formula were wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from fe2.materials.damage import IsotropicDamage

E, NU, K0 = 30.0, 0.2, 1e-3
LAWS = {
    "linear": dict(softening="linear", kappa_u=8e-3),
    "exponential": dict(softening="exponential", alpha=0.99, beta=300.0),
}


def law(name="linear", gdim=3, **kw):
    return IsotropicDamage(E, NU, K0, gdim, **{**LAWS[name], **kw})


def uniaxial(ex: np.ndarray) -> np.ndarray:
    """3D Mandel strains of uniaxial stress along x: ``diag(ex, -nu ex, -nu ex)``
    (uniaxial stress for any isotropic damage, since the damage scales C)."""
    ex = np.atleast_1d(ex)
    out = np.zeros((ex.size, 6))
    out[:, 0], out[:, 1], out[:, 2] = ex, -NU * ex, -NU * ex
    return out


def march(mat, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drive one point through a path of 3D strains; stresses and states per step."""
    s = mat.initial_state(1)
    sig, states = [], []
    for eps in path:
        st, _, s = mat.integrate(eps[None, :], s)
        sig.append(st[0])
        states.append(s[0])
    return np.array(sig), np.array(states)


@pytest.mark.parametrize("eq", ["mises", "mazars"])
def test_equivalent_strain_is_axial_strain_in_uniaxial_tension(eq):
    m = law(equivalent_strain=eq)
    ex = np.array([1e-4, 2e-3, 0.05])
    e, _ = m.equivalent(uniaxial(ex))
    assert np.allclose(e, ex, rtol=1e-13, atol=0)


def test_modified_mises_weights_compression_by_k():
    # uniaxial compression: eps_eq = |eps| / k for modified von Mises (de Vree)
    m = law(equivalent_strain="mises", k=10.0)
    e, _ = m.equivalent(uniaxial(np.array([-2e-3])))
    assert e[0] == pytest.approx(2e-4, rel=1e-12)
    m = law(equivalent_strain="mazars")  # lateral expansion nu |eps| in two directions
    e, _ = m.equivalent(uniaxial(np.array([-2e-3])))
    assert e[0] == pytest.approx(np.sqrt(2) * NU * 2e-3, rel=1e-12)


@pytest.mark.parametrize("name", ["linear", "exponential"])
def test_uniaxial_stress_strain_closed_form(name):
    m = law(name)
    ex = np.linspace(0, 0.012, 241)[1:]
    sig, st = march(m, uniaxial(ex))
    if name == "linear":
        ku = LAWS["linear"]["kappa_u"]
        expect = np.where(ex <= K0, E * ex, np.where(ex < ku, E * K0 * (ku - ex) / (ku - K0), 0.0))
        expect = np.maximum(expect, (1 - m.max_damage) * E * ex)
    else:
        a, b = 0.99, 300.0
        expect = np.where(ex <= K0, E * ex, E * K0 * (1 - a + a * np.exp(-b * (ex - K0))))
    assert np.allclose(sig[:, 0], expect, rtol=1e-12, atol=1e-15)
    assert np.allclose(sig[:, 1:], 0.0, atol=1e-15)  # uniaxial stress
    assert np.allclose(st[:, 0], np.maximum(ex, K0))  # kappa follows the strain


def test_unloading_is_secant_and_damage_does_not_heal():
    m = law("linear")
    path = uniaxial(np.array([2e-3, 4e-3, 2e-3, 0.0, 3e-3, 5e-3]))
    sig, st = march(m, path)
    w4 = st[1, 1]
    assert sig[2, 0] == pytest.approx((1 - w4) * E * 2e-3, rel=1e-13)  # secant unloading
    assert sig[3, 0] == 0.0
    assert st[4, 1] == w4 and st[4, 0] == pytest.approx(4e-3)  # reloading below kappa: elastic
    assert st[5, 1] > w4


@pytest.mark.parametrize("name", ["linear", "exponential"])
def test_dissipation_to_full_damage_is_the_fracture_energy(name):
    # exponential with alpha = 1 has a finite closed form E k0 (k0/2 + 1/beta); the
    # trapezoidal dissipation increment is second order in the step
    m = law(name, **({"alpha": 1.0} if name == "exponential" else {}), max_damage=1 - 1e-12)
    expect = m.fracture_energy_density()
    errors = []
    for steps in (1000, 2000):
        ex = np.linspace(0, 0.06 if name == "exponential" else 8e-3, steps + 1)[1:]
        _, st = march(m, uniaxial(ex))
        errors.append(abs(st[-1, 2] - expect) / expect)
    assert errors[1] < 1e-4
    assert errors[1] < 1e-13 or errors[0] / errors[1] > 3.5, errors


@pytest.mark.parametrize("name", ["linear", "exponential"])
def test_energy_balance_work_equals_free_energy_plus_dissipation(name):
    # W = int sigma deps = psi + D, trapezoidal in time, through loading, unloading, reloading
    m = law(name)
    t = np.linspace(0, 1, 3001)
    ex = 5e-3 * np.sin(3 * np.pi * t) ** 2 * t
    sig, st = march(m, uniaxial(ex[1:]))
    sig = np.vstack([np.zeros(6), sig])
    W = np.sum(0.5 * (sig[1:, 0] + sig[:-1, 0]) * np.diff(ex))
    psi = (1 - st[-1, 1]) * st[-1, 3]
    D = st[-1, 2]
    assert D > 0.3 * W
    assert abs(W - psi - D) < 1e-5 * W


def fd_check(m, eps, state, h=1e-8):
    """Tangent of the law (its own notation) against central differences."""
    flux, A, _ = m.integrate(eps, state)
    D = np.zeros_like(A)
    for j in range(eps.shape[1]):
        ep, em = eps.copy(), eps.copy()
        ep[:, j] += h
        em[:, j] -= h
        D[:, :, j] = (m.integrate(ep, state)[0] - m.integrate(em, state)[0]) / (2 * h)
    return np.linalg.norm(D - A, axis=(1, 2)) / np.linalg.norm(A, axis=(1, 2))


def random_states(m, n, rng):
    """Strains around and beyond the threshold with committed kappa below or above e."""
    eps = rng.normal(size=(n, m.size)) * 2.5e-3
    st = m.initial_state(n)
    e = m.equivalent_of(eps)[0]
    st[:, 0] = np.maximum(K0, e * rng.choice([0.5, 0.8, 1.3], size=n))
    st[:, 1] = m.damage(st[:, 0])[0]
    return eps, st


@pytest.mark.parametrize("gdim", [2, 3])
@pytest.mark.parametrize("eq", ["mises", "mazars"])
@pytest.mark.parametrize("name", ["linear", "exponential"])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_tangent_matches_finite_differences(gdim, eq, name, eta):
    rng = np.random.default_rng(7)
    m = law(name, gdim=gdim, equivalent_strain=eq, viscosity=eta)
    m.set_time_increment(0.1)
    eps, st = random_states(m, 40, rng)
    _, _, trial = m.integrate(eps, st)
    loading = trial[:, 0] > st[:, 0]
    assert 5 < loading.sum() < 40  # both loading and elastic points are checked
    err = fd_check(m, eps, st)
    assert err.max() < 1e-5, err


@pytest.mark.parametrize("gdim", [2, 3])
def test_driven_derivatives_match_finite_differences(gdim):
    rng = np.random.default_rng(3)
    m = law("exponential", gdim=gdim)
    eps, st = random_states(m, 30, rng)
    drive = st[:, 0] * rng.choice([0.7, 1.2, 1.5], size=30)
    sig, C, ds, e, de, _ = m.integrate_driven(eps, st, drive)
    h = 1e-9
    fd = (m.integrate_driven(eps, st, drive + h)[0] - m.integrate_driven(eps, st, drive - h)[0]) / (2 * h)
    assert np.abs(fd - ds).max() < 1e-5 * np.abs(ds).max()
    assert np.abs(ds).max() > 0
    for j in range(m.size):
        ep, em = eps.copy(), eps.copy()
        ep[:, j] += h
        em[:, j] -= h
        r = m.integrate_driven(ep, st, drive)
        s = m.integrate_driven(em, st, drive)
        assert np.allclose((r[0] - s[0]) / (2 * h), C[:, :, j], rtol=1e-6, atol=1e-6 * E)  # secant at fixed drive
        assert np.allclose((r[3] - s[3]) / (2 * h), de[:, j], rtol=1e-5, atol=1e-7)


def test_viscous_damage_lags_and_tends_to_rate_independent():
    path = uniaxial(np.linspace(0, 4e-3, 41)[1:])
    s_ri, st_ri = march(law("linear"), path)
    lags = []
    for eta in (0.5, 0.05, 0.005):
        m = law("linear", viscosity=eta)
        m.set_time_increment(0.025)
        s, st = march(m, path)
        assert (st[:, 1] <= st_ri[:, 1] + 1e-15).all()  # damage lags the rate-independent one
        lags.append(np.abs(s[:, 0] - s_ri[:, 0]).max())
    assert lags[0] > lags[1] > lags[2] and lags[2] < 0.05 * lags[0]


@pytest.mark.parametrize("kw, msg", [
    (dict(softening="linear", kappa_u=5e-4), "kappa_u must be > kappa0"),
    (dict(softening="cubic"), "softening must be one of"),
    (dict(equivalent_strain="rankine"), "equivalent_strain must be one of"),
    (dict(alpha=1.5), "alpha must be in [0, 1]"),
    (dict(viscosity=-1.0), "viscosity must be >= 0"),
    (dict(max_damage=1.0), "max_damage must be in (0, 1)"),
])
def test_bad_parameters_are_named(kw, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        IsotropicDamage(E, NU, K0, 2, **kw)
