"""RVEs on sub-communicators: ``[parallel] ranks_per_rve = k``.

An RVE too big for one core is solved by ``k`` ranks together. The world communicator is
split into groups of ``k`` consecutive ranks (:class:`RankGroups`); each group builds one
RVE template with the RVE mesh distributed over the group (the factoriser is then MUMPS,
:func:`fe2.core.linalg.rve_solver_options`; the periodic constraint spans the group's
partition), and the macro problem stays on the world communicator.

Every rank keeps its own macro points (their history included: the home of a point does
not change). :class:`GroupMaterial` is the macro material of a rank: at every evaluation
the macro gradients of all points of the group are gathered on every member, the group
solves them with the template's micro engine (every solve collective on the group; the
batched engine iterates all the group's points together, :mod:`fe2.micro.engines.batched`), and
every member takes back its own rows. With ``balance``, evaluations move between groups by
measured cost (:meth:`GroupMaterial.balance_between`). A point's micro state (fluctuation,
every phase's internal variables) is distributed over the group like the RVE mesh;
:class:`~fe2.parallel.layout.StateLayout` gathers it into one partition-independent layout per point for
checkpoints (fluctuation DOFs ordered by their coordinates, micro points by original cell
and quadrature point) and scatters it back, so a checkpoint does not depend on the
partition of the groups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
from mpi4py import MPI

from fe2.core.errors import SolverError, point_failure
from fe2.materials.base import NonlocalResponse, PointMaterial
from fe2.parallel.layout import StateLayout

__all__ = ["GroupMaterial", "RankGroups"]


class RankGroups:
    """The world communicator ``world`` split into ``world.size / k`` groups of ``k``
    consecutive ranks (collective on ``world``; ``k`` must divide the rank count).

    Attributes: ``k``, ``comm`` (this rank's group), ``index`` (of the group), ``count``
    (number of groups)."""

    def __init__(self, world: MPI.Comm, k: int) -> None:
        if k < 1 or world.size % k:
            raise ValueError(f"ranks_per_rve = {k} must be a divisor of the number of MPI ranks ({world.size})")
        self.world, self.k = world, k
        self.index, self.count = world.rank // k, world.size // k
        self.comm = world.Split(self.index, world.rank) if k > 1 else MPI.COMM_SELF
        self._peers: MPI.Comm | None = None

    @property
    def peers(self) -> MPI.Comm:
        """The ranks with this rank's place in every group (rank ``j`` of each group; the
        world when ``k = 1``): what moves a point between groups (made on first use;
        collective on the world then)."""
        if self._peers is None:
            self._peers = self.world if self.k == 1 else self.world.Split(self.comm.rank, self.index)
        return self._peers

    def free(self) -> None:
        for c in (self.comm, self._peers):
            if c is not None and c not in (MPI.COMM_SELF, self.world):
                c.Free()


class GroupMaterial(PointMaterial):
    """The macro material of a rank whose RVE template is distributed over a group
    (:class:`RankGroups`): the template evaluates the points of every member of the group
    together (collective on the group; see the module docstring)."""

    def __init__(self, template, comm: MPI.Comm) -> None:
        self.template, self.comm = template, comm
        self.kinematics, self.size = template.kinematics, template.size
        self.nonlocal_form = template.nonlocal_form
        self.linear = template.linear
        self.layout: StateLayout | None = None if template.linear else template.layout
        self.counts = [0] * comm.size
        self.stats = {"group_evaluations": 0}  # batches the group evaluated

    # --- which rows are this rank's --------------------------------------------------------
    def _gather(self, arr: np.ndarray) -> np.ndarray:
        parts = self.comm.allgather(np.asarray(arr, dtype=float))
        self.counts = [p.shape[0] for p in parts]
        return np.concatenate(parts)

    @property
    def _rows(self) -> slice:
        start = sum(self.counts[:self.comm.rank])
        return slice(start, start + self.counts[self.comm.rank])

    def _run(self, fn, *args):
        try:
            return fn(*args)
        except SolverError as err:
            if err.point is None:
                raise
            rows = self._rows
            reason = str(err).removeprefix(f"RVE at macro point {err.point}: ")
            if rows.start <= err.point < rows.stop:
                raise point_failure(err.point - rows.start, reason) from None
            owner = int(np.searchsorted(np.cumsum(self.counts), err.point, side="right"))
            echo = SolverError(f"RVE of a macro point of rank {owner} of this rank's group of {self.comm.size}: "
                               f"{reason}")
            echo.secondary = True  # (the owner's error names the point)
            raise echo from None

    # --- PointMaterial ------------------------------------------------------------------------
    def evaluate(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        E = self._gather(np.atleast_2d(grad))
        self.stats["group_evaluations"] += 1
        sigma, tangent = self._run(self.template.evaluate, E)
        rows = self._rows
        return sigma[rows], tangent[rows]

    def evaluate_nonlocal(self, grad: np.ndarray, e_nl: np.ndarray) -> NonlocalResponse:
        E = self._gather(np.atleast_2d(grad))
        e = np.concatenate(self.comm.allgather(np.asarray(e_nl, dtype=float).reshape(-1)))
        r = self._run(self.template.evaluate_nonlocal, E, e)
        rows = self._rows
        return NonlocalResponse(*(a[rows] for a in r))

    def balance_between(self, groups: RankGroups) -> bool:
        """Let the template's micro engine move evaluations between the groups by measured
        cost (:class:`fe2.parallel.balance.LoadBalancer` over :attr:`RankGroups.peers`: rank
        ``j`` of a group sends its part of a point's state to rank ``j`` of another). That
        needs every group to have the same partition of the RVE (rank ``j`` of each holds
        the same DOFs and micro points in the same order), which is checked; returns whether
        balancing is on, the same on every rank (collective on the world)."""
        t = self.template
        if t.linear or groups.count < 2:
            return False
        lay = t.layout
        digest = hashlib.sha1()
        for a in (lay.dofs, *(lay.points[k] for k in sorted(lay.points))):
            digest.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        same = len(set(groups.peers.allgather(digest.hexdigest()))) == 1
        if groups.world.allreduce(int(same), op=MPI.MIN) != 1:
            return False
        t.balance_over(groups.peers)
        return True

    def set_time_increment(self, dt: float) -> None:
        self.template.set_time_increment(dt)

    def out_of_plane_stress(self, grad: np.ndarray) -> np.ndarray | None:
        E = self._gather(np.atleast_2d(grad))
        zz = self.template.out_of_plane_stress(E)
        return None if zz is None else zz[self._rows]

    def internal_fields(self) -> dict[str, np.ndarray]:
        rows = self._rows
        return {k: v[rows] for k, v in self.template.internal_fields().items()}

    def unsettled_points(self) -> int:
        return 0 if self.linear else int(np.count_nonzero(~self.template.settled[self._rows]))

    def statistics(self) -> dict[str, float]:
        """The template's counters on the group's first rank only: every member counts the
        group's solves, which are the group's work once."""
        return {**self.template.statistics(), **self.stats} if self.comm.rank == 0 else {}

    def commit(self) -> None:
        self.template.commit()

    def revert(self) -> None:
        self.template.revert()

    def get_state(self) -> dict[str, np.ndarray]:
        if self.layout is None:
            return {}
        return self.layout.gather(self.template.bank.get_state(), self.counts)

    def unloading_tangent(self) -> np.ndarray | None:
        t = self.template.unloading_tangent()
        if t is None:
            return None
        mine = self.counts[self.comm.rank]
        return np.broadcast_to(t[0], (mine, *t.shape[1:])) if len(t) else np.zeros((0, *t.shape[1:]))

    def upgrade_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.template.upgrade_state(state)

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        if self.layout is None:
            return
        n = len(next(iter(state.values()))) if state else 0
        self.counts = self.comm.allgather(n)
        self.template.set_local_state(self.layout.scatter(state))
