"""The partition-independent layout of an RVE's per-point state.

A nonlinear RVE template keeps, for every macro point, its fluctuation (the template's
owned condensed DOFs) and every phase's internal variables (its owned micro points). On a
template distributed over a group of ranks (``[parallel] ranks_per_rve``) each process
holds its own part, ordered as its partition happens to be. :class:`StateLayout` gathers
a point's parts into one layout that no partition decides (fluctuation DOFs ordered by
their coordinates, micro points by original cell and quadrature point) and scatters such a
layout back, so that a checkpoint can be read on any number of ranks and with any
``ranks_per_rve``; on one process it is the permutation from the template's order to that
layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

from fe2.core.errors import SolverError

if TYPE_CHECKING:
    from fe2.core.quadrature import QuadraturePoints
    from fe2.micro.space import CondensedSpace

__all__ = ["StateLayout"]


def _positions(keys: np.ndarray, comm: MPI.Comm, what: str) -> np.ndarray:
    """The position of each local row of integer ``keys`` ``(m, d)`` in the lexicographic
    order of all processes' rows (collective; every row must be unique)."""
    parts = comm.allgather(np.ascontiguousarray(keys))
    every = np.concatenate(parts)
    order = np.lexsort(every.T[::-1])
    ranked = every[order]
    if ranked.shape[0] > 1 and np.any(np.all(ranked[1:] == ranked[:-1], axis=1)):
        raise SolverError(f"the RVE's {what} have no unique partition-independent order (two share a key)")
    position = np.empty(every.shape[0], dtype=np.int64)
    position[order] = np.arange(every.shape[0])
    start = sum(p.shape[0] for p in parts[:comm.rank])
    return position[start:start + keys.shape[0]]


class StateLayout:
    """The partition-independent layout of a nonlinear template's per-point state
    (collective on the template's communicator; see the module docstring).

    The state arrays of :meth:`fe2.micro.nonlinear.NonlinearCellProblem.get_state` are
    ``(N, ...)``; ``w`` and ``predictor_dwdE`` are distributed along axis 1 as the
    template's owned fluctuation DOFs, ``state_<phase>`` as its owned micro points of the
    phase; the others are the same on every process."""

    def __init__(self, space: CondensedSpace, quadrature: QuadraturePoints, points: Mapping[str, np.ndarray],
                 box: tuple[np.ndarray, np.ndarray]) -> None:
        """``space``: the template's fluctuation space; ``quadrature``: its micro points;
        ``points``: the owned micro points of each state key (a phase's); ``box``: the
        cell's ``(box_min, box_max)``."""
        self.comm = comm = space.comm
        V = space.V
        bs, owned = V.dofmap.index_map_bs, V.dofmap.index_map.size_local
        if space.nloc != bs * owned:
            raise SolverError(f"the RVE's condensed space has {space.nloc} local rows, not the {bs * owned} owned "
                              "DOFs")
        box_min, box_max = (np.asarray(b, float) for b in box)
        quantum = 1e-9 * float(np.max(box_max - box_min))  # coordinates on a grid far below any mesh size
        X = V.tabulate_dof_coordinates()[:owned, :box_min.size]
        blocks = _positions(np.round((X - box_min) / quantum).astype(np.int64), comm, "fluctuation DOFs")
        #: canonical position of each local entry of ``w``
        self.dofs = (blocks[:, None] * bs + np.arange(bs)).ravel()
        self.num_dofs = comm.allreduce(self.dofs.size)
        qp = quadrature
        original = np.asarray(space.mesh.topology.original_cell_index, dtype=np.int64)[qp.cells]
        ids = (original[:, None] * qp.num_points_per_cell + np.arange(qp.num_points_per_cell)).ravel()
        #: per phase key: canonical position of each local micro point of the phase
        self.points = {key: _positions(ids[idx][:, None], comm, "micro points") for key, idx in points.items()}
        self.totals = {key: comm.allreduce(pos.size) for key, pos in self.points.items()}

    def _positions_of(self, key: str) -> tuple[np.ndarray, int] | None:
        if key in ("w", "predictor_dwdE"):
            return self.dofs, self.num_dofs
        if key in self.points:
            return self.points[key], self.totals[key]
        return None

    def gather(self, state: Mapping[str, np.ndarray], counts: list[int]) -> dict[str, np.ndarray]:
        """The rows of this process (``counts[r]`` consecutive rows per process ``r``) of the
        distributed ``state``, each point whole and in the canonical layout (collective)."""
        comm = self.comm
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        mine = slice(starts[comm.rank], starts[comm.rank + 1])
        out: dict[str, np.ndarray] = {}
        for key, arr in state.items():
            where = self._positions_of(key)
            if where is None:
                out[key] = np.array(arr[mine])
                continue
            pos, total = where
            parts = comm.alltoall([(pos, arr[starts[r]:starts[r + 1]]) for r in range(comm.size)])
            full = np.zeros((counts[comm.rank], total, *arr.shape[2:]))
            for p, a in parts:
                full[:, p] = a
            out[key] = full
        return out

    def scatter(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inverse of :meth:`gather`: every process's rows in canonical layout to the
        distributed state of all rows of the group, in process order (collective)."""
        comm = self.comm
        out: dict[str, np.ndarray] = {}
        for key, arr in state.items():
            every = comm.allgather(np.asarray(arr))
            where = self._positions_of(key)
            full = np.concatenate(every)
            out[key] = full if where is None else np.ascontiguousarray(full[:, where[0]])
        return out
