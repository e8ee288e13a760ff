"""Constitutive laws: tangents against finite differences, closed-form responses, identities.

Pure numpy; every number asserted here could come out wrong if a formula were wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fe2.core import tensors as T
from fe2.core.errors import SolverError
from fe2.materials.hyperelasticity import NeoHooke
from fe2.materials.plasticity import J2Plasticity

SQ2, SQ3 = math.sqrt(2.0), math.sqrt(3.0)
E, NU, SY = 200.0, 0.3, 0.25  # yield strain 1.25e-3
G = E / (2.0 * (1.0 + NU))

HARDENING = {
    "perfect": {},
    "linear_iso": {"H_iso": 20.0},
    "voce": {"Q": 0.1, "b": 200.0},
    "kinematic": {"H_kin": 15.0},
    "combined": {"H_iso": 10.0, "Q": 0.05, "b": 300.0, "H_kin": 10.0},
}


# -- helpers -------------------------------------------------------------------------
def fd_tangent(law, grad: np.ndarray, state: np.ndarray, h: float) -> np.ndarray:
    """Central finite differences of the flux, ``(N, n, n)``."""
    N, n = grad.shape
    D = np.zeros((N, n, n))
    for j in range(n):
        gp, gm = grad.copy(), grad.copy()
        gp[:, j] += h
        gm[:, j] -= h
        D[:, :, j] = (law.integrate(gp, state)[0] - law.integrate(gm, state)[0]) / (2.0 * h)
    return D


def assert_tangent_matches_fd(law, grad, state, h, rtol=1e-5):
    _, A, _ = law.integrate(grad, state)
    D = fd_tangent(law, grad, state, h)
    err = np.linalg.norm(D - A, axis=(1, 2)) / np.linalg.norm(A, axis=(1, 2))
    assert err.max() < rtol, f"tangent vs FD: relative errors {err}"
    return A


def mandel(t: np.ndarray) -> np.ndarray:
    """3x3 symmetric tensor(s) to 3D Mandel vector(s)."""
    return np.stack([t[..., 0, 0], t[..., 1, 1], t[..., 2, 2], SQ2 * t[..., 1, 2],
                     SQ2 * t[..., 0, 2], SQ2 * t[..., 0, 1]], axis=-1)


def von_mises(v: np.ndarray) -> np.ndarray:
    """``sqrt(3/2) |dev v|`` of 3D Mandel vectors ``(N, 6)``."""
    dev = v.copy()
    dev[:, :3] -= v[:, :3].mean(axis=1, keepdims=True)
    return math.sqrt(1.5) * np.linalg.norm(dev, axis=1)


def embed3(law: J2Plasticity, v: np.ndarray) -> np.ndarray:
    """A law's strain (N, n) as 3D Mandel strain."""
    if law.gdim == 3:
        return v
    out = np.zeros((v.shape[0], 6))
    out[:, [0, 1, 5]] = v
    return out


def loaded(law: J2Plasticity, N: int = 6, seed: int = 0):
    """Points loaded past yield in one step and committed.

    Returns ``eps1, state1, eps2, eps_unload``: the first loading strain and its committed
    state; a further loading strain (plastic again from ``state1``); an unloading strain
    (half the elastic strain of step 1, elastic from ``state1``).
    """
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(N, law.size))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    eps1 = 1e-2 * d
    _, _, state1 = law.integrate(eps1, law.initial_state(N))
    assert np.all(law.equivalent_plastic_strain(state1) > 0)
    eps2 = 1.3 * eps1 + 1e-3 * rng.normal(size=eps1.shape)
    eps_p = state1[:, law.state_layout["eps_p"]]
    eps_p = eps_p if law.gdim == 3 else eps_p[:, [0, 1, 5]]
    eps_unload = eps_p + 0.5 * (eps1 - eps_p)
    return eps1, state1, eps2, eps_unload


