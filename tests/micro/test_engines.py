"""The micro engine contract (:mod:`fe2.micro.engines.base`), checked on every engine of the
registry: a new engine gets these checks by its registry entry alone.

Each engine, behind a nonlinear template, must give a homogeneous RVE's closed form (the
point law itself, no fluctuation), a consistent tangent (central differences of its fluxes),
exact commit/revert, per-point failures that leave the other points' answers and the
committed state alone, its counters, and the reference engine's answers. Under
``mpirun -n 2`` the template is also distributed over both ranks (one group), where every
solve is collective.
"""

import dataclasses

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core.errors import SolverError
from fe2.materials import LinearElastic
from fe2.materials.hyperelasticity import NeoHooke
from fe2.materials.plasticity import J2Plasticity
from fe2.materials.points import MaterialPoints
from fe2.micro.engines import ENGINES
from fe2.micro.engines.base import EngineAnswer, MicroEngine
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.phases import Phase
from helpers import inclusion_rve, rel, rve_fd_tangent, structured_rve

WORLD = MPI.COMM_WORLD
#: one process, and (under mpirun) a template distributed over all ranks
COMMS = [MPI.COMM_SELF] + ([WORLD] if WORLD.size > 1 else [])
COMM_IDS = ["one process"] + (["distributed"] if WORLD.size > 1 else [])


def j2(gdim):
    return J2Plasticity(1.0, 0.3, 0.01, gdim, H_iso=0.05, Q=0.01, b=30.0, H_kin=0.02)


def heterogeneous(kind, comm, engine, **kw):
    """An inclusion RVE: a J2 (small strain) or Neo-Hooke (finite strain) matrix around a
    stiffer inclusion."""
    rm = structured_rve(2, 4, lambda m: np.where(np.all(np.abs(m[:, :2] - 0.5) < 0.25, axis=1), 2, 1), comm=comm)
    if kind == "j2":
        phases = [Phase("matrix", 1, law=j2(2)), Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, 2))]
        return NonlinearCellProblem(rm, phases, engine=engine, **kw)
    phases = [Phase("matrix", 1, law=NeoHooke(1.0, 0.3, 2)), Phase("inclusion", 2, law=NeoHooke(10.0, 0.2, 2))]
    return NonlinearCellProblem(rm, phases, physics="finite_strain", engine=engine, **kw)


def path(kind):
    """Macro gradients of three points over three steps (load, load further, unload)."""
    if kind == "j2":
        D = np.array([[1.0, -0.3, 0.4], [0.2, 0.9, -0.5], [0.05, 0.02, 0.01]])
        return [f * 0.02 * D for f in (1.0, 1.6, 0.8)]
    D = np.array([[0.2, 0.05, -0.03, -0.08], [-0.1, 0.1, 0.04, 0.15], [0.02, 0.0, 0.01, -0.01]])
    return [np.eye(2).ravel() + f * D for f in (1.0, 1.6, 0.8)]


@pytest.mark.parametrize("engine", list(ENGINES))
def test_every_engine_is_a_micro_engine_made_from_the_description_alone(engine):
    rve = heterogeneous("j2", MPI.COMM_SELF, engine)
    rve.evaluate(path("j2")[0])
    eng = rve.engine
    assert isinstance(eng, MicroEngine) and eng.name == engine and eng.problem is rve.problem
    assert not any(v is rve for v in vars(eng).values())  # it knows the description, not the template
    with pytest.raises(dataclasses.FrozenInstanceError):
        rve.problem.volume = 2.0
    # the template's statistics are the engine's counters summed, and the reuse count
    stats = rve.statistics()
    assert set(type(eng).counters) | {"reused"} <= set(stats)
    assert stats["solves"] == 3 and stats["newton_iterations"] >= 3 and stats["seconds"] > 0.0


@pytest.mark.parametrize("comm", COMMS, ids=COMM_IDS)
@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_homogeneous_rve_is_its_law(engine, comm):
    """Closed form: a one-phase RVE has no fluctuation, and its answer is the point law's
    along a loading, further loading and elastic unloading path."""
    law = j2(2)
    rve = NonlinearCellProblem(structured_rve(2, 3, comm=comm), [Phase("m", 1, law=law)], rtol=1e-13,
                               engine=engine)
    points = MaterialPoints(law, 3)
    for E in path("j2"):
        s, C = rve.evaluate(E)
        s_law, C_law = points.evaluate(E)
        assert rel(s, s_law) < 1e-12 and rel(C, C_law) < 1e-10
        assert np.abs(rve.bank.trial["w"]).max() < 1e-13
        rve.commit()
        points.commit()
    plastic = law.equivalent_plastic_strain(rve.bank.committed["state_m"][0])
    assert plastic.min() > 1e-3  # the path did yield


@pytest.mark.parametrize("comm", COMMS, ids=COMM_IDS)
@pytest.mark.parametrize("kind", ["j2", "neo_hooke"])
@pytest.mark.parametrize("engine", list(ENGINES))
def test_the_tangent_is_the_derivative_of_the_flux(engine, kind, comm):
    rve = heterogeneous(kind, comm, engine, rtol=1e-13)
    E0, E1, _ = path(kind)
    rve.evaluate(E0[:1])  # one point throughout: another count would start over from the virgin state
    rve.commit()
    if kind == "j2":  # from a plastic state, loaded further: the tangent is a plastic one
        assert rve.phases[0].law.equivalent_plastic_strain(rve.bank.committed["state_matrix"][0]).max() > 1e-3
    E = E1[0]
    _, C = rve.evaluate(E[None])
    h = 1e-6 if kind == "j2" else 1e-5
    assert rel(rve_fd_tangent(rve, E, h), C[0]) < 1e-6


