"""A macro material made of several phases: one constitutive law per cell tag.

:class:`PhaseMaterial` lets :class:`fe2.macro.problem.MacroProblem` solve a *fully resolved*
heterogeneous body (a direct numerical simulation, DNS): the mesh resolves every
inclusion, its cells carry phase tags, and each quadrature point gets the law of the
phase of its cell. It is a :class:`~fe2.materials.base.PointMaterial`: the points are the
owned quadrature points of the mesh in the order the macro problem hands them over
(:meth:`fe2.macro.problem.MacroProblem.point_labels`): owned cells ``0 .. num_owned - 1``
(local numbering), and inside each cell its quadrature points.

The points are grouped by phase once; each group's state is one array ``phase_<tag>`` of
the state bank, so :meth:`evaluate` is one vectorised law call per phase (no loop over
points) and :meth:`commit` / :meth:`revert` are the bank's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fe2.materials.base import Law, NonlocalResponse, PointMaterial, virgin_tangent
from fe2.materials.points import evaluate_law
from fe2.materials.state import StateBank

__all__ = ["PhaseMaterial"]


class PhaseMaterial(PointMaterial):
    """Quadrature points of a tagged mesh, each with the law of its cell's tag.

    Parameters
    ----------
    cell_tags : dolfinx ``MeshTags`` on the cells of the mesh (local indices, ghosts may be
        included); every owned cell must carry a tag that ``laws`` knows
    laws : tag -> law (:class:`fe2.materials.base.Law`); all of the same ``size`` and
        ``kinematics``
    num_points_per_cell : quadrature points per cell; by default deduced at the first
        :meth:`evaluate` from the number of points handed over (it must then be a multiple
        of the number of owned cells)

    Not collective: every rank serves its own owned points.
    """

    def __init__(self, cell_tags, laws: Mapping[int, Law], num_points_per_cell: int | None = None) -> None:
        if not laws:
            raise ValueError("PhaseMaterial needs at least one law")
        self.laws = {int(t): law for t, law in laws.items()}
        sizes = {law.size for law in self.laws.values()}
        kinematics = {law.kinematics for law in self.laws.values()}
        if len(sizes) != 1 or len(kinematics) != 1:
            raise ValueError(f"the laws of a PhaseMaterial must share size and kinematics, got sizes {sorted(sizes)} "
                             f"and kinematics {sorted(kinematics)}")
        self.size = sizes.pop()
        self.kinematics = kinematics.pop()
        self.nonlocal_form = all(law.driven for law in self.laws.values())
        topology = cell_tags.topology
        tdim = topology.dim
        if cell_tags.dim != tdim:
            raise ValueError(f"cell_tags must tag cells (dimension {tdim}), got dimension {cell_tags.dim}")
        imap = topology.index_map(tdim)
        self.num_owned_cells = nown = imap.size_local
        tag_of = np.full(nown + imap.num_ghosts, -1, dtype=np.int64)
        tag_of[cell_tags.indices] = cell_tags.values
        self.cell_tag = tag_of[:nown]
        unknown = sorted(set(np.unique(self.cell_tag).tolist()) - set(self.laws))
        if unknown:
            raise ValueError(f"owned cells with tags {unknown} have no law (laws for tags {sorted(self.laws)}; "
                             "-1 means an untagged cell)")
        self.bank = StateBank()
        self.num_points_per_cell: int | None = None
        self.groups: dict[int, np.ndarray] = {}
        if num_points_per_cell is not None:
            self._group(int(num_points_per_cell))

    def _group(self, nq: int) -> None:
        self.num_points_per_cell = nq
        point_tag = np.repeat(self.cell_tag, nq)
        self.groups = {t: np.flatnonzero(point_tag == t) for t in self.laws}
        for t, idx in self.groups.items():
            self.bank.allocate(self._key(t), self.laws[t].initial_state(1)[0], idx.size)

    @staticmethod
    def _key(tag: int) -> str:
        return f"state_{tag}"

    @property
    def num_points(self) -> int:
        """Owned points served (0 before the first :meth:`evaluate` if ``num_points_per_cell`` was not given)."""
        return 0 if self.num_points_per_cell is None else self.num_owned_cells * self.num_points_per_cell

    def _checked(self, grad: np.ndarray) -> np.ndarray:
        grad = np.atleast_2d(np.asarray(grad, dtype=float))
        N, n = grad.shape
        if n != self.size:
            raise ValueError(f"gradients have {n} components, the laws {self.size}")
        if self.num_points_per_cell is None:
            if (N % self.num_owned_cells if self.num_owned_cells else N):
                raise ValueError(f"{N} points cannot be {self.num_owned_cells} owned cells x a number of "
                                 "quadrature points")
            self._group(N // self.num_owned_cells if self.num_owned_cells else 1)
        elif N != self.num_points:
            raise ValueError(f"expected {self.num_points} points ({self.num_owned_cells} owned cells x "
                             f"{self.num_points_per_cell}), got {N}")
        return grad

    def _evaluate(self, grad: np.ndarray, e_nl: np.ndarray | None) -> tuple[np.ndarray, ...]:
        grad = self._checked(grad)
        N, n = grad.shape
        if e_nl is None:
            out = [np.empty((N, n)), np.empty((N, n, n))]
        else:
            out = [np.empty((N, n)), np.empty((N, n, n)), np.empty((N, n)), np.empty(N), np.empty((N, n)),
                   np.empty(N)]
        for t, idx in self.groups.items():
            if idx.size:
                key = self._key(t)
                values, self.bank.trial[key] = evaluate_law(self.laws[t], grad[idx], self.bank.committed[key],
                                                            None if e_nl is None else np.asarray(e_nl)[idx])
                for o, v in zip(out, values):
                    o[idx] = v
        return tuple(out)

    def unloading_tangent(self) -> np.ndarray | None:
        """Each point's law's virgin (elastic) tangent, for small-strain laws that do not
        soften (None otherwise, or before the points are known)."""
        if self.kinematics != "small" or self.num_points_per_cell is None or any(
                law.driven for law in self.laws.values()):
            return None
        n = self.size
        out = np.empty((self.num_points, n, n))
        for t, idx in self.groups.items():
            out[idx] = virgin_tangent(self.laws[t])
        return out

    def evaluate(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes ``(N, n)`` and tangents ``(N, n, n)`` of all owned points, each phase's
        points from their committed state (which becomes the trial state)."""
        return self._evaluate(grad, None)

    def evaluate_nonlocal(self, grad: np.ndarray, e_nl: np.ndarray) -> NonlocalResponse:
        """:meth:`fe2.materials.points.MaterialPoints.evaluate_nonlocal` phase by phase (every
        law must be driven)."""
        return NonlocalResponse(*self._evaluate(grad, e_nl))

    def set_time_increment(self, dt: float) -> None:
        """Forward the pseudo-time increment to every rate-dependent law."""
        for law in self.laws.values():
            if law.rate_dependent:
                law.set_time_increment(dt)

    def internal_fields(self) -> dict[str, np.ndarray]:
        """Committed internal variables per point (0 where a phase's law has none)."""
        out: dict[str, np.ndarray] = {}
        for t, idx in self.groups.items():
            for name, vals in self.laws[t].fields(self.bank.committed[self._key(t)]).items():
                out.setdefault(name, np.zeros(self.num_points))[idx] = vals
        return out

    def committed_state(self, tag: int) -> np.ndarray:
        """The committed internal state of the points of phase ``tag``, ``(points, state_size)``,
        in the order of :attr:`groups` ``[tag]`` (not collective)."""
        return self.bank.committed[self._key(int(tag))]
