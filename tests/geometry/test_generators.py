"""Tests of fe2.geometry.generators (periodic RVE generators) and fe2.geometry.rvemesh (loading, periodicity check).

Each process writes its meshes under its own pytest ``tmp_path`` and loads them on
``MPI.COMM_SELF``, so the file also runs under ``mpirun -n 2 python3 -m pytest``;
:func:`test_load_distributed` additionally loads one mesh on ``COMM_WORLD``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

gmsh = pytest.importorskip("gmsh")
pytest.importorskip("dolfinx")
from mpi4py import MPI  # noqa: E402

from fe2.core.errors import MeshError  # noqa: E402
from fe2.core.meshing import gmsh_session  # noqa: E402
from fe2.geometry import generators  # noqa: E402
from fe2.geometry.rvemesh import check_periodic, load_rve_mesh, phase_tags, phase_volumes  # noqa: E402
from helpers import ROOT  # noqa: E402


def _load(path: Path):
    return load_rve_mesh(path, MPI.COMM_SELF)


def _file_nodes(path: Path) -> np.ndarray:
    """Node coordinates of a .msh file in file order, shape (num_nodes, 3)."""
    import meshio

    return np.asarray(meshio.read(path).points)


def _num_cells(rve) -> int:
    tdim = rve.mesh.topology.dim
    return rve.mesh.topology.index_map(tdim).size_local


# --------------------------------------------------------------------------------------
# generators: volumes, tags, periodicity (load_rve_mesh checks it)
# --------------------------------------------------------------------------------------


def test_circle_inclusion(tmp_path: Path) -> None:
    r = 0.25
    g = generators.circle_inclusion(tmp_path / "c.msh", radius=r, h=0.05)
    assert g.dim == 2 and g.box_min == (0.0, 0.0) and g.box_max == (1.0, 1.0)
    assert g.phase_tags == {"matrix": 1, "inclusion": 2}
    assert g.volume_fractions["inclusion"] == pytest.approx(math.pi * r**2, rel=1e-14)
    rve = _load(g.path)
    assert rve.gdim == 2
    np.testing.assert_allclose(rve.box_min, [0.0, 0.0], atol=1e-14)
    np.testing.assert_allclose(rve.box_max, [1.0, 1.0], atol=1e-14)
    assert phase_tags(rve) == [1, 2]
    assert _num_cells(rve) == g.num_cells
    assert rve.mesh.geometry.x.shape[0] == g.num_nodes
    vol = phase_volumes(rve)
    assert vol[1] + vol[2] == pytest.approx(1.0, abs=1e-12)
    # inscribed polygon: slightly smaller than the disc, by ~(2 pi h / (2 pi r))^2 / 6
    assert vol[2] < math.pi * r**2
    assert vol[2] == pytest.approx(math.pi * r**2, rel=1e-2)


@pytest.mark.parametrize("center", [(0.1, 0.5), (0.1, 0.1)], ids=["edge", "corner"])
def test_circle_crossing_boundary(tmp_path: Path, center) -> None:
    """An off-centre circle is completed by its periodic images (edge and corner images)."""
    r = 0.3
    g = generators.circle_inclusion(tmp_path / "c.msh", radius=r, center=center, h=0.05)
    rve = _load(g.path)
    vol = phase_volumes(rve)
    assert vol[1] + vol[2] == pytest.approx(1.0, abs=1e-12)
    assert vol[2] == pytest.approx(math.pi * r**2, rel=1e-2)


@pytest.mark.parametrize("offset", [2e-5, 3e-6])
def test_circle_centre_just_inside_an_upper_face(tmp_path: Path, offset) -> None:
    """A circle whose centre lies just inside the face y = 1 has a short arc between its
    extreme points and that face, within the face's matching box but not on the face; it was
    taken for a face entity without an image ("the geometry is not periodic"; large random
    cells hit it). Regression."""
    r = 0.2
    g = generators.circle_inclusion(tmp_path / "c.msh", radius=r, center=(0.5, 1.0 - offset), h=0.1)
    vol = phase_volumes(_load(g.path))  # loads: periodic
    assert vol[1] + vol[2] == pytest.approx(1.0, abs=1e-12)
    assert vol[2] == pytest.approx(math.pi * r**2, rel=0.05)


def test_circle_order2(tmp_path: Path) -> None:
    """Quadratic geometry approximates the disc far better than linear."""
    r = 0.25
    g = generators.circle_inclusion(tmp_path / "c2.msh", radius=r, h=0.1, order=2)
    vol = phase_volumes(_load(g.path))
    assert vol[1] + vol[2] == pytest.approx(1.0, abs=1e-12)
    assert vol[2] == pytest.approx(math.pi * r**2, rel=1e-4)


def test_random_inclusions(tmp_path: Path) -> None:
    g = generators.random_inclusions(tmp_path / "r.msh", volume_fraction=0.3, n=6, seed=1, h=0.03)
    assert g.volume_fractions["inclusion"] == pytest.approx(0.3, rel=1e-14)
    rve = _load(g.path)
    assert phase_tags(rve) == [1, 2]
    vol = phase_volumes(rve)
    assert vol[1] + vol[2] == pytest.approx(1.0, abs=1e-12)
    assert vol[2] == pytest.approx(0.3, abs=1e-2)


def test_random_inclusions_non_unit_cell(tmp_path: Path) -> None:
    g = generators.random_inclusions(tmp_path / "r.msh", volume_fraction=0.2, n=4, seed=3, size=(2.0, 1.0), h=0.05)
    rve = _load(g.path)
    np.testing.assert_allclose(rve.box_max, [2.0, 1.0], atol=1e-12)
    vol = phase_volumes(rve)
    assert vol[1] + vol[2] == pytest.approx(2.0, abs=1e-12)
    assert vol[2] / 2.0 == pytest.approx(0.2, abs=1e-2)


def test_random_inclusions_reproducible(tmp_path: Path) -> None:
    kw = dict(volume_fraction=0.3, n=6, h=0.1)
    a = generators.random_inclusions(tmp_path / "a.msh", seed=7, **kw)
    b = generators.random_inclusions(tmp_path / "b.msh", seed=7, **kw)
    c = generators.random_inclusions(tmp_path / "c.msh", seed=8, **kw)
    xa, xb, xc = _file_nodes(a.path), _file_nodes(b.path), _file_nodes(c.path)
    assert xa.shape == xb.shape and np.array_equal(xa, xb)
    assert xa.shape != xc.shape or not np.allclose(xa, xc)


def test_random_inclusions_placement_failure(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match=r"n=16.*volume_fraction=0\.6"):
        generators.random_inclusions(tmp_path / "r.msh", volume_fraction=0.6, n=16, seed=0)


@pytest.mark.parametrize(
    "fractions, normal, size",
    [((0.3, 0.7), 1, None), ((0.25, 0.5, 0.25), 0, (2.0, 0.5))],
    ids=["two-y", "three-x-rect"],
)
def test_laminate_2d(tmp_path: Path, fractions, normal, size) -> None:
    g = generators.laminate(tmp_path / "l.msh", fractions=fractions, normal=normal, size=size, h=0.1)
    assert g.phase_tags == {f"phase{i + 1}": i + 1 for i in range(len(fractions))}
    rve = _load(g.path)
    box_volume = float(np.prod(size)) if size else 1.0
    assert phase_tags(rve) == list(range(1, len(fractions) + 1))
    vol = phase_volumes(rve)
    for i, f in enumerate(fractions):
        assert vol[i + 1] == pytest.approx(f * box_volume, abs=1e-12)
    assert sum(vol.values()) == pytest.approx(box_volume, abs=1e-12)


def test_laminate_3d(tmp_path: Path) -> None:
    g = generators.laminate(tmp_path / "l3.msh", dim=3, fractions=(0.25, 0.75), normal=2, h=0.25)
    rve = _load(g.path)
    assert rve.gdim == 3
    vol = phase_volumes(rve)
    assert vol[1] == pytest.approx(0.25, abs=1e-12)
    assert vol[2] == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize("center", [None, (0.1, 0.1, 0.1)], ids=["centre", "corner"])
def test_sphere_inclusion(tmp_path: Path, center) -> None:
    r = 0.3
    g = generators.sphere_inclusion(tmp_path / "s.msh", radius=r, center=center, h=0.2)
    assert g.dim == 3
    rve = _load(g.path)
    assert rve.gdim == 3 and phase_tags(rve) == [1, 2]
    vol = phase_volumes(rve)
    exact = 4.0 / 3.0 * math.pi * r**3
    assert vol[1] + vol[2] == pytest.approx(1.0, abs=1e-12)
    assert 0.85 * exact < vol[2] < exact


# --------------------------------------------------------------------------------------
# periodicity check
# --------------------------------------------------------------------------------------


def _grid_with_extra(extra: list[tuple[float, float]]) -> np.ndarray:
    """4 x 4 periodic grid on the unit square (16 nodes), one interior node, then ``extra``."""
    t = np.array([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0])
    grid = np.array([(a, b) for b in t for a in t])
    return np.vstack([grid, [[0.5, 0.5]], np.asarray(extra, dtype=float).reshape(-1, 2)])


def test_check_periodic_message() -> None:
    check_periodic(_grid_with_extra([]), [0.0, 0.0], [1.0, 1.0])
    x = _grid_with_extra([(1.0, 0.4375)])
    with pytest.raises(MeshError) as err:
        check_periodic(x, [0.0, 0.0], [1.0, 1.0], name="meshes/bad.msh")
    assert str(err.value) == (
        "RVE mesh 'meshes/bad.msh' is not periodic: node 17 at (1, 0.4375) on face x = 1 "
        "has no partner on face x = 0 (tolerance 1e-08)"
    )


def test_check_periodic_lowest_node_and_faces() -> None:
    # node 17 on y = 0 and node 18 on y = 1, both unmatched: the lowest number is reported
    x = _grid_with_extra([(0.2, 0.0), (0.7, 1.0)])
    with pytest.raises(MeshError, match=r"node 17 at \(0\.2, 0\) on face y = 0 has no partner on face y = 1"):
        check_periodic(x, [0.0, 0.0], [1.0, 1.0])
    # with file numbers given, the unmatched node with the lowest number is reported
    ids = np.arange(x.shape[0]) + 1
    ids[-1] = 0
    with pytest.raises(MeshError, match=r"node 0 at \(0\.7, 1\) on face y = 1 has no partner on face y = 0"):
        check_periodic(x, [0.0, 0.0], [1.0, 1.0], node_ids=ids)
    # a partner off by less than the tolerance is accepted
    x = _grid_with_extra([(0.0, 0.4), (1.0, 0.4 + 1e-9)])
    check_periodic(x, [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(MeshError, match="tolerance 1e-10"):
        check_periodic(x, [0.0, 0.0], [1.0, 1.0], tol=1e-10)


def test_check_periodic_3d() -> None:
    t = np.linspace(0.0, 1.0, 3)
    x = np.array([(a, b, c) for a in t for b in t for c in t])
    check_periodic(x, [0, 0, 0], [1, 1, 1])
    x[14, 2] = 1.0 - 1e-6  # node (0.5, 0.5, 1) moved off face z = 1: its partner 12 is alone
    with pytest.raises(MeshError, match=r"node 12 at \(0\.5, 0\.5, 0\) on face z = 0 has no partner on face z = 1"):
        check_periodic(x, [0, 0, 0], [1, 1, 1])


def _write_nonperiodic(path: Path) -> Path:
    """A unit square meshed without setPeriodic, with an extra point at (0, 0.4375) on face x = 0 only."""
    with gmsh_session("test", options={"Mesh.MeshSizeMax": 0.25}) as g:
        occ = g.model.occ
        square = occ.addRectangle(0, 0, 0, 1, 1)
        point = occ.addPoint(0.0, 0.4375, 0.0)
        occ.fragment([(2, square)], [(0, point)])
        occ.synchronize()
        g.model.addPhysicalGroup(2, [t for _, t in g.model.getEntities(2)], tag=1, name="matrix")
        g.model.mesh.generate(2)
        g.write(str(path))
    return path


def test_non_periodic_mesh_rejected(tmp_path: Path) -> None:
    path = _write_nonperiodic(tmp_path / "nonperiodic.msh")
    with pytest.raises(MeshError) as err:
        _load(path)
    msg = str(err.value)
    assert f"RVE mesh '{path}' is not periodic" in msg
    assert "on face x = 0 has no partner on face x = 1" in msg
    assert "at (0, 0.4375)" in msg
    rve = load_rve_mesh(path, MPI.COMM_SELF, check=False)
    assert phase_volumes(rve)[1] == pytest.approx(1.0, abs=1e-12)


def test_perturbed_node_reports_file_node_number(tmp_path: Path) -> None:
    """Move one boundary node of a periodic mesh (via meshio): the message names the file's node.

    The ``$Periodic`` section is dropped: gmsh re-applies it to the slave nodes on reading.
    """
    import meshio

    src = generators.laminate(tmp_path / "l.msh", fractions=(0.5, 0.5), h=0.2).path
    m = meshio.read(src)
    x = m.points
    moved = int(np.flatnonzero((np.abs(x[:, 0] - 1.0) < 1e-12) & (x[:, 1] > 0.1) & (x[:, 1] < 0.4))[0])
    partner = int(np.flatnonzero((np.abs(x[:, 0]) < 1e-12) & (np.abs(x[:, 1] - x[moved, 1]) < 1e-12))[0])
    x[moved, 1] += 1e-3
    m.gmsh_periodic = None
    bad = tmp_path / "bad.msh"
    meshio.write(bad, m, file_format="gmsh", binary=False)
    # meshio writes the nodes as 1..N in point order
    if moved < partner:
        expect = f"node {moved + 1} at (1, {x[moved, 1]:.6g}) on face x = 1 has no partner on face x = 0"
    else:
        expect = f"node {partner + 1} at (0, {x[partner, 1]:.6g}) on face x = 0 has no partner on face x = 1"
    with pytest.raises(MeshError) as err:
        _load(bad)
    assert str(err.value) == f"RVE mesh '{bad}' is not periodic: {expect} (tolerance 1e-08)"


# --------------------------------------------------------------------------------------
# loading errors, gmsh session handling
# --------------------------------------------------------------------------------------


def test_load_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.msh"
    with pytest.raises(MeshError, match=f"'{missing}' does not exist"):
        _load(missing)
    garbage = tmp_path / "garbage.msh"
    garbage.write_text("this is not a mesh\n")
    with pytest.raises(MeshError, match=f"'{garbage}'"):
        _load(garbage)
    untagged = tmp_path / "untagged.msh"
    with gmsh_session("test", options={"Mesh.MeshSizeMax": 0.5}) as g:
        g.model.occ.addRectangle(0, 0, 0, 1, 1)
        g.model.occ.synchronize()
        g.model.mesh.generate(2)
        g.write(str(untagged))
    with pytest.raises(MeshError, match=f"RVE mesh '{untagged}' has no physical groups on its 2D cells"):
        _load(untagged)
    ok = generators.laminate(tmp_path / "ok.msh", h=0.5).path
    with pytest.raises(MeshError, match="is 2D but gdim=3"):
        load_rve_mesh(ok, MPI.COMM_SELF, gdim=3)


def test_gmsh_already_initialised(tmp_path: Path) -> None:
    """Generators and the loader leave a caller's gmsh session, model and options intact."""
    gmsh.initialize(readConfigFiles=False, interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("outer")
        gmsh.model.occ.addPoint(0.5, 0.5, 0.0)
        gmsh.model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.7)
        g = generators.circle_inclusion(tmp_path / "c.msh", h=0.1)
        rve = _load(g.path)
        assert gmsh.isInitialized()
        assert gmsh.model.getCurrent() == "outer"
        assert gmsh.model.getEntities() == [(0, 1)]
        assert gmsh.option.getNumber("Mesh.MeshSizeMax") == 0.7
        assert phase_tags(rve) == [1, 2]
    finally:
        gmsh.finalize()


