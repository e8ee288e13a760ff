"""The results folder of a run: fields for ParaView, a history per load step, a summary.

- ``fields.xdmf`` (+ ``.h5``): displacement (P1), cell-averaged strain and stress
  tensors (DG0), one time stamp per converged load step (time = load factor).
- ``history.csv``: one row per converged load step, written and flushed at once, so a
  run that stops keeps every converged step.
- ``summary.json``: the case, the effective tensor, totals and timings.

Collective on the mesh communicator; only rank 0 writes the text files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from dolfinx import fem, io

from fe2.core.tensors import mandel_to_tensor

__all__ = ["ResultsWriter", "read_history"]


class ResultsWriter:
    """Writes one run's results into ``directory`` (collective on ``mesh.comm``)."""

    def __init__(self, directory: str | Path, mesh, write_fields: bool = True) -> None:
        self.directory = Path(directory)
        self.comm = mesh.comm
        self.mesh = mesh
        self.write_fields = write_fields
        if self.comm.rank == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.comm.barrier()
        self.history_path = self.directory / "history.csv"
        self._history_keys: list[str] | None = None
        if self.comm.rank == 0 and self.history_path.exists():
            self.history_path.unlink()
        gdim = mesh.geometry.dim
        if write_fields:
            self.xdmf_path = self.directory / "fields.xdmf"
            with io.XDMFFile(self.comm, self.xdmf_path, "w") as f:
                f.write_mesh(mesh)
            self._u1 = fem.Function(fem.functionspace(mesh, ("Lagrange", 1, (gdim,))), name="displacement")
            T = fem.functionspace(mesh, ("DG", 0, (gdim, gdim)))
            self._eps = fem.Function(T, name="strain")
            self._sig = fem.Function(T, name="stress")
            self._scalar_space = fem.functionspace(mesh, ("DG", 0))
            self._scalars: dict[str, fem.Function] = {}

    def fields(self, t: float, u: fem.Function, strain_cells: np.ndarray, stress_cells: np.ndarray,
               kinematics: str = "small", scalars: dict[str, np.ndarray] | None = None,
               nodal: dict[str, fem.Function] | None = None) -> None:
        """Append one time stamp. ``strain_cells``/``stress_cells``: ``(num_owned_cells, n)``
        cell averages: Mandel strain and stress (small strain), or ``F`` and ``P``
        flattened row-major (finite strain; written as ``strain`` = F - I and ``stress`` = P).
        ``scalars``: further cell fields ``(num_owned_cells,)`` by name (same names on every
        rank and at every time stamp), e.g. ``damage``; ``nodal``: further P1 scalar
        functions (e.g. the nonlocal equivalent strain)."""
        if not self.write_fields:
            return
        self._u1.interpolate(u)
        gdim = self.mesh.geometry.dim
        for f, vals in ((self._eps, strain_cells), (self._sig, stress_cells)):
            arr = f.x.array.reshape(-1, gdim * gdim)
            if kinematics == "small":
                vals = mandel_to_tensor(vals).reshape(-1, gdim * gdim)
            elif f is self._eps:
                vals = vals - np.eye(gdim).ravel()
            arr[: vals.shape[0]] = vals
            f.x.scatter_forward()
        extra = []
        for name, vals in (scalars or {}).items():
            if name not in self._scalars:
                self._scalars[name] = fem.Function(self._scalar_space, name=name)
            f = self._scalars[name]
            f.x.array[: vals.shape[0]] = vals
            f.x.scatter_forward()
            extra.append(f)
        extra.extend((nodal or {}).values())
        with io.XDMFFile(self.comm, self.xdmf_path, "a") as fh:
            fh.write_function(self._u1, t)
            fh.write_function(self._eps, t)
            fh.write_function(self._sig, t)
            for f in extra:
                fh.write_function(f, t)

    def history(self, row: dict[str, Any]) -> None:
        """Append one row to ``history.csv`` and flush it (rank 0 writes)."""
        if self.comm.rank != 0:
            return
        if self._history_keys is None:
            self._history_keys = list(row)
            with open(self.history_path, "w", newline="") as fh:
                csv.writer(fh).writerow(self._history_keys)
        with open(self.history_path, "a", newline="") as fh:
            csv.writer(fh).writerow([_fmt(row.get(k, "")) for k in self._history_keys])

    def summary(self, data: dict[str, Any]) -> None:
        """Write ``summary.json`` (rank 0)."""
        if self.comm.rank == 0:
            with open(self.directory / "summary.json", "w") as fh:
                json.dump(data, fh, indent=2, default=_json_default)
                fh.write("\n")


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return " ".join(f"{x:.6e}" for x in v)
    return v


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def read_history(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``history.csv`` (strings)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