@pytest.mark.parametrize("engine", list(ENGINES))
def test_commit_and_revert_are_exact(engine):
    rve = heterogeneous("j2", MPI.COMM_SELF, engine, rtol=1e-12)
    E0, E1, _ = path("j2")
    rve.evaluate(E0)
    rve.commit()
    before = rve.get_state()
    first = rve.evaluate(E1)
    assert not np.array_equal(rve.bank.trial["w"], rve.bank.committed["w"])
    rve.revert()
    after = rve.get_state()
    assert all(np.array_equal(after[k], before[k]) for k in before)
    again = rve.evaluate(E1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


@pytest.mark.parametrize("engine", list(ENGINES))
def test_failures_are_per_point_and_leave_the_rest_alone(engine):
    """A point that cannot converge is the answer's failure, with the reason; the other
    points' answers are those they get without it, the engine's input is left as it was,
    and the template raises for the first failed point and keeps its committed state."""
    rve = heterogeneous("j2", MPI.COMM_SELF, engine, rtol=1e-12)
    rve.set_rules(max_iterations=1)  # an elastic point converges in one update, a plastic one cannot
    E = np.array([[1e-4, -2e-4, 1e-4], [0.03, -0.01, 0.01], [-2e-4, 1e-4, 3e-4]])
    rve.resize(3)
    batch = rve.point_batch(np.arange(3), E)
    copy = [a.copy() for a in (batch.gradient, batch.start, *batch.states)]
    ans = rve.engine.evaluate(batch)
    assert isinstance(ans, EngineAnswer)
    assert list(ans.failures) == [1]
    assert ans.failures[1].startswith("micro Newton did not converge in 1 iterations")
    assert all(np.array_equal(a, b) for a, b in zip(copy, (batch.gradient, batch.start, *batch.states)))
    good = rve.engine.evaluate(batch.take(np.array([0, 2])))
    assert not good.failures
    for name in ("flux", "tangent", "fluctuation", "sensitivity"):
        assert np.array_equal(getattr(good, name), getattr(ans, name)[[0, 2]]), name
    assert ans.counters["solves"] >= 2 and ans.cost.shape == (3,)
    before = rve.get_state()
    with pytest.raises(SolverError, match=r"RVE at macro point 1: micro Newton did not converge") as err:
        rve.evaluate(E)
    assert err.value.point == 1
    rve.revert()
    after = rve.get_state()
    assert all(np.array_equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("kind", ["j2", "neo_hooke"])
@pytest.mark.parametrize("engine", list(ENGINES))
def test_every_engine_gives_the_reference_engines_answers(engine, kind):
    """The reference engine is the slow, obviously-correct path: every engine's fluxes,
    tangents and trial state equal its answers along a load path (to the solver tolerance)."""
    ref = heterogeneous(kind, MPI.COMM_SELF, "reference", rtol=1e-12)
    new = heterogeneous(kind, MPI.COMM_SELF, engine, rtol=1e-12)
    for E in path(kind):
        a, b = ref.evaluate(E), new.evaluate(E)
        assert rel(b[0], a[0]) < 1e-10 and rel(b[1], a[1]) < 1e-9
        assert np.abs(new.bank.trial["w"] - ref.bank.trial["w"]).max() < 1e-9 * np.abs(ref.bank.trial["w"]).max()
        ref.commit()
        new.commit()


def test_an_unknown_engine_is_refused_naming_the_registered_ones():
    with pytest.raises(ValueError, match="unknown micro engine 'fast'; choose one of " + ", ".join(ENGINES)):
        NonlinearCellProblem(inclusion_rve(2, 2), [Phase("m", 1, law=j2(2)), Phase("i", 2, law=j2(2))],
                             engine="fast")


@pytest.mark.parametrize("comm", COMMS, ids=COMM_IDS)
@pytest.mark.parametrize("kind", ["j2", "neo_hooke"])
@pytest.mark.parametrize("engine", list(ENGINES))
def test_monolithic_evaluations_are_newton_steps_to_the_nested_answer(engine, kind, comm):
    """Under the monolithic scheme an evaluation is one micro Newton step, taken by the
    macro Newton: asked again for the same macro gradient, each point goes on from the
    corrected fluctuation, its residual falls quadratically, and once settled its flux,
    tangent and fluctuation are the nested scheme's; every engine's steps are the
    reference engine's."""
    nested = heterogeneous(kind, comm, engine, rtol=1e-12)
    mono = heterogeneous(kind, comm, engine, rtol=1e-12, scheme="monolithic")
    ref = heterogeneous(kind, comm, "reference", rtol=1e-12, scheme="monolithic")
    E0, E1, _ = path(kind)
    for E in (E0, E1):
        expected = nested.evaluate(E)
        ratios = []
        for _ in range(10):
            got, want = mono.evaluate(E), ref.evaluate(E)
            assert rel(got[0], want[0]) < 1e-10 and rel(got[1], want[1]) < 1e-9
            ratios.append(mono.bank.trial["answer"][:, -2].copy())
            if mono.unsettled_points() == 0:
                break
        assert mono.unsettled_points() == ref.unsettled_points() == 0
        assert 2 <= len(ratios) <= 6  # (a fresh gradient needs at least one correction)
        r = np.array(ratios)  # |r| / tolerance per evaluation and point (a settled point keeps its answer)
        assert np.all((r[1:] < r[:-1]) | (r[:-1] <= 1.0)) and r[-1].max() <= 1.0
        assert rel(got[0], expected[0]) < 1e-10 and rel(got[1], expected[1]) < 1e-8
        w = nested.bank.trial["w"]
        assert np.abs(mono.bank.trial["w"] - w).max() < 1e-8 * np.abs(w).max()
        for rve in (nested, mono, ref):
            rve.commit()
