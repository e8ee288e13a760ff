"""Quadrature points of the owned cells of a mesh: the points materials are evaluated at.

A :class:`QuadraturePoints` fixes one quadrature rule on a mesh and numbers the points of
the cells a rank *owns* cell by cell (``cell * num_points_per_cell + q``, owned cells in
local order). Everything that is stored or evaluated per point -- macro stresses and
tangents, RVE micro fields, internal variables -- uses this numbering, and the rule's
quadrature function spaces and integration measure come from here so that the point
values are exactly what the forms integrate.
"""

from __future__ import annotations

from typing import Any

import basix
import basix.ufl
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

__all__ = ["TENSOR_PRODUCT_CELLS", "QuadraturePoints", "default_degree", "effective_geometry_degree",
           "geometry_degree"]


#: cells whose Lagrange spaces are tensor products (Q_k)
TENSOR_PRODUCT_CELLS = ("quadrilateral", "hexahedron")


def default_degree(degree: int, geometry_degree: int = 1, cell: str = "triangle") -> int:
    """Quadrature degree for a Lagrange field of ``degree`` in a tangent-weighted form:
    ``max(2 (degree - 1), 1)`` on affine simplices (exact for piecewise-constant tangents);
    on curved cells of ``geometry_degree`` g > 1, where the integrand is rational,
    ``2 degree + 2 (g - 1)`` (the effective tensor of a P1 or P2 cell on a quadratic
    geometry then changes by less than 1e-6 relative with a higher degree). On
    quadrilaterals and hexahedra (``cell``) at least ``2 degree``, full integration: a
    Q_k gradient has degree k in each coordinate, and fewer points (one per Q1 cell) leave
    zero-energy hourglass modes in the stiffness."""
    if cell in TENSOR_PRODUCT_CELLS or geometry_degree > 1:
        return 2 * degree + 2 * (geometry_degree - 1)
    return max(2 * (degree - 1), 1)


def geometry_degree(mesh: Any) -> int:
    """The polynomial degree of a mesh's coordinate element (2 for curved quadratic cells)."""
    return int(mesh.geometry.cmap.degree)


def effective_geometry_degree(mesh: Any) -> int:
    """The degree of a mesh's geometry as the quadrature should see it (collective on
    ``mesh.comm``): :func:`geometry_degree`, but 1 when every cell of a higher-order mesh
    is in fact straight (its higher-order nodes where the linear, or bilinear, map of its
    vertices puts them, to 1e-10 of the cell's size: a tri6 or tet10 mesh of straight
    cells), whose integrands are then those of the linear geometry."""
    g = geometry_degree(mesh)
    if g == 1:
        return 1
    cell = basix.CellType[mesh.topology.cell_name()]
    cmap = basix.create_element(basix.ElementFamily.P, cell, g, basix.LagrangeVariant(mesh.geometry.cmap.variant))
    linear = basix.create_element(basix.ElementFamily.P, cell, 1)
    shape = linear.tabulate(0, cmap.points)[0, :, :, 0]  # (geometry nodes, vertices)
    nodes = mesh.geometry.dofmap  # (cells, geometry nodes), in the coordinate element's order
    X = mesh.geometry.x[nodes]  # (cells, nodes, 3)
    straight = X[:, : shape.shape[1]]  # (the vertices come first)
    predicted = np.einsum("nv,cvd->cnd", shape, straight)
    size = np.ptp(X, axis=1).max(axis=1, initial=0.0) if X.size else np.zeros(0)
    curved = bool(np.any(np.abs(predicted - X).max(axis=(1, 2), initial=0.0) > 1e-10 * size))
    return g if mesh.comm.allreduce(curved, op=MPI.LOR) else 1