def test_load_distributed(tmp_path: Path) -> None:
    """Load one mesh on COMM_WORLD (distributed under mpirun): same volumes as on COMM_SELF."""
    comm = MPI.COMM_WORLD
    path = None
    if comm.rank == 0:
        path = generators.circle_inclusion(tmp_path / "c.msh", center=(0.1, 0.5), radius=0.3, h=0.1).path
    path = comm.bcast(path, root=0)
    rve = load_rve_mesh(path, comm)
    n_local = _num_cells(rve)
    if comm.size > 1:
        assert 0 < n_local < comm.allreduce(n_local)
    assert phase_tags(rve) == [1, 2]
    vol = phase_volumes(rve)
    assert vol[1] + vol[2] == pytest.approx(1.0, abs=1e-12)
    if comm.rank == 0:
        serial = phase_volumes(_load(path))
    serial = comm.bcast(serial if comm.rank == 0 else None, root=0)
    assert vol[2] == pytest.approx(serial[2], abs=1e-12)
    # a non-periodic mesh is rejected on every rank
    bad = comm.bcast(_write_nonperiodic(tmp_path / "bad.msh") if comm.rank == 0 else None, root=0)
    with pytest.raises(MeshError, match="is not periodic: node .* at \\(0, 0\\.4375\\) on face x = 0 has no partner"):
        load_rve_mesh(bad, comm)
    # missing file: also raised on every rank
    with pytest.raises(MeshError, match="does not exist"):
        load_rve_mesh(tmp_path / "missing.msh", comm)


