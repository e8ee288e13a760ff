"""Micro boundary conditions of the cell problem.

The fluctuation field ``w`` of a cell problem is constrained on the boundary of the cell
(the box ``[box_min, box_max]``; a void's surface inside the cell is not part of it). Three
conditions, from the stiffest apparent tensor to the most compliant (Loewner order, with
the Voigt and Reuss bounds outside them):

``"linear"``
    ``w = 0`` on the box: the affine field ``E x`` on the whole boundary (uniform
    gradient; "kinematic uniform" in the SVE literature). Dirichlet conditions on every box
    DOF.
``"periodic"`` (default)
    ``w`` periodic, with every corner pinned (:func:`periodic_constraint`), through a
    dolfinx_mpc multi-point constraint.
``"minimal"``
    only the volume average of the gradient is prescribed, ``<G w> = 0``, i.e. ``int_box
    w (x) n ds = 0`` ("minimal kinematic", Mesarovic & Padbidri 2005; uniform tractions in
    the weak sense). These are ``m`` linear constraints on the box DOFs (``gdim`` for a
    scalar field, ``gdim**2`` for a vector field: for small strain the skew rows fix the
    mean rotation, to which the energy is blind). They are imposed with Lagrange
    multipliers: the cell problems solve the bordered system ``[[K, G^T], [G, 0]]``
    (:class:`fe2.core.linalg.Border`), one corner pinned against translations.

:func:`cell_constraint` makes any of them as a :class:`CellConstraint`: the multi-point
constraint (empty but for ``"periodic"``), the Dirichlet conditions, and for
``"minimal"`` the linear forms of the constraint rows. Hill–Mandel holds for all three:
``<flux . G w> = 0`` at equilibrium.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dolfinx
import dolfinx_mpc
import numpy as np
import ufl
from dolfinx import fem
from scipy.spatial import KDTree

from fe2.core.errors import MeshError
from fe2.core.physics import BOUNDARY_CONDITIONS

__all__ = ["BOUNDARY_CONDITIONS", "CellConstraint", "cell_constraint", "periodic_constraint"]

@dataclass
class CellConstraint:
    """The constraint of a cell problem's fluctuation (see the module docstring)."""

    kind: str
    mpc: dolfinx_mpc.MultiPointConstraint
    bcs: list[fem.DirichletBC]
    #: compiled linear forms of the constraint rows ``int_box v_i n_j ds`` (``"minimal"``), else empty
    rows: list[fem.Form] = field(default_factory=list)


def _tolerance(lo: np.ndarray, hi: np.ndarray) -> float:
    return 1e-8 * float(np.max(hi - lo))


def _on_box(lo: np.ndarray, hi: np.ndarray):
    tol = _tolerance(lo, hi)

    def marker(x):
        return np.any([np.isclose(x[a], lo[a], atol=tol) | np.isclose(x[a], hi[a], atol=tol)
                       for a in range(lo.size)], axis=0)

    return marker


def _zero(V: fem.FunctionSpace):
    shape = V.value_shape
    return np.zeros(shape) if len(shape) else dolfinx.default_scalar_type(0.0)