class QuadraturePoints:
    """A quadrature rule of degree ``degree`` on the owned cells of ``mesh`` (not collective).

    Attributes
    ----------
    points : (nq, tdim) reference points; weights : (nq,) reference weights
    num_points_per_cell, num_owned_cells, num_points (``= cells x nq``)
    cells : (num_owned_cells,) int32 local indices of the owned cells
    volumes : (num_points,) the volume each point stands for, ``w_q |det J(x_q)|`` (the
        rule's weight times the Jacobian determinant at the point: exact on curved,
        higher-order cells too), so that ``volumes @ f`` integrates a per-point ``f`` with
        exactly the rule the forms use
    dx : the UFL measure whose integrals use exactly these points
    """

    def __init__(self, mesh: Any, degree: int) -> None:
        self.mesh = mesh
        self.degree = degree
        self.cell_name = mesh.topology.cell_name()
        self.points, self.weights = basix.make_quadrature(basix.CellType[self.cell_name], degree)
        self.num_points_per_cell = self.points.shape[0]
        tdim = mesh.topology.dim
        self.num_owned_cells = mesh.topology.index_map(tdim).size_local
        self.cells = np.arange(self.num_owned_cells, dtype=np.int32)
        self.num_points = self.num_owned_cells * self.num_points_per_cell
        self.dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": degree,
                                                            "quadrature_scheme": "default"})
        point_volumes = self._jacobian_determinants() * self.weights[None, :]
        self.volumes = point_volumes.ravel()
        #: (cells, nq) each point's share of its cell (rows sum to 1)
        self.cell_shares = point_volumes / point_volumes.sum(axis=1, keepdims=True)

    def _jacobian_determinants(self) -> np.ndarray:
        """``|det J|`` at every point ``(cells, nq)``: from the vertices on straight-sided
        simplices (constant per cell, no compiled code), else a compiled expression."""
        mesh = self.mesh
        tdim, gdim = mesh.topology.dim, mesh.geometry.dim
        if geometry_degree(mesh) == 1 and self.cell_name in ("interval", "triangle", "tetrahedron") \
                and tdim == gdim:
            X = mesh.geometry.x[mesh.geometry.dofmap[: self.num_owned_cells], :gdim]  # (cells, tdim + 1, gdim)
            det = np.abs(np.linalg.det(X[:, 1:, :] - X[:, :1, :]))
            return np.repeat(det[:, None], self.num_points_per_cell, axis=1)
        expr = fem.Expression(abs(ufl.JacobianDeterminant(mesh)), self.points)
        return expr.eval(mesh, self.cells).reshape(self.num_owned_cells, self.num_points_per_cell)

    def space(self, shape: tuple[int, ...] = ()) -> fem.FunctionSpace:
        """A quadrature function space of this rule with values of ``shape`` (collective)."""
        element = basix.ufl.quadrature_element(self.cell_name, value_shape=shape, degree=self.degree)
        return fem.functionspace(self.mesh, element)

    def dofs(self, space: fem.FunctionSpace) -> np.ndarray:
        """``(num_points,)`` the (block) dof of each owned point in a quadrature ``space``."""
        return space.dofmap.list[: self.num_owned_cells].ravel()

    def expression(self, expr: Any) -> fem.Expression:
        """A compiled UFL expression evaluated at this rule's points (see :meth:`evaluate`)."""
        return fem.Expression(expr, self.points)

    def evaluate(self, expression: fem.Expression, size: int) -> np.ndarray:
        """``(num_points, size)`` values of an :meth:`expression` at the owned points."""
        return expression.eval(self.mesh, self.cells).reshape(-1, size)

    def cell_average(self, values: np.ndarray) -> np.ndarray:
        """Cell averages of per-point values (weighted by :attr:`cell_shares`):
        ``(num_points,)`` -> ``(cells,)`` or ``(num_points, n)`` -> ``(cells, n)``."""
        values = np.asarray(values)
        w = self.cell_shares
        if values.ndim == 1:
            return np.einsum("cq,cq->c", values.reshape(self.num_owned_cells, self.num_points_per_cell), w)
        vals = values.reshape(self.num_owned_cells, self.num_points_per_cell, -1)
        return np.einsum("cqk,cq->ck", vals, w)
