"""gmsh generators of periodic RVE (unit cell) meshes with tagged phases.

Every generator builds its geometry with the OpenCASCADE kernel of the gmsh Python API,
meshes it so that opposite faces of the cell carry matching nodes (gmsh periodic
meshing, slave/master boundary entities matched by their translated bounding boxes as in
gmsh tutorial t18), writes a gmsh ``.msh`` file (format 4.1) and returns a
:class:`GeneratedMesh` describing it.

Geometry always starts at the origin: the cell is ``[0, size[0]] x [0, size[1]] (x [0, size[2]])``.

Phase tags (gmsh physical groups on the cells):

- inclusion cells (:func:`circle_inclusion`, :func:`random_inclusions`,
  :func:`sphere_inclusion`): ``matrix = 1``, ``inclusion = 2`` (one physical group for
  all inclusions);
- laminates (:func:`laminate`): phase ``i`` of ``fractions`` gets tag ``i + 1`` and name
  ``"phase{i+1}"``.

:func:`generate` dispatches on a kind name (``"circle"``, ``"random"``, ``"laminate"``,
``"sphere"``), as used by configuration files and ``meshes/make_examples.py``.
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fe2.core.errors import MeshError
from fe2.core.meshing import gmsh_session
from fe2.core.paths import unwritable

__all__ = [
    "GENERATORS",
    "GeneratedMesh",
    "INCLUSION_TAG",
    "MATRIX_TAG",
    "MAX_VOLUME_FRACTION",
    "circle_inclusion",
    "generate",
    "laminate",
    "random_inclusions",
    "sphere_inclusion",
]

#: Physical group tag of the matrix phase of inclusion cells.
MATRIX_TAG = 1
#: Physical group tag of all inclusions of inclusion cells.
INCLUSION_TAG = 2
#: Largest volume fraction accepted by :func:`random_inclusions`.
MAX_VOLUME_FRACTION = 0.6

_MSH_FORMAT = 4.1


@dataclass(frozen=True)
class GeneratedMesh:
    """Description of a mesh file written by a generator.

    Attributes
    ----------
    path : Path
        The ``.msh`` file (gmsh format 4.1).
    dim : int
        Spatial and topological dimension (2 or 3).
    box_min, box_max : tuple of float, length ``dim``
        Corners of the cell; ``box_min`` is the origin.
    phase_tags : dict[str, int]
        Physical group name -> physical tag of each phase.
    volume_fractions : dict[str, float]
        Physical group name -> exact geometric volume fraction of the phase (of the exact
        geometry, not of its polygonal mesh approximation); they sum to 1.
    num_nodes : int
        Number of mesh nodes.
    num_cells : int
        Number of cells (triangles or tetrahedra).
    """

    path: Path
    dim: int
    box_min: tuple[float, ...]
    box_max: tuple[float, ...]
    phase_tags: dict[str, int]
    volume_fractions: dict[str, float]
    num_nodes: int
    num_cells: int


# --------------------------------------------------------------------------------------
# parameter validation
# --------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _positive(value: Any, name: str, func: str) -> float:
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) <= 0.0:
        raise MeshError(f"{func}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_size(size: Any, dim: int, func: str) -> np.ndarray:
    try:
        values = list(size)
    except TypeError:
        values = None
    if values is None or len(values) != dim or not all(_is_number(v) for v in values):
        raise MeshError(f"{func}: size must be a sequence of {dim} numbers > 0 (cell edge lengths), got {size!r}")
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0):
        raise MeshError(
            f"{func}: size must be a sequence of {dim} finite numbers > 0 (cell edge lengths), got {size!r}"
        )
    return arr


def _check_order(order: Any, func: str) -> int:
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or order not in (1, 2):
        raise MeshError(f"{func}: order must be 1 or 2 (geometry order of the elements), got {order!r}")
    return int(order)


def _check_path(path: str | os.PathLike[str], func: str) -> Path:
    p = Path(path)
    if p.suffix != ".msh":
        raise MeshError(f"{func}: path must end in '.msh' (gmsh chooses the format from the suffix), got '{p}'")
    return p


def _check_center(center: Any, size: np.ndarray, func: str) -> np.ndarray:
    dim = size.size
    if center is None:
        return 0.5 * size
    try:
        values = list(center)
    except TypeError:
        values = None
    if values is None or len(values) != dim or not all(_is_number(v) for v in values):
        raise MeshError(f"{func}: center must be None (cell centre) or a sequence of {dim} numbers, got {center!r}")
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise MeshError(f"{func}: center must be finite, got {center!r}")
    return np.mod(arr, size)  # periodic cell: any centre is equivalent to one inside it


def _boundary_clearance(centres: np.ndarray, radius: float, size: np.ndarray) -> np.ndarray:
    """Smallest distance between each sphere surface and the cell's boundary features.

    Parameters
    ----------
    centres : ndarray, shape (k, dim)
        Centres inside the cell.
    radius : float
    size : ndarray, shape (dim,)

    Returns
    -------
    ndarray, shape (k,)
        ``min |d - radius|`` over the distances ``d`` from the centre to the boundary
        lines/planes, (in 3D) edges and corners of the cell, measured with the minimum
        image convention. A small value means the circle/sphere is nearly tangent to a
        boundary feature and would create sliver cells.
    """
    dim = size.size
    # distance to the two faces x_a = 0 and x_a = L_a, per axis: shape (k, dim)
    d_face = np.minimum(centres, size - centres)
    clear = np.abs(d_face - radius).min(axis=1)
    # edges (3D: distance in the plane of two axes) and corners (all axes)
    for m in range(2, dim + 1):
        for axes in itertools.combinations(range(dim), m):
            d = np.linalg.norm(d_face[:, list(axes)], axis=1)
            clear = np.minimum(clear, np.abs(d - radius))
    return clear


# --------------------------------------------------------------------------------------
# geometry and meshing helpers (need an active gmsh_session)
# --------------------------------------------------------------------------------------


def _add_box(gmsh: Any, size: np.ndarray) -> int:
    occ = gmsh.model.occ
    if size.size == 2:
        return occ.addRectangle(0.0, 0.0, 0.0, float(size[0]), float(size[1]))
    return occ.addBox(0.0, 0.0, 0.0, float(size[0]), float(size[1]), float(size[2]))


def _build_inclusion_cell(
    gmsh: Any, size: np.ndarray, centres: np.ndarray, radius: float
) -> tuple[list[int], list[int]]:
    """Box with circular/spherical inclusions wrapped periodically; returns (matrix, inclusion) entity tags.

    Each inclusion that crosses the boundary is completed by its periodic images (all
    shifts in {-1, 0, 1}^dim whose image touches the box, corner images included); every
    image is intersected with the box, and the box is fragmented by the pieces so that the
    mesh is conforming across the matrix/inclusion interfaces.
    """
    dim = size.size
    occ = gmsh.model.occ
    box = _add_box(gmsh, size)
    pieces: list[tuple[int, int]] = []
    for c in centres:
        for shift in itertools.product((-1.0, 0.0, 1.0), repeat=dim):
            cc = c + np.asarray(shift) * size
            outside = np.linalg.norm(np.clip(cc, 0.0, size) - cc)
            if outside >= radius:
                continue  # this image does not reach into the box
            if dim == 2:
                tag = occ.addDisk(float(cc[0]), float(cc[1]), 0.0, radius, radius)
            else:
                tag = occ.addSphere(float(cc[0]), float(cc[1]), float(cc[2]), radius)
            if np.all(cc - radius > 0.0) and np.all(cc + radius < size):
                pieces.append((dim, tag))  # entirely inside: no clipping needed
                continue
            clipped, _ = occ.intersect([(dim, tag)], [(dim, box)], removeObject=True, removeTool=False)
            pieces.extend(dt for dt in clipped if dt[0] == dim)
    inclusion: set[int] = set()
    if pieces:
        _, children = occ.fragment([(dim, box)], pieces)
        for piece_children in children[1:]:
            inclusion.update(t for d, t in piece_children if d == dim)
    occ.synchronize()
    all_tags = {t for _, t in gmsh.model.getEntities(dim)}
    return sorted(all_tags - inclusion), sorted(inclusion)


def _set_periodic(gmsh: Any, size: np.ndarray, where: str) -> None:
    """Make the mesh periodic: each boundary entity on face x_a = L_a copies the mesh of its
    master on x_a = 0 (matched by bounding box translated by L_a, and by length/area)."""
    dim = size.size
    eps = 1e-4 * float(size.min())
    flat = 1e-6 * float(size.max()) + 4e-7
    full = np.zeros(3)
    full[:dim] = size
    for axis in range(dim):
        lo = np.full(3, -eps)
        hi = full + eps
        lo[axis] = full[axis] - eps
        # only entities that lie in the face: a circle whose centre is a little inside it has an
        # arc between its extreme point and the face that fits in the box above without being on
        # the face (it has no image on the opposite face); getBoundingBox pads by OCC's 1e-7
        slaves = [
            (d, s)
            for d, s in gmsh.model.getEntitiesInBoundingBox(*lo, *hi, dim - 1)
            if np.diff(np.asarray(gmsh.model.getBoundingBox(d, s))[[axis, axis + 3]])[0] <= flat
        ]
        shift = np.zeros(3)
        shift[axis] = full[axis]
        slave_tags: list[int] = []
        master_tags: list[int] = []
        for _, s in slaves:
            bb = np.asarray(gmsh.model.getBoundingBox(dim - 1, s)) - np.concatenate([shift, shift])
            mass = gmsh.model.occ.getMass(dim - 1, s)
            candidates = gmsh.model.getEntitiesInBoundingBox(*(bb[:3] - eps), *(bb[3:] + eps), dim - 1)
            matches = [
                m
                for _, m in candidates
                if np.allclose(gmsh.model.getBoundingBox(dim - 1, m), bb, rtol=0.0, atol=eps)
                and math.isclose(gmsh.model.occ.getMass(dim - 1, m), mass, rel_tol=1e-6, abs_tol=eps**dim)
            ]
            if len(matches) != 1:
                axis_name = "xyz"[axis]
                raise MeshError(
                    f"{where}: cannot make the mesh periodic: boundary entity {s} on face "
                    f"{axis_name} = {full[axis]:.6g} has {len(matches)} matching entities on face "
                    f"{axis_name} = 0 (the geometry is not periodic)"
                )
            slave_tags.append(s)
            master_tags.append(matches[0])
        affine = [1.0, 0.0, 0.0, shift[0], 0.0, 1.0, 0.0, shift[1], 0.0, 0.0, 1.0, shift[2], 0.0, 0.0, 0.0, 1.0]
        if slave_tags:
            gmsh.model.mesh.setPeriodic(dim - 1, slave_tags, master_tags, affine)


def _mesh_and_write(
    gmsh: Any,
    path: Path,
    size: np.ndarray,
    groups: Sequence[tuple[str, int, list[int]]],
    volume_fractions: dict[str, float],
    order: int,
    where: str,
) -> GeneratedMesh:
    """Add physical groups, set periodicity, mesh, write ``path``; return its description."""
    dim = size.size
    for name, tag, entities in groups:
        if not entities:
            raise MeshError(f"{where}: phase '{name}' has no geometric entities (degenerate geometry)")
        gmsh.model.addPhysicalGroup(dim, entities, tag=tag, name=name)
    _set_periodic(gmsh, size, where)
    try:
        gmsh.model.mesh.generate(dim)
        if order > 1:
            gmsh.model.mesh.setOrder(order)
    except Exception as exc:  # gmsh raises a bare Exception carrying its last error
        raise MeshError(f"{where}: gmsh failed to mesh the cell: {exc}") from exc
    node_tags, _, _ = gmsh.model.mesh.getNodes()
    _, elem_tags, _ = gmsh.model.mesh.getElements(dim)
    num_cells = int(sum(len(t) for t in elem_tags))
    path.parent.mkdir(parents=True, exist_ok=True)
    gmsh.write(str(path))
    return GeneratedMesh(
        path=path,
        dim=dim,
        box_min=tuple(0.0 for _ in range(dim)),
        box_max=tuple(float(v) for v in size),
        phase_tags={name: tag for name, tag, _ in groups},
        volume_fractions=volume_fractions,
        num_nodes=int(len(node_tags)),
        num_cells=num_cells,
    )


def _mesh_options(h: float) -> dict[str, float]:
    return {
        "Mesh.MeshSizeMax": h,
        "Mesh.MeshSizeFromPoints": 0.0,
        "Mesh.MshFileVersion": _MSH_FORMAT,
        "Mesh.Binary": 0.0,
        "Mesh.SaveAll": 0.0,
    }


def _inclusion_mesh(
    path: Path,
    size: np.ndarray,
    centres: np.ndarray,
    radius: float,
    h: float,
    order: int,
    verbose: bool,
    where: str,
) -> GeneratedMesh:
    dim = size.size
    unit = math.pi * radius**2 if dim == 2 else 4.0 / 3.0 * math.pi * radius**3
    fraction = len(centres) * unit / float(np.prod(size))
    with gmsh_session(where, verbose=verbose, options=_mesh_options(h)) as gmsh:
        matrix, inclusion = _build_inclusion_cell(gmsh, size, centres, radius)
        return _mesh_and_write(
            gmsh,
            path,
            size,
            [("matrix", MATRIX_TAG, matrix), ("inclusion", INCLUSION_TAG, inclusion)],
            {"matrix": 1.0 - fraction, "inclusion": fraction},
            order,
            where,
        )


def _single_inclusion(
    func: str, path: Any, dim: int, size: Any, radius: Any, center: Any, h: Any, order: Any, verbose: bool
) -> GeneratedMesh:
    p = _check_path(path, func)
    box = _check_size(size, dim, func)
    r = _positive(radius, "radius", func)
    half = 0.5 * float(box.min())
    if r >= half:
        raise MeshError(
            f"{func}: radius must be in (0, {half:.6g}) (half the smallest cell edge, so that the "
            f"inclusion does not overlap its periodic image), got {r:.6g}"
        )
    c = _check_center(center, box, func)
    hh = _positive(h, "h", func)
    k = _check_order(order, func)
    clearance = float(_boundary_clearance(c[None, :], r, box)[0])
    if clearance < 1e-6 * float(box.max()):
        raise MeshError(
            f"{func}: the inclusion (center {tuple(float(v) for v in c)}, radius {r:.6g}) is tangent to "
            f"the cell boundary (within {clearance:.3g}); move it or change its radius"
        )
    return _inclusion_mesh(p, box, c[None, :], r, hh, k, verbose, func)


# --------------------------------------------------------------------------------------
# public generators
# --------------------------------------------------------------------------------------


def circle_inclusion(
    path: str | os.PathLike[str],
    *,
    size: Sequence[float] = (1.0, 1.0),
    radius: float = 0.25,
    center: Sequence[float] | None = None,
    h: float = 0.05,
    order: int = 1,
    verbose: bool = False,
) -> GeneratedMesh:
    """2D periodic cell with one circular inclusion.

    Parameters
    ----------
    path : path-like
        Output ``.msh`` file; parent directories are created.
    size : sequence of 2 floats
        Cell edge lengths; the cell is ``[0, size[0]] x [0, size[1]]``.
    radius : float
        Inclusion radius, in ``(0, min(size) / 2)``.
    center : sequence of 2 floats, optional
        Inclusion centre (default: the cell centre). Taken modulo ``size``; an inclusion that
        crosses the cell boundary is completed by its periodic images.
    h : float
        Target element size (``Mesh.MeshSizeMax``), > 0.
    order : int
        Geometry order of the elements (1 or 2).
    verbose : bool
        Show gmsh messages.

    Returns
    -------
    GeneratedMesh
        Phases ``matrix`` (tag 1) and ``inclusion`` (tag 2); inclusion volume fraction
        ``pi radius**2 / (size[0] size[1])``.

    Raises
    ------
    MeshError
        On an invalid parameter or a failed meshing.
    """
    return _single_inclusion("circle_inclusion", path, 2, size, radius, center, h, order, verbose)


def sphere_inclusion(
    path: str | os.PathLike[str],
    *,
    size: Sequence[float] = (1.0, 1.0, 1.0),
    radius: float = 0.25,
    center: Sequence[float] | None = None,
    h: float = 0.1,
    order: int = 1,
    verbose: bool = False,
) -> GeneratedMesh:
    """3D periodic cell with one spherical inclusion.

    Parameters
    ----------
    path : path-like
        Output ``.msh`` file; parent directories are created.
    size : sequence of 3 floats
        Cell edge lengths; the cell is ``[0, size[0]] x [0, size[1]] x [0, size[2]]``.
    radius : float
        Inclusion radius, in ``(0, min(size) / 2)``.
    center : sequence of 3 floats, optional
        Inclusion centre (default: the cell centre), taken modulo ``size``; an inclusion
        crossing the boundary is completed by its periodic images.
    h : float
        Target element size, > 0.
    order : int
        Geometry order of the elements (1 or 2).
    verbose : bool
        Show gmsh messages.

    Returns
    -------
    GeneratedMesh
        Phases ``matrix`` (tag 1) and ``inclusion`` (tag 2); inclusion volume fraction
        ``4/3 pi radius**3 / prod(size)``.

    Raises
    ------
    MeshError
        On an invalid parameter or a failed meshing.
    """
    return _single_inclusion("sphere_inclusion", path, 3, size, radius, center, h, order, verbose)


def _place_circles(
    rng: np.random.Generator,
    n: int,
    radius: float,
    size: np.ndarray,
    gap: float,
    margin: float,
    *,
    restarts: int = 100,
    batches: int = 20,
    batch: int = 256,
) -> np.ndarray | None:
    """Random sequential placement of ``n`` circles in a periodic cell.

    Returns
    -------
    ndarray, shape (n, 2), or None
        Centres in ``[0, size)``, or None if placement failed within the bounded number of
        tries (``restarts * n * batches * batch`` candidates at most).
    """
    min_dist = 2.0 * radius + gap
    for _ in range(restarts):
        centres = np.empty((0, 2))
        for _k in range(n):
            for _b in range(batches):
                cand = rng.random((batch, 2)) * size
                ok = _boundary_clearance(cand, radius, size) >= margin
                if centres.shape[0]:
                    d = cand[:, None, :] - centres[None, :, :]
                    d -= size * np.round(d / size)  # minimum image
                    ok &= np.all(np.linalg.norm(d, axis=2) >= min_dist, axis=1)
                hits = np.flatnonzero(ok)
                if hits.size:
                    centres = np.vstack([centres, cand[hits[0]]])
                    break
            else:
                break  # this circle could not be placed: restart from scratch
        if centres.shape[0] == n:
            return centres
    return None


def random_inclusions(
    path: str | os.PathLike[str],
    *,
    volume_fraction: float = 0.3,
    n: int = 8,
    seed: int = 0,
    size: Sequence[float] = (1.0, 1.0),
    h: float = 0.05,
    min_gap: float | None = None,
    order: int = 1,
    verbose: bool = False,
) -> GeneratedMesh:
    """2D periodic cell with ``n`` equal, non-overlapping, randomly placed circular inclusions.

    The radius is chosen so that the inclusions fill exactly ``volume_fraction`` of the
    cell: ``n pi r**2 = volume_fraction * size[0] * size[1]``. Centres are drawn from
    ``numpy.random.default_rng(seed)`` by random sequential placement: a candidate is
    rejected if its periodic (minimum image) distance to a placed centre is below
    ``2 r + min_gap``, or if the circle is nearly tangent to a boundary line or a corner of
    the cell (it must cross it, or stay clear of it, by ``max(min_gap / 2, r / 20)``).
    Circles crossing the boundary are completed by their periodic images.

    Parameters
    ----------
    path : path-like
        Output ``.msh`` file; parent directories are created.
    volume_fraction : float
        Inclusion volume fraction, in ``(0, 0.6]``.
    n : int
        Number of inclusions, >= 1.
    seed : int
        Seed of the random generator; the mesh is reproducible for a given seed.
    size : sequence of 2 floats
        Cell edge lengths.
    h : float
        Target element size, > 0.
    min_gap : float, optional
        Minimum distance between inclusion surfaces, >= 0 (default ``0.2 r``).
    order : int
        Geometry order of the elements (1 or 2).
    verbose : bool
        Show gmsh messages.

    Returns
    -------
    GeneratedMesh
        Phases ``matrix`` (tag 1) and ``inclusion`` (tag 2).

    Raises
    ------
    MeshError
        On an invalid parameter, if the inclusions cannot be placed within a bounded number
        of tries, or on a failed meshing.
    """
    func = "random_inclusions"
    p = _check_path(path, func)
    box = _check_size(size, 2, func)
    if not _is_number(volume_fraction) or not (0.0 < float(volume_fraction) <= MAX_VOLUME_FRACTION):
        raise MeshError(f"{func}: volume_fraction must be in (0, {MAX_VOLUME_FRACTION}], got {volume_fraction!r}")
    vf = float(volume_fraction)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise MeshError(f"{func}: n (number of inclusions) must be an integer >= 1, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise MeshError(f"{func}: seed must be an integer >= 0, got {seed!r}")
    hh = _positive(h, "h", func)
    k = _check_order(order, func)
    n = int(n)
    radius = math.sqrt(vf * float(np.prod(box)) / (n * math.pi))
    if min_gap is None:
        gap = 0.2 * radius
    else:
        if not _is_number(min_gap) or not math.isfinite(float(min_gap)) or float(min_gap) < 0.0:
            raise MeshError(f"{func}: min_gap must be None or a finite number >= 0, got {min_gap!r}")
        gap = float(min_gap)
    if 2.0 * radius + gap >= float(box.min()):
        raise MeshError(
            f"{func}: volume_fraction={vf:.6g} with n={n} gives inclusions of radius {radius:.6g}, which "
            f"with min_gap {gap:.6g} overlap their own periodic images (need 2 radius + min_gap < "
            f"{float(box.min()):.6g}); use more inclusions or a smaller volume fraction"
        )
    margin = max(0.5 * gap, 0.05 * radius)
    centres = _place_circles(np.random.default_rng(int(seed)), n, radius, box, gap, margin)
    if centres is None:
        raise MeshError(
            f"{func}: could not place n={n} inclusions of volume_fraction={vf:.6g} (radius {radius:.6g}, "
            f"min_gap {gap:.6g}) without overlap after a bounded number of random tries; use a smaller "
            f"volume fraction, a smaller min_gap or another seed"
        )
    return _inclusion_mesh(p, box, centres, radius, hh, k, verbose, func)


def laminate(
    path: str | os.PathLike[str],
    *,
    dim: int = 2,
    fractions: Sequence[float] = (0.5, 0.5),
    normal: int = 1,
    size: Sequence[float] | None = None,
    h: float = 0.1,
    order: int = 1,
    verbose: bool = False,
) -> GeneratedMesh:
    """Periodic laminate: layers stacked along axis ``normal``.

    Layer ``i`` occupies ``sum(fractions[:i]) * L <= x_normal <= sum(fractions[:i+1]) * L``
    with ``L = size[normal]``; its physical group is ``"phase{i+1}"`` with tag ``i + 1``.
    Interfaces are conforming (they lie on element edges/faces).

    Parameters
    ----------
    path : path-like
        Output ``.msh`` file; parent directories are created.
    dim : int
        2 or 3.
    fractions : sequence of float
        Volume fraction of each layer, each > 0, summing to 1 within 1e-12.
    normal : int
        Stacking axis: 0 (x), 1 (y) or 2 (z, 3D only).
    size : sequence of ``dim`` floats, optional
        Cell edge lengths (default: unit cell).
    h : float
        Target element size, > 0.
    order : int
        Geometry order of the elements (1 or 2).
    verbose : bool
        Show gmsh messages.

    Returns
    -------
    GeneratedMesh
        Phases ``phase1``, ``phase2``, ... (tags 1, 2, ...) with volume fractions
        ``fractions``.

    Raises
    ------
    MeshError
        On an invalid parameter or a failed meshing.
    """
    func = "laminate"
    p = _check_path(path, func)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim not in (2, 3):
        raise MeshError(f"{func}: dim must be 2 or 3, got {dim!r}")
    dim = int(dim)
    box = _check_size((1.0,) * dim if size is None else size, dim, func)
    try:
        fr = list(fractions)
    except TypeError:
        fr = None
    if not fr or not all(_is_number(f) and math.isfinite(float(f)) and float(f) > 0.0 for f in fr):
        raise MeshError(f"{func}: fractions must be a non-empty sequence of numbers > 0, got {fractions!r}")
    fr_arr = np.asarray(fr, dtype=np.float64)
    if abs(float(fr_arr.sum()) - 1.0) > 1e-12:
        raise MeshError(
            f"{func}: fractions must sum to 1 (within 1e-12), got {fractions!r} (sum {float(fr_arr.sum())!r})"
        )
    if not isinstance(normal, (int, np.integer)) or isinstance(normal, bool) or not (0 <= normal < dim):
        raise MeshError(f"{func}: normal must be an axis index in 0..{dim - 1} (0=x, 1=y, 2=z), got {normal!r}")
    normal = int(normal)
    hh = _positive(h, "h", func)
    k = _check_order(order, func)

    length = float(box[normal])
    cuts = np.concatenate([[0.0], np.cumsum(fr_arr)]) * length
    cuts[-1] = length
    with gmsh_session(func, verbose=verbose, options=_mesh_options(hh)) as gmsh:
        occ = gmsh.model.occ
        layers: list[tuple[int, int]] = []
        for i in range(len(fr_arr)):
            origin = np.zeros(dim)
            extent = box.copy()
            origin[normal] = cuts[i]
            extent[normal] = cuts[i + 1] - cuts[i]
            if dim == 2:
                tag = occ.addRectangle(origin[0], origin[1], 0.0, extent[0], extent[1])
            else:
                tag = occ.addBox(*origin, *extent)
            layers.append((dim, tag))
        if len(layers) > 1:
            _, children = occ.fragment(layers[:1], layers[1:])
            phase_entities = [sorted(t for d, t in c if d == dim) for c in children]
        else:
            phase_entities = [[layers[0][1]]]
        occ.synchronize()
        groups = [(f"phase{i + 1}", i + 1, ents) for i, ents in enumerate(phase_entities)]
        fractions_out = {f"phase{i + 1}": float(f) for i, f in enumerate(fr_arr)}
        return _mesh_and_write(gmsh, p, box, groups, fractions_out, k, func)


# --------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------

#: Generator of each mesh kind accepted by :func:`generate`.
GENERATORS: dict[str, Callable[..., GeneratedMesh]] = {
    "circle": circle_inclusion,
    "random": random_inclusions,
    "laminate": laminate,
    "sphere": sphere_inclusion,
}


def generate(kind: str, path: str | os.PathLike[str], **params: Any) -> GeneratedMesh:
    """Generate a mesh of the given kind.

    Parameters
    ----------
    kind : str
        A key of :data:`GENERATORS`: ``"circle"``, ``"random"``, ``"laminate"`` or ``"sphere"``.
    path : path-like
        Output ``.msh`` file.
    **params
        Keyword parameters of the generator (lists are accepted where tuples are expected,
        as they come from TOML).

    Returns
    -------
    GeneratedMesh

    Raises
    ------
    MeshError
        On an unknown kind or parameter (the message lists the allowed ones), or any error
        of the generator.
    """
    if kind not in GENERATORS:
        raise MeshError(f"unknown mesh kind {kind!r}; allowed kinds: {', '.join(sorted(GENERATORS))}")
    func = GENERATORS[kind]
    params_of = inspect.signature(func).parameters
    allowed = [name for name, prm in params_of.items() if prm.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [name for name in params if name not in allowed]
    if unknown:
        raise MeshError(
            f"unknown parameter {unknown[0]!r} for mesh kind {kind!r}; allowed parameters: {', '.join(allowed)}"
        )
    for name, value in params.items():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, float) and not (math.isfinite(v) and abs(v) <= 1e100):
                raise MeshError(f"parameter {name!r} of mesh kind {kind!r} must be a finite number, got {value!r}")
    problem = unwritable(Path(path).parent)
    if problem:
        raise MeshError(f"{path}: cannot write the mesh there: {problem}")
    return func(path, **params)
