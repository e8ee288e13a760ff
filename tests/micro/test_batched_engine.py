"""The batched micro engine against the reference path (one point at a time with dolfinx
assembly): its precomputed operators equal dolfinx/dolfinx_mpc assembly, its answers equal
the reference's for every law in 2D and 3D over a load history, the elastic shortcut is
exact and taken only where it applies, and failures are reported like the reference's."""

import dolfinx_mpc
import numpy as np
import pytest
import scipy.sparse as sp
from mpi4py import MPI

from fe2.core.errors import SolverError
from fe2.geometry import generators
from fe2.geometry.rvemesh import load_rve_mesh
from fe2.materials import LinearElastic
from fe2.materials.damage import IsotropicDamage
from fe2.materials.hyperelasticity import NeoHooke
from fe2.materials.plasticity import J2Plasticity
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.operators import CellOperators
from fe2.micro.phases import Phase
from helpers import inclusion_rve, rel

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="RVE templates live on one process")


@pytest.fixture(scope="module")
def circle(tmp_path_factory):
    info = generators.circle_inclusion(tmp_path_factory.mktemp("eng") / "c.msh", radius=0.3, h=0.15)
    return load_rve_mesh(info.path, MPI.COMM_SELF)


def j2(gdim):
    return [Phase("matrix", 1, law=J2Plasticity(1.0, 0.3, 0.01, gdim, H_iso=0.05, Q=0.01, b=30.0, H_kin=0.02)),
            Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, gdim))]


def neo_hooke(gdim):
    return [Phase("matrix", 1, law=NeoHooke(1.0, 0.3, gdim)), Phase("inclusion", 2, law=NeoHooke(10.0, 0.2, gdim))]


def damage(gdim, viscosity=0.0):
    law = IsotropicDamage(1.0, 0.2, 1e-3, gdim, softening="exponential", beta=100.0, viscosity=viscosity)
    return [Phase("matrix", 1, law=law), Phase("inclusion", 2, law=LinearElastic.isotropic(5.0, 0.2, gdim))]


def pair(rm, phases, **kw):
    """The same RVE on the reference path and on the batched engine."""
    return (NonlinearCellProblem(rm, phases, engine="reference", **kw),
            NonlinearCellProblem(rm, phases, engine="batched", **kw))


def directions(gdim, N, physics="elasticity", seed=3):
    rng = np.random.default_rng(seed)
    n = {("elasticity", 2): 3, ("elasticity", 3): 6, ("finite_strain", 2): 4, ("finite_strain", 3): 9}[physics, gdim]
    D = rng.uniform(-1.0, 1.0, (N, n))
    D[:, 0] = 1.0  # every point pulled along x, in different mixes of the other components
    return D


def close(a, b, tol):
    """Largest difference within ``tol`` of the largest entry of the reference ``a`` (all-zero
    states, e.g. a virgin plastic strain, must be exactly zero)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.abs(b - a).max(initial=0.0) <= tol * np.abs(a).max(initial=0.0)


def assert_same(ref, new, outputs_ref, outputs_new, tol):
    """Every output and every trial state array of the batched RVE equals the reference's."""
    for a, b in zip(outputs_ref, outputs_new):
        assert close(a, b, tol), (a, b)
    assert sorted(new.bank.trial) == sorted(ref.bank.trial)
    for key in ref.bank.trial:
        assert close(ref.bank.trial[key], new.bank.trial[key], tol), key


