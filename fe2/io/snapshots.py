"""RVE snapshots: the micro fields of the RVE at chosen macro points, to see the mechanism
behind the macro response.

Each ``[[output.rve_snapshots]]`` entry (:class:`fe2.io.config.SnapshotConfig`) chooses a
macro quadrature point -- the one nearest to given coordinates, or the one where an internal
variable of the RVE (``damage``, ``equivalent_plastic_strain``, ...) is largest at the step
-- and the steps to write. At each of those converged steps the rank that owns the point
(with ``ranks_per_rve > 1``: its group, over which the RVE is distributed) writes
``rve_snapshots/<name>_<step>.xdmf`` (+ ``.h5``) on the RVE mesh, laid out as
``fields.xdmf`` (:class:`fe2.io.results.FieldWriter`; time = the step's pseudo-time):

- ``displacement`` (conduction: ``temperature``) at the nodes: the micro field
  ``H (y - y_c) + w``, with ``H`` the macro displacement gradient (the strain; finite strain
  ``F - I``; conduction the temperature gradient), ``y_c`` the cell's centre and ``w`` the
  fluctuation, also written on its own as ``fluctuation``;
- ``strain`` and ``stress`` (conduction ``temperature_gradient`` and ``heat_flux``) as cell
  averages of the micro points, ``von_mises_stress``, ``equivalent_strain``;
- the internal variables of the phase laws (cell averages) and ``phase`` (the cell's tag).

The micro fields are those of the point's committed state (:meth:`fe2.micro.cell.CellProblem.snapshot`):
their volume average is the macro stress at the point. Where the point is and what it
carries (coordinates, macro gradient and stress, the RVE's average stress) goes into that
step's entry of ``summary.json`` under ``rve_snapshots``.

The choice is independent of the number of ranks: of equally near points (or equal values)
the one with the smallest coordinates, x first, is taken.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from dolfinx import fem
from mpi4py import MPI

from fe2.core.errors import ConfigError, Fe2Error, collective, on_root
from fe2.core.tensors import mandel_to_tensor
from fe2.io.config import SnapshotConfig
from fe2.io.results import FieldWriter
from fe2.macro.problem import MacroProblem
from fe2.micro.cell import CellProblem
from fe2.parallel.groups import GroupMaterial

__all__ = ["FOLDER", "Snapshots"]

#: the snapshots' folder in the results folder
FOLDER = "rve_snapshots"
#: the layout of ``macro_gradient``, ``macro_stress`` and ``rve_average_stress`` in the
#: summary, by kinematics (the vectors fe2 computes with)
NOTATION = {"small": "mandel (xx, yy, [zz, yz, xz,] xy; shear times sqrt 2)",
            "finite": "F and P row-major (11, 12, [13,] 21, ...)", "scalar": "vectors (x, y[, z])"}
#: values within this relative distance of the largest count as equal (round-off of the partition)
TIE = 1e-10


class Snapshots:
    """The RVE snapshots of a run (collective on ``problem.comm``): ``specs`` as parsed,
    checked against the problem here (a one-line :class:`~fe2.core.errors.ConfigError`
    naming ``source`` and the key otherwise); :meth:`write` after every converged step."""

    def __init__(self, specs: Sequence[SnapshotConfig], problem: MacroProblem, outdir: str | Path,
                 source: str, planned: int | None = None) -> None:
        """``planned``: the number of steps the run plans (None: not known in advance), for
        the warning about snapshot steps beyond it."""
        self.specs = tuple(specs)
        self.problem = problem
        self.comm: MPI.Comm = problem.comm
        self.folder = Path(outdir) / FOLDER
        #: the RVE template, and the group of ranks it is distributed over (None: one rank)
        self.group: GroupMaterial | None = problem.material if isinstance(problem.material, GroupMaterial) else None
        self.cell = cell = problem.material if self.group is None else self.group.template
        if self.specs and not isinstance(cell, CellProblem):
            raise ConfigError(f"{source}: key 'output.rve_snapshots' needs an RVE at every macro point "
                              f"(macro.material = 'rve')")
        known = sorted(problem.internal_fields())
        for i, spec in enumerate(self.specs):
            key = f"{source}: key 'output.rve_snapshots[{i}]"
            if spec.point is not None and len(spec.point) != problem.gdim:
                raise ConfigError(f"{key}.point' must have {problem.gdim} coordinates (the macro mesh is "
                                  f"{problem.gdim}D), got {list(spec.point)!r}")
            if spec.max is not None and spec.max not in known:
                raise ConfigError(f"{key}.max' = {spec.max!r} is not an internal variable of this RVE ("
                                  + (f"it has {', '.join(known)}" if known else "its phases have none: they are "
                                     "elastic") + "); give 'point' instead")
        self._scale = 1.0
        #: what looks like a mistake but runs (one line each, naming the key)
        self.warnings: list[str] = []
        lo = hi = np.zeros(problem.gdim)
        if self.specs:
            x = problem.mesh.geometry.x[:, :problem.gdim]
            lo = x.min(axis=0) if x.size else np.full(problem.gdim, np.inf)
            hi = x.max(axis=0) if x.size else np.full(problem.gdim, -np.inf)
            self.comm.Allreduce(MPI.IN_PLACE, lo, op=MPI.MIN)
            self.comm.Allreduce(MPI.IN_PLACE, hi, op=MPI.MAX)
            self._scale = float(np.max(hi - lo)) or 1.0
        coords = problem.point_coordinates() if self.specs else None
        for i, spec in enumerate(self.specs):
            if spec.point is None:
                continue
            point = np.asarray(spec.point, dtype=float)
            d = np.linalg.norm(coords - point, axis=1)
            near = self.comm.allreduce(float(d.min()) if d.size else np.inf, op=MPI.MIN)
            outside = float(np.linalg.norm(np.maximum(lo - point, 0.0) + np.maximum(point - hi, 0.0)))
            if outside > self.FAR * self._scale:
                self.warnings.append(f"{source}: key 'output.rve_snapshots[{i}].point' = {list(spec.point)} lies "
                                     f"outside the macro mesh, {near:.3g} from the nearest macro quadrature point "
                                     f"(the mesh spans {self._scale:.3g}): the snapshot shows that point")
        if planned is not None:
            for i, spec in enumerate(self.specs):
                later = [k for k in (() if isinstance(spec.steps, str) else spec.steps) if k > planned]
                if later:
                    self.warnings.append(f"{source}: key 'output.rve_snapshots[{i}].steps': step"
                                         f"{'s' if len(later) > 1 else ''} {', '.join(map(str, later))} lie"
                                         f"{'' if len(later) > 1 else 's'} beyond the {planned} steps the run plans "
                                         "(written only if steps are cut back)")

    #: a snapshot point farther than this times the mesh's extent outside its bounding box is warned about
    FAR = 0.05

    def describe(self) -> str:
        """One line: each snapshot's files, point and steps."""
        def steps(s: SnapshotConfig) -> str:
            return s.steps if isinstance(s.steps, str) else " ".join(map(str, s.steps))
        return ", ".join(f"{FOLDER}/{s.name}_<step>.xdmf ("
                         + (f"nearest {tuple(s.point)}" if s.point is not None else f"largest {s.max}")
                         + f", steps {steps(s)})" for s in self.specs)

    def due(self, step: int) -> list[SnapshotConfig]:
        """The snapshots to write at step ``step``."""
        return [s for s in self.specs if isinstance(s.steps, str) or step in s.steps]

    def write(self, step: int, t: float) -> list[dict[str, Any]]:
        """Write the snapshots due at converged step ``step`` (pseudo-time ``t``) from the
        committed state; what each one shows, the same on every rank (collective)."""
        out = []
        due = self.due(step)
        # the internal variables once for all snapshots of the step (collective on a group)
        fields = self.problem.internal_fields() if any(s.max is not None for s in due) else {}
        for spec in due:
            rank, index = self.choose(spec, fields)
            out.append(self._write_one(spec, step, t, rank, index, fields))
            if spec.steps == "last":
                on_root(self.comm, _remove_others, self.folder, spec.name, step)
        return out

    def forget_replaced(self, rows: list[dict[str, Any]]) -> None:
        """Drop from the summary ``rows`` of earlier steps the entries of the snapshots with
        ``steps = "last"``, whose files the newest step's replaced (not collective)."""
        last = {s.name for s in self.specs if s.steps == "last"}
        for row in rows[:-1]:
            kept = [m for m in row.get("rve_snapshots", ()) if m["name"] not in last]
            if kept:
                row["rve_snapshots"] = kept
            else:
                row.pop("rve_snapshots", None)

    def choose(self, spec: SnapshotConfig, fields: dict[str, np.ndarray]) -> tuple[int, int]:
        """``(rank, local index)`` of the macro point of ``spec`` at the committed state, whose
        internal variables are ``fields`` (collective)."""
        p = self.problem
        coords = p.point_coordinates()
        if spec.point is not None:
            score = -np.linalg.norm(coords - np.asarray(spec.point, dtype=float), axis=1)
        else:
            score = fields[spec.max]
        return _best(score, np.round(coords / self._scale, 10), self.comm)

    def _write_one(self, spec: SnapshotConfig, step: int, t: float, rank: int, index: int,
                   fields: dict[str, np.ndarray]) -> dict[str, Any]:
        p = self.problem
        name = f"{spec.name}_{step:04d}.xdmf"
        group = self.group
        k = 1 if group is None else group.comm.size

        def write() -> dict[str, Any] | None:
            if self.comm.rank // k != rank // k:  # not the owner's group
                return None
            E = p.strains_at_points()[index] if self.comm.rank == rank else None
            at = index  # the point's index in the template
            if group is not None:  # the owner's group writes its template's snapshot together
                E = group.comm.bcast(E, root=rank % k)
                at = sum(group.counts[:rank % k]) + index
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                average = _write_rve(self.cell, E, at, self.folder / name, t)
            except (OSError, RuntimeError) as err:  # a folder that cannot be, HDF5 or dolfinx failing to write
                why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                raise Fe2Error(f"{self.folder / name}: the RVE snapshot cannot be written ({why})") from None
            if self.comm.rank != rank:
                return None
            cell, q = p.point_labels()[index]
            meta = {"name": spec.name, "file": f"{FOLDER}/{name}", "step": step, "time": t,
                    "point": p.point_coordinates()[index].tolist(), "macro_cell": int(cell),
                    "quadrature_point": int(q), "rank": rank, "macro_gradient": E.tolist(),
                    "macro_stress": p.stresses_at_points()[index].tolist(), "rve_average_stress": average.tolist(),
                    "notation": NOTATION[p.kinematics]}
            if spec.max is not None:
                meta[spec.max] = float(fields[spec.max][index])
            return meta

        return self.comm.bcast(collective(self.comm, write), root=rank)


