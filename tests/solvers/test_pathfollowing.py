"""Path following (fe2.solvers.pathfollowing): dissipation-based arc length through snap-back.

The reference is a bar whose equilibrium path is known in closed form: a bar L x 1 (nu = 0,
so the stress is uniaxial and uniform), clamped left and pulled right, with one column of
cells of width h made of a damage law with exponential softening and the rest of an
elastic law of the same stiffness. The P1 solution is exact (piecewise linear u_x), so
along the path, parametrized by the strain eps of the weak column (= its history variable
kappa while it softens),

    sigma(eps) = E eps                                            (eps <= kappa0)
    sigma(eps) = E kappa0 (1 - alpha + alpha exp(-beta (eps - kappa0)))   (softening)
    u(eps) = sigma (L - h) / E + h eps.

du/dkappa < 0 right after the peak when (L - h) / h > 1 / (kappa0 alpha beta): the
path snaps back and displacement control cannot follow it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from dolfinx import mesh as dmesh
from mpi4py import MPI

from fe2.core.errors import SolverError
from fe2.io import config
from fe2.macro.loads import Dirichlet
from fe2.macro.mesh import BOUNDARY_TAGS, rectangle
from fe2.macro.observables import Observables
from fe2.macro.pattern import LoadPattern
from fe2.macro.problem import MacroProblem
from fe2.materials import LinearElastic
from fe2.materials.damage import IsotropicDamage
from fe2.materials.phasewise import PhaseMaterial
from fe2.solvers import pathfollowing

E, KAPPA0, ALPHA, BETA = 1.0, 1e-3, 0.99, 500.0
LENGTH, CELLS, WEAK = 5.0, 5, 2  # cell column 2 of 5: x in [2, 3], h = 1
U_END = 0.02


def bar_problem(comm, beta=BETA):
    mm = rectangle(comm, LENGTH, 1.0, CELLS, 1)
    tdim = mm.mesh.topology.dim
    h = LENGTH / CELLS
    weak = dmesh.locate_entities(mm.mesh, tdim, lambda x: (x[0] >= WEAK * h - 1e-9) & (x[0] <= (WEAK + 1) * h + 1e-9))
    ncells = mm.mesh.topology.index_map(tdim).size_local + mm.mesh.topology.index_map(tdim).num_ghosts
    tags = np.ones(ncells, dtype=np.int32)
    tags[weak] = 2
    cell_tags = dmesh.meshtags(mm.mesh, tdim, np.arange(ncells, dtype=np.int32), tags)
    laws = {1: LinearElastic.isotropic(E, 0.0, 2),
            2: IsotropicDamage(E, 0.0, KAPPA0, 2, softening="exponential", alpha=ALPHA, beta=beta)}
    material = PhaseMaterial(cell_tags, laws)
    bcs = [Dirichlet(BOUNDARY_TAGS["left"], 0, 0.0, "left"), Dirichlet(BOUNDARY_TAGS["bottom"], 1, 0.0, "bottom"),
           Dirichlet(BOUNDARY_TAGS["right"], 0, U_END, "right")]
    return MacroProblem(mm, material, degree=1, dirichlet=bcs), h


LOADING = config.LoadingConfig(steps=10, min_step=1e-6, control="dissipation")
SOLVER = config.SolverConfig(rtol=1e-10, atol=1e-14, max_iterations=15)


def weak_strain(problem, observables):
    """The axial strain of the weak column (the same in all its cells)."""
    eps = observables.cell_averages(problem.strain)[:, 0]
    weak = problem.material.cell_tag == 2
    return problem.comm.allreduce(float(eps[weak].max()) if weak.any() else -np.inf, op=MPI.MAX)


def follow(comm, loading=LOADING, beta=BETA):
    problem, h = bar_problem(comm, beta)
    observables, pattern = Observables(problem), LoadPattern(problem)
    rows = []
    for step in pathfollowing.follow(problem, loading, SOLVER):
        rows.append({"lam": step.load_factor, "force": observables.reactions()["reaction_right_x"],
                     "eps": weak_strain(problem, observables),
                     "control": step.control, "dD": step.dissipation, "work": problem.work,
                     "D": observables.dissipated_energy(), "G": pattern.conjugate_force(),
                     "iterations": step.report.iterations, "residuals": step.report.residuals})
    return problem, h, rows


def closed_form(eps, h):
    """(sigma, u) on the equilibrium path at weak-column strain ``eps``."""
    eps = np.asarray(eps)
    sigma = np.where(eps <= KAPPA0, E * eps, E * KAPPA0 * (1 - ALPHA + ALPHA * np.exp(-BETA * (eps - KAPPA0))))
    return sigma, sigma * (LENGTH - h) / E + h * eps


@pytest.fixture(scope="module")
def path():
    problem, h, rows = follow(MPI.COMM_WORLD)
    yield problem, h, rows
    problem.destroy()


def test_the_damage_law_makes_this_bar_snap_back():
    # fe2's law on the weak column (uniaxial, nu = 0): the closed-form stress, and an end
    # displacement that decreases right after the peak, while the strain keeps growing
    law = IsotropicDamage(E, 0.0, KAPPA0, 2, softening="exponential", alpha=ALPHA, beta=BETA)
    eps = KAPPA0 * np.array([0.5, 1.0, 1.001, 1.01, 1.05, 1.2, 2.0])
    sigma = np.array([law.integrate(np.array([[e, 0.0, 0.0]]), law.initial_state(1))[0][0, 0] for e in eps])
    assert np.allclose(sigma, closed_form(eps, 1.0)[0], rtol=1e-12, atol=0)
    h = LENGTH / CELLS
    u = sigma * (LENGTH - h) / E + h * eps
    peak = 1
    assert u[peak] == u.max() and np.all(np.diff(u[peak:]) < 0)


def test_displacement_control_stops_at_the_snap_back():
    problem, _ = bar_problem(MPI.COMM_WORLD)
    steps = []
    with pytest.raises(SolverError, match="cannot proceed beyond load factor"):
        for step in pathfollowing.follow(problem, replace(LOADING, control="load", min_step=1e-4), SOLVER):
            steps.append(step.load_factor)
    assert steps[-1] < 0.3  # the peak is at lam = kappa0 L / U_END = 0.25
    problem.destroy()


def test_arc_length_follows_the_closed_form_path_through_snap_back(path):
    problem, h, rows = path
    lam = np.array([r["lam"] for r in rows])
    force = np.array([r["force"] for r in rows])
    assert lam[-1] == 1.0  # ends exactly at the final load
    assert {r["control"] for r in rows} == {"load", "dissipation"}
    # it really went back: the closed-form path turns at lam = 0.2203, from the peak at 0.25
    assert np.sum(np.diff(lam) < 0) >= 5 and lam[lam > 0.2].min() < 0.222
    eps = np.array([r["eps"] for r in rows])
    assert np.all(np.diff(eps) > 0)  # the weak column loads monotonically: kappa = eps
    assert (eps > KAPPA0 * (1 + 1e-9)).sum() >= 8  # steps on the softening branch
    # on every converged step: the closed-form equilibrium path
    sigma, u = closed_form(eps, h)
    assert np.abs(force - sigma).max() < 1e-9 * E * KAPPA0
    assert np.abs(lam * U_END - u).max() < 1e-9 * U_END
    assert force.max() <= E * KAPPA0 * (1 + 1e-10)  # the peak is never passed over


def exact_dissipation(kappa):
    """int_kappa0^kappa Y d omega, Y = E k^2 / 2, for the weak column (volume h x 1 = 1)."""
    k = np.linspace(KAPPA0, kappa, 400001)
    e = np.exp(-BETA * (k - KAPPA0))
    domega = KAPPA0 / k**2 * (1 - ALPHA + ALPHA * e) + KAPPA0 / k * ALPHA * BETA * e
    return np.trapezoid(0.5 * E * k**2 * domega, k)


def test_energy_balance_identity(path):
    _, _, rows = path
    dD = np.array([r["dD"] for r in rows])
    work, G, lam = rows[-1]["work"], rows[-1]["G"], rows[-1]["lam"]
    # exact identity (trapezoidal work, secant unloading): W - lam G / 2 = sum of increments
    assert abs(work - 0.5 * lam * G - dD.sum()) < 1e-9 * work
    assert np.all(dD > -1e-15) and dD.sum() > 0.5 * exact_dissipation(rows[-1]["eps"])


def test_dissipated_energy_converges_to_the_closed_form_as_the_increment_shrinks():
    errors = []
    for dmax in (1e-7, 2.5e-8):
        problem, h, rows = follow(MPI.COMM_WORLD, loading=replace(LOADING, dissipation_increment=dmax))
        problem.destroy()
        exact = exact_dissipation(rows[-1]["eps"])
        dD = np.array([r["dD"] for r in rows])
        assert dD[[r["control"] == "dissipation" for r in rows]].max() <= dmax * (1 + 1e-8)
        # energy-based (sum of the constraint's increments) and the material's own int Y d omega
        errors.append((abs(dD.sum() / exact - 1), abs(rows[-1]["D"] / exact - 1)))
    (e_energy1, e_mat1), (e_energy2, e_mat2) = errors
    assert e_energy1 < 0.02 and e_mat1 < 0.03
    assert e_energy2 < 0.003 and e_mat2 < 0.003
    assert e_energy2 < e_energy1 / 4 and e_mat2 < e_mat1 / 4  # second order in the increment


def test_dissipation_newton_converges_quadratically(path):
    _, _, rows = path
    steps = [r for r in rows if r["control"] == "dissipation"]
    assert np.median([r["iterations"] for r in steps]) <= 5
    # the order of convergence, log(r_k+1 / r_0) / log(r_k / r_0), in the asymptotic range
    orders = []
    for r in steps:
        e = np.asarray(r["residuals"]) / r["residuals"][0]
        orders += [np.log(e[k + 1]) / np.log(e[k]) for k in range(1, len(e) - 1) if e[k] < 1e-2 and e[k + 1] > 1e-13]
    assert len(orders) >= 3, orders
    assert min(orders) > 1.8, orders


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_same_path_on_one_and_two_ranks(path):
    problem, _, rows = path
    assert problem.comm.allreduce(problem.num_owned_points, op=MPI.MIN) > 0  # every rank owns points
    p1, _, rows1 = follow(MPI.COMM_SELF)
    p1.destroy()
    assert len(rows1) == len(rows)
    for a, b in zip(rows, rows1):
        assert a["lam"] == pytest.approx(b["lam"], rel=1e-8, abs=1e-12)
        assert a["force"] == pytest.approx(b["force"], rel=1e-8, abs=1e-14)


def test_dissipation_control_that_cannot_proceed_says_where_and_keeps_its_steps():
    problem, _ = bar_problem(MPI.COMM_WORLD)
    steps = []
    log = []
    with pytest.raises(SolverError, match=r"cannot proceed beyond load factor 0\.25: .*; dissipation control "
                                          "failed there too"):
        for step in pathfollowing.follow(problem, replace(LOADING, min_step=1e-2),
                                         replace(SOLVER, max_iterations=1), log=log.append):
            steps.append(step.load_factor)
    # load control halves to min_step, dissipation control fails three times, one load step is tried
    text = "\n".join(log)
    assert "load control cannot pass load factor 0.25: dissipation control from here" in text
    assert text.count("dissipation control, dissipated energy") == pathfollowing.FALLBACK_FAILURES
    assert "3 failures under dissipation control: trying load control" in text
    assert steps == [0.1, 0.2, 0.25]  # the elastic steps converged, committed, and were handed out
    # the problem is back at the last committed state: the right end at 0.25 U_END
    umax = problem.comm.allreduce(float(problem.u.x.array.max()), op=MPI.MAX)
    assert umax == pytest.approx(0.25 * U_END, rel=1e-12)
    problem.destroy()
