"""Plane strain's out-of-plane stress: each 2D law's ``out_of_plane_stress`` equals the
``zz`` stress of the same law in 3D driven by the embedded strain (``eps_zz = eps_yz =
eps_xz = 0``; finite strain ``F33 = 1``) along the same history."""

import numpy as np
import pytest

from fe2.core.tensors import embed_plane_strain
from fe2.materials.registry import build

LAWS = {
    "elastic": {"E": 2.0, "nu": 0.3},
    "transversely_isotropic": {"E_L": 10.0, "E_T": 2.0, "nu_LT": 0.25, "nu_TT": 0.35, "G_LT": 1.5,
                               "axis": (0.6, 0.8)},
    "j2": {"E": 1.0, "nu": 0.3, "sigma_y": 0.01, "H_iso": 0.05, "H_kin": 0.02, "Q": 0.003, "b": 50.0},
    "damage": {"E": 1.0, "nu": 0.2, "kappa0": 1e-3},
}


def path(seed: int, steps: int = 6, size: float = 0.02) -> np.ndarray:
    """Random in-plane Mandel strain paths of 5 points, (steps, 5, 3), with reversals."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.uniform(-size, size, (steps, 5, 3)), axis=0)


@pytest.mark.parametrize("name", list(LAWS))
def test_out_of_plane_stress_is_the_3d_laws_zz_stress(name):
    p2 = dict(LAWS[name])
    p3 = dict(p2, axis=(*p2["axis"], 0.0)) if "axis" in p2 else p2
    law2, law3 = build(name, p2, 2), build(name, p3, 3)
    s2, s3 = law2.initial_state(5), law3.initial_state(5)
    checked = 0.0
    for eps in path(7):
        sig2, _, s2 = law2.integrate(eps, s2)
        sig3, _, s3 = law3.integrate(embed_plane_strain(eps), s3)
        zz = law2.out_of_plane_stress(eps, s2)
        assert zz == pytest.approx(sig3[:, 2], rel=1e-10, abs=1e-14)
        assert sig2 == pytest.approx(sig3[:, [0, 1, 5]], rel=1e-10, abs=1e-14)  # the same in-plane state
        checked = max(checked, np.abs(zz).max())
    assert checked > 1e-3  # not trivially zero
    assert law3.out_of_plane_stress(embed_plane_strain(eps), s3) is None


def test_out_of_plane_stress_of_plastic_and_damaged_states_differs_from_the_elastic_one():
    """The state matters: after yielding (or damage) sigma_zz is not lambda tr(eps)."""
    eps = np.array([[0.03, -0.01, 0.004]])
    for name in ("j2", "damage"):
        law = build(name, LAWS[name], 2)
        elastic = build("elastic", {"E": LAWS[name]["E"], "nu": LAWS[name]["nu"]}, 2)
        _, _, state = law.integrate(eps, law.initial_state(1))
        assert abs(law.out_of_plane_stress(eps, state)[0] - elastic.out_of_plane_stress(eps, None)[0]) > 1e-4


def test_neo_hooke_plane_strain_p33_is_the_3d_one():
    law2, law3 = build("neo_hooke", {"E": 1.0, "nu": 0.3}, 2), build("neo_hooke", {"E": 1.0, "nu": 0.3}, 3)
    rng = np.random.default_rng(3)
    F2 = np.eye(2) + rng.uniform(-0.2, 0.2, (6, 2, 2))
    F3 = np.zeros((6, 3, 3))
    F3[:, :2, :2], F3[:, 2, 2] = F2, 1.0
    P3, _, _ = law3.integrate(F3.reshape(6, 9), law3.initial_state(6))
    P33 = law2.out_of_plane_stress(F2.reshape(6, 4), law2.initial_state(6))
    assert P33 == pytest.approx(P3.reshape(6, 3, 3)[:, 2, 2], rel=1e-12, abs=1e-15)
    assert np.abs(P33).max() > 1e-2


def test_conduction_has_no_out_of_plane_stress():
    law = build("conduction", {"k": 1.0}, 2)
    assert law.out_of_plane_stress(np.zeros((1, 2)), law.initial_state(1)) is None
