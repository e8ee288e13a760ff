"""Loading gmsh RVE meshes into dolfinx and checking that they are periodic.

Any gmsh ``.msh`` file can serve as an RVE if

- its cells (elements of the highest dimension) all belong to exactly one physical group
  each, the physical tag being the phase tag (:mod:`fe2.geometry.generators` uses matrix = 1,
  inclusion = 2, laminate phases 1, 2, ...);
- its nodes on opposite faces of its bounding box match (periodic meshing).

A 2D mesh (all nodes with z = 0, no 3D elements) is loaded with geometric dimension 2.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fe2.core.errors import MeshError
from fe2.core.meshing import gmsh_session

__all__ = ["RVEMesh", "check_periodic", "load_rve_mesh", "phase_tags", "phase_volumes"]

_AXES = "xyz"


@dataclass
class RVEMesh:
    """An RVE mesh loaded into dolfinx.

    Attributes
    ----------
    mesh : dolfinx.mesh.Mesh
        The mesh, on the communicator given to :func:`load_rve_mesh`.
    cell_tags : dolfinx.mesh.MeshTags
        Phase tag (gmsh physical tag) of each cell.
    box_min, box_max : ndarray, shape (gdim,)
        Corners of the bounding box of the mesh nodes (the periodic cell).
    path : Path
        The file it was read from.
    """

    mesh: Any
    cell_tags: Any
    box_min: np.ndarray
    box_max: np.ndarray
    path: Path

    @property
    def gdim(self) -> int:
        """Geometric dimension (2 or 3)."""
        return int(self.box_min.size)

    @property
    def size(self) -> np.ndarray:
        """Cell edge lengths ``box_max - box_min``, shape (gdim,)."""
        return self.box_max - self.box_min


def _fmt(values: np.ndarray) -> str:
    return ", ".join(f"{float(v):.6g}" for v in values)


def check_periodic(
    x: np.ndarray,
    box_min: Any,
    box_max: Any,
    *,
    tol: float | None = None,
    name: str = "mesh",
    node_ids: np.ndarray | None = None,
) -> None:
    """Check that the nodes on opposite faces of the box pair up.

    For each axis ``a``, every node on face ``x_a = box_max[a]`` must have a node on face
    ``x_a = box_min[a]`` whose other coordinates agree within ``tol`` (max norm), and vice
    versa. A node is on a face if its coordinate is within ``tol`` of it.

    Parameters
    ----------
    x : ndarray, shape (num_nodes, gdim)
        Node coordinates.
    box_min, box_max : array-like, shape (gdim,)
        Corners of the periodic cell.
    tol : float, optional
        Matching tolerance; default ``1e-8 * max(box_max - box_min)``.
    name : str
        Name of the mesh (file) used in the error message.
    node_ids : ndarray of int, shape (num_nodes,), optional
        Number of each node reported in the error message (e.g. the file's node tag); the
        unmatched node with the lowest number is reported. Default: the row index in ``x``.

    Raises
    ------
    MeshError
        If the arguments are inconsistent, or the nodes do not pair up, e.g.
        ``RVE mesh 'meshes/bad.msh' is not periodic: node 17 at (1, 0.4375) on face x = 1
        has no partner on face x = 0 (tolerance 1e-08)``.
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(x, dtype=np.float64)
    lo = np.atleast_1d(np.asarray(box_min, dtype=np.float64))
    hi = np.atleast_1d(np.asarray(box_max, dtype=np.float64))
    if pts.ndim != 2 or lo.ndim != 1 or lo.shape != hi.shape or pts.shape[1] != lo.size or not 1 <= lo.size <= 3:
        raise MeshError(
            f"check_periodic: x must have shape (num_nodes, gdim) and box_min, box_max shape (gdim,) with "
            f"gdim in 1..3, got x {pts.shape}, box_min {lo.shape}, box_max {hi.shape}"
        )
    gdim = lo.size
    extent = hi - lo
    if not np.all(np.isfinite(extent)) or np.any(extent <= 0.0):
        raise MeshError(f"check_periodic: box of RVE mesh '{name}' is degenerate: box_min {lo}, box_max {hi}")
    if tol is None:
        tol = 1e-8 * float(extent.max())
    if not np.isfinite(tol) or tol <= 0.0:
        raise MeshError(f"check_periodic: tol must be a finite number > 0, got {tol!r}")
    if node_ids is None:
        ids = np.arange(pts.shape[0], dtype=np.int64)
    else:
        ids = np.asarray(node_ids, dtype=np.int64)
        if ids.shape != (pts.shape[0],):
            raise MeshError(f"check_periodic: node_ids must have shape ({pts.shape[0]},), got {ids.shape}")

    prefix = f"RVE mesh '{name}' is not periodic"
    for a in range(gdim):
        axis = _AXES[a]
        others = [b for b in range(gdim) if b != a]
        faces = (np.flatnonzero(np.abs(pts[:, a] - lo[a]) <= tol), np.flatnonzero(np.abs(pts[:, a] - hi[a]) <= tol))
        values = (lo[a], hi[a])
        if faces[0].size == 0 and faces[1].size == 0:
            raise MeshError(
                f"{prefix}: no node lies on face {axis} = {lo[a]:.6g} or {axis} = {hi[a]:.6g} "
                f"(tolerance {tol:.6g}); the box does not fit the mesh"
            )
        # unmatched[s]: indices (into pts) of nodes on face s without partner on face 1 - s
        unmatched: list[np.ndarray] = []
        for s in (0, 1):
            here, there = faces[s], faces[1 - s]
            if here.size == 0:
                unmatched.append(here)
            elif there.size == 0:
                unmatched.append(here)
            elif not others:
                unmatched.append(here[:0])
            else:
                tree = cKDTree(pts[np.ix_(there, others)])
                dist, _ = tree.query(pts[np.ix_(here, others)], k=1, p=np.inf)
                unmatched.append(here[~(dist <= tol)])
        candidates = [(int(ids[u].min()), s, u[np.argmin(ids[u])]) for s, u in enumerate(unmatched) if u.size]
        if candidates:
            node_id, s, index = min(candidates)
            raise MeshError(
                f"{prefix}: node {node_id} at ({_fmt(pts[index])}) on face {axis} = {values[s]:.6g} "
                f"has no partner on face {axis} = {values[1 - s]:.6g} (tolerance {tol:.6g})"
            )


def _inspect_gmsh_model(gmsh: Any, path: Path, gdim: int | None) -> tuple[int, np.ndarray | None]:
    """Validate the current gmsh model read from ``path``; return (gdim, file node tags or None).

    The second value is None if the node tags are 1..N; otherwise the nodes are renumbered
    1..N in the order of their tags and the original tags are returned, shape (N,).
    """
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    if len(node_tags) == 0:
        raise MeshError(f"RVE mesh '{path}' contains no mesh nodes (is it a gmsh mesh file?)")
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)

    tdim = 0
    for d in (3, 2, 1):
        types, _, _ = gmsh.model.mesh.getElements(d)
        if len(types):
            tdim = d
            break
    if tdim == 0:
        raise MeshError(f"RVE mesh '{path}' contains no cells (no elements of dimension 1, 2 or 3)")
    types, elem_tags, _ = gmsh.model.mesh.getElements(tdim)
    if len(types) != 1:
        names = [gmsh.model.mesh.getElementProperties(t)[0] for t in types]
        raise MeshError(f"RVE mesh '{path}' mixes cell types ({', '.join(names)}); one cell type is supported")
    num_cells = int(sum(len(t) for t in elem_tags))

    groups = gmsh.model.getPhysicalGroups(tdim)
    if not groups:
        raise MeshError(
            f"RVE mesh '{path}' has no physical groups on its {tdim}D cells; tag each phase with a "
            f"physical group (fe2 convention: matrix = 1, inclusion = 2)"
        )
    owner: dict[int, int] = {}
    tagged = 0
    for _, ptag in groups:
        for entity in gmsh.model.getEntitiesForPhysicalGroup(tdim, ptag):
            entity = int(entity)
            if entity in owner:
                raise MeshError(
                    f"RVE mesh '{path}': {tdim}D entity {entity} is in two physical groups "
                    f"({owner[entity]} and {ptag}); each cell must have exactly one phase tag"
                )
            owner[entity] = ptag
            _, etags, _ = gmsh.model.mesh.getElements(tdim, entity)
            tagged += int(sum(len(t) for t in etags))
    if tagged != num_cells:
        raise MeshError(
            f"RVE mesh '{path}': {num_cells - tagged} of {num_cells} cells are in no physical group; "
            f"each cell must have exactly one phase tag"
        )

    has_z = bool(np.any(coords[:, 2] != 0.0))
    has_y = bool(np.any(coords[:, 1] != 0.0))
    detected = 3 if (tdim == 3 or has_z) else (2 if (tdim == 2 or has_y) else 1)
    if detected != tdim:
        raise MeshError(
            f"RVE mesh '{path}' has {tdim}D cells in a {detected}D space; an RVE must fill its box "
            f"(cell dimension = geometric dimension)"
        )
    if gdim is not None and gdim != detected:
        raise MeshError(f"RVE mesh '{path}' is {detected}D but gdim={gdim} was requested")

    file_tags = None
    order = np.argsort(node_tags)
    sorted_tags = np.asarray(node_tags, dtype=np.int64)[order]
    if not np.array_equal(sorted_tags, np.arange(1, sorted_tags.size + 1)):
        file_tags = sorted_tags
        gmsh.model.mesh.renumberNodes(sorted_tags.tolist(), list(range(1, sorted_tags.size + 1)))
    return detected, file_tags


