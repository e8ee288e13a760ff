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
  written so far, the case as run and the SHA-256 of its input mesh files (rank 0's file).

A restart reads rank 0's attributes first (:func:`read_meta`), so that a changed case is
refused before anything of the checkpoint is loaded, then the arrays (:func:`read`); a
file that cannot be read is one line naming it.

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

from fe2.core.errors import ConfigError, Fe2Error, collective, io_reason, on_root
from fe2.core.paths import space_note
from fe2.io.results import json_default

__all__ = ["CHECKPOINT_DIR", "Checkpoint", "latest", "read", "read_meta", "write"]

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
        #: SHA-256 of the run's input mesh files (``{"rve.mesh": ..., "macro.mesh.file": ...}``;
        #: empty for a checkpoint written before fe2 recorded them)
        self.inputs: dict[str, str] = attrs.get("inputs", {})

    @property
    def step(self) -> int:
        return int(self.state["k"])


def write(results: str | Path, comm: MPI.Comm, problem, fields: dict[str, np.ndarray], state: dict[str, Any],
          steps: list[dict[str, Any]], config: dict[str, Any], restarts: list[dict[str, Any]],
          inputs: dict[str, str] | None = None) -> Path:
    """Write the checkpoint of converged step ``state["k"]`` (collective): ``fields`` are
    local arrays laid out like ``problem.x.x.array``; the material's committed state comes
    from ``problem.material``; ``steps`` (the history rows so far), ``config`` (the case),
    ``restarts`` (earlier restarts of the run) and ``inputs`` (the SHA-256 of the input
    mesh files, which a restart compares) are kept for the restart. Returns the
    checkpoint's folder."""
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
        path = tmp / f"rank-{comm.rank:04d}.h5"
        try:
            write_file(path)
            with h5py.File(path, "r") as h:  # (h5py may close a file it could not finish without a word)
                h["points"][:1]
        except (OSError, RuntimeError, ValueError, KeyError) as err:  # h5py: a full disk, a file size limit
            note = space_note(path)
            raise Fe2Error(f"{path}: the checkpoint of step {k} cannot be written ({io_reason(err)}"
                           + (f"; {note}" if note else "") + "); the last complete checkpoint, if any, is "
                           "kept") from None

    def write_file(path: Path) -> None:
        with h5py.File(path, "w") as h:
            h.attrs["format"] = FORMAT
            h.create_dataset("cells", data=cells)
            for name, arr in fields.items():
                h.create_dataset(f"fields/{name}", data=np.asarray(arr)[dofs])
            h.create_dataset("points", data=ids)
            h.create_group("state")  # (empty for a material without history)
            for name, arr in material_state.items():
                h.create_dataset(f"state/{name}", data=arr)
            if comm.rank == 0:
                h.attrs["meta"] = json.dumps({"state": state, "work": problem.work, "steps": steps, "config": config,
                                              "ranks": comm.size, "restarts": restarts, "inputs": inputs or {}},
                                             default=json_default)

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
        folder = pointer.parent / json.loads(pointer.read_text(errors="replace"))["folder"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{pointer}: not a checkpoint pointer ({err})") from None
    if not folder.is_dir():
        raise ConfigError(f"{pointer} names the checkpoint folder {folder.name}, which is missing: the checkpoint is "
                          "lost, so this run cannot be continued (start it again with --overwrite)")
    return folder


def _damaged(path: Path, err: BaseException) -> ConfigError:
    return ConfigError(f"{path}: not a readable checkpoint file ({err}); the newest checkpoint is damaged, so this "
                       "run cannot be continued from it (start it again with --overwrite)")


def read_meta(folder: str | Path) -> Checkpoint:
    """The run information of checkpoint ``folder`` (rank 0's file), without its arrays
    (not collective: read it on one rank)."""
    import h5py

    path = Path(folder) / "rank-0000.h5"
    if not path.is_file():
        raise ConfigError(f"{path}: missing (rank 0's file of the checkpoint holds the run information); the "
                          "newest checkpoint is damaged, so this run cannot be continued (start it again with "
                          "--overwrite)")
    try:
        with h5py.File(path, "r") as h:
            meta = json.loads(h.attrs["meta"])
        return Checkpoint(Path(folder), meta)
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise _damaged(path, err) from None


def read(folder: str | Path, comm: MPI.Comm, problem) -> tuple[Checkpoint, dict[str, np.ndarray]]:
    """Read checkpoint ``folder`` into ``problem`` (collective): the material's committed
    state of this rank's points; returns the checkpoint and its fields as local arrays laid
    out like ``problem.x.x.array`` (ghosts included). A file that cannot be read, or arrays
    that do not fit this case, are a one-line :class:`~fe2.core.errors.ConfigError` on
    every rank."""
    folder = Path(folder)
    fields, state, meta, missing = collective(comm, _read_arrays, folder, problem)
    missing = int(comm.allreduce(missing))
    if missing:
        raise ConfigError(f"{folder}: the checkpoint does not match this case's macro mesh "
                          f"({missing} cells or points not found)")
    if meta is None:
        raise ConfigError(f"{folder}: the checkpoint has no run information (rank 0's file is missing)")
    if state:  # (a material without history has none; every rank has the same names)
        state = problem.material.upgrade_state(state)
        collective(comm, _check_state, folder, problem, state)
        problem.material.set_state(state)
    return Checkpoint(folder, meta), fields


def _check_state(folder: Path, problem, state: dict[str, np.ndarray]) -> None:
    """The checkpoint's material state has this case's names and per-point shapes."""
    mine = problem.material.get_state()
    if set(mine) != set(state) or any(np.shape(mine[k])[1:] != state[k].shape[1:] for k in mine):
        have = ", ".join(f"{k} {state[k].shape[1:]}" for k in sorted(state))
        want = ", ".join(f"{k} {np.shape(mine[k])[1:]}" for k in sorted(mine))
        raise ConfigError(f"{folder}: the checkpoint's material state ({have}) does not fit this case's ({want}): "
                          "the RVE or its phases changed since it was written")


def _read_arrays(folder: Path, problem) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict | None, int]:
    """This rank's part of checkpoint ``folder``: its fields and material state, the run
    information and how many of its cells and points the checkpoint lacks."""
    import h5py

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
        try:
            with h5py.File(path, "r") as h:
                if "meta" in h.attrs:
                    meta = json.loads(h.attrs["meta"])
                cells = h["cells"][:]
                order = np.argsort(cells)
                pos = np.minimum(np.searchsorted(cells, local_cells, sorter=order), max(cells.size - 1, 0))
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
                group = h["state"] if "state" in h else {}  # (older linear runs wrote none)
                for name in group:  # (every name, hits or not: a rank without points sets the same names)
                    data = group[name]
                    arr = state.get(name)
                    if arr is None:
                        arr = state[name] = np.zeros((my_ids.size, *data.shape[1:]))
                    if hit.any():
                        arr[hit] = data[:][order[pos[hit]]]
                found_points |= hit
        except (OSError, KeyError, ValueError, TypeError, IndexError) as err:
            raise _damaged(path, err) from None
    return fields, state, meta, int((~found_cells).sum() + (~found_points).sum())
