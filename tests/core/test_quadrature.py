"""The quadrature degree follows the geometry the cells really have: a second-order mesh
of straight cells (tri6, tet10 whose midside nodes sit at the edge midpoints) is
integrated like the linear mesh it is; curved cells keep the higher rule. On 1 and 2
ranks (the degree is the same on every rank)."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core.compat import model_to_mesh
from fe2.core.meshing import gmsh_session
from fe2.core.quadrature import QuadraturePoints, default_degree, effective_geometry_degree, geometry_degree


def second_order_mesh(kind: str):
    """A gmsh mesh of second order on all ranks: ``square`` and ``cube`` (straight cells),
    ``disk`` (cells curved along the circle)."""
    dim = 3 if kind == "cube" else 2
    with gmsh_session(kind, options={"Mesh.MeshSizeMax": 0.4}) as gmsh:
        if MPI.COMM_WORLD.rank == 0:
            occ = gmsh.model.occ
            {"square": lambda: occ.addRectangle(0, 0, 0, 1, 2), "disk": lambda: occ.addDisk(0, 0, 0, 1, 1),
             "cube": lambda: occ.addBox(0, 0, 0, 1, 1, 2)}[kind]()
            occ.synchronize()
            gmsh.model.addPhysicalGroup(dim, [t for _, t in gmsh.model.getEntities(dim)], 1)
            gmsh.model.mesh.generate(dim)
            gmsh.model.mesh.setOrder(2)
        mesh, _, _ = model_to_mesh(gmsh.model, MPI.COMM_WORLD, 0, gdim=dim)
    return mesh


@pytest.mark.parametrize("kind, effective, volume", [("square", 1, 2.0), ("cube", 1, 2.0), ("disk", 2, np.pi)])
def test_straight_second_order_cells_get_the_linear_rule(kind, effective, volume):
    mesh = second_order_mesh(kind)
    assert geometry_degree(mesh) == 2
    assert effective_geometry_degree(mesh) == effective
    cell = mesh.topology.cell_name()
    q = default_degree(1, effective_geometry_degree(mesh), cell)
    assert q == (1 if effective == 1 else 4)  # (a tet10 mesh got degree 4, 24 points per P1 cell, before)
    qp = QuadraturePoints(mesh, q)
    total = MPI.COMM_WORLD.allreduce(qp.volumes.sum())
    # straight cells: exact with any rule; the disk: its quadratic cells' area, near pi
    assert total == pytest.approx(volume, rel=1e-12 if effective == 1 else 2e-3)