# -- J2 plasticity: tangents ----------------------------------------------------------
@pytest.mark.parametrize("gdim", [2, 3])
@pytest.mark.parametrize("kind", list(HARDENING))
def test_j2_tangent_matches_finite_differences(kind, gdim):
    law = J2Plasticity(E, NU, SY, gdim, **HARDENING[kind])
    C = T.isotropic_stiffness(E, NU, gdim)
    rng = np.random.default_rng(7)
    N = 6
    # elastic states from the virgin material
    eps_el = 2e-4 * rng.normal(size=(N, law.size))
    _, A, trial = law.integrate(eps_el, law.initial_state(N))
    assert np.all(trial == 0.0)
    assert_tangent_matches_fd(law, eps_el, law.initial_state(N), h=1e-8)
    # plastic states: first step from virgin, then a further plastic step from the committed state
    eps1, state1, eps2, eps_unload = loaded(law, N)
    for eps, st in ((eps1, law.initial_state(N)), (eps2, state1)):
        _, _, new = law.integrate(eps, st)
        assert np.all(law.equivalent_plastic_strain(new) > law.equivalent_plastic_strain(st))
        A = assert_tangent_matches_fd(law, eps, st, h=1e-8)
        # really an elastoplastic tangent, and still symmetric (associative flow)
        assert np.all(np.linalg.norm(A - C, axis=(1, 2)) > 1e-2 * np.linalg.norm(C))
        np.testing.assert_allclose(A, np.transpose(A, (0, 2, 1)), rtol=0, atol=1e-12 * np.abs(C).max())
    # elastic unloading from the committed plastic state: state kept, tangent exactly C
    _, A, new = law.integrate(eps_unload, state1)
    np.testing.assert_array_equal(new, state1)
    np.testing.assert_array_equal(A, np.broadcast_to(C, A.shape))
    assert_tangent_matches_fd(law, eps_unload, state1, h=1e-8)


@pytest.mark.parametrize("gdim", [2, 3])
def test_j2_elastic_step_tangent_is_exactly_the_stiffness(gdim):
    law = J2Plasticity(E, NU, SY, gdim, **HARDENING["combined"])
    C = T.isotropic_stiffness(E, NU, gdim)
    eps = 1e-4 * np.random.default_rng(3).normal(size=(5, law.size))
    sigma, A, trial = law.integrate(eps, law.initial_state(5))
    np.testing.assert_array_equal(A, np.broadcast_to(C, (5,) + C.shape))
    np.testing.assert_allclose(sigma, eps @ C.T, rtol=1e-14, atol=1e-16)
    np.testing.assert_array_equal(trial, law.initial_state(5))


# -- J2 plasticity: closed forms ------------------------------------------------------
def test_j2_pure_shear_linear_isotropic_hardening_closed_form():
    H = 20.0
    law = J2Plasticity(E, NU, SY, 3, H_iso=H)
    gamma_y = SY / (SQ3 * G)
    state = law.initial_state(1)
    yielded = []
    gammas = np.linspace(0.0, 6.1 * gamma_y, 25)[1:]  # gamma_y is not a grid point
    for gamma in gammas:
        eps = np.zeros((1, 6))
        eps[0, 5] = SQ2 * gamma / 2.0  # eps_xy = gamma / 2
        sigma, _, state = law.integrate(eps, state)
        tau = sigma[0, 5] / SQ2
        p = law.equivalent_plastic_strain(state)[0]
        if G * gamma <= SY / SQ3:
            assert p == 0.0
            assert tau == pytest.approx(G * gamma, rel=1e-13)
        else:
            yielded.append(gamma)
            p_exact = (SQ3 * G * gamma - SY) / (3.0 * G + H)
            assert p == pytest.approx(p_exact, rel=1e-12)
            assert tau == pytest.approx((SY + H * p_exact) / SQ3, rel=1e-12)
            # plastic shear strain eps_p_xy = sqrt(3)/2 p, nothing else
            eps_p = state[0, law.state_layout["eps_p"]]
            assert eps_p[5] / SQ2 == pytest.approx(SQ3 / 2.0 * p_exact, rel=1e-12)
            np.testing.assert_allclose(eps_p[:5], 0.0, atol=1e-18)
        np.testing.assert_allclose(sigma[0, :5], 0.0, atol=1e-14)
    # the first yielding step is the first one past tau_y = sigma_y / sqrt3
    assert yielded[0] > gamma_y and yielded[0] - gamma_y < gammas[0]
    assert len(yielded) == np.sum(gammas > gamma_y)


