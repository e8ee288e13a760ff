"""RVEs distributed over a group of ranks (fe2.parallel.groups, ``ranks_per_rve``).

Under ``mpirun -n 2`` the template is distributed over both ranks (one group) and every
rank has its own macro points (a different number on each); the group's answers for a
rank's points, with either micro engine, equal those of a one-process template evaluating
all the points (the batched engine) to 1e-10: stresses, consistent tangents, internal variables, plane strain's
sigma_zz and the committed state gathered into the partition-independent layout, for J2,
local damage and driven (gradient-regularized) damage. Serially the group is one rank and
the same checks hold exactly."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core import tensors as T
from fe2.materials import LinearElastic
from fe2.materials.damage import IsotropicDamage
from fe2.materials.plasticity import J2Plasticity
from fe2.micro.cell import CellProblem
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.phases import Phase
from fe2.parallel.groups import GroupMaterial, RankGroups
from fe2.parallel.layout import StateLayout
from helpers import rel, structured_rve

WORLD = MPI.COMM_WORLD


def inclusion(comm, n=6):
    """The unit cell with a centred square inclusion (tag 2), on ``comm``."""
    return structured_rve(2, n, lambda m: np.where(np.all(np.abs(m[:, :2] - 0.5) < 0.25, axis=1), 2, 1), comm=comm)


def phases(kind):
    if kind == "j2":
        matrix = J2Plasticity(1.0, 0.3, 0.01, 2, H_iso=0.05, Q=0.01, b=30.0, H_kin=0.02)
    else:
        matrix = IsotropicDamage(1.0, 0.2, 1e-3, 2, softening="exponential", beta=100.0)
    stiff = 10.0 if kind == "j2" else 5.0
    return [Phase("matrix", 1, law=matrix), Phase("inclusion", 2, law=LinearElastic.isotropic(stiff, 0.2, 2))]


def directions(N):
    """Pulled along x, each point in its own mix of the other components."""
    rng = np.random.default_rng(7)
    return np.array([1.0, -0.2, 0.3]) + rng.uniform(-0.05, 0.05, (N, 3)) * [0.0, 1.0, 1.0]


def counts(size):
    """Points per rank: 3, 2, 3, 2, ... (unequal on purpose)."""
    return [3 - r % 2 for r in range(size)]


@pytest.mark.parametrize("engine", ["batched", "reference"])
@pytest.mark.parametrize("kind, degree", [("j2", 1), ("j2", 2), ("damage", 1), ("driven", 1)])
def test_group_answers_equal_one_process_for_every_rank_s_points(kind, degree, engine):
    driven = kind == "driven"
    law = "damage" if driven else kind
    group = GroupMaterial(template(WORLD, law, degree, engine), WORLD)
    alone = template(MPI.COMM_SELF, law, degree, "batched")
    per = counts(WORLD.size)
    start, N = sum(per[:WORLD.rank]), sum(per)
    mine = slice(start, start + per[WORLD.rank])
    D = directions(N)
    # into plasticity, or damage up to the RVE's peak, committed step by step
    peak = 0.02 if law == "j2" else 0.7e-3
    for t in np.linspace(0.4 * peak, peak, 3) if law == "j2" else np.linspace(0.4e-3, peak, 7):
        E = t * D
        if driven:
            e_nl = np.linspace(0.9, 1.0, N) * t
            a, b = group.evaluate_nonlocal(E[mine], e_nl[mine]), alone.evaluate_nonlocal(E, e_nl)
            for x, y in zip(a, b):  # (dSigma/de_nl is zero until the RVE damages)
                assert close(np.asarray(x), np.asarray(y)[mine], 1e-10)
        else:
            (s1, C1), (s2, C2) = group.evaluate(E[mine]), alone.evaluate(E)
            assert rel(s1, s2[mine]) < 1e-10 and rel(C1, C2[mine]) < 1e-10
        group.commit()
        alone.commit()
    f1, f2 = group.internal_fields(), alone.internal_fields()
    assert sorted(f1) == sorted(f2) and f1
    for name in f1:
        assert close(f1[name], f2[name][mine], 1e-10)
    name = "equivalent_plastic_strain" if law == "j2" else "damage"
    assert WORLD.allreduce(float(f1[name].min()), op=MPI.MIN) > 0.0  # every point yielded or damaged
    z1, z2 = group.out_of_plane_stress(E[mine]), alone.out_of_plane_stress(E)
    assert z2 is not None and rel(z1, z2[mine]) < 1e-10
    # the gathered state: one process's layout, point by point
    g, s = group.get_state(), alone.get_state()
    assert sorted(g) == sorted(s)
    for key in g:
        assert g[key].shape == s[key][mine].shape, key
        assert close(g[key], s[key][mine], 1e-10), key
    # and scattered back: the next step from a state set from one process's checkpoint
    group.set_state({k: v[mine] for k, v in s.items()})
    t = 1.1 * peak if law == "j2" else 0.95 * peak  # (damage: unloading, secant from the state set)
    E = t * D
    if driven:
        a = group.evaluate_nonlocal(E[mine], t * np.ones(N)[mine])
        b = alone.evaluate_nonlocal(E, t * np.ones(N))
        assert rel(a.flux, b.flux[mine]) < 1e-10 and rel(a.tangent, b.tangent[mine]) < 1e-10
    else:
        (s1, C1), (s2, C2) = group.evaluate(E[mine]), alone.evaluate(E)
        assert rel(s1, s2[mine]) < 1e-10 and rel(C1, C2[mine]) < 1e-10


def close(a, b, tol):
    """``a`` equals ``b`` to ``tol`` relative to ``b``'s largest entry (both may be zero)."""
    return np.abs(a - b).max(initial=0.0) <= tol * np.abs(b).max(initial=0.0)


