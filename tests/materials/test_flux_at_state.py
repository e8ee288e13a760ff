"""``Law.flux(grad, state)``: the flux at a converged state, without evolving it again (what
an RVE snapshot shows): equal to the flux :meth:`integrate` (or ``integrate_driven``) returned
with that state, for every law along random paths with reversals, including driven and
viscous damage, whose state would grow if integrated once more."""

import numpy as np
import pytest

from fe2.materials.registry import build

LAWS = {
    "elastic": {"E": 2.0, "nu": 0.3},
    "transversely_isotropic": {"E_L": 10.0, "E_T": 2.0, "nu_LT": 0.25, "nu_TT": 0.35, "G_LT": 1.5},
    "j2": {"E": 1.0, "nu": 0.3, "sigma_y": 0.01, "H_iso": 0.05, "H_kin": 0.02, "Q": 0.003, "b": 50.0},
    "damage": {"E": 1.0, "nu": 0.2, "kappa0": 1e-3},
    "viscous damage": {"E": 1.0, "nu": 0.2, "kappa0": 1e-3, "viscosity": 0.5},
}


@pytest.mark.parametrize("gdim", [2, 3])
@pytest.mark.parametrize("name", list(LAWS))
def test_flux_at_the_state_integrate_returned(name, gdim):
    law = build(name.split()[-1], LAWS[name], gdim)
    law.set_time_increment(0.1)
    rng = np.random.default_rng(11)
    eps = np.cumsum(rng.uniform(-0.01, 0.01, (8, 6, law.size)), axis=0)
    state, largest = law.initial_state(6), 0.0
    for e in eps:
        sigma, _, state = law.integrate(e, state)
        assert law.flux(e, state) == pytest.approx(sigma, rel=1e-12, abs=1e-15)
        largest = max(largest, np.abs(sigma).max())
    assert largest > 1e-3


@pytest.mark.parametrize("viscosity", [0.0, 0.5])
def test_driven_damage_flux_is_the_driven_one(viscosity):
    """Driven by a nonlocal strain smaller than the point's own, the damage stays below what the
    local law gives: the flux at the state is the driven flux, not a local integration."""
    law = build("damage", dict(LAWS["damage"], viscosity=viscosity), 2)
    law.set_time_increment(0.1)
    e = np.array([[6e-3, -1e-3, 5e-4]] * 3)
    drive = np.array([1.2e-3, 1.5e-3, 2e-3])
    assert (law.equivalent_of(e)[0] > 1.5 * drive).all()
    res = law.integrate_driven(e, law.initial_state(3), drive)
    assert law.flux(e, res.state) == pytest.approx(res.flux, rel=1e-12)
    assert res.state[:, 1].min() > 0  # damaged
    local = law.integrate(e, res.state).flux  # would damage further
    assert np.abs(local - res.flux).min() > 1e-3 * np.abs(res.flux).max()