def _uniaxial_stress(law: J2Plasticity, eps_xx: np.ndarray):
    """Uniaxial stress path in 3D: outer Newton on the lateral strains (yy, zz) with the
    law's consistent tangent. Returns stresses, states and the Newton iteration counts."""
    state = law.initial_state(1)
    lat = np.zeros(2)
    out, iters = [], []
    for exx in eps_xx:
        for it in range(20):  # noqa: B007 (the count is kept after the loop)
            eps = np.array([[exx, lat[0], lat[1], 0.0, 0.0, 0.0]])
            sigma, A, trial = law.integrate(eps, state)
            r = sigma[0, 1:3]
            if np.abs(r).max() <= 1e-13 * law.sigma_y:
                break
            lat = lat - np.linalg.solve(A[0, 1:3, 1:3], r)
        else:
            raise AssertionError("outer Newton did not converge")
        iters.append(it)
        state = trial
        out.append((sigma[0].copy(), state[0].copy()))
    return out, iters


def test_j2_uniaxial_stress_voce_closed_form():
    H, Q, b = 5.0, 0.1, 200.0
    law = J2Plasticity(E, NU, SY, 3, H_iso=H, Q=Q, b=b)
    eps_xx = np.linspace(0.0, 1e-2, 21)[1:]
    path, iters = _uniaxial_stress(law, eps_xx)
    n_plastic = 0
    for exx, (sigma, state) in zip(eps_xx, path):
        p = state[12]
        sxx = sigma[0]
        np.testing.assert_allclose(sigma[1:], 0.0, atol=1e-13 * SY)
        eps_p = state[:6]
        # uniaxial plastic flow: eps_p = p diag(1, -1/2, -1/2); Hooke on the elastic part
        np.testing.assert_allclose(eps_p, p * np.array([1.0, -0.5, -0.5, 0, 0, 0]), rtol=1e-10, atol=1e-16)
        assert sxx == pytest.approx(E * (exx - p), rel=1e-10)
        if p > 0:
            n_plastic += 1
            assert sxx == pytest.approx(SY + H * p + Q * (1.0 - math.exp(-b * p)), rel=1e-10)
        else:
            assert sxx <= SY
    assert n_plastic >= 15
    # the consistent tangent gives quadratic convergence of the outer Newton
    assert max(iters) <= 5


@pytest.mark.parametrize("gdim", [2, 3])
@pytest.mark.parametrize("kind", list(HARDENING))
def test_j2_plastic_states_are_on_the_yield_surface_and_isochoric(kind, gdim):
    law = J2Plasticity(E, NU, SY, gdim, **HARDENING[kind])
    eps1, state1, eps2, _ = loaded(law, N=8, seed=11)
    _, _, state2 = law.integrate(eps2, state1)
    for eps, st in ((eps1, state1), (eps2, state2)):
        # full 3D stress from the committed state (plane strain: sigma_zz != 0)
        eps3 = embed3(law, eps)
        sigma3 = (eps3 - st[:, :6]) @ law.C3.T
        X = st[:, 6:12]
        p = st[:, 12]
        R = law.hardening(p)[0]
        np.testing.assert_allclose(von_mises(sigma3 - X), SY + R, rtol=1e-10)
        # plastic incompressibility and the back stress stays deviatoric
        assert np.abs(st[:, :3].sum(axis=1)).max() <= 1e-14 * np.abs(st[:, :6]).max()
        assert np.abs(X[:, :3].sum(axis=1)).max() <= 1e-14 * max(np.abs(X).max(), SY)
        # X = (2/3) H_kin eps_p for linear kinematic hardening from a virgin state
        np.testing.assert_allclose(X, 2.0 / 3.0 * law.H_kin * st[:, :6], rtol=1e-12, atol=1e-18)
    # p = sqrt(2/3) |eps_p| after a single radial step
    np.testing.assert_allclose(state1[:, 12], math.sqrt(2 / 3) * np.linalg.norm(state1[:, :6], axis=1),
                               rtol=1e-12)
    if gdim == 2:
        assert np.abs(state2[:, 2]).max() > 0  # out-of-plane plastic strain is kept