def template(comm, law, degree, engine, boundary="periodic"):
    """The nonlinear template on ``comm`` with micro ``engine``."""
    return NonlinearCellProblem(inclusion(comm, 6 if degree == 1 else 3), phases(law), degree=degree, rtol=1e-12,
                                engine=engine, boundary=boundary)


@pytest.mark.parametrize("boundary", ["minimal", "linear"])
def test_group_batched_engine_with_other_micro_boundary_conditions(boundary):
    """The minimal condition's Lagrange multipliers (rows of rank 0 in the distributed
    Jacobian) and the linear one's pinned boundary: the group's batched engine equals the
    one-process answers and the group's reference engine, into plasticity."""
    batched, reference = (GroupMaterial(template(WORLD, "j2", 1, e, boundary), WORLD) for e in ("batched", "reference"))
    alone = template(MPI.COMM_SELF, "j2", 1, "batched", boundary)
    per = counts(WORLD.size)
    start, N = sum(per[:WORLD.rank]), sum(per)
    mine = slice(start, start + per[WORLD.rank])
    for t in (0.008, 0.02):
        E = t * directions(N)
        (s1, C1), (s2, C2), (s3, C3) = batched.evaluate(E[mine]), reference.evaluate(E[mine]), alone.evaluate(E)
        assert rel(s1, s3[mine]) < 1e-10 and rel(C1, C3[mine]) < 1e-10
        assert rel(s2, s3[mine]) < 1e-10 and rel(C2, C3[mine]) < 1e-10
        for m in (batched, reference, alone):
            m.commit()
    assert batched.template.statistics()["factorisations"] > 0  # plastic: its own Jacobians, distributed
    assert rel(C1, np.broadcast_to(alone.effective_tensor, C1.shape)) > 1e-2  # (not the elastic tangent)


def test_linear_template_on_a_group_gives_one_process_tensor_and_sigma_zz():
    rm = [inclusion(c) for c in (WORLD, MPI.COMM_SELF)]
    ph = [Phase("matrix", 1, law=LinearElastic.isotropic(1.0, 0.3, 2)),
          Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, 2))]
    dist, alone = (CellProblem(r, ph) for r in rm)
    group = GroupMaterial(dist, WORLD)
    E = directions(2 + WORLD.rank) * 1e-3
    (s1, C1), (s2, C2) = group.evaluate(E), alone.evaluate(E)
    assert rel(s1, s2) < 1e-12 and rel(C1, C2) < 1e-12
    assert rel(group.out_of_plane_stress(E), alone.out_of_plane_stress(E)) < 1e-12
    assert group.get_state() == {} and group.internal_fields() == {}
    # the effective tensor is the phase average's lower bound in the Loewner order: a real solve
    assert np.linalg.eigvalsh(alone.mean_tensor - dist.effective_tensor).min() > 1e-3
    assert rel(dist.effective_tensor, T.isotropic_stiffness(1.0, 0.3, 2)) > 0.1


def test_state_layout_orders_dofs_by_coordinates_and_points_by_original_cell():
    """The canonical layout of one process: DOF blocks sorted by (x, y), micro points by
    (original cell, point); a second template on the same mesh gets the same layout."""
    cell = NonlinearCellProblem(inclusion(MPI.COMM_SELF, n=3), phases("j2"), rtol=1e-12)
    lay = cell.layout
    X = cell.V.tabulate_dof_coordinates()[:, :2]
    bs = cell.V.dofmap.index_map_bs
    blocks = lay.dofs[::bs] // bs
    ordered = np.empty_like(X)
    ordered[blocks] = X
    assert np.all(np.lexsort(ordered.T[::-1]) == np.arange(len(X)))  # (x first, then y)
    assert np.all(lay.dofs.reshape(-1, bs) == blocks[:, None] * bs + np.arange(bs))
    for key, idx in zip(cell._state_keys, cell.phase_points):
        assert sorted(lay.points[key].tolist()) == list(range(idx.size))
    again = StateLayout(cell.space, cell.quadrature, dict(zip(cell._state_keys, cell.phase_points)),
                        (cell.box_min, cell.box_max))
    assert np.all(again.dofs == lay.dofs)


@pytest.mark.parametrize("k", [0, 3])
def test_rank_groups_refuse_a_size_that_does_not_divide_the_ranks(k):
    if k == 3 and WORLD.size % 3 == 0:
        pytest.skip("3 divides the rank count")
    with pytest.raises(ValueError, match=f"ranks_per_rve = {k} must be a divisor of the number of MPI ranks"):
        RankGroups(WORLD, k)


def test_rank_groups_are_consecutive_ranks():
    groups = RankGroups(WORLD, WORLD.size)
    assert groups.comm.size == WORLD.size and groups.count == 1 and groups.index == 0
    assert groups.comm.allgather(WORLD.rank) == list(range(WORLD.size))
    ones = RankGroups(WORLD, 1)
    assert ones.comm.size == 1 and ones.count == WORLD.size and ones.index == WORLD.rank
    groups.free()
