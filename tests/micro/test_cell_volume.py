"""Cells that are not the unit cell: non-unit, offset and non-square boxes.

Every quantity of a cell problem is a volume average, so a dropped or doubled division by
|Y|, or a box origin assumed at 0, shows here and nowhere else: the laminate closed form on
a box of volume 2 away from the origin, the same microstructure scaled and shifted giving
the same effective tensor and the same nonlinear response, and Hill–Mandel and <eps> = E
on an offset, non-square nonlinear cell."""

import numpy as np
import pytest

from fe2.core import tensors as T
from fe2.materials import J2Plasticity, LinearElastic
from fe2.micro.cell import CellProblem
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.phases import Phase
from helpers import rel, structured_rve

#: an offset, non-square cell of volume 2.5 x 0.8 = 2
LO, HI = np.array([1.0, -2.0]), np.array([3.5, -1.2])


def elastic(gdim):
    return [Phase("a", 1, T.isotropic_stiffness(1.0, 0.3, gdim)), Phase("b", 2, T.isotropic_stiffness(10.0, 0.2, gdim))]


def relative(mid, lo, hi):
    """Midpoint coordinates relative to the box, in [0, 1]^d."""
    d = lo.size
    return (mid[:, :d] - lo) / (hi - lo)


@pytest.mark.parametrize("normal,fraction", [(0, 0.375), (1, 0.75)])  # interfaces on element edges
def test_laminate_on_an_offset_non_square_cell_is_exact(normal, fraction):
    cell = structured_rve(2, 8, lambda m: np.where(relative(m, LO, HI)[:, normal] < fraction, 1, 2),
                          box_min=LO, box_max=HI)
    cp = CellProblem(cell, elastic(2))
    assert cp.volume == pytest.approx(2.0, rel=1e-13)
    assert cp.volume_fractions["a"] == pytest.approx(fraction, rel=1e-13)
    ref = T.laminate_tensor([p.tensor for p in cp.phases], [fraction, 1 - fraction], normal, 2)
    assert rel(cp.effective_tensor, ref) < 1e-10
    # the batch evaluation and the fields it stands for: flux and Hill-Mandel energy
    E = np.array([1e-3, -4e-4, 7e-4])
    s, _ = cp.evaluate(E[None])
    flux, energy = cp.averages(cp.fluctuation(E), E)
    assert rel(s[0], ref @ E) < 1e-10 and rel(flux, ref @ E) < 1e-10
    assert energy == pytest.approx(E @ ref @ E, rel=1e-10)
    K = CellProblem(cell, [Phase("a", 1, np.eye(2)), Phase("b", 2, 10 * np.eye(2))], physics="conduction")
    Kref = T.laminate_tensor([np.eye(2), 10 * np.eye(2)], [fraction, 1 - fraction], normal, 2, physics="conduction")
    assert rel(K.effective_tensor, Kref) < 1e-10


def square_inclusion(lo, hi):
    return lambda m: np.where(np.all(np.abs(relative(m, lo, hi) - 0.4) < 0.25, axis=1), 2, 1)


@pytest.mark.parametrize("gdim", [2, 3])
def test_scaled_and_shifted_cell_has_the_same_effective_tensor(gdim):
    lo, hi = np.zeros(gdim), np.ones(gdim)
    LO3, HI3 = np.array([1.0, -2.0, 0.5])[:gdim], np.array([3.5, 0.5, 3.0])[:gdim]  # edge 2.5, off the origin
    n = 8 if gdim == 2 else 4
    unit = CellProblem(structured_rve(gdim, n, square_inclusion(lo, hi)), elastic(gdim))
    big = CellProblem(structured_rve(gdim, n, square_inclusion(LO3, HI3), box_min=LO3, box_max=HI3), elastic(gdim))
    assert big.volume == pytest.approx(2.5**gdim, rel=1e-13)
    assert rel(big.effective_tensor, unit.effective_tensor) < 1e-12
    assert np.abs(big.effective_tensor - unit.mean_tensor).max() > 1e-2  # the fluctuation matters here


def j2_phases(gdim):
    return [Phase("matrix", 1, law=J2Plasticity(1.0, 0.3, 0.01, gdim, H_iso=0.2, Q=0.005, b=50.0, H_kin=0.1)),
            Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, gdim))]


def test_nonlinear_cell_off_the_unit_cell():
    lo, hi = np.zeros(2), np.ones(2)
    LOs, HIs = np.array([1.0, -2.0]), np.array([3.5, 0.5])
    unit = NonlinearCellProblem(structured_rve(2, 6, square_inclusion(lo, hi)), j2_phases(2), rtol=1e-12)
    shifted = NonlinearCellProblem(structured_rve(2, 6, square_inclusion(LOs, HIs), box_min=LOs, box_max=HIs),
                                   j2_phases(2), rtol=1e-12)
    skew = NonlinearCellProblem(structured_rve(2, 6, square_inclusion(LO, HI), box_min=LO, box_max=HI),
                                j2_phases(2), rtol=1e-12)
    assert skew.volume == pytest.approx(2.0, rel=1e-13)
    path = [np.array([0.01, -0.004, 0.006]) * t for t in (1.0, 2.0, 3.0)]
    for E in path:
        su, Cu = unit.evaluate(E[None])
        ss, Cs = shifted.evaluate(E[None])
        assert rel(ss, su) < 1e-9 and rel(Cs, Cu) < 1e-8  # scaled and shifted: the same material point
        sk, _ = skew.evaluate(E[None])
        fields = skew.snapshot(E, 0, trial=True)  # the converged state
        grads, flux = fields.gradient, fields.flux
        w = skew.micro_weights
        assert w.sum() == pytest.approx(2.0, rel=1e-12)
        assert np.abs(w @ grads / skew.volume - E).max() < 1e-12  # <eps> = E
        hill_mandel = (w @ np.einsum("pk,pk->p", flux, grads)) / skew.volume
        assert hill_mandel == pytest.approx(sk[0] @ E, rel=1e-9)
        assert np.abs(w @ flux / skew.volume - sk[0]).max() < 1e-12 * np.abs(sk[0]).max()
        for c in (unit, shifted, skew):
            c.commit()
    p = unit.internal_fields()["equivalent_plastic_strain"][0]
    assert p > 1e-3  # really plastic
    assert shifted.internal_fields()["equivalent_plastic_strain"][0] == pytest.approx(p, rel=1e-9)