@pytest.mark.parametrize("gdim", [2, 3])
def test_j2_bauschinger_effect_linear_kinematic(gdim):
    Hk = 15.0
    law = J2Plasticity(E, NU, SY, gdim, H_kin=Hk)
    iso = J2Plasticity(E, NU, SY, gdim, H_iso=Hk)  # same forward curve, no Bauschinger effect
    k = 2 if gdim == 2 else 5  # Mandel xy component
    C = T.isotropic_stiffness(E, NU, gdim)

    def shear(gamma):
        e = np.zeros((1, law.size))
        e[0, k] = SQ2 * gamma / 2.0
        return e

    gamma_y = SY / (SQ3 * G)
    gamma_f = 4.0 * gamma_y
    states = {}
    for name, m in (("kin", law), ("iso", iso)):
        st = m.initial_state(1)
        for g in np.linspace(0, gamma_f, 5)[1:]:
            sigma, _, st = m.integrate(shear(g), st)
        states[name] = (sigma[0, k] / SQ2, st)
    tau_f, st = states["kin"]
    p_f = st[0, 12]
    assert p_f == pytest.approx((SQ3 * G * gamma_f - SY) / (3.0 * G + Hk), rel=1e-12)
    assert tau_f == pytest.approx((SY + Hk * p_f) / SQ3, rel=1e-12)
    assert states["iso"][0] == pytest.approx(tau_f, rel=1e-12)
    # reverse: re-yield at tau_f - 2 tau_y, i.e. after an elastic shear decrement 2 tau_y / G
    dgamma_star = 2.0 * SY / (SQ3 * G)
    sigma, A, trial = law.integrate(shear(gamma_f - 0.999 * dgamma_star), st)
    assert trial[0, 12] == p_f
    np.testing.assert_array_equal(A[0], C)
    assert sigma[0, k] / SQ2 == pytest.approx(tau_f - 0.999 * G * dgamma_star, rel=1e-12)
    sigma, A, trial = law.integrate(shear(gamma_f - 1.01 * dgamma_star), st)
    assert trial[0, 12] > p_f
    tau_r = sigma[0, k] / SQ2
    alpha = trial[0, 6 + 5] / SQ2  # back stress X_xy (3D Mandel slot 5, also in plane strain)
    assert tau_r - alpha == pytest.approx(-SY / SQ3, rel=1e-12)  # on the reversed yield surface
    assert tau_r > tau_f - 1.01 * G * dgamma_star  # plastic: less than the elastic trial
    assert tau_r < tau_f - 2.0 * SY / SQ3  # past the re-yield stress
    # isotropic hardening with the same forward curve is still elastic there (|tau| < tau_f)
    _, _, trial_iso = iso.integrate(shear(gamma_f - 1.01 * dgamma_star), states["iso"][1])
    assert trial_iso[0, 12] == states["iso"][1][0, 12]


@pytest.mark.parametrize("name, value", [("E", 0.0), ("nu", 0.5), ("nu", -1.0), ("sigma_y", 0.0),
                                         ("H_iso", -1.0), ("Q", -0.1), ("b", -1.0), ("H_kin", -1.0)])
def test_j2_rejects_invalid_parameters(name, value):
    kw = {"E": E, "nu": NU, "sigma_y": SY, "gdim": 3} | {name: value}
    with pytest.raises(ValueError, match=name):
        J2Plasticity(**kw)


def test_j2_layout_and_sizes():
    for gdim, n in ((2, 3), (3, 6)):
        law = J2Plasticity(E, NU, SY, gdim)
        assert (law.size, law.state_size, law.kinematics) == (n, 13, "small")
        assert law.initial_state(4).shape == (4, 13)
        assert law.state_layout == {"eps_p": slice(0, 6), "X": slice(6, 12), "p": slice(12, 13)}


# -- Neo-Hooke ------------------------------------------------------------------------
def flat(F):
    return F.reshape(F.shape[0], -1)


