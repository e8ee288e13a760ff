"""The Newton driver (fe2.solvers.newton) on small systems with known answers: quadratic
convergence, the iteration limit, a non-finite residual, and the backtracking line search."""

import numpy as np
import pytest

from fe2.solvers.newton import NewtonReport, newton


class Scalar:
    """f(x) = 0 for a scalar f with derivative df; converged when |f| <= tol."""

    unknown = "x"

    def __init__(self, f, df, x0, tol=1e-14, monotone=False):
        self.f, self.df, self.x, self.tol, self.monotone = f, df, x0, tol, monotone
        self.steps = []

    def residual(self):
        return abs(self.f(self.x))

    def converged(self, iteration, norm):
        return norm <= self.tol

    def solve_update(self):
        self.base, self.dx = self.x, -self.f(self.x) / self.df(self.x)
        return abs(self.dx)

    def step(self, alpha):
        self.steps.append(alpha)
        self.x = self.base + alpha * self.dx
        return abs(self.f(self.x))

    def accept(self, norm, new_norm):
        return np.isfinite(new_norm) and new_norm < norm

    def status(self):
        return f"  x = {self.x:.6g}"


def test_converges_quadratically_to_the_root():
    s = Scalar(lambda x: x**3 - 8.0, lambda x: 3 * x**2, 3.0)
    rep = newton(s, 20)
    assert rep.converged and rep.failure == ""
    assert s.x == pytest.approx(2.0, rel=1e-15)
    r = np.asarray(rep.residuals)
    assert len(r) == rep.iterations + 1 == len(rep.updates) + 1
    # e_{k+1} ~ C e_k^2 with C = f''/(2 f') at the root = 6*2 / (2*12) = 0.5 in x; in |f| = 12 |e|:
    # |f_{k+1}| ~ 0.5 / 12 |f_k|^2
    k = np.flatnonzero((r[:-1] < 1e-1) & (r[1:] > 1e-13))
    assert k.size >= 1
    assert np.allclose(r[k + 1] / r[k] ** 2, 0.5 / 12.0, rtol=0.1)


def test_iteration_limit_and_log():
    s = Scalar(lambda x: x**3 - 8.0, lambda x: 3 * x**2, 30.0)
    lines = []
    rep = newton(s, 3, log=lines.append)
    assert not rep.converged and rep.failure == "no convergence in 3 Newton iterations"
    assert rep.iterations == 3 and len(rep.residuals) == 4
    assert lines[0].startswith("    newton  0: |R| = ") and "  x = 30" in lines[0]
    assert lines[1].endswith(f"  |dx| = {rep.updates[0]:.3e}")


def test_non_finite_residual_stops():
    s = Scalar(lambda x: np.log(x), lambda x: 1.0 / x, 3.0)  # the full step from 3 leaves the domain
    with np.errstate(invalid="ignore"):
        rep = newton(s, 10)
    assert not rep.converged and rep.failure == "residual is not finite"


def test_line_search_halves_a_step_that_overshoots():
    # arctan: Newton from |x0| > 1.39 diverges with full steps, converges with backtracking
    f, df = np.arctan, lambda x: 1.0 / (1.0 + x**2)
    with np.errstate(all="ignore"):  # the full steps overflow
        full = newton(Scalar(f, df, 3.0), 8)
    assert not full.converged
    s = Scalar(f, df, 3.0)
    rep = newton(s, 30, max_cuts=8)
    assert rep.converged and abs(s.x) < 1e-14
    assert rep.cuts > 0 and 0.5 in s.steps


def test_line_search_gives_up_after_max_cuts():
    # the update points the wrong way: no halving can reduce |f|
    s = Scalar(lambda x: x, lambda x: -1.0, 1.0)
    rep = newton(s, 5, max_cuts=3)
    assert not rep.converged
    assert rep.failure == "line search failed at iteration 1 (residual 1.000e+00, 3 step halvings)"
    assert s.steps == [1.0, 0.5, 0.25, 0.125] and rep.cuts == 4


def test_report_is_filled_in_place():
    rep = NewtonReport(time_material=1.5)
    out = newton(Scalar(lambda x: x - 1.0, lambda x: 1.0, 0.0), 5, report=rep)
    assert out is rep and rep.converged and rep.iterations == 1 and rep.time_material == 1.5