def load_rve_mesh(
    path: str | os.PathLike[str],
    comm: Any,
    *,
    gdim: int | None = None,
    check: bool = True,
    tol: float | None = None,
) -> RVEMesh:
    """Read a gmsh RVE mesh into dolfinx and check that it is periodic.

    The file is read by rank 0 of ``comm`` with the gmsh Python module (in a fresh gmsh
    model, so an already initialised gmsh session is left intact) and converted with
    ``dolfinx.io.gmshio.model_to_mesh`` (the function behind ``read_from_msh``, which
    would finalise a caller's gmsh session). Note that gmsh itself re-applies a file's
    ``$Periodic`` section when reading, so slave nodes are moved onto their masters before
    the check; files without that section (e.g. written by other tools) are checked as they
    are.

    Parameters
    ----------
    path : path-like
        gmsh ``.msh`` file.
    comm : mpi4py.MPI.Comm
        Communicator of the mesh (RVEs are normally loaded on ``MPI.COMM_SELF``).
    gdim : int, optional
        Expected geometric dimension; default: detected (2 if all nodes have z = 0 and
        there are no 3D cells, else 3).
    check : bool
        Check periodicity with :func:`check_periodic` (file node numbers in messages).
    tol : float, optional
        Tolerance of the periodicity check (default ``1e-8`` times the largest cell edge).

    Returns
    -------
    RVEMesh

    Raises
    ------
    MeshError
        If the file is missing or unreadable, has no (or incomplete) physical groups on its
        cells, has the wrong dimension, or is not periodic. Raised on all ranks of ``comm``.
    """
    from mpi4py import MPI

    from fe2.core.compat import model_to_mesh

    p = Path(path)
    root = 0
    error: str | None = None
    detected: int | None = None
    file_tags: np.ndarray | None = None
    with ExitStack() as stack:
        gmsh = None
        if comm.rank == root:
            try:
                if not p.is_file():
                    raise MeshError(f"RVE mesh file '{p}' does not exist")
                gmsh = stack.enter_context(gmsh_session("fe2-rve"))
                try:
                    gmsh.merge(str(p))
                except Exception as exc:  # gmsh raises a bare Exception with its last error
                    raise MeshError(f"cannot read RVE mesh '{p}': {exc}") from exc
                detected, file_tags = _inspect_gmsh_model(gmsh, p, gdim)
            except MeshError as exc:
                error = str(exc)
        error, detected, has_map = comm.bcast((error, detected, file_tags is not None), root=root)
        if error is not None:
            raise MeshError(error)
        if has_map:
            file_tags = comm.bcast(file_tags, root=root)
        mesh, cell_tags, _ = model_to_mesh(gmsh.model if gmsh is not None else None, comm, root, gdim=detected)

    dim = int(detected)
    x = mesh.geometry.x[:, :dim]
    box_min = np.empty(dim)
    box_max = np.empty(dim)
    local_min = x.min(axis=0) if x.shape[0] else np.full(dim, np.inf)
    local_max = x.max(axis=0) if x.shape[0] else np.full(dim, -np.inf)
    comm.Allreduce(np.ascontiguousarray(local_min), box_min, op=MPI.MIN)
    comm.Allreduce(np.ascontiguousarray(local_max), box_max, op=MPI.MAX)
    rve = RVEMesh(mesh=mesh, cell_tags=cell_tags, box_min=box_min, box_max=box_max, path=p)

    if check:
        n_owned = mesh.geometry.index_map().size_local
        x_owned = np.ascontiguousarray(x[:n_owned])
        ids_owned = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)[:n_owned]
        if comm.size > 1:
            x_all = np.concatenate(comm.allgather(x_owned))
            ids_all = np.concatenate(comm.allgather(ids_owned))
        else:
            x_all, ids_all = x_owned, ids_owned
        numbers = file_tags[ids_all] if file_tags is not None else ids_all + 1
        check_periodic(x_all, box_min, box_max, tol=tol, name=str(p), node_ids=numbers)
    return rve