def strongly_deformed(gdim: int, N: int, seed: int) -> np.ndarray:
    """Large stretches (0.5 .. 2), shears and rotations, ``J > 0``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(N, gdim, gdim)))
    Q[np.linalg.det(Q) < 0, :, 0] *= -1  # proper rotations
    U = np.eye(gdim) + 0.4 * rng.normal(size=(N, gdim, gdim))
    U = U @ np.transpose(U, (0, 2, 1))  # SPD stretch
    return Q @ U


@pytest.mark.parametrize("gdim", [2, 3])
def test_neohooke_tangent_matches_finite_differences(gdim):
    law = NeoHooke(E, NU, gdim)
    rng = np.random.default_rng(5)
    near = np.eye(gdim) + 0.02 * rng.normal(size=(5, gdim, gdim))
    far = strongly_deformed(gdim, 5, 6)
    J = np.linalg.det(far)
    assert J.min() > 0 and (J.max() > 1.5 or J.min() < 0.6)
    for F in (near, far):
        assert_tangent_matches_fd(law, flat(F), law.initial_state(5), h=1e-6)


@pytest.mark.parametrize("gdim", [2, 3])
def test_neohooke_at_identity_is_linear_elasticity(gdim):
    law = NeoHooke(E, NU, gdim)
    lam, mu = T.lame(E, NU)
    P, A, _ = law.integrate(flat(np.eye(gdim)[None]), law.initial_state(1))
    np.testing.assert_allclose(P, 0.0, atol=1e-14 * E)
    d = np.eye(gdim)
    A_lin = (lam * np.einsum("ij,kl->ijkl", d, d) + mu * (np.einsum("ik,jl->ijkl", d, d)
                                                          + np.einsum("il,jk->ijkl", d, d)))
    np.testing.assert_allclose(A[0], A_lin.reshape(gdim**2, gdim**2), rtol=1e-14, atol=1e-12 * E)
    # acting on a symmetric strain it gives the Mandel isotropic stiffness (plane strain in 2D)
    eps_m = np.random.default_rng(2).normal(size=T.strain_size(gdim))
    eps_t = T.mandel_to_tensor(eps_m)
    sig_t = (A[0] @ eps_t.ravel()).reshape(gdim, gdim)
    sig_m = np.array([sig_t[i, j] * (1.0 if i == j else SQ2) for i, j in T.INDEX_PAIRS[gdim]])
    np.testing.assert_allclose(sig_m, T.isotropic_stiffness(E, NU, gdim) @ eps_m, rtol=1e-12)


@pytest.mark.parametrize("gdim", [2, 3])
def test_neohooke_frame_indifference_and_energy(gdim):
    law = NeoHooke(E, NU, gdim)
    F = strongly_deformed(gdim, 4, 9)
    rng = np.random.default_rng(10)
    if gdim == 2:
        a = rng.uniform(0, 2 * np.pi)
        Q = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    else:
        Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        Q *= np.sign(np.linalg.det(Q))
    assert np.linalg.det(Q) == pytest.approx(1.0)
    P = law.integrate(flat(F), law.initial_state(4))[0].reshape(4, gdim, gdim)
    PQ = law.integrate(flat(Q @ F), law.initial_state(4))[0].reshape(4, gdim, gdim)
    np.testing.assert_allclose(PQ, Q @ P, rtol=1e-12, atol=1e-12 * np.abs(P).max())
    np.testing.assert_allclose(law.strain_energy(flat(Q @ F)), law.strain_energy(flat(F)), rtol=1e-12)
    # symmetric Cauchy stress: P F^T symmetric
    tau = P @ np.transpose(F, (0, 2, 1))
    np.testing.assert_allclose(tau, np.transpose(tau, (0, 2, 1)), atol=1e-12 * np.abs(tau).max())
    # P = d psi / dF
    h = 1e-6
    Ff = flat(F)
    dpsi = np.zeros_like(Ff)
    for j in range(gdim * gdim):
        Fp, Fm = Ff.copy(), Ff.copy()
        Fp[:, j] += h
        Fm[:, j] -= h
        dpsi[:, j] = (law.strain_energy(Fp) - law.strain_energy(Fm)) / (2 * h)
    np.testing.assert_allclose(dpsi, P.reshape(4, -1), rtol=1e-7, atol=1e-7 * np.abs(P).max())
    # zero energy at the identity, positive elsewhere
    assert law.strain_energy(flat(np.eye(gdim)[None]))[0] == pytest.approx(0.0, abs=1e-15)
    assert np.all(law.strain_energy(Ff) > 0)


def test_neohooke_uniaxial_stretch_closed_form_3d():
    # F = diag(l, 1, 1): P11 = mu (l - 1/l) + lam ln(l) / l, P22 = lam ln(l)
    law = NeoHooke(E, NU, 3)
    lam, mu = T.lame(E, NU)
    stretch = 1.7
    P = law.integrate(np.array([[stretch, 0, 0, 0, 1, 0, 0, 0, 1]]), law.initial_state(1))[0][0]
    assert P[0] == pytest.approx(mu * (stretch - 1 / stretch) + lam * math.log(stretch) / stretch, rel=1e-14)
    assert P[4] == pytest.approx(lam * math.log(stretch), rel=1e-14)
    assert P[8] == P[4]


@pytest.mark.parametrize("gdim", [2, 3])
def test_neohooke_inverted_element_raises_solver_error(gdim):
    law = NeoHooke(E, NU, gdim)
    F = np.repeat(np.eye(gdim)[None], 5, axis=0)
    F[1, 0, 0] = -1.0  # J = -1
    F[3, 1, 1] = -0.5  # J = -0.5
    F[4, 0, 0] = 0.0  # J = 0
    Ff = flat(F)
    before = Ff.copy()
    with pytest.raises(SolverError, match=r"3 of 5 points.*smallest J = -1\b"):
        law.integrate(Ff, law.initial_state(5))
    with pytest.raises(SolverError):
        law.strain_energy(Ff)
    np.testing.assert_array_equal(Ff, before)
    with pytest.raises(ValueError, match="nu"):
        NeoHooke(E, 0.5, gdim)


# -- transversely isotropic elasticity -------------------------------------------------
TI = dict(E_L=230.0, E_T=15.0, nu_LT=0.2, nu_TT=0.4, G_LT=24.0)


def unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def mandel_dyad(a, b):
    """Mandel vector of sym(a x b) (3D)."""
    return mandel(0.5 * (np.outer(a, b) + np.outer(b, a)))


@pytest.mark.parametrize("gdim, axis", [(3, (1, 0, 0)), (3, (0.3, -1.2, 0.7)), (2, (1, 2, 0)), (2, (1, 0))])
def test_transversely_isotropic_reduces_to_isotropic(gdim, axis):
    Ei, nui = 70.0, 0.33
    C = T.transversely_isotropic_stiffness(Ei, Ei, nui, nui, Ei / (2 * (1 + nui)), axis=axis, gdim=gdim)
    np.testing.assert_allclose(C, T.isotropic_stiffness(Ei, nui, gdim), rtol=1e-13, atol=1e-12 * Ei)


def test_transversely_isotropic_engineering_constants_along_any_axis():
    a = unit([0.4, -1.0, 0.6])
    t1 = unit(np.cross(a, [0.0, 0.0, 1.0]))
    t2 = np.cross(a, t1)
    C = T.transversely_isotropic_stiffness(**TI, axis=a)
    S = np.linalg.inv(C)
    aa, tt, ss = mandel_dyad(a, a), mandel_dyad(t1, t1), mandel_dyad(t2, t2)
    assert 1.0 / (aa @ S @ aa) == pytest.approx(TI["E_L"], rel=1e-12)
    assert 1.0 / (tt @ S @ tt) == pytest.approx(TI["E_T"], rel=1e-12)
    assert 1.0 / (ss @ S @ ss) == pytest.approx(TI["E_T"], rel=1e-12)
    assert -TI["E_L"] * (tt @ S @ aa) == pytest.approx(TI["nu_LT"], rel=1e-12)
    assert -TI["E_T"] * (ss @ S @ tt) == pytest.approx(TI["nu_TT"], rel=1e-12)
    # shear in a plane containing the fibre: unit Mandel shear m, m.S.m = 1/(2G)
    m = SQ2 * mandel_dyad(a, t1)
    assert 1.0 / (2.0 * (m @ S @ m)) == pytest.approx(TI["G_LT"], rel=1e-12)
    m = SQ2 * mandel_dyad(t1, t2)
    assert 1.0 / (2.0 * (m @ S @ m)) == pytest.approx(TI["E_T"] / (2 * (1 + TI["nu_TT"])), rel=1e-12)
    # transverse isotropy: rotating about the fibre changes nothing
    R = np.column_stack([a, t1, t2]) @ np.array([[1, 0, 0], [0, 0.6, -0.8], [0, 0.8, 0.6]]) \
        @ np.column_stack([a, t1, t2]).T
    w = np.random.default_rng(0).normal(size=(3, 3))
    w = w + w.T
    e = mandel(w)
    e_rot = mandel(R @ w @ R.T)
    s_rot = mandel(R @ T.mandel_to_tensor(C @ e) @ R.T)
    np.testing.assert_allclose(C @ e_rot, s_rot, rtol=1e-12, atol=1e-12 * TI["E_L"])


@pytest.mark.parametrize("gdim", [2, 3])
def test_transversely_isotropic_90_degree_rotation_permutes(gdim):
    Cx = T.transversely_isotropic_stiffness(**TI, axis=(1, 0, 0), gdim=gdim)
    Cy = T.transversely_isotropic_stiffness(**TI, axis=(0, 1, 0), gdim=gdim)
    perm = [1, 0, 2] if gdim == 2 else [1, 0, 2, 4, 3, 5]
    np.testing.assert_allclose(Cy, Cx[np.ix_(perm, perm)], rtol=1e-13, atol=1e-12 * TI["E_L"])
    assert Cx[0, 0] == pytest.approx(Cy[1, 1], rel=1e-13)
    assert Cx[1, 1] == pytest.approx(Cy[0, 0], rel=1e-13)
    assert Cx[0, 0] > 10 * Cx[1, 1]  # the fibre direction is the stiff one
    if gdim == 3:
        # C11 along the fibre: E_L (1 - nu_TT) / (1 - nu_TT - 2 nu_LT^2 E_T / E_L)
        EL, ET, nLT, nTT = TI["E_L"], TI["E_T"], TI["nu_LT"], TI["nu_TT"]
        assert Cx[0, 0] == pytest.approx(EL * (1 - nTT) / (1 - nTT - 2 * nLT**2 * ET / EL), rel=1e-12)
        assert Cx[5, 5] == pytest.approx(2 * TI["G_LT"], rel=1e-12)


@pytest.mark.parametrize("gdim", [2, 3])
def test_transversely_isotropic_is_spd(gdim):
    # (a finite-difference check of LinearElastic(C) would only compare a linear map with itself)
    for axis in ((1, 0, 0), (1, 1, 0), (0.2, 0.9, 0.0) if gdim == 2 else (0.2, 0.9, -0.4)):
        C = T.transversely_isotropic_stiffness(**TI, axis=axis, gdim=gdim)
        np.testing.assert_array_equal(C, C.T)
        assert np.linalg.eigvalsh(C).min() > 0


@pytest.mark.parametrize("kw, match", [
    ({"E_L": 0.0}, "E_L"), ({"E_T": -1.0}, "E_T"), ({"G_LT": 0.0}, "G_LT"),
    ({"nu_LT": 3.0}, "positive definite"), ({"nu_TT": -1.0}, "nu_TT"), ({"nu_TT": 0.996}, "positive definite"),
    ({"axis": (0, 0, 0)}, "axis"), ({"axis": (0, 0, 1), "gdim": 2}, "xy-plane"),
])
def test_transversely_isotropic_rejects_invalid_input(kw, match):
    with pytest.raises(ValueError, match=match):
        T.transversely_isotropic_stiffness(**(TI | kw))


# -- vectorisation and purity -----------------------------------------------------------
def _cases():
    rng = np.random.default_rng(42)
    for gdim in (2, 3):
        for kind in ("voce", "combined"):
            law = J2Plasticity(E, NU, SY, gdim, **HARDENING[kind])
            eps1, state1, eps2, eps_u = loaded(law, N=4, seed=gdim)
            # a mix of elastic and plastic points, from virgin and from committed states
            grad = np.vstack([eps2, eps_u, 1e-4 * rng.normal(size=(2, law.size)), eps1])
            state = np.vstack([state1, state1, law.initial_state(2), law.initial_state(4)])
            yield f"J2-{kind}-{gdim}D", law, grad, state
        law = NeoHooke(E, NU, gdim)
        F = np.vstack([flat(strongly_deformed(gdim, 5, 1)),
                       flat(np.eye(gdim) + 0.01 * rng.normal(size=(5, gdim, gdim)))])
        yield f"NeoHooke-{gdim}D", law, F, law.initial_state(10)


@pytest.mark.parametrize("name, law, grad, state", list(_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_batch_equals_pointwise_and_inputs_untouched(name, law, grad, state):
    g0, s0 = grad.copy(), state.copy()
    flux, tang, trial = law.integrate(grad, state)
    np.testing.assert_array_equal(grad, g0)
    np.testing.assert_array_equal(state, s0)
    N = grad.shape[0]
    assert flux.shape == (N, law.size) and tang.shape == (N, law.size, law.size)
    assert trial.shape == (N, law.state_size)
    for i in range(N):
        f1, t1, s1 = law.integrate(grad[i:i + 1], state[i:i + 1])
        np.testing.assert_allclose(f1[0], flux[i], rtol=1e-13, atol=1e-15 * np.abs(flux).max())
        np.testing.assert_allclose(t1[0], tang[i], rtol=1e-13, atol=1e-15 * np.abs(tang).max())
        np.testing.assert_allclose(s1[0], trial[i], rtol=1e-13, atol=1e-15 * np.abs(trial).max(initial=0.0))
    if isinstance(law, J2Plasticity):
        p_old, p_new = state[:, 12], trial[:, 12]
        assert np.any(p_new > p_old) and np.any(p_new == p_old)  # both kinds present
