"""The state bank and the materials that keep their history in it: commit / revert, and a
state saved with get_state and restored with set_state continues exactly where it was."""

import numpy as np
import pytest

from fe2.materials import IsotropicDamage, J2Plasticity, MaterialPoints, StateBank


def test_bank_commit_revert_and_round_trip():
    bank = StateBank()
    bank.allocate("w", np.zeros(3), 2)
    bank.allocate("q", np.array([[1.0, 2.0]]), 2)
    assert bank.committed["q"].shape == (2, 1, 2) and np.all(bank.committed["q"][:, 0] == [1.0, 2.0])
    bank.trial["w"][1] = [1.0, 2.0, 3.0]
    bank.revert()
    assert np.all(bank.trial["w"] == 0.0)
    bank.trial["w"][1] = [1.0, 2.0, 3.0]
    bank.commit()
    saved = bank.get_state()
    bank.trial["w"][:] = 7.0
    bank.commit()
    assert np.all(saved["w"][1] == [1.0, 2.0, 3.0])  # get_state copies
    bank.set_state(saved)
    assert np.array_equal(bank.committed["w"], saved["w"]) and np.array_equal(bank.trial["w"], saved["w"])
    bigger = {k: np.concatenate([v, v]) for k, v in saved.items()}  # another point count is fine
    bank.set_state(bigger)
    assert bank.committed["w"].shape == (4, 3)


def test_bank_refuses_other_names_and_shapes():
    bank = StateBank()
    bank.allocate("w", np.zeros(3), 2)
    with pytest.raises(ValueError, match=r"missing \['w'\], unknown \['v'\]"):
        bank.set_state({"v": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"item shape \(4,\), expected \(3,\)"):
        bank.set_state({"w": np.zeros((2, 4))})


@pytest.mark.parametrize("law", [J2Plasticity(1.0, 0.3, 0.01, 2, H_iso=0.1, H_kin=0.05),
                                 IsotropicDamage(1.0, 0.2, 1e-3, 2, softening="linear", kappa_u=6e-3)])
def test_points_restored_from_get_state_continue_identically(law):
    path = np.linspace(0.0, 4e-3 if law.driven else 0.04, 6)[1:, None] * np.array([[1.0, -0.3, 0.5]])
    a = MaterialPoints(law)
    for E in path[:3]:
        a.evaluate(np.stack([E, 0.5 * E]))
        a.commit()
    b = MaterialPoints(law)
    b.set_state(a.get_state())
    a.evaluate(np.stack([path[0], path[0]]))  # a trial that is then discarded
    a.revert()
    for E in path[3:]:
        sa, Ca = a.evaluate(np.stack([E, 0.5 * E]))
        sb, Cb = b.evaluate(np.stack([E, 0.5 * E]))
        assert np.array_equal(sa, sb) and np.array_equal(Ca, Cb)
        a.commit()
        b.commit()
    fa, fb = a.internal_fields(), b.internal_fields()
    assert fa.keys() == fb.keys() and len(fa) >= 1
    for k in fa:
        assert np.array_equal(fa[k], fb[k]) and fa[k].max() > 0  # really inelastic