def _best(score: np.ndarray, keys: np.ndarray, comm: MPI.Comm) -> tuple[int, int]:
    """``(rank, index)`` of the largest ``score`` over all ranks; of those within :data:`TIE`
    of it, the smallest ``keys`` row (lexicographic, first column first), then the lowest rank."""
    mine = None
    if score.size:
        i = _pick(score, keys)
        mine = (float(score[i]), tuple(keys[i]), comm.rank, int(i))
    cands = [c for c in comm.allgather(mine) if c is not None]
    if not cands:
        raise Fe2Error("no macro quadrature point on any rank")
    scores = np.array([c[0] for c in cands])
    j = _pick(scores, np.array([c[1] for c in cands]))
    return cands[j][2], cands[j][3]


def _pick(score: np.ndarray, keys: np.ndarray) -> int:
    top = float(score.max())
    tied = np.flatnonzero(score >= top - TIE * abs(top))
    order = np.lexsort(keys[tied].T[::-1])  # lexsort sorts by its last key first
    return int(tied[order[0]])


def _write_rve(cell: CellProblem, E: np.ndarray, index: int, path: Path, t: float) -> np.ndarray:
    """Write the snapshot of macro point ``index`` (committed macro gradient ``E``) to
    ``path``; the volume average of its micro flux (on the template's process)."""
    fields = cell.snapshot(E, index)
    qp = cell.quadrature
    w = fields.fluctuation
    u = fem.Function(w.function_space, name="displacement")
    H = _displacement_gradient(cell, E)
    centre = 0.5 * (cell.box_min + cell.box_max)
    gdim = cell.gdim
    scalar = cell.kinematics == "scalar"
    u.interpolate(lambda x: (H @ (x[:gdim] - centre[:, None]))[0] if scalar else H @ (x[:gdim] - centre[:, None]))
    u.x.array[:] += w.x.array
    scalars = {name: qp.cell_average(v) for name, v in fields.fields.items()}
    scalars["phase"] = cell.owned_cell_tags.astype(float)
    writer = FieldWriter(path, cell.mesh, cell.kinematics)
    writer.write(t, u, qp.cell_average(fields.gradient), qp.cell_average(fields.flux), scalars=scalars,
                 nodal={"fluctuation": w},
                 out_of_plane=None if fields.out_of_plane is None else qp.cell_average(fields.out_of_plane))
    return cell.comm.allreduce(qp.volumes @ fields.flux, op=MPI.SUM) / cell.volume


def _displacement_gradient(cell: CellProblem, E: np.ndarray) -> np.ndarray:
    """The macro gradient as the matrix ``H`` of the micro field's affine part ``H (y - y_c)``:
    the strain tensor (small strain), ``F - I`` (finite strain), or the temperature gradient
    as a row (conduction)."""
    g = cell.gdim
    if cell.kinematics == "scalar":
        return np.asarray(E, dtype=float).reshape(1, g)
    if cell.kinematics == "small":
        return mandel_to_tensor(np.asarray(E, dtype=float))
    return np.asarray(E, dtype=float).reshape(g, g) - np.eye(g)


def _remove_others(folder: Path, name: str, step: int) -> None:
    """Remove the files of snapshot ``name`` of steps other than ``step`` (steps = "last")."""
    pattern = re.compile(rf"{re.escape(name)}_(\d+)\.(xdmf|h5)")
    for path in folder.glob(f"{name}_*"):
        m = pattern.fullmatch(path.name)
        if m and int(m.group(1)) != step:
            path.unlink()
