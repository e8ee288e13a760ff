"""The fluctuation space of a cell problem under its micro boundary condition.

A cell problem's unknown is the fluctuation ``w`` in a Lagrange space on the RVE mesh,
constrained at the cell boundary (:mod:`fe2.micro.boundary`: periodic through a
dolfinx_mpc multi-point constraint with every corner pinned, linear through Dirichlet
conditions, minimal through a Lagrange-multiplier border). :class:`CondensedSpace` is that
space with its constraint, and everything that works in the *condensed* numbering
(masters and free DOFs; slaves and pinned DOFs carry zeros): assembling matrices and
vectors through the constraint, dot products and norms over the owned rows, solves with a
factorised matrix (the bordered system when there is a border), and setting a function
from condensed values. The linear cell (:class:`fe2.micro.cell.CellProblem`) and the
micro engines (:mod:`fe2.micro.engines`) both work through it, so the condensation is
written once.

Vectors are numpy arrays of the owned condensed rows, ``(nloc,)`` or ``(nloc, m)`` for
``m`` columns. Methods are collective on :attr:`CondensedSpace.comm` unless said otherwise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import dolfinx
import dolfinx.fem.petsc
import dolfinx_mpc
import numpy as np
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from fe2.core import linalg
from fe2.core.errors import SolverError
from fe2.core.kinematics import measure
from fe2.micro.boundary import CellConstraint

__all__ = ["CondensedSpace", "MicroGradient"]


class MicroGradient(NamedTuple):
    """A compiled micro gradient ``E + G w`` at the micro points (:meth:`CondensedSpace.micro_gradient`)."""

    macro: fem.Constant  #: the macro gradient ``E`` ``(n,)``
    fluctuation: fem.Function  #: the fluctuation ``w`` (set it with :meth:`CondensedSpace.set_fluctuation`)
    expression: fem.Expression  #: ``E + G w`` at the quadrature points


class CondensedSpace:
    """The fluctuation space ``V`` with the cell constraint ``constraint`` (collective on
    the mesh's communicator; see the module docstring).

    Attributes
    ----------
    comm, mesh, V : the communicator, the RVE mesh and the (unconstrained) Lagrange space
    mpc, bcs : the multi-point constraint and the Dirichlet conditions of the constraint
    border : the Lagrange-multiplier border of a ``"minimal"`` condition, else None
    nloc : owned rows of a condensed vector
    kind : the boundary condition's name
    """

    #: right-hand sides per dense block solve (bounds the memory of a batch)
    BLOCK = 256

    def __init__(self, V: fem.FunctionSpace, constraint: CellConstraint) -> None:
        self.V = V
        self.mesh = V.mesh
        self.comm = V.mesh.comm
        self.kind = constraint.kind
        self.mpc, self.bcs = constraint.mpc, constraint.bcs
        imap = self.mpc.function_space.dofmap.index_map
        self.nloc = imap.size_local * self.mpc.function_space.dofmap.index_map_bs
        self.border: linalg.Border | None = None
        if constraint.rows:
            self.border = linalg.Border(np.array([self.vector(f) for f in constraint.rows]), self.comm)

    # --- assembly -----------------------------------------------------------------------
    def matrix(self, form: fem.Form, K: PETSc.Mat | None = None) -> PETSc.Mat:
        """The condensed matrix of the bilinear ``form``, assembled into ``K`` (zeroed
        first) or a new matrix (without the :attr:`border`)."""
        if K is None:
            return dolfinx_mpc.assemble_matrix(form, self.mpc, bcs=self.bcs)
        K.zeroEntries()
        dolfinx_mpc.assemble_matrix(form, self.mpc, bcs=self.bcs, A=K)
        return K

    def vector(self, form: fem.Form, b: PETSc.Vec | None = None) -> np.ndarray:
        """One condensed (constrained rows zeroed) vector of the linear ``form`` as an
        array ``(nloc,)``; ``b`` is a work vector to assemble into (a new one if None)."""
        own = b is None
        if own:
            b = dolfinx_mpc.assemble_vector(form, self.mpc)
        else:
            with b.localForm() as loc:
                loc.set(0.0)
            dolfinx_mpc.assemble_vector(form, self.mpc, b)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, self.bcs)
        out = b.array_r.copy()
        if own:
            b.destroy()
        return out

    @staticmethod
    def assemble_plain(form: fem.Form, b: PETSc.Vec) -> None:
        """``form`` assembled into ``b`` without the constraint, the ghosts' contributions
        added to their owners."""
        with b.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, form)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)

    def unit_vectors(self, form: fem.Form, unit: fem.Constant, condensed: bool = True) -> np.ndarray:
        """The vectors of the linear ``form`` for each unit value of the constant ``unit``
        ``(n,)``, as columns ``(nloc, n)``; with ``condensed=False`` assembled without the
        constraint (owned rows of the plain space). ``unit`` is zero afterwards."""
        n = unit.value.size
        b = dolfinx_mpc.assemble_vector(form, self.mpc) if condensed else dolfinx.fem.petsc.create_vector(form)
        B = np.zeros((b.getLocalSize(), n))
        for k in range(n):
            unit.value[:] = 0.0
            unit.value[k] = 1.0
            if condensed:
                B[:, k] = self.vector(form, b)
            else:
                self.assemble_plain(form, b)
                B[:, k] = b.array_r
        unit.value[:] = 0.0
        b.destroy()
        return B

    # --- algebra ------------------------------------------------------------------------
    def dot(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``X^T Y`` over the distributed (owned) rows: ``(nloc, m) x (nloc, k)``."""
        return self.comm.allreduce(X.T @ Y, op=MPI.SUM)

    def norm(self, r: np.ndarray) -> float:
        """The Euclidean norm of a distributed vector ``(nloc,)``."""
        return float(np.sqrt(self.dot(r, r)))

    def solve(self, rhs: np.ndarray, ksp: PETSc.KSP) -> np.ndarray:
        """Solve ``A X = rhs`` with the stored factorisation of ``ksp`` (a factorised
        solver of a condensed matrix, bordered when there is a :attr:`border`: then with
        zero constraint values, returning ``X`` only).

        On one process the columns go to the factor as dense blocks of :attr:`BLOCK`
        right-hand sides (``MatMatSolve``); otherwise one KSP solve per column.

        Parameters
        ----------
        rhs : (nloc, m) owned rows of ``m`` right-hand sides in the condensed space

        Returns
        -------
        X : (nloc, m) condensed solutions (slave entries zero; see :meth:`set_fluctuation`)
        """
        nloc, m = rhs.shape
        if self.border is not None:
            rhs = self.border.pad(rhs)
        X = np.empty(rhs.shape)
        if self.comm.size == 1 and m > 1:
            F = linalg.factor_matrix(ksp)
            for j0 in range(0, m, self.BLOCK):
                j1 = min(m, j0 + self.BLOCK)
                X[:, j0:j1] = linalg.mat_solve(F, rhs[:, j0:j1])
            return X[:nloc]
        A = ksp.getOperators()[0]
        b = A.createVecRight()
        x = A.createVecLeft()
        for j in range(m):
            b.array[:] = rhs[:, j]
            ksp.solve(b, x)
            reason = ksp.getConvergedReason()
            if reason < 0:
                raise SolverError(f"RVE linear solve failed (KSP converged reason {reason})")
            X[:, j] = x.array_r
        b.destroy()
        x.destroy()
        return X[:nloc]

    # --- fields -------------------------------------------------------------------------
    def set_fluctuation(self, w: fem.Function, x: np.ndarray) -> None:
        """Set the function ``w`` (of the constrained space) from condensed values ``x``
        ``(nloc,)``: ghosts updated, slaves from their masters."""
        w.x.array[: x.shape[0]] = x
        w.x.scatter_forward()
        self.mpc.backsubstitution(w)

    def function(self, name: str = "fluctuation") -> fem.Function:
        """A new function of the constrained space (not collective)."""
        return fem.Function(self.mpc.function_space, name=name)

    def micro_gradient(self, quadrature: Any, kinematics: str, size: int) -> MicroGradient:
        """A macro gradient constant ``E`` ``(size,)``, a fluctuation function ``w`` and the
        compiled micro gradient ``E + G w`` at the points of ``quadrature``
        (:class:`fe2.core.quadrature.QuadraturePoints`) for ``kinematics``."""
        E = fem.Constant(self.mesh, np.zeros(size))
        w = self.function()
        gdim = self.mesh.geometry.dim
        return MicroGradient(E, w, quadrature.expression(E + measure(kinematics, gdim)(w)))

    def destroy(self) -> None:
        """Free the PETSc objects (collective)."""
        if self.border is not None:
            self.border.destroy()