# --------------------------------------------------------------------------------------
# generate(): registry and parameter validation
# --------------------------------------------------------------------------------------


def test_generate_dispatch(tmp_path: Path) -> None:
    g = generators.generate("laminate", tmp_path / "l.msh", fractions=[0.4, 0.6], h=0.5)
    assert g.volume_fractions == {"phase1": 0.4, "phase2": 0.6}
    assert set(generators.GENERATORS) == {"circle", "random", "laminate", "sphere"}


def test_generate_unknown_kind_and_parameter(tmp_path: Path) -> None:
    kinds = r"unknown mesh kind 'hexagon'; allowed kinds: circle, laminate, random, sphere"
    with pytest.raises(MeshError, match=kinds):
        generators.generate("hexagon", tmp_path / "x.msh")
    params = r"unknown parameter 'radiu' for mesh kind 'circle'; allowed parameters: size, radius, center, h"
    with pytest.raises(MeshError, match=params):
        generators.generate("circle", tmp_path / "x.msh", radiu=0.2)


@pytest.mark.parametrize(
    "kind, params, pattern",
    [
        ("circle", {"radius": 0.5}, r"radius must be in \(0, 0\.5\)"),
        ("circle", {"radius": -0.1}, r"radius must be a finite number > 0"),
        ("circle", {"h": 0.0}, r"h must be a finite number > 0"),
        ("circle", {"size": (1.0,)}, r"size must be a sequence of 2 numbers"),
        ("circle", {"center": (0.25, 0.5)}, r"tangent to the cell boundary"),
        ("circle", {"order": 3}, r"order must be 1 or 2"),
        ("random", {"volume_fraction": 0.7}, r"volume_fraction must be in \(0, 0\.6\]"),
        ("random", {"volume_fraction": 0.0}, r"volume_fraction must be in \(0, 0\.6\]"),
        ("random", {"n": 0}, r"n \(number of inclusions\) must be an integer >= 1"),
        ("random", {"volume_fraction": 0.6, "n": 1, "min_gap": 0.2}, r"overlap their own periodic images"),
        ("laminate", {"fractions": (0.5, 0.6)}, r"fractions must sum to 1"),
        ("laminate", {"fractions": (1.5, -0.5)}, r"fractions must be a non-empty sequence of numbers > 0"),
        ("laminate", {"normal": 2}, r"normal must be an axis index in 0\.\.1"),
        ("laminate", {"dim": 1}, r"dim must be 2 or 3"),
        ("sphere", {"radius": 0.6}, r"radius must be in \(0, 0\.5\)"),
    ],
)
def test_invalid_parameters(tmp_path: Path, kind, params, pattern) -> None:
    with pytest.raises(MeshError, match=pattern):
        generators.generate(kind, tmp_path / "x.msh", **params)
    assert not (tmp_path / "x.msh").exists()