@pytest.mark.parametrize("gdim, degree", [(2, 1), (2, 2), (3, 1)])
def test_operators_equal_dolfinx_assembly(gdim, degree):
    rve = NonlinearCellProblem(inclusion_rve(gdim, 3), j2(gdim), degree=degree, engine="reference")
    op = CellOperators(rve.space, rve.quadrature, rve.kinematics)
    eng = rve.engine  # the reference engine: dolfinx and dolfinx_mpc assembly
    rng = np.random.default_rng(0)
    n, P = rve.size, op.num_points
    # micro gradients E + B x against dolfinx's evaluation of E + G(w) after backsubstitution
    x, E = rng.standard_normal((1, op.nfree)), rng.standard_normal((1, n))
    eng.macro_gradient.value[:] = E[0]
    eng._set_fluctuation(op.to_full(x)[0])
    assert rel(op.gradients(E, x)[0], rve.quadrature.evaluate(eng._grad_expr, n)) < 1e-13
    # residual and internal-force norm against dolfinx_mpc's assembly of random fluxes
    flux = rng.standard_normal((P, n))
    T = rng.standard_normal((P, n, n))
    eng.flux_q.x.array.reshape(-1, n)[eng._qdofs] = flux
    eng.tangent_q.x.array.reshape(-1, n * n)[eng._qdofs] = T.reshape(-1, n * n)
    rnorm, rforces = eng._residual()
    r, f = op.forces(flux[None])
    assert rel(op.to_full(r)[0], eng._r.array_r) < 1e-13
    assert f[0] == pytest.approx(rforces, rel=1e-13)
    # Jacobian values (any, also non-symmetric, tangent) against the assembled matrix
    eng.A.zeroEntries()
    dolfinx_mpc.assemble_matrix(eng._J, rve.mpc, bcs=rve.bcs, A=eng.A)
    ip, ind, val = eng.A.getValuesCSR()
    A = sp.csr_matrix((val, ind, ip)).toarray()[np.ix_(op.free, op.free)]
    K = sp.csr_matrix((op.jacobian_values(T[None])[0], op.indices, op.indptr), shape=(op.nfree,) * 2).toarray()
    assert rel(K, A) < 1e-13
    # the per-cell path (large cells) and the symmetric kernel give the same values
    per_cell = op._jacobian_values_per_cell(T[None])
    assert rel(per_cell, op.jacobian_values(T[None])) < 1e-13
    Ts = np.stack([T + T.transpose(0, 2, 1), T @ T.transpose(0, 2, 1)])
    assert rel(op.jacobian_values(Ts, symmetric=True), op._jacobian_values_per_cell(Ts)) < 1e-13
    assert op._kernel(True)[0].size < 0.4 * op._kernel(False)[0].size  # the upper triangles only
    # a point's values do not depend on the batch it is evaluated in (to the last bit), or
    # round-off would make results depend on how the balancer grouped the points
    many = np.stack([Ts[1], Ts[0], 2.0 * Ts[1], Ts[0] - Ts[1]])
    for sym in (False, True):
        together = op.jacobian_values(many, symmetric=sym)
        assert all(np.array_equal(op.jacobian_values(many[i:i + 1], symmetric=sym)[0], together[i]) for i in range(4))
        assert np.array_equal(op.jacobian_values(many[1:3], symmetric=sym), together[1:3])
    # a kernel over the memory limit falls back to the per-cell path
    op.KERNEL_BYTES, op._kernels = 1.0, {}
    assert op._kernel(False) is None and rel(op.jacobian_values(T[None]), per_cell) == 0.0
    # the slave and pinned rows the condensation removes hold nothing in dolfinx_mpc either
    others = np.setdiff1d(np.arange(rve.nloc), op.free)
    assert np.abs(eng._r.array_r[others]).max() == 0.0


