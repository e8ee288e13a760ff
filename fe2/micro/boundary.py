"""Micro boundary conditions of the cell problem.

A cell problem's fluctuation field is constrained on the boundary of the cell (the box
``[box_min, box_max]``); today that is the periodic condition with the corners pinned
(:func:`periodic_constraint`), built with dolfinx_mpc. The cell problems condense the
constrained DOFs out of their matrices and vectors with it.
"""

from __future__ import annotations

import dolfinx
import dolfinx_mpc
import numpy as np
from dolfinx import fem

__all__ = ["periodic_constraint"]


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
    tol = 1e-8 * float(np.max(hi - lo))

    def at_corner(x):
        return np.all([np.isclose(x[a], lo[a], atol=tol) | np.isclose(x[a], hi[a], atol=tol)
                       for a in range(gdim)], axis=0)

    def on_upper_face(x):
        return np.any([np.isclose(x[a], hi[a], atol=tol) for a in range(gdim)], axis=0)

    def to_lower_face(x):
        y = x.copy()
        for a in range(gdim):
            y[a] = np.where(np.isclose(x[a], hi[a], atol=tol), lo[a], x[a])
        return y

    shape = V.value_shape
    zero = np.zeros(shape) if len(shape) else dolfinx.default_scalar_type(0.0)
    bcs = [fem.dirichletbc(zero, fem.locate_dofs_geometrical(V, at_corner), V)]
    mpc = dolfinx_mpc.MultiPointConstraint(V)
    mpc.create_periodic_constraint_geometrical(V, on_upper_face, to_lower_face, bcs)
    mpc.finalize()
    return mpc, bcs