def test_path_suffix(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match=r"path must end in '\.msh'"):
        generators.circle_inclusion(tmp_path / "c.vtk")


# --------------------------------------------------------------------------------------
# the example meshes in meshes/
# --------------------------------------------------------------------------------------

_MESHES = ROOT / "meshes"


@pytest.mark.parametrize("name", ["circle_2d", "random_2d", "laminate_2d", "sphere_3d", "laminate_3d"])
def test_example_meshes(name: str) -> None:
    """The checked-in example meshes load, are periodic, and tile the unit cell."""
    rve = _load(_MESHES / f"{name}.msh")
    assert rve.gdim == int(name[-2])
    vol = phase_volumes(rve)
    assert sorted(vol) == [1, 2]
    assert sum(vol.values()) == pytest.approx(1.0, abs=1e-12)


def test_make_examples(tmp_path: Path) -> None:
    """meshes/make_examples.py regenerates every mesh of meshes/examples.toml."""
    import runpy
    import tomllib

    script = runpy.run_path(str(_MESHES / "make_examples.py"), run_name="make_examples")
    assert script["main"]([str(tmp_path)]) == 0
    with (_MESHES / "examples.toml").open("rb") as f:
        names = set(tomllib.load(f))
    assert {p.stem for p in tmp_path.glob("*.msh")} == names
