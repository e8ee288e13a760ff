"""Checkpoints: what a run needs to go on after its last converged step, on any number of ranks.

A checkpoint is a folder ``<results>/checkpoint/step-NNNNNN/`` with one HDF5 file per
rank that wrote it (``rank-RRRR.h5``, through h5py) and ``<results>/checkpoint/latest.json``
naming the newest complete one. Every rank writes its file into ``step-NNNNNN.tmp/``; when
all are written, rank 0 renames the folder and then replaces ``latest.json`` atomically, so
a kill at any moment leaves the previous checkpoint intact and named; older ones are
removed after that.

What a rank's file holds, keyed so that a restart on another number of ranks finds it
(partition-independent ids: the macro mesh's *original* cell index, the one of the mesh
file or generator, which does not depend on the partition):

- ``cells``: original index of each owned macro cell; ``fields/<name>``: the values of
  each macro field on the cell's dofs (``x``: the committed solution, displacement and
  nonlocal strain together; ``x_prev``: the solution of the step before, for the
  path-following predictor; ``f_prev``: the internal forces at the committed step, for
  the work);
- ``points``: id ``original cell x points per cell + point`` of each owned macro
  quadrature point; ``state/<name>``: every array of the material's committed state
  (:meth:`fe2.materials.base.PointMaterial.get_state`: for an RVE its fluctuation, every
  phase's internal variables, the predictor and the last answer);
- attributes: the path-following state of the step, the external work, the history rows
  written so far and the case as run (rank 0's file).

A dof shared by several cells is stored once per cell, with the same value.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from fe2.core.errors import ConfigError, collective, on_root
from fe2.io.results import json_default

__all__ = ["CHECKPOINT_DIR", "Checkpoint", "latest", "read", "write"]

CHECKPOINT_DIR = "checkpoint"
FORMAT = 1


def _cell_dofs(V) -> np.ndarray:
    """``(local cells, dofs per cell x block size)``: the local array index of every value
    of a function in ``V`` on each local cell (owned and ghost)."""
    dm = V.dofmap
    bs = dm.bs
    cells = dm.list  # (num local cells, dofs per cell)
    return (cells[:, :, None] * bs + np.arange(bs)).reshape(cells.shape[0], -1)


def _original_cells(mesh) -> np.ndarray:
    return np.asarray(mesh.topology.original_cell_index, dtype=np.int64)


def _point_ids(cells: np.ndarray, nq: int) -> np.ndarray:
    """Partition-independent id of each of the ``nq`` quadrature points of cells with
    original indices ``cells``, in the problem's point order (cell by cell)."""
    return (np.repeat(cells, nq) * nq + np.tile(np.arange(nq), cells.size)).astype(np.int64)


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Checkpoint:
    """A checkpoint as read: its path-following ``state``, external ``work``, the history
    ``steps`` rows and the ``config`` of the run that wrote it (a dict of the case as
    parsed), the rank count that wrote it and its folder."""

    def __init__(self, folder: Path, attrs: dict[str, Any]) -> None:
        self.folder = folder
        self.state: dict[str, Any] = attrs["state"]
        self.work: float = attrs["work"]
        self.steps: list[dict[str, Any]] = attrs["steps"]
        self.config: dict[str, Any] = attrs["config"]
        self.ranks: int = attrs["ranks"]
        self.restarts: list[dict[str, Any]] = attrs["restarts"]

    @property
    def step(self) -> int:
        return int(self.state["k"])


def write(results: str | Path, comm: MPI.Comm, problem, fields: dict[str, np.ndarray], state: dict[str, Any],
          steps: list[dict[str, Any]], config: dict[str, Any], restarts: list[dict[str, Any]]) -> Path:
    """Write the checkpoint of converged step ``state["k"]`` (collective): ``fields`` are
    local arrays laid out like ``problem.x.x.array``; the material's committed state comes
    from ``problem.material``; ``steps`` (the history rows so far), ``config`` (the case)
    and ``restarts`` (earlier restarts of the run) are kept for the restart's summary.
    Returns the checkpoint's folder."""
    import h5py

    root = Path(results) / CHECKPOINT_DIR
    k = int(state["k"])
    final, tmp = root / f"step-{k:06d}", root / f"step-{k:06d}.tmp"
    def start() -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)

    on_root(comm, start)
    mesh = problem.mesh
    owned = problem.quadrature.num_owned_cells
    dofs = _cell_dofs(problem.x.function_space)[:owned]
    cells = _original_cells(mesh)[:owned]
    ids = _point_ids(cells, problem.num_points_per_cell)
    material_state = problem.material.get_state()

    def write_mine() -> None:
        with h5py.File(tmp / f"rank-{comm.rank:04d}.h5", "w") as h:
            h.attrs["format"] = FORMAT
            h.create_dataset("cells", data=cells)
            for name, arr in fields.items():
                h.create_dataset(f"fields/{name}", data=np.asarray(arr)[dofs])
            h.create_dataset("points", data=ids)
            for name, arr in material_state.items():
                h.create_dataset(f"state/{name}", data=arr)
            if comm.rank == 0:
                h.attrs["meta"] = json.dumps({"state": state, "work": problem.work, "steps": steps, "config": config,
                                              "ranks": comm.size, "restarts": restarts}, default=json_default)

    collective(comm, write_mine)  # a full disk on any rank: a one-line error on all, the last checkpoint kept
    on_root(comm, _publish, root, final, tmp, k, state, comm.size)
    return final