@pytest.mark.parametrize("gdim", [2, 3])
def test_j2_equals_reference_over_a_load_history(circle, gdim):
    rm = circle if gdim == 2 else inclusion_rve(3, 3)
    ref, new = pair(rm, j2(gdim), rtol=1e-12)
    D = directions(gdim, 5)
    # load, load further, unload: elastic, plastic, plastic, elastic unloading, reloading
    for t in (0.004, 0.015, 0.03, 0.027, 0.035):
        E = t * D
        E[0] *= 0.1  # one point stays elastic throughout
        assert_same(ref, new, ref.evaluate(E), new.evaluate(E), 1e-10)
        ref.commit()
        new.commit()
    p = ref.phases[0].law.equivalent_plastic_strain(ref.get_state()["state_matrix"].reshape(-1, 13))
    assert p.max() > 0.01  # well into the plastic range
    # the batched engine starts from its last solution extrapolated along dw/dE there (the
    # reference from the committed fluctuation): fewer iterations after a commit; asked
    # again for the same strain, both give back the last answer, bit for bit, with no solve
    counts, answers = [], []
    for rve in (ref, new):
        for _ in range(2):
            before, reused = rve.stats["newton_iterations"], rve.stats["reused"]
            answers.append(rve.evaluate(0.04 * D))
            counts.append(rve.stats["newton_iterations"] - before)
            assert rve.stats["reused"] - reused == (0 if _ == 0 else len(D))
    assert counts[0] > 5 and counts[1] == 0 and 0 < counts[2] < counts[0] and counts[3] == 0
    for first, again in (answers[:2], answers[2:]):
        assert all(np.array_equal(a, b) for a, b in zip(first, again))


@pytest.mark.parametrize("gdim", [2, 3])
def test_neo_hooke_equals_reference(circle, gdim):
    rm = circle if gdim == 2 else inclusion_rve(3, 3)
    ref, new = pair(rm, neo_hooke(gdim), physics="finite_strain", rtol=1e-12)
    identity = np.eye(gdim).ravel()
    D = directions(gdim, 4, "finite_strain")
    for t in (0.05, 0.15, 0.25):
        F = identity + t * D
        assert_same(ref, new, ref.evaluate(F), new.evaluate(F), 1e-10)
        ref.commit()
        new.commit()


@pytest.mark.parametrize("gdim", [2, 3])
def test_local_and_nonlocal_damage_equal_reference(gdim):
    rm = inclusion_rve(gdim, 6 if gdim == 2 else 3)
    base = np.array([1.0, -0.2, 0.3]) if gdim == 2 else np.array([1.0, -0.2, -0.1, 0.2, 0.1, 0.3])
    D = np.stack([base, 0.95 * base, 0.9 * base])  # three RVEs at different levels
    ref, new = pair(rm, damage(gdim), rtol=1e-12)
    for t in np.linspace(0.4e-3, 0.7e-3, 7):  # through the onset of damage, before the RVE's peak
        assert_same(ref, new, ref.evaluate(t * D), new.evaluate(t * D), 1e-10)
        ref.commit()
        new.commit()
    assert ref.internal_fields()["damage"].max() > 0.005
    # viscous in 3D: the coarse cube RVE localizes (snap-back) soon after the onset otherwise
    ref, new = pair(rm, damage(gdim, viscosity=0.0 if gdim == 2 else 1.0), rtol=1e-12)
    for rve in (ref, new):
        rve.set_time_increment(0.1)
    D = np.stack([base, base, 0.5 * base])
    for t in np.linspace(0.4e-3, 1.2e-3, 5):  # gradient-regularized: driven by a nonlocal strain
        e = t * np.array([0.9, 0.85, 0.45])  # each a bit behind its local strain
        assert_same(ref, new, ref.evaluate_nonlocal(t * D, e), new.evaluate_nonlocal(t * D, e), 1e-10)
        ref.commit()
        new.commit()
    assert ref.internal_fields()["damage"].max() > 0.01


def test_a_points_answer_does_not_depend_on_its_batch(circle):
    # the load balancer groups points by measured time: a point evaluated alone or with any
    # others must get the same answer to the last bit (elastic points: template solves;
    # plastic ones: own factorisations and Jacobian values)
    cell = NonlinearCellProblem(circle, j2(2))
    D = directions(2, 12)
    scale = np.where(np.arange(12) % 3 == 0, 0.002, 0.02)[:, None]  # every third point elastic
    cell.evaluate(scale * D)
    cell.commit()
    E = 1.3 * scale * D
    batch = cell.point_batch(np.arange(12), E)  # started from the first-order prediction
    engine = cell.engine
    together = engine.evaluate(batch)
    assert together.counters["shortcut"] >= 4 and together.counters["factorisations"] > 0
    for sel in ([0], [3], [1, 2], [0, 3, 6, 9], list(range(5))):
        alone = engine.evaluate(batch.take(np.array(sel)))
        for name in ("flux", "tangent", "fluctuation", "sensitivity"):
            assert np.array_equal(getattr(alone, name), getattr(together, name)[sel]), (sel, name)


