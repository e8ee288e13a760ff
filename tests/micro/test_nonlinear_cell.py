"""Nonlinear RVEs: consistent tangents (finite differences), Hill–Mandel in plastic states,
trial/committed state, and linear laws through the nonlinear path."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core.errors import SolverError
from fe2.geometry import generators
from fe2.geometry.rvemesh import load_rve_mesh
from fe2.materials import LinearElastic
from fe2.materials.hyperelasticity import NeoHooke
from fe2.materials.plasticity import J2Plasticity
from fe2.micro.cell import CellProblem
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.phases import Phase
from helpers import rel, rve_fd_tangent, structured_rve


@pytest.fixture(scope="module")
def circle(tmp_path_factory):
    info = generators.circle_inclusion(tmp_path_factory.mktemp("nl") / "c.msh", radius=0.3, h=0.12)
    return load_rve_mesh(info.path, MPI.COMM_SELF)


def cube():
    # 3D: a centred block of stiff cells in a plastic matrix
    return structured_rve(3, 3, lambda m: np.where(np.all(np.abs(m - 0.5) < 0.2, axis=1), 2, 1))


def j2_phases(gdim, H_iso=0.5, Q=0.2, b=20.0, H_kin=0.3):
    return [Phase("matrix", 1, law=J2Plasticity(1.0, 0.3, 0.01, gdim, H_iso=H_iso, Q=Q, b=b, H_kin=H_kin)),
            Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, gdim))]


@pytest.mark.parametrize("dim", [2, 3])
def test_rve_tangent_matches_finite_differences_elastic_and_plastic(circle, dim):
    rm = circle if dim == 2 else cube()
    rve = NonlinearCellProblem(rm, j2_phases(dim), rtol=1e-13)
    direction = np.array([1.0, -0.4, 0.7]) if dim == 2 else np.array([1.0, -0.3, -0.2, 0.3, 0.5, 0.7])
    # elastic state: small strain, the tangent is the elastic effective tensor
    E_el = 1e-4 * direction
    s, C = rve.evaluate(E_el[None])
    assert rel(C[0], rve.effective_tensor) < 1e-10
    assert rel(rve_fd_tangent(rve, E_el, 1e-7), C[0]) < 1e-5
    # plastic state: load past yield, commit, go further
    E1 = 0.02 * direction
    rve.evaluate(E1[None])
    rve.commit()
    plastic = rve.phases[0].law.equivalent_plastic_strain(rve.get_state()["state_matrix"][0])
    assert plastic.max() > 1e-3
    E2 = 0.025 * direction
    s, C = rve.evaluate(E2[None])
    assert rel(rve_fd_tangent(rve, E2, 1e-7), C[0]) < 1e-5
    assert np.abs(C[0] - C[0].T).max() < 1e-8 * np.abs(C[0]).max()  # associative plasticity
    # the plastic tangent is softer than the elastic one
    assert np.linalg.eigvalsh(rve.effective_tensor - 0.5 * (C[0] + C[0].T)).min() > -1e-12
    # elastic unloading from the committed plastic state
    E3 = 0.019 * direction
    s, C = rve.evaluate(E3[None])
    assert rel(rve_fd_tangent(rve, E3, 1e-7), C[0]) < 1e-5


@pytest.mark.parametrize("dim", [2, 3])
def test_finite_strain_rve_tangent_matches_finite_differences(circle, dim):
    rm = circle if dim == 2 else cube()
    phases = [Phase("matrix", 1, law=NeoHooke(1.0, 0.3, dim)), Phase("inclusion", 2, law=NeoHooke(10.0, 0.2, dim))]
    rve = NonlinearCellProblem(rm, phases, physics="finite_strain", rtol=1e-13)
    rng = np.random.default_rng(5)
    F = np.eye(dim).ravel() + 0.15 * rng.uniform(-1, 1, dim * dim)
    P, A = rve.evaluate(F[None])
    assert rel(rve_fd_tangent(rve, F, 1e-7), A[0]) < 1e-5
    # objectivity of the homogenized response: P(QF) = Q P(F)
    th = 0.4
    Q = np.eye(dim)
    Q[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    PQ, _ = rve.evaluate((Q @ F.reshape(dim, dim)).ravel()[None])
    assert rel(PQ[0].reshape(dim, dim), Q @ P[0].reshape(dim, dim)) < 1e-8
    # at F = I: zero stress, tangent = the linear (small-strain) effective tensor in F layout
    P0, A0 = rve.evaluate(np.eye(dim).ravel()[None])
    assert np.abs(P0).max() < 1e-12
    lin = CellProblem(rm, phases, physics="finite_strain")
    assert rel(A0[0], lin.effective_tensor) < 1e-10


def test_hill_mandel_in_plastic_states(circle):
    rve = NonlinearCellProblem(circle, j2_phases(2), rtol=1e-12)
    for E in ([0.02, -0.005, 0.01], [0.03, 0.01, -0.02]):
        E = np.asarray(E)
        s, _ = rve.evaluate(E[None])
        fields = rve.snapshot(E, 0, trial=True)  # the converged state of the solve
        grads, flux = fields.gradient, fields.flux
        w = rve.micro_weights
        # <sigma : eps> = Sigma : E, and <eps> = E (periodic fluctuation)
        assert (w @ np.einsum("pk,pk->p", flux, grads)) / rve.volume == pytest.approx(s[0] @ E, rel=1e-9)
        assert np.abs(w @ grads / rve.volume - E).max() < 1e-12
        rve.commit()


def test_linear_laws_through_the_nonlinear_path_match_the_linear_rve(circle):
    phases = [Phase("m", 1, law=LinearElastic.isotropic(1.0, 0.3, 2)),
              Phase("i", 2, law=LinearElastic.isotropic(10.0, 0.2, 2))]
    lin, nl = CellProblem(circle, phases), NonlinearCellProblem(circle, phases)
    E = np.random.default_rng(0).normal(size=(4, 3)) * 1e-2
    s1, C1 = lin.evaluate(E)
    s2, C2 = nl.evaluate(E)
    assert rel(s2, s1) < 1e-12 and rel(C2, C1) < 1e-12
    assert nl.stats["newton_iterations"] == 4  # one iteration per point: the problem is linear
    nl.commit()
    nl.evaluate(E)
    assert nl.stats["newton_iterations"] == 4  # warm start from the committed fluctuation: converged at once


def test_failed_solve_leaves_committed_state_untouched(circle):
    rve = NonlinearCellProblem(circle, j2_phases(2, Q=0.0, b=0.0), rtol=1e-12)
    E = np.array([[0.02, -0.01, 0.01], [0.01, 0.0, 0.02]])
    rve.evaluate(E)
    rve.commit()
    before = {k: v.tobytes() for k, v in rve.get_state().items()}
    rve.set_rules(max_iterations=1)  # force a failure in the middle of a batch
    with pytest.raises(SolverError, match=r"RVE at macro point \d+: micro Newton did not converge in 1 iter"):
        rve.evaluate(E * 3.0)
    rve.revert()
    after = rve.get_state()
    assert all(after[k].tobytes() == before[k] for k in before)
    # and the solve from the committed state gives the same answer as before the failure
    rve.set_rules(max_iterations=25)
    s_again, _ = rve.evaluate(E)
    fresh = NonlinearCellProblem(circle, j2_phases(2, Q=0.0, b=0.0), rtol=1e-12)
    fresh.set_state({k: np.frombuffer(v).reshape(after[k].shape) for k, v in before.items()})
    s_fresh, _ = fresh.evaluate(E)
    assert np.array_equal(s_again, s_fresh)


@pytest.mark.parametrize("boundary", ["periodic", "linear", "minimal"])
def test_nonlinear_conduction_rve(circle, boundary):
    """A conduction RVE whose matrix conductivity grows with the gradient: the homogenized
    tangent equals central differences, the batched engine equals the reference path, flux
    and gradient satisfy Hill–Mandel, and a vanishing gradient gives the linear cell's
    conductivity (Fourier limit)."""
    from fe2.materials.conduction import LinearConduction, NonlinearConduction

    phases = [Phase("matrix", 1, law=NonlinearConduction(1.0, 0.5, 2)),
              Phase("inclusion", 2, law=LinearConduction.isotropic(10.0, 2))]
    E = np.array([0.6, -0.3])
    answers = []
    for engine in ("batched", "reference"):
        rve = NonlinearCellProblem(circle, phases, physics="conduction", rtol=1e-13, engine=engine,
                                   boundary=boundary)
        q, K = rve.evaluate(E[None])
        answers.append((q[0], K[0]))
        fields = rve.snapshot(E, 0, trial=True)  # of the last solve: before the finite differences
        grads, flux = fields.gradient, fields.flux
        w = rve.micro_weights
        assert (w @ np.einsum("pk,pk->p", flux, grads)) / rve.volume == pytest.approx(q[0] @ E, rel=1e-10)
        assert np.abs(w @ grads / rve.volume - E).max() < 1e-11
        assert rel(rve_fd_tangent(rve, E, 1e-6), K[0]) < 1e-6
        assert np.abs(K[0] - K[0].T).max() < 1e-12 * np.abs(K[0]).max()
    assert rel(answers[0][0], answers[1][0]) < 1e-10 and rel(answers[0][1], answers[1][1]) < 1e-10
    # the conductivity grew: the tangent is stiffer than the linear cell's (Loewner order)
    lin = CellProblem(circle, [Phase("matrix", 1, law=LinearConduction.isotropic(1.0, 2)), phases[1]],
                      physics="conduction", boundary=boundary)
    assert np.linalg.eigvalsh(answers[0][1] - lin.effective_tensor).min() > 1e-2
    q0, K0 = rve.evaluate(1e-6 * E[None])
    assert rel(K0[0], lin.effective_tensor) < 1e-9


@pytest.mark.parametrize("engine", ["batched", "reference"])
def test_out_of_plane_stress_of_linear_and_nonlinear_cells_agree_with_the_field_average(circle, engine):
    """A heterogeneous cell (phases of different Poisson ratios): the linear cell's row
    c . E, the nonlinear cell's average from its committed fluctuations (elastic laws), and
    the direct field integral of nu-phase (sigma_xx + sigma_yy) agree; a J2 matrix past
    yield gives another sigma_zz than the elastic cell."""
    import ufl
    from dolfinx import fem

    phases = [Phase("matrix", 1, law=LinearElastic.isotropic(1.0, 0.35, 2)),
              Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.1, 2))]
    linear = CellProblem(circle, phases)
    E = np.array([[0.01, -0.004, 0.006], [0.0, 0.02, -0.01]])
    row = linear.out_of_plane_row
    # direct: sigma_zz = nu_phase (sigma_xx + sigma_yy) pointwise in plane strain
    nu = fem.Function(fem.functionspace(linear.mesh, ("DG", 0)))
    tags = circle.cell_tags
    for tag, v in ((1, 0.35), (2, 0.1)):
        nu.x.array[tags.indices[tags.values == tag]] = v
    for e in E:
        w = linear.fluctuation(e)
        sig = ufl.dot(linear.tensor, fem.Constant(linear.mesh, e) + ufl.as_vector(
            [w[0].dx(0), w[1].dx(1), (w[0].dx(1) + w[1].dx(0)) / np.sqrt(2.0)]))
        direct = fem.assemble_scalar(fem.form(nu * (sig[0] + sig[1]) * ufl.dx)) / linear.volume
        assert row @ e == pytest.approx(direct, rel=1e-10)
    nonlinear = NonlinearCellProblem(circle, phases, engine=engine)
    nonlinear.evaluate(E)
    nonlinear.commit()
    assert nonlinear.out_of_plane_stress(E) == pytest.approx(E @ row, rel=1e-9)
    plastic = NonlinearCellProblem(circle, j2_phases(2), engine=engine)
    plastic.evaluate(E)
    plastic.commit()
    zz = plastic.out_of_plane_stress(E)
    elastic = NonlinearCellProblem(circle, [Phase("matrix", 1, law=LinearElastic.isotropic(1.0, 0.3, 2)),
                                            Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, 2))])
    elastic.evaluate(E)
    elastic.commit()
    assert np.abs(zz - elastic.out_of_plane_stress(E)).min() > 1e-3 * np.abs(zz).max()
    for c in (linear, nonlinear, plastic, elastic):
        c.destroy()