def _publish(root: Path, final: Path, tmp: Path, k: int, state: dict[str, Any], ranks: int) -> None:
    """Make the complete checkpoint ``tmp`` the newest one (rank 0): rename it, then point
    ``latest.json`` at it, then remove the older ones."""
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _atomic_json(root / "latest.json", {"format": FORMAT, "step": k, "folder": final.name,
                                        "load_factor": state["lam"], "ranks": ranks})
    for old in root.glob("step-*"):
        if old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)


def latest(results: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a results folder, or None."""
    pointer = Path(results) / CHECKPOINT_DIR / "latest.json"
    if not pointer.is_file():
        return None
    try:
        folder = pointer.parent / json.loads(pointer.read_text())["folder"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{pointer}: not a checkpoint pointer ({err})") from None
    return folder if folder.is_dir() else None


def read(folder: str | Path, comm: MPI.Comm, problem) -> tuple[Checkpoint, dict[str, np.ndarray]]:
    """Read checkpoint ``folder`` into ``problem`` (collective): the material's committed
    state of this rank's points; returns the checkpoint and its fields as local arrays laid
    out like ``problem.x.x.array`` (ghosts included)."""
    import h5py

    folder = Path(folder)
    files = sorted(folder.glob("rank-*.h5"))
    if not files:
        raise ConfigError(f"{folder}: no checkpoint files (rank-*.h5)")
    mesh = problem.mesh
    owned = problem.quadrature.num_owned_cells
    local_cells = _original_cells(mesh)
    dofs = _cell_dofs(problem.x.function_space)
    my_ids = _point_ids(local_cells[:owned], problem.num_points_per_cell)
    size = problem.x.x.array.size
    fields: dict[str, np.ndarray] = {}
    state: dict[str, np.ndarray] = {}
    found_cells = np.zeros(local_cells.size, dtype=bool)
    found_points = np.zeros(my_ids.size, dtype=bool)
    meta = None
    for path in files:
        with h5py.File(path, "r") as h:
            if "meta" in h.attrs:
                meta = json.loads(h.attrs["meta"])
            cells = h["cells"][:]
            order = np.argsort(cells)
            pos = np.searchsorted(cells, local_cells, sorter=order)
            pos = np.minimum(pos, cells.size - 1)
            hit = cells[order[pos]] == local_cells if cells.size else np.zeros(local_cells.size, dtype=bool)
            if hit.any():
                rows = order[pos[hit]]
                for name in h["fields"]:
                    arr = fields.setdefault(name, np.zeros(size))
                    arr[dofs[hit]] = h["fields"][name][:][rows]
                found_cells |= hit
            ids = h["points"][:]
            order = np.argsort(ids)
            pos = np.minimum(np.searchsorted(ids, my_ids, sorter=order), max(ids.size - 1, 0))
            hit = ids[order[pos]] == my_ids if ids.size else np.zeros(my_ids.size, dtype=bool)
            if hit.any():
                rows = order[pos[hit]]
                for name in h["state"]:
                    data = h["state"][name]
                    arr = state.get(name)
                    if arr is None:
                        arr = state[name] = np.zeros((my_ids.size, *data.shape[1:]))
                    arr[hit] = data[:][rows]
                found_points |= hit
    missing = int(comm.allreduce(int((~found_cells).sum() + (~found_points).sum())))
    if missing or meta is None:
        raise ConfigError(f"{folder}: the checkpoint does not match this case's macro mesh "
                          f"({missing} cells or points not found)" if missing else
                          f"{folder}: the checkpoint has no run information (rank 0's file is missing)")
    if state:  # (a material without history has none)
        problem.material.set_state(state)
    return Checkpoint(folder, meta), fields

