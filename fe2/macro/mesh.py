"""Macro meshes: built-in generators and gmsh files, with named boundaries.

A :class:`MacroMesh` carries the dolfinx mesh, its facet tags and a name -> tag map, so
that boundary conditions in a case file can say ``boundary = "right"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from dolfinx import mesh as dmesh

from fe2.core.compat import model_to_mesh, read_from_msh
from fe2.core.errors import MeshError, collective, on_root
from fe2.core.meshing import gmsh_session

__all__ = ["BOUNDARY_TAGS", "MacroMesh", "bar", "box", "from_file", "inspect_msh", "plate_with_hole", "rectangle"]

#: Facet tags of the built-in generators: x = 0 and x = width are left and right, y = 0
#: and y = height bottom and top, z = 0 and z = depth (3D) back and front.
BOUNDARY_TAGS = {"left": 1, "bottom": 2, "right": 3, "top": 4, "hole": 5, "back": 6, "front": 7}
#: the faces of a box, by axis: (lower, upper)
_FACES = (("left", "right"), ("bottom", "top"), ("back", "front"))


@dataclass
class MacroMesh:
    """A macro mesh with tagged boundary facets."""

    mesh: dmesh.Mesh
    facet_tags: dmesh.MeshTags
    boundaries: dict[str, int] = field(default_factory=dict)
    description: str = ""

    def boundary_tag(self, boundary: str | int, source: str = "case") -> int:
        """The facet tag of a boundary given by name or tag; MeshError if it has no facets."""
        if isinstance(boundary, str):
            if boundary not in self.boundaries:
                raise MeshError(f"{source}: boundary '{boundary}' is not a boundary of the macro mesh "
                                f"(named boundaries: {', '.join(sorted(self.boundaries)) or 'none'}; "
                                "use a facet tag number for a gmsh file)")
            tag = self.boundaries[boundary]
        else:
            tag = int(boundary)
        count = self.mesh.comm.allreduce(int(np.sum(self.facet_tags.values == tag)))
        if count == 0:
            local = {int(t) for t in np.unique(self.facet_tags.values)}
            present = sorted(set().union(*self.mesh.comm.allgather(local)))
            raise MeshError(f"{source}: boundary {boundary!r} (facet tag {tag}) has no facets in the macro mesh "
                            f"(facet tags present: {present})")
        return tag


def _tag_box_facets(mesh: dmesh.Mesh, lo, hi, hole_radius: float | None = None) -> dmesh.MeshTags:
    """Facet tags of the faces of the box ``[lo, hi]`` (:data:`BOUNDARY_TAGS`; a facet on
    an edge keeps the first face's tag)."""
    fdim = mesh.topology.dim - 1
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    tol = 1e-8 * float(np.max(hi - lo))
    markers = []
    for order in (0, 1):  # lower faces first, in axis order, then upper ones
        for a in range(lo.size):
            value = (lo, hi)[order][a]
            markers.append((BOUNDARY_TAGS[_FACES[a][order]],
                            lambda x, a=a, value=value: np.isclose(x[a], value, atol=tol)))
    if hole_radius is not None:
        r = hole_radius
        markers.append((BOUNDARY_TAGS["hole"], lambda x: np.abs(np.hypot(x[0], x[1]) - r) < 1e-3 * r))
    mesh.topology.create_connectivity(fdim, mesh.topology.dim)
    boundary = dmesh.exterior_facet_indices(mesh.topology)
    idx, vals = [], []
    for tag, marker in markers:
        facets = dmesh.locate_entities_boundary(mesh, fdim, marker)
        facets = np.intersect1d(facets, boundary)
        idx.append(facets)
        vals.append(np.full(facets.size, tag, dtype=np.int32))
    idx, vals = np.concatenate(idx), np.concatenate(vals)
    idx, first = np.unique(idx, return_index=True)  # a corner facet keeps its first tag
    return dmesh.meshtags(mesh, fdim, idx.astype(np.int32), vals[first])


def rectangle(comm, width: float, height: float, n: int, ny: int | None = None) -> MacroMesh:
    """Structured ``n x ny`` (default ``n x n``) crossed triangle mesh of
    ``[0, width] x [0, height]`` (collective)."""
    ny = n if ny is None else ny
    mesh = dmesh.create_rectangle(comm, [np.zeros(2), np.array([width, height])], [n, ny],
                                  cell_type=dmesh.CellType.triangle, diagonal=dmesh.DiagonalType.crossed)
    tags = _tag_box_facets(mesh, [0.0, 0.0], [width, height])
    return MacroMesh(mesh, tags, _names(2), f"rectangle {width} x {height}, {n} x {ny} crossed")


def _names(dim: int, hole: bool = False) -> dict[str, int]:
    faces = [name for pair in _FACES[:dim] for name in pair] + (["hole"] if hole else [])
    return {k: BOUNDARY_TAGS[k] for k in faces}


def box(comm, width: float, height: float, depth: float, n: int, ny: int | None = None,
        nz: int | None = None) -> MacroMesh:
    """Structured tetrahedral mesh of the box ``[0, width] x [0, height] x [0, depth]`` with
    ``n x ny x nz`` hexahedra cut into six tetrahedra each (default ``ny``, ``nz`` in
    proportion to ``n``: cells about cubic); faces left/right (x), bottom/top (y),
    back/front (z) (collective). With ``width`` the longest edge: a beam."""
    ny = max(1, round(n * height / width)) if ny is None else ny
    nz = max(1, round(n * depth / width)) if nz is None else nz
    mesh = dmesh.create_box(comm, [np.zeros(3), np.array([width, height, depth])], [n, ny, nz],
                            cell_type=dmesh.CellType.tetrahedron)
    tags = _tag_box_facets(mesh, [0.0, 0.0, 0.0], [width, height, depth])
    return MacroMesh(mesh, tags, _names(3), f"box {width} x {height} x {depth}, {n} x {ny} x {nz} x 6 tetrahedra")


def bar(comm, length: float, height: float, n: int, ny: int = 1, imperfection: float = 0.1,
        imperfection_width: float | None = None, imperfection_at: float = 0.5) -> MacroMesh:
    """A bar ``[0, length] x [0, h(x)]`` whose height is reduced smoothly about
    ``x_c = imperfection_at * length`` (default mid-length),
    ``h(x) = height (1 - imperfection exp(-((x - x_c) / w)^2))`` with ``w`` =
    ``imperfection_width`` (default ``height``): a specimen that localizes there under
    tension (off-centre: a notched strip whose plastic zone lies at one end). Structured
    ``n x ny`` crossed mesh (the imperfection is geometric and smooth, so every mesh sees
    the same specimen). Boundaries left, right, bottom, top (collective)."""
    if not 0.0 <= imperfection < 1.0:
        raise ValueError(f"imperfection must be in [0, 1), got {imperfection}")
    if not 0.0 <= imperfection_at <= 1.0:
        raise ValueError(f"imperfection_at must be in [0, 1], got {imperfection_at}")
    w = height if imperfection_width is None else imperfection_width
    mm = rectangle(comm, length, height, n, ny)
    x = mm.mesh.geometry.x
    x[:, 1] *= 1.0 - imperfection * np.exp(-(((x[:, 0] - imperfection_at * length) / w) ** 2))
    where = "centre" if imperfection_at == 0.5 else f"x = {imperfection_at * length:g}"
    return MacroMesh(mm.mesh, mm.facet_tags, mm.boundaries,
                     f"bar {length} x {height} (height -{100 * imperfection:g} % at {where}), {n} x {ny} crossed")


def _plate_with_hole_model(gmsh, width: float, height: float, radius: float, h: float, h_hole: float,
                           thickness: float | None = None, order: int = 1) -> None:
    """Build and mesh the quarter plate with a hole in the current gmsh model (a slab of
    ``thickness`` along z when given)."""
    occ = gmsh.model.occ
    if thickness is None:
        box = occ.addRectangle(0, 0, 0, width, height)
        disk = occ.addDisk(0, 0, 0, radius, radius)
        dim = 2
    else:
        box = occ.addBox(0, 0, 0, width, height, thickness)
        disk = occ.addCylinder(0, 0, 0, 0, 0, thickness, radius)
        dim = 3
    plate, _ = occ.cut([(dim, box)], [(dim, disk)])
    occ.synchronize()
    gmsh.model.addPhysicalGroup(dim, [t for d, t in plate if d == dim], 1, name="plate")
    tol = 1e-6 * max(width, height)
    depth = thickness or 0.0
    faces = {}
    for _, c in gmsh.model.getEntities(dim - 1):
        xmin, ymin, zmin, xmax, ymax, zmax = gmsh.model.getBoundingBox(dim - 1, c)
        on = {"left": xmax < tol, "bottom": ymax < tol, "right": xmin > width - tol, "top": ymin > height - tol,
              "back": dim == 3 and zmax < tol, "front": dim == 3 and zmin > depth - tol}
        name = next((k for k, v in on.items() if v), "hole")
        if name == "hole" and not (xmax < radius + tol and ymax < radius + tol):
            raise MeshError(f"plate_with_hole: unexpected boundary entity {c} ({xmin:g}..{xmax:g}, {ymin:g}..{ymax:g})")
        faces.setdefault(name, []).append(c)
    for name, entities in faces.items():
        gmsh.model.addPhysicalGroup(dim - 1, entities, BOUNDARY_TAGS[name], name=name)
    # size field: h_hole at the arc growing to h at distance ~ 2 radius
    dist = gmsh.model.mesh.field.add("Distance")
    gmsh.model.mesh.field.setNumbers(dist, "CurvesList" if dim == 2 else "SurfacesList", faces["hole"])
    thr = gmsh.model.mesh.field.add("Threshold")
    gmsh.model.mesh.field.setNumber(thr, "InField", dist)
    gmsh.model.mesh.field.setNumber(thr, "SizeMin", h_hole)
    gmsh.model.mesh.field.setNumber(thr, "SizeMax", h)
    gmsh.model.mesh.field.setNumber(thr, "DistMin", 0.0)
    gmsh.model.mesh.field.setNumber(thr, "DistMax", 2.0 * radius)
    gmsh.model.mesh.field.setAsBackgroundMesh(thr)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.model.mesh.generate(dim)
    if order > 1:
        gmsh.model.mesh.setOrder(order)


def plate_with_hole(comm, width: float = 1.0, height: float = 1.0, radius: float = 0.3, h: float = 0.1,
                    h_hole: float | None = None, thickness: float | None = None, order: int = 1) -> MacroMesh:
    """Quarter of a plate with a central hole: ``[0, width] x [0, height]`` minus the disc of
    ``radius`` about the origin. Boundaries ``left`` and ``bottom`` are the symmetry edges,
    ``right`` and ``top`` the outer edges, ``hole`` the arc. With ``thickness`` a 3D slab
    ``0 <= z <= thickness`` with faces ``back`` (z = 0) and ``front`` as well. ``order = 2``
    gives curved (quadratic) cells that follow the hole. Meshed with gmsh on rank 0 of
    ``comm`` and distributed (collective)."""
    h_hole = h / 3.0 if h_hole is None else h_hole
    dim = 2 if thickness is None else 3
    with gmsh_session("plate_with_hole") as gmsh:
        def build() -> None:
            try:
                _plate_with_hole_model(gmsh, width, height, radius, h, h_hole, thickness, order)
            except MeshError:
                raise
            except Exception as err:  # gmsh raises a bare Exception with its message
                raise MeshError(f"plate_with_hole: gmsh could not mesh it ({err})") from None

        on_root(comm, build)  # meshed on rank 0; an error there ends every rank
        mesh, _, facet_tags = model_to_mesh(gmsh.model, comm, 0, gdim=dim)
    slab = ("" if thickness is None else f" x {thickness} (3D)") + ("" if order == 1 else f", order {order}")
    return MacroMesh(mesh, facet_tags, _names(dim, hole=True),
                     f"quarter plate {width} x {height}{slab} with hole r = {radius}, h = {h}, h_hole = {h_hole}")


def inspect_msh(path: str | Path) -> tuple[int, dict[int, str], dict[int, str]]:
    """What a gmsh file holds, read on this process (not collective): its dimension (the
    highest dimension with elements), its physical groups on cells and on facets (tag ->
    name, "" when unnamed). :class:`~fe2.core.errors.MeshError` when gmsh cannot read it,
    when its cells are of more than one type (dolfinx reads one), when a 2D mesh does not
    lie in the x-y plane (its z would be dropped) and when two boundary groups share a name
    (a load on that name would land on one of them)."""
    with gmsh_session("inspect") as gmsh:
        try:
            gmsh.merge(str(path))
        except Exception as err:  # gmsh raises a bare Exception with its message
            raise MeshError(f"not a gmsh mesh ({str(err).strip() or 'gmsh cannot read it'})") from None
        dims = [d for d in range(4) if len(gmsh.model.mesh.getElementTypes(d)) > 0]
        if not dims:
            raise MeshError("holds no mesh elements")
        dim = max(dims)
        types = gmsh.model.mesh.getElementTypes(dim)
        if len(types) > 1:
            names = ", ".join(gmsh.model.mesh.getElementProperties(t)[0] for t in types)
            raise MeshError(f"mixes cell types ({names}); fe2 reads one cell type per mesh: mesh it with one "
                            f"(e.g. all {'triangles' if dim == 2 else 'tetrahedra'})")
        if dim == 2:
            _, coords, _ = gmsh.model.mesh.getNodes()
            xyz = np.asarray(coords, dtype=float).reshape(-1, 3)
            if xyz.size and np.ptp(xyz[:, 2]) > 1e-12 * np.ptp(xyz, axis=0).max():
                raise MeshError(f"is a 2D mesh that does not lie in an x-y plane (z from {xyz[:, 2].min():g} to "
                                f"{xyz[:, 2].max():g}); fe2 reads a 2D mesh's x and y only: place it in the plane "
                                "z = 0")
        groups = gmsh.model.getPhysicalGroups()
        cells = {t: gmsh.model.getPhysicalName(d, t) for d, t in groups if d == dim}
        facets = {t: gmsh.model.getPhysicalName(d, t) for d, t in groups if d == dim - 1}
    seen: dict[str, int] = {}
    for tag, name in sorted(facets.items()):
        if name and name in seen:
            raise MeshError(f"boundary physical groups {seen[name]} and {tag} are both named '{name}'; give each "
                            "boundary its own name (a load or support on that name would land on one of them)")
        seen[name] = tag
    return dim, cells, facets


def from_file(comm, path: str | Path, gdim: int | None = None, where: str | None = None) -> MacroMesh:
    """A macro mesh from a gmsh file (2D or 3D: its dimension, or ``gdim`` if given, which
    it must then have) whose facet physical groups are the boundaries, referred to by tag
    or, when the group has a name, by name. Collective; rank 0 first checks the file, so
    that a file gmsh cannot read, one of another dimension or one without physical groups
    on its cells or facets ends in one :class:`~fe2.core.errors.MeshError` naming ``where``
    (default: the file) on all ranks."""
    path = Path(path)
    where = where or f"macro mesh file '{path}'"
    if not path.is_file():
        raise MeshError(f"{where}: no such file")

    def check() -> tuple[int, dict[int, str]] | None:
        if comm.rank != 0:
            return None
        try:
            dim, cells, facets = inspect_msh(path)
        except MeshError as err:
            raise MeshError(f"{where}: {err}") from None
        if gdim is not None and dim != gdim:
            raise MeshError(f"{where}: the mesh is {dim}D; a {gdim}D macro mesh is needed")
        if dim not in (2, 3):
            raise MeshError(f"{where}: the mesh is {dim}D; a macro mesh is 2D or 3D")
        if not cells:
            raise MeshError(f"{where}: no physical group on its {dim}D cells (gmsh reads only elements in a "
                            f"physical group: add a Physical {'Surface' if dim == 2 else 'Volume'})")
        if not facets:
            raise MeshError(f"{where}: no physical group on its boundary {'curves' if dim == 2 else 'surfaces'}, so "
                            "no boundary can carry a load or a support (add a Physical "
                            f"{'Curve' if dim == 2 else 'Surface'} for each)")
        return dim, facets

    dim, facets = comm.bcast(collective(comm, check), root=0)
    mesh, _, facet_tags = read_from_msh(str(path), comm, 0, gdim=dim)
    names = {name: tag for tag, name in facets.items() if name}
    return MacroMesh(mesh, facet_tags, names, f"gmsh file {path}")