def periodic_constraint(V: fem.FunctionSpace, box_min: np.ndarray, box_max: np.ndarray
                        ) -> tuple[dolfinx_mpc.MultiPointConstraint, list[fem.DirichletBC]]:
    """Periodic constraint of ``V`` on the box ``[box_min, box_max]`` with every corner pinned.

    One relation maps every point of an upper face, edge or corner to its image with all
    upper coordinates replaced by lower ones, so no master is itself a slave. All corners
    carry a zero Dirichlet condition: dolfinx_mpc drops a slave whose master is a
    Dirichlet DOF from the constraint (leaving it free), so pinning only the origin would
    leave the other corners unconstrained.

    Returns
    -------
    (finalized MultiPointConstraint, [corner DirichletBC])
    """
    lo, hi = np.asarray(box_min, float), np.asarray(box_max, float)
    gdim = lo.size
    tol = _tolerance(lo, hi)

    def at_corner(x):
        return np.all([np.isclose(x[a], lo[a], atol=tol) | np.isclose(x[a], hi[a], atol=tol)
                       for a in range(gdim)], axis=0)

    def on_upper_face(x):
        return np.any([np.isclose(x[a], hi[a], atol=tol) for a in range(gdim)], axis=0)

    # the image of an upper point is snapped onto the DOF found there: dolfinx_mpc looks for
    # the cell holding an image with an absolute tolerance of 500 machine epsilons, and the
    # faces of a gmsh cell are flat only to round-off of the cell's size (a node 1e-13 off
    # x = 0 put lo[0] there, and every image of face x = hi missed its cell: those slaves were
    # silently dropped and the face was left free, a crack)
    X = V.tabulate_dof_coordinates()
    lower = np.any([np.isclose(X[:, a], lo[a], atol=tol) for a in range(gdim)], axis=0)
    partners = np.concatenate(V.mesh.comm.allgather(X[lower]))
    tree = KDTree(partners[:, :gdim]) if partners.size else None

    def to_lower_face(x):
        y = x.copy()
        for a in range(gdim):
            y[a] = np.where(np.isclose(x[a], hi[a], atol=tol), lo[a], x[a])
        if tree is not None and y.shape[1]:
            dist, nearest = tree.query(y[:gdim].T)
            snap = dist <= tol
            y[:, snap] = partners[nearest[snap]].T
        return y

    bcs = [fem.dirichletbc(_zero(V), fem.locate_dofs_geometrical(V, at_corner), V)]
    mpc = dolfinx_mpc.MultiPointConstraint(V)
    mpc.create_periodic_constraint_geometrical(V, on_upper_face, to_lower_face, bcs)
    mpc.finalize()
    # every owned DOF of an upper face but the corners must have become a slave
    bs, owned = V.dofmap.index_map_bs, V.dofmap.index_map.size_local
    upper = fem.locate_dofs_geometrical(V, lambda x: on_upper_face(x) & ~at_corner(x))
    slaves = np.asarray(mpc.slaves)
    missing = V.mesh.comm.allreduce(bs * int(np.count_nonzero(upper < owned))
                                    - int(np.count_nonzero(slaves < bs * owned)))
    if missing:
        raise MeshError(f"periodic condition: {missing} DOFs on the upper faces of the box {_fmt(lo)}..{_fmt(hi)} "
                        "found no partner DOF on the lower faces (is the mesh periodic?)")
    return mpc, bcs


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


def cell_constraint(kind: str, V: fem.FunctionSpace, box_min: np.ndarray, box_max: np.ndarray
                    ) -> CellConstraint:
    """The micro boundary condition ``kind`` (one of :data:`BOUNDARY_CONDITIONS`) of the
    fluctuation space ``V`` on the box ``[box_min, box_max]`` (collective on ``V``'s mesh)."""
    if kind not in BOUNDARY_CONDITIONS:
        raise ValueError(f"unknown micro boundary condition {kind!r}; choose one of "
                         f"{', '.join(BOUNDARY_CONDITIONS)}")
    lo, hi = np.asarray(box_min, float), np.asarray(box_max, float)
    if kind == "periodic":
        mpc, bcs = periodic_constraint(V, lo, hi)
        return CellConstraint(kind, mpc, bcs)
    mpc = dolfinx_mpc.MultiPointConstraint(V)
    mpc.finalize()  # no relations: the plain space
    if kind == "linear":
        bcs = [fem.dirichletbc(_zero(V), fem.locate_dofs_geometrical(V, _on_box(lo, hi)), V)]
        return CellConstraint(kind, mpc, bcs)
    # minimal: pin the lower corner (translations), constrain int_box w (x) n ds
    tol = _tolerance(lo, hi)
    corner = fem.locate_dofs_geometrical(
        V, lambda x: np.all([np.isclose(x[a], lo[a], atol=tol) for a in range(lo.size)], axis=0))
    bcs = [fem.dirichletbc(_zero(V), corner, V)]
    mesh = V.mesh
    fdim = mesh.topology.dim - 1
    facets = dolfinx.mesh.locate_entities_boundary(mesh, fdim, _on_box(lo, hi))
    tags = dolfinx.mesh.meshtags(mesh, fdim, np.sort(facets), np.ones(facets.size, dtype=np.int32))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags)(1)
    v, n = ufl.TestFunction(V), ufl.FacetNormal(mesh)
    gdim = lo.size
    if len(V.value_shape):
        rows = [v[i] * n[j] * ds for i in range(gdim) for j in range(gdim)]
    else:
        rows = [v * n[j] * ds for j in range(gdim)]
    return CellConstraint(kind, mpc, bcs, [fem.form(r) for r in rows])