def test_elastic_shortcut_is_exact_and_taken_only_where_it_applies(circle):
    ref, new = pair(circle, j2(2), rtol=1e-12)
    D = directions(2, 4)
    # virgin and elastic: no factorisation at all, the tangent is the effective tensor
    E = 0.002 * D
    out_ref, out_new = ref.evaluate(E), new.evaluate(E)
    assert_same(ref, new, out_ref, out_new, 1e-12)
    stats = new.statistics()
    assert stats["shortcut"] == 4 and stats["factorisations"] == 0
    assert rel(out_new[1], np.broadcast_to(new.effective_tensor, (4, 3, 3))) < 1e-12
    # into the plastic range, commit; then elastic unloading of a plastic state: shortcut again
    for t in (0.02, 0.03):
        ref.evaluate(t * D), new.evaluate(t * D)
        ref.commit(), new.commit()
    assert ref.get_state()["state_matrix"][:, :, 12].max(axis=1).min() > 0  # every RVE has yielded
    f0, s0 = new.statistics()["factorisations"], new.statistics()["shortcut"]
    E = 0.0295 * D
    assert_same(ref, new, ref.evaluate(E), new.evaluate(E), 1e-12)
    stats = new.statistics()
    assert stats["shortcut"] - s0 == 4 and stats["factorisations"] == f0
    # about to yield: a small further load yields at some micro points, so no shortcut
    E = 0.0302 * D
    assert_same(ref, new, ref.evaluate(E), new.evaluate(E), 1e-10)
    assert new.statistics()["shortcut"] == stats["shortcut"]
    assert new.statistics()["factorisations"] > stats["factorisations"]


def test_failures_are_reported_like_the_reference(circle):
    ref, new = pair(circle, j2(2), rtol=1e-12)
    E = 0.02 * directions(2, 4)
    for rve in (ref, new):
        rve.evaluate(E)
        rve.commit()
    before = new.get_state()
    E2 = 3.0 * E
    E2[:2] = E[:2]  # points 0 and 1 are converged at once, 2 and 3 need more than one iteration
    errors = []
    for rve in (ref, new):
        rve.set_rules(max_iterations=1)
        with pytest.raises(SolverError, match=r"RVE at macro point 2: micro Newton did not converge in 1 iter") as e:
            rve.evaluate(E2)
        errors.append(e.value)
        rve.revert()
    assert errors[0].point == errors[1].point == 2
    after = new.get_state()
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_unknown_engine_is_refused(circle):
    with pytest.raises(ValueError, match="unknown micro engine 'fast'; choose one of batched, reference"):
        NonlinearCellProblem(circle, j2(2), engine="fast")


def test_elastic_points_cost_no_solve_and_answer_the_elastic_cell(circle):
    """A point whose micro tangents are all the virgin ones at convergence takes the elastic
    cell's homogenized tensor and unit fluctuations: no solve of its own. Started from its
    exact first-order prediction it needs no solve at all."""
    cell = NonlinearCellProblem(circle, j2(2), rtol=1e-12)
    D = 0.002 * directions(2, 4)
    _, C = cell.evaluate(D)  # from the zero start: one Newton update with the elastic factorisation
    stats = dict(cell.statistics())
    assert stats["factorisations"] == 0 and stats["template_solves"] == 4
    elastic = cell.problem.elastic_tangent  # (the effective tensor, averaged as the engine averages)
    assert np.array_equal(C, np.broadcast_to(elastic, C.shape)) and rel(elastic, cell.effective_tensor) < 1e-13
    assert np.array_equal(cell.bank.trial["predictor_dwdE"],
                          np.broadcast_to(cell.unit_fluctuations, cell.bank.trial["predictor_dwdE"].shape))
    _, C = cell.evaluate(1.5 * D)  # the prediction is exact: converged at the start
    after = cell.statistics()
    assert after["template_solves"] == stats["template_solves"] and after["factorisations"] == 0
    assert after["shortcut"] == 8 and np.array_equal(C, np.broadcast_to(elastic, C.shape))


