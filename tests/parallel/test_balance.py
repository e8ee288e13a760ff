"""Dynamic load balancing of RVE evaluations (fe2.parallel.balance): the assignment evens out
the loads within one point's cost and moves only what it must; balanced evaluations on 2
ranks equal every rank evaluating its own points, in answers and in the trial state its
points keep; a point that fails on another rank is reported by its home rank, and no rank
hangs."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core.errors import Fe2Error, SolverError, collective
from fe2.geometry import generators
from fe2.geometry.rvemesh import load_rve_mesh
from fe2.materials import LinearElastic
from fe2.materials.plasticity import J2Plasticity
from fe2.micro.engines import ENGINES
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.phases import Phase
from fe2.parallel.balance import assign

COMM = MPI.COMM_WORLD


def loads_after(costs, dest):
    out = np.zeros(len(costs))
    for c, d in zip(costs, dest):
        np.add.at(out, d, c)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_assignment_evens_the_loads_within_one_point(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 9))
    # most points cheap, a few expensive, gathered on some ranks (a plastic zone)
    costs = [np.where(rng.random(int(rng.integers(0, 60))) < 0.2 * (r % 3), 20.0, 1.0) * rng.uniform(0.8, 1.2)
             for r in range(size)]
    dest = assign(costs, tolerance=0.0)
    before = np.array([c.sum() for c in costs])
    after = loads_after(costs, dest)
    biggest = max((c.max() for c in costs if c.size), default=0.0)
    assert after.sum() == pytest.approx(before.sum(), rel=1e-14)  # every point evaluated once
    assert after.max() <= before.sum() / size + biggest + 1e-9 * before.sum()
    assert after.max() <= before.max() + 1e-12
    # points only leave ranks above the mean load
    mean = before.sum() / size
    for r, d in enumerate(dest):
        if before[r] <= mean:
            assert np.all(d == r)
    assert [np.array_equal(a, b) for a, b in zip(dest, assign(costs, tolerance=0.0))] == [True] * size


def test_assignment_leaves_balanced_and_single_ranks_alone():
    even = [np.ones(10), np.full(5, 2.0)]
    assert [d.tolist() for d in assign(even)] == [[0] * 10, [1] * 5]
    assert assign([np.arange(4.0)])[0].tolist() == [0] * 4
    # two ranks, 6 unit points against 1: two move (6 -> 4, 1 -> 3)
    dest = assign([np.ones(6), np.ones(1)])
    assert dest[0].tolist() == [1, 1, 0, 0, 0, 0] and dest[1].tolist() == [1]


@pytest.mark.skipif(COMM.size > 1, reason="RVE templates live on one process")
def test_engine_prices_each_point_by_its_work(circle):
    cell = j2_cell(circle)
    cell.evaluate(strains(0))
    E = 1.1 * strains(0)
    ans = cell.engine.evaluate(cell.point_batch(np.arange(len(E)), E))
    cost = ans.cost
    # the evaluation's time is shared out completely; equal work, equal price; the plastic
    # point (more iterations, its own factorisations) is the dearest
    assert cost.sum() == pytest.approx(ans.counters["seconds"], rel=1e-9)
    assert np.argmax(cost) == 1 and np.ptp(np.delete(cost, 1)) <= 1e-12 * cost.max()


@pytest.fixture(scope="module")
def circle(tmp_path_factory):
    path = COMM.bcast(str(tmp_path_factory.mktemp("bal")) if COMM.rank == 0 else None, root=0)
    if COMM.rank == 0:
        generators.circle_inclusion(f"{path}/c.msh", radius=0.3, h=0.15)
    COMM.barrier()
    return load_rve_mesh(f"{path}/c.msh", MPI.COMM_SELF)


def j2_cell(rm, **kw):
    phases = [Phase("matrix", 1, law=J2Plasticity(1.0, 0.3, 0.01, 2, H_iso=0.05, Q=0.01, b=30.0, H_kin=0.02)),
              Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, 2))]
    return NonlinearCellProblem(rm, phases, **kw)


def strains(rank):
    """Rank 0: six points, the second one plastic; rank 1: one elastic point."""
    if rank == 0:
        E = np.tile([1e-4, -3e-5, 2e-5], (6, 1))
        E[1] = [0.03, -0.01, 0.004]
        E[3] *= 2.0
        return E
    return np.array([[-2e-4, 1e-4, 0.0]])


@pytest.mark.skipif(COMM.size != 2, reason="balancing needs 2 ranks (run under mpirun -n 2)")
@pytest.mark.parametrize("engine", list(ENGINES))
def test_balanced_evaluations_equal_each_rank_on_its_own(circle, engine):
    """The balancer serves every engine through the engine contract."""
    own, bal = j2_cell(circle, engine=engine), j2_cell(circle, engine=engine)
    bal.balance_over(COMM)
    E = strains(COMM.rank)
    partly = 0.7 * E
    partly[::2] *= 1.1  # the other points are asked for their committed answer: no solve
    for step, Es in enumerate((E, 1.3 * E, 0.7 * E, partly)):
        a = own.evaluate(Es)
        b = bal.evaluate(Es)
        for x, y in zip(a, b):
            assert np.abs(y - x).max() <= 1e-12 * np.abs(x).max()
        for key in own.bank.trial:
            assert np.abs(bal.bank.trial[key] - own.bank.trial[key]).max(initial=0.0) <= 1e-12 * max(
                np.abs(own.bank.trial[key]).max(initial=0.0), 1.0), key
        own.commit()
        bal.commit()
        if step == 0:  # unit costs at first: rank 0's first two points (one plastic) go to rank 1
            moved = COMM.allgather(bal.statistics()["moved"])
            assert moved == [0, 2]
    # afterwards by measured cost, priced by the rank that evaluated each point
    assert np.all(bal.balancer.cost > 0.0)
    reused = (len(E) // 2, 0)  # rank 0's points 1, 3, 5; rank 1's only point is solved
    assert [own.statistics()["reused"], bal.statistics()["reused"]] == [reused[COMM.rank]] * 2
    assert sum(COMM.allgather(bal.statistics()["solves"])) == 3 * 7 + 3 + 1


@pytest.mark.skipif(COMM.size != 2, reason="balancing needs 2 ranks (run under mpirun -n 2)")
@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_point_failing_on_another_rank_is_reported_by_its_home_rank(circle, engine):
    # the plastic point needs more than 2 micro iterations; it is evaluated on rank 1
    cell = j2_cell(circle, max_iterations=2, engine=engine)
    cell.balance_over(COMM)
    E = strains(COMM.rank)
    mine = None
    try:
        cell.evaluate(E)
    except SolverError as err:
        mine = err
    if COMM.rank == 0:
        assert mine is not None and mine.point == 1
        assert str(mine).startswith("RVE at macro point 1: micro Newton did not converge in 2 iterations")
        assert "(evaluated on rank 1)" in str(mine)
    else:
        assert mine is None  # rank 1's own point converged
    # as the macro problem calls it: every rank raises the failing rank's error, none hangs
    with pytest.raises(Fe2Error, match="RVE at macro point 1"):
        collective(COMM, cell.evaluate, E)
