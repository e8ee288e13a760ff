"""The results folder of a run: fields for ParaView, a history per load step, a summary.

- ``fields.xdmf`` (+ ``.h5``): displacement (P1), cell-averaged strain and stress
  tensors (DG0), one time stamp per converged load step (time = load factor); for
  conduction the temperature and the cell-averaged ``temperature_gradient`` and
  ``heat_flux`` vectors (``q = -K grad T``). Tensors are 3 x 3 in 2D too, so that ParaView's
  components ``XX, XY, ..., ZZ`` are the tensor's: plane strain's ``eps_zz = 0`` and its
  out-of-plane stress (:meth:`fe2.materials.base.PointMaterial.out_of_plane_stress`; NaN
  where the material cannot say), with the von Mises stress and equivalent strain as cell
  scalars. All fields of a time stamp are
  in one grid of one temporal collection (:func:`_merge_series`), so that meshio's
  ``TimeSeriesReader`` reads them all, as ParaView does.
- ``history.csv``: one row per converged load step, written and flushed at once, so a
  run that stops keeps every converged step.
- ``summary.json``: the case, the effective tensor, totals and timings.

A restart (:class:`ResultsWriter` with ``resume``) continues a folder after its first
``resume`` steps: ``history.csv`` keeps those rows, and the XDMF time series keeps its first
``resume`` time stamps. The data written so far moves to ``fields.pJ.h5`` (J = 0, 1, ...
per restart) and the restarted run writes its own mesh, as the mesh of the new time stamps,
into a new ``fields.h5``: the partition, and so the node order, may differ between runs.

A results folder belongs to one run: :func:`check_folder` refuses to start a run in a folder
that holds another run's results (converged steps or a checkpoint) unless it continues
that run (``restart``) or replaces it (``overwrite``: :func:`clear` removes the old files
first); it also refuses a path that cannot be a folder. Nothing is written before the run's
input has been read and its set-up has succeeded, so a run that fails on its input leaves
an existing folder as it was.

Collective on the mesh communicator; only rank 0 writes the text files.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from dolfinx import fem, io

from fe2.core.errors import ConfigError, Fe2Error, collective, io_reason, on_root
from fe2.core.paths import space_note, unwritable
from fe2.core.quadrature import geometry_degree
from fe2.core.tensors import cauchy_stress, equivalent_strain, hencky_strain, mandel_to_tensor, von_mises

__all__ = ["RESULT_FILES", "FieldWriter", "ResultsWriter", "check_folder", "clear", "json_default", "previous_run",
           "read_history", "write_summary"]

#: what a run writes into its results folder (``--overwrite`` removes these and only these)
RESULT_FILES = ("summary.json", "summary.json.tmp", "history.csv", "history.csv.tmp", "fields.xdmf",
                "fields.xdmf.tmp", "fields.h5", "fields.p*.h5", "rve.msh", "checkpoint", "rve_snapshots")


def previous_run(directory: str | Path) -> str | None:
    """A description of the run whose results ``directory`` holds (converged steps or a
    checkpoint), or None when it holds none (not collective: read by one rank)."""
    d = Path(directory)
    summary: Any = {}
    try:
        summary = json.loads((d / "summary.json").read_text(errors="replace"))
    except (OSError, ValueError):
        pass
    if not isinstance(summary, dict):  # (another tool's file, or a damaged one)
        summary = {}
    steps = summary.get("steps")
    steps = len(steps) if isinstance(steps, list) else 0
    if not steps and (d / "history.csv").is_file():
        try:
            with open(d / "history.csv", newline="", errors="replace") as fh:
                steps = max(0, sum(1 for row in csv.reader(fh) if row) - 1)
        except (OSError, csv.Error):
            steps = 1  # (a history that cannot be read still says a run was here)
    checkpoint = (d / "checkpoint" / "latest.json").is_file()
    if not steps and not checkpoint:
        return None
    what = [f"status {summary['status']}"] if "status" in summary else []
    what.append(f"{steps} converged step{'s' if steps != 1 else ''}")
    if checkpoint:
        what.append("a checkpoint")
    title = f" '{summary['title']}'" if isinstance(summary.get("title"), str) and summary["title"] else ""
    return f"the results of another run{title} ({', '.join(what)})"


def check_folder(directory: str | Path, source: str, restart: bool = False, overwrite: bool = False) -> None:
    """Raise :class:`~fe2.core.errors.ConfigError` if ``directory`` cannot be a run's results
    folder: a path under a file (or a device), a folder without write permission, or a folder
    that holds another run's results (:func:`previous_run`) when the run neither continues
    it (``restart``) nor replaces it (``overwrite``). Writes nothing (not collective; call it
    on one rank). ``source``: the case file, for the message."""
    d = Path(directory)
    where = f"{source}: results folder '{d}' ([output] directory or -o)"
    problem = unwritable(d)
    if problem:
        raise ConfigError(f"{where}: {problem}; give a folder path where fe2 may write")
    if d.is_dir() and not restart and not overwrite:
        other = previous_run(d)
        if other:
            raise ConfigError(f"{where} holds {other}: continue it with --restart, replace it with --overwrite, "
                              "or give another folder with -o")


def clear(directory: str | Path) -> None:
    """Remove the files of :data:`RESULT_FILES` from ``directory`` (not collective)."""
    d = Path(directory)
    for pattern in RESULT_FILES:
        for path in d.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


class FieldWriter:
    """A time series of fields on one mesh in one XDMF file ``path`` (+ ``.h5``): a
    displacement (temperature) at the mesh's nodes, cell tensors and cell scalars, laid out as
    the module docstring says (collective on ``mesh.comm``). ``resume``: continue the file
    of a run restarted after step ``resume`` (see the module docstring); None: a new file."""

    def __init__(self, path: str | Path, mesh, kinematics: str = "small", resume: int | None = None) -> None:
        self.path = Path(path)
        self.comm = mesh.comm
        self.mesh = mesh
        #: the gradient measure of the fields (:mod:`fe2.core.kinematics`): how they are written
        self.kinematics = kinematics
        if resume is not None and self.path.exists():
            on_root(self.comm, _continue_xdmf, self.path, resume)
            with io.XDMFFile(self.comm, self.path, "a") as f:
                f.write_mesh(mesh)
            self.comm.barrier()
            on_root(self.comm, _mesh_first, self.path)
        else:
            with io.XDMFFile(self.comm, self.path, "w") as f:
                f.write_mesh(mesh)
        gdim = mesh.geometry.dim
        # XDMF writes point values of the mesh's own degree (2 on curved cells)
        self._degree = geometry_degree(mesh)
        scalar = kinematics == "scalar"
        self._u1 = fem.Function(fem.functionspace(mesh, ("Lagrange", self._degree, () if scalar else (gdim,))),
                                name="temperature" if scalar else "displacement")
        self._nodal: dict[str, fem.Function] = {}
        T = fem.functionspace(mesh, ("DG", 0, (gdim,) if scalar else (3, 3)))
        self._eps = fem.Function(T, name="temperature_gradient" if scalar else "strain")
        self._sig = fem.Function(T, name="heat_flux" if scalar else "stress")
        self._scalar_space = fem.functionspace(mesh, ("DG", 0))
        self._scalars: dict[str, fem.Function] = {}
        #: bytes the last time stamp added to the data file (the room the next one needs)
        self._growth = 0

    def write(self, t: float, u: fem.Function, strain_cells: np.ndarray, stress_cells: np.ndarray,
              scalars: dict[str, np.ndarray] | None = None, nodal: dict[str, fem.Function] | None = None,
              out_of_plane: np.ndarray | None = None) -> None:
        """Append one time stamp. ``strain_cells``/``stress_cells``: ``(num_owned_cells, n)``
        cell averages, as the writer's ``kinematics`` says: Mandel strain and stress (small strain), ``F`` and ``P``
        flattened row-major (finite strain; written as ``strain`` = F - I and ``stress`` = P),
        or ``grad T`` and ``K grad T`` (scalar; written as ``temperature_gradient`` and
        ``heat_flux`` = -K grad T).
        ``scalars``: further cell fields ``(num_owned_cells,)`` by name (same names on every
        rank and at every time stamp), e.g. ``damage``; ``nodal``: further nodal functions
        (e.g. the nonlocal equivalent strain); ``out_of_plane``: plane strain's
        ``sigma_zz`` (finite strain ``P_33``) per cell (None: not known, written as NaN).
        Mechanics also gets ``von_mises_stress`` (of the Cauchy stress) and
        ``equivalent_strain`` (von Mises; finite strain: of the Hencky strain) per cell."""
        self._u1.interpolate(u)
        gdim, kinematics = self.mesh.geometry.dim, self.kinematics
        for f, vals in ((self._eps, strain_cells), (self._sig, stress_cells)):
            if kinematics == "scalar":
                arr = f.x.array.reshape(-1, vals.shape[1])
                arr[: vals.shape[0]] = vals if f is self._eps else -vals
            else:
                tensors = (mandel_to_tensor(vals) if kinematics == "small" else vals.reshape(-1, gdim, gdim)
                           - (np.eye(gdim) if f is self._eps else 0.0))
                arr = f.x.array.reshape(-1, 3, 3)
                arr[: vals.shape[0], :gdim, :gdim] = tensors
                if gdim == 2:  # plane strain: eps_zz = 0 (F_zz = 1); sigma_zz as the material says
                    arr[: vals.shape[0], 2, 2] = (0.0 if f is self._eps else
                                                  np.nan if out_of_plane is None else out_of_plane)
            f.x.scatter_forward()
        extra = []
        if kinematics != "scalar":
            n = strain_cells.shape[0]
            eps3, sig3 = (f.x.array.reshape(-1, 3, 3)[:n] for f in (self._eps, self._sig))
            if kinematics == "finite":
                F = eps3 + np.eye(3)  # F_zz = 1 in plane strain
                sig3, eps3 = cauchy_stress(sig3, F), hencky_strain(F)
            scalars = {**(scalars or {}), "von_mises_stress": von_mises(sig3), "equivalent_strain":
                       equivalent_strain(eps3)}
        for name, vals in (scalars or {}).items():
            if name not in self._scalars:
                self._scalars[name] = fem.Function(self._scalar_space, name=name)
            f = self._scalars[name]
            f.x.array[: vals.shape[0]] = vals
            f.x.scatter_forward()
            extra.append(f)
        for name, f in (nodal or {}).items():
            if f.function_space.element.basix_element.degree != self._degree:
                if name not in self._nodal:
                    space = fem.functionspace(self.mesh, ("Lagrange", self._degree, f.function_space.value_shape))
                    self._nodal[name] = fem.Function(space, name=f.name)
                self._nodal[name].interpolate(f)
                f = self._nodal[name]
            extra.append(f)
        h5 = self.path.with_suffix(".h5")
        # HDF5 cannot take back a data set it failed to extend the file for: the file would be
        # damaged, every earlier stamp with it. So a stamp that would not fit is not started.
        on_root(self.comm, _check_room, h5, 2 * self._growth, t)
        before = self.comm.bcast(h5.stat().st_size if self.comm.rank == 0 and h5.exists() else 0, root=0)

        def append() -> None:
            try:
                with io.XDMFFile(self.comm, self.path, "a") as fh:
                    for f in (self._u1, self._eps, self._sig, *extra):
                        fh.write_function(f, t)
            except (OSError, RuntimeError) as err:  # HDF5 cannot extend the file: a full disk, a file size limit
                note = space_note(h5)
                raise Fe2Error(f"{h5}: the fields of t = {t:g} cannot be written ({io_reason(err)}"
                               + (f"; {note}" if note else "") + ")") from None

        collective(self.comm, append)
        after = self.comm.bcast(h5.stat().st_size if self.comm.rank == 0 and h5.exists() else 0, root=0)
        self._growth = max(self._growth, after - before)
        on_root(self.comm, _merge_series, self.path)


class ResultsWriter:
    """Writes one run's results into ``directory`` (collective on ``mesh.comm``)."""

    def __init__(self, directory: str | Path, mesh, write_fields: bool = True, resume: int | None = None,
                 kinematics: str = "small", history: list[dict[str, Any]] | None = None) -> None:
        """``resume``: continue the results of a run restarted after step ``resume``, whose
        history rows up to there are ``history`` (the checkpoint's: ``history.csv`` is
        rewritten from them, so a damaged one does not matter)."""
        self.directory = Path(directory)
        self.comm = mesh.comm
        self.mesh = mesh
        self.history_path = self.directory / "history.csv"
        self._history_keys: list[str] | None = None
        on_root(self.comm, self._start_history, resume, history)
        #: ``fields.xdmf`` (None with ``write_fields`` false)
        self.field_writer = (FieldWriter(self.directory / "fields.xdmf", mesh, kinematics, resume)
                             if write_fields else None)

    def fields(self, t: float, *args: Any, **kwargs: Any) -> None:
        """Append one time stamp to ``fields.xdmf`` (:meth:`FieldWriter.write`; nothing
        without field output)."""
        if self.field_writer is not None:
            self.field_writer.write(t, *args, **kwargs)

    def _start_history(self, resume: int | None, rows: list[dict[str, Any]] | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if resume is not None and rows:
            keys = [k for k in rows[0] if k not in SUMMARY_ONLY]
            tmp = self.history_path.with_name(self.history_path.name + ".tmp")
            with open(tmp, "w", newline="") as fh:
                out = csv.writer(fh)
                out.writerow(keys)
                out.writerows([_fmt(r.get(k, "")) for k in keys] for r in rows if int(r.get("step", 0)) <= resume)
            os.replace(tmp, self.history_path)
            self._history_keys = keys
        elif resume is not None and self.history_path.exists():
            self._history_keys = _truncate_history(self.history_path, resume)
        elif self.history_path.exists():
            self.history_path.unlink()

    def history(self, row: dict[str, Any]) -> None:
        """Append one row to ``history.csv`` and flush it (rank 0 writes; collective: an
        error writing it is raised on every rank)."""
        on_root(self.comm, self._append_history, row)

    def _append_history(self, row: dict[str, Any]) -> None:
        if self._history_keys is None:
            self._history_keys = list(row)
            with open(self.history_path, "w", newline="") as fh:
                csv.writer(fh).writerow(self._history_keys)
        with open(self.history_path, "a", newline="") as fh:
            csv.writer(fh).writerow([_fmt(row.get(k, "")) for k in self._history_keys])

    def summary(self, data: dict[str, Any], collective: bool = True) -> None:
        """Write ``summary.json`` (rank 0), atomically: a reader sees the old or the new one.
        Collective (an error writing it is raised on every rank) unless not ``collective``:
        then rank 0 writes it, or tries to, alone (after a bug on some ranks only)."""
        if collective:
            on_root(self.comm, write_summary, self.directory / "summary.json", data)
        elif self.comm.rank == 0:
            try:
                write_summary(self.directory / "summary.json", data)
            except OSError:
                pass


#: keys of a step's row in ``summary.json`` that ``history.csv`` does not have
SUMMARY_ONLY = ("rve_snapshots",)


def write_summary(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (not collective)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=json_default)
        fh.write("\n")
    os.replace(tmp, path)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return " ".join(f"{x:.6e}" for x in v)
    return v


def json_default(o: Any) -> Any:
    """``json.dump``'s ``default``: numpy arrays and scalars as lists and numbers."""
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _truncate_history(path: Path, steps: int) -> list[str]:
    """Keep the header and the rows of the first ``steps`` steps of ``history.csv``; its keys."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    keys, body = rows[0], rows[1:]
    kept = [r for r in body if r and int(r[keys.index("step")]) <= steps]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([keys, *kept])
    os.replace(tmp, path)
    return keys


_FIRST_MESH = "[@GridType='Uniform'][1]"


def _check_room(path: Path, need: int, t: float) -> None:
    """Refuse to append about ``need`` bytes to ``path`` when the file size limit or the
    free space of its file system would not take them (not collective)."""
    import resource

    size = path.stat().st_size if path.exists() else 0
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    short = soft != resource.RLIM_INFINITY and size + need > soft
    try:
        st = os.statvfs(path.parent)
        short = short or st.f_bavail * st.f_frsize < need
    except OSError:
        pass
    if short:
        note = space_note(path)
        raise Fe2Error(f"{path}: no room for the fields of t = {t:g} (about {need} more bytes"
                       + (f"; {note}" if note else "") + "), so they are not written: the file keeps every earlier "
                       "step")


def parse_fields(path: Path) -> ET.ElementTree:
    """``fields.xdmf`` of a run to be continued, parsed; a damaged one is a one-line
    :class:`~fe2.core.errors.ConfigError` (not collective)."""
    try:
        return ET.parse(path)
    except (ET.ParseError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{path}: damaged ({err}), so a restart cannot continue its time series: move it and "
                          f"{path.with_suffix('.h5').name} aside (or set [output] format = \"none\") and "
                          "restart") from None


def _continue_xdmf(path: Path, steps: int) -> None:
    """Prepare ``fields.xdmf`` for a restart after step ``steps``: its time series keep
    their first ``steps`` stamps, its data file becomes ``fields.pJ.h5`` and its mesh is
    renamed ``mesh_pJ`` with the stamps written so far pointing to it by name (dolfinx's
    new stamps point to the *first* mesh of the file, which :func:`_mesh_first` makes the
    restarted run's). A data file that no kept stamp uses (a restart that made no
    progress: only its mesh) is removed with its mesh instead of becoming a segment."""
    tree = parse_fields(path)
    h5 = path.with_suffix(".h5")
    domain = tree.getroot().find("Domain")
    series = [g for g in domain.findall("Grid") if g.get("CollectionType") == "Temporal"]
    for s in series:
        for k, grid in enumerate(list(s.findall("Grid"))):
            if k >= steps:
                s.remove(grid)
    meshes = [g for g in domain.findall("Grid") if g.get("GridType") == "Uniform"]
    used = any(item.text and item.text.strip().startswith(h5.name + ":") for s in series for item in s.iter("DataItem"))
    if not used:
        if meshes:
            domain.remove(meshes[0])
        _write_xml(tree, path)
        h5.unlink(missing_ok=True)
        return
    j = 0
    while path.with_name(f"{path.stem}.p{j}.h5").exists():
        j += 1
    part = path.with_name(f"{path.stem}.p{j}.h5")
    for item in domain.iter("DataItem"):
        if item.text and item.text.strip().startswith(h5.name + ":"):
            item.text = part.name + item.text.strip()[len(h5.name):]
    name = f"mesh_p{j}"
    meshes[0].set("Name", name)
    for s in series:
        for grid in s.findall("Grid"):
            for inc in grid:
                pointer = inc.get("xpointer")
                if pointer and _FIRST_MESH in pointer:
                    inc.set("xpointer", pointer.replace(_FIRST_MESH, f"[@Name='{name}']"))
    if h5.exists():
        os.replace(h5, part)
    _write_xml(tree, path)


def _mesh_first(path: Path) -> None:
    """Move the mesh written last to the front of the domain (dolfinx's stamps use the first)."""
    tree = ET.parse(path)
    domain = tree.getroot().find("Domain")
    newest = [g for g in domain.findall("Grid") if g.get("GridType") == "Uniform"][-1]
    domain.remove(newest)
    domain.insert(0, newest)
    _write_xml(tree, path)


#: the name of the one temporal collection that holds every field (:func:`_merge_series`)
SERIES = "fields"


def _merge_series(path: Path) -> None:
    """Move the time stamps dolfinx writes, one temporal collection per function, into one
    collection :data:`SERIES` whose grid at each time holds every function's attribute (the
    layout meshio's ``TimeSeriesReader`` expects and ParaView reads alike). Functions written
    later at a time the collection has join that time's grid; dolfinx adds the next stamp's
    functions as new collections again, merged in turn."""
    tree = ET.parse(path)
    domain = tree.getroot().find("Domain")
    series = [g for g in domain.findall("Grid") if g.get("CollectionType") == "Temporal"]
    if not series:
        return
    main = next((g for g in series if g.get("Name") == SERIES), series[0])
    main.set("Name", SERIES)
    at = {grid.find("Time").get("Value"): grid for grid in main.findall("Grid")}
    for other in series:
        if other is main:
            continue
        for grid in other.findall("Grid"):
            t = grid.find("Time").get("Value")
            if t in at:
                for attribute in grid.findall("Attribute"):
                    at[t].append(attribute)
            else:
                grid.set("Name", SERIES)
                main.append(grid)
                at[t] = grid
        domain.remove(other)
    _write_xml(tree, path)


def _write_xml(tree: ET.ElementTree, path: Path) -> None:
    ET.register_namespace("xi", "https://www.w3.org/2001/XInclude")
    tmp = path.with_name(path.name + ".tmp")
    tree.write(tmp, xml_declaration=True, encoding="utf-8")
    os.replace(tmp, path)


def read_history(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``history.csv`` (strings)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