def _owned_tagged_cells(rve_mesh: RVEMesh) -> tuple[np.ndarray, np.ndarray]:
    """Owned cells with a tag and their tags, each shape (k,)."""
    tdim = rve_mesh.mesh.topology.dim
    n_owned = rve_mesh.mesh.topology.index_map(tdim).size_local
    cells = np.asarray(rve_mesh.cell_tags.indices)
    values = np.asarray(rve_mesh.cell_tags.values)
    keep = cells < n_owned
    return cells[keep], values[keep]


def phase_tags(rve_mesh: RVEMesh) -> list[int]:
    """Sorted phase tags present in the mesh (over all ranks of its communicator).

    Parameters
    ----------
    rve_mesh : RVEMesh

    Returns
    -------
    list of int
    """
    _, values = _owned_tagged_cells(rve_mesh)
    local = np.unique(values).tolist()
    comm = rve_mesh.mesh.comm
    present = set(local) if comm.size == 1 else set().union(*comm.allgather(local))
    return sorted(int(v) for v in present)


def phase_volumes(rve_mesh: RVEMesh) -> dict[int, float]:
    """Volume (area in 2D) of each phase, assembled with dolfinx.

    The cell volumes are assembled as the DG0 vector ``v * dx`` (exact for the mesh
    geometry, also for curved cells) and summed per cell tag over all ranks.

    Parameters
    ----------
    rve_mesh : RVEMesh

    Returns
    -------
    dict[int, float]
        Phase tag -> volume, for the tags of :func:`phase_tags`.
    """
    import ufl
    from dolfinx import fem, la

    mesh = rve_mesh.mesh
    V = fem.functionspace(mesh, ("DG", 0))
    v = ufl.TestFunction(V)
    vec = fem.assemble_vector(fem.form(v * ufl.dx))
    vec.scatter_reverse(la.InsertMode.add)
    cells, values = _owned_tagged_cells(rve_mesh)
    dofs = V.dofmap.list[cells, 0]
    tags = phase_tags(rve_mesh)
    local = np.array([vec.array[dofs[values == t]].sum() for t in tags], dtype=np.float64)
    total = np.zeros_like(local)
    from mpi4py import MPI

    mesh.comm.Allreduce(local, total, op=MPI.SUM)
    return {t: float(vol) for t, vol in zip(tags, total)}