def test_a_point_just_past_yield_gets_its_plastic_tangent(circle):
    """Elastic is decided from the tangent, not from the state: strained a few ulp past its
    yield surface, a plastic point's plastic multiplier vanishes against its accumulated
    plastic strain (``p + dp == p``) while its tangent is the plastic one. A homogeneous RVE
    must then answer the law's plastic tangent, like the reference engine."""
    law = J2Plasticity(1.0, 0.3, 0.01, 2, H_iso=0.05, Q=0.01, b=30.0, H_kin=0.02)
    phases = [Phase("a", 1, law=law), Phase("b", 2, law=law)]
    ref, new = pair(circle, phases, rtol=1e-12)
    E = np.array([[0.02, -0.01, 0.012]])
    for rve in (ref, new):
        rve.evaluate(E)
        rve.commit()
    state = new.bank.committed["state_a"][0, :1]
    for k in range(1, 200):  # the smallest further strain that yields in floating point
        Ek = E * (1.0 + k * np.finfo(float).eps)
        _, C_law, trial = law.integrate(Ek, state)
        if not np.array_equal(C_law[0], law.C3[np.ix_([0, 1, 5], [0, 1, 5])]):
            break
    assert trial[0, 12] == state[0, 12]  # p did not change in floating point, the tangent did
    out_ref, out_new = ref.evaluate(Ek), new.evaluate(Ek)
    assert rel(out_new[1][0], C_law[0]) < 1e-10 and rel(out_ref[1][0], C_law[0]) < 1e-10
    assert abs(out_new[1][0, 2, 2] - new.effective_tensor[2, 2]) > 0.1 * new.effective_tensor[2, 2]


def test_a_singular_micro_jacobian_fails_naming_both_factorisers(circle, monkeypatch):
    """A micro Jacobian no factoriser can do (here: the matrix phase without stiffness) fails
    the point with what CHOLMOD and then MUMPS's pivoting LU said."""
    cell = NonlinearCellProblem(circle, j2(2), rtol=1e-12)
    integrate = J2Plasticity.integrate

    def limp(self, grad, state):
        flux, tangent, trial = integrate(self, grad, state)
        return flux, np.zeros_like(tangent), trial

    monkeypatch.setattr(J2Plasticity, "integrate", limp)
    with pytest.raises(SolverError, match=r"RVE at macro point 0: factorisation of the RVE Jacobian failed \(.*\); "
                                          r"retried with MUMPS's LU with pivoting, which failed too \(.*INFOG"):
        cell.evaluate(0.02 * directions(2, 2))


def test_a_state_from_before_the_monolithic_scheme_restores(circle):
    """Checkpoints written before the monolithic scheme hold answers without the micro
    residual and settled flag: they restore as settled answers, and the restored point
    answers its committed input from them without a solve."""
    cell = NonlinearCellProblem(circle, j2(2), rtol=1e-12, scheme="monolithic")
    E = 0.02 * directions(2, 3)
    while True:
        cell.evaluate(E)
        if cell.unsettled_points() == 0:
            break
    cell.commit()
    state = cell.get_state()
    old = dict(state, answer=state["answer"][:, :-2])  # the layout before: flux and tangent only
    again = NonlinearCellProblem(circle, j2(2), rtol=1e-12, scheme="monolithic")
    again.set_state(old)
    assert np.array_equal(again.get_state()["answer"][:, :-2], state["answer"][:, :-2])
    assert again.unsettled_points() == 0
    sigma, _ = again.evaluate(E)
    assert again.statistics()["reused"] == 3 and np.array_equal(sigma, state["answer"][:, :3])
