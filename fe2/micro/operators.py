"""The linear operators of a cell template, precomputed once, so that a micro Newton
iteration needs no finite-element assembly.

For a cell problem with fluctuation ``w`` and macro gradient ``E`` the micro gradient at
every micro quadrature point ``p`` is ``g_p = E + G w (x_p)``; after the periodic
condensation and the corner pins only the *free* DOFs ``x`` are unknowns
(``w = P x``: masters and interior DOFs are free, a slave takes its masters' values,
pinned DOFs are zero). :class:`CellOperators` holds

- ``B`` ``(P n, nfree)``: ``g = E + B x`` (row ``p n + i``: component ``i`` at point ``p``);
- ``B_full`` ``(P n, nfull)``: the same before the condensation (``B = B_full P``);
- the scatter ``S`` that makes the values of the condensed Jacobian
  ``K = B^T diag(W T) B`` from element matrices, in a fixed CSR pattern
  (:attr:`CellOperators.indptr`, :attr:`CellOperators.indices`).

so that the residual is ``r = B^T (W flux)``, the uncondensed internal forces
``B_full^T (W flux)``, and the Jacobian values ``S vec(K_e)`` with
``K_e = sum_q B_e^T (W T)_q B_e`` per cell -- all vectorised over any number of macro
points at once. With the Lagrange-multiplier border of a ``"minimal"`` boundary
condition (:class:`fe2.core.linalg.Border`, rows ``G`` over the free DOFs) the pattern is
that of the bordered matrix ``[[K, G^T], [G, 0]]`` (``nfree + m`` rows, the constant ``G``
entries included in every set of values) and the residual is projected onto the
constraint's null space. The gradient operator is tabulated by dolfinx itself (a compiled
expression of the trial function's gradient at the quadrature points), so any element
degree and cell type the template supports is covered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import ufl
from dolfinx import fem

from fe2.core.kinematics import measure

if TYPE_CHECKING:
    from fe2.core.quadrature import QuadraturePoints
    from fe2.micro.cell import CellProblem

__all__ = ["CellOperators"]


class CellOperators:
    """Precomputed operators of the cell template ``cell`` at the micro points of
    ``quadrature`` (one process: the template's communicator must be of size 1).

    Attributes
    ----------
    nfull, nfree : DOFs before and after the condensation
    free : (nfree,) the full-space index of each free DOF (the condensed vectors of the
        template hold the free values there and zeros at slaves and pins)
    B, B_full : see the module docstring (``scipy.sparse`` CSR)
    weights : (P,) integration weight of each micro point
    indptr, indices : CSR pattern of the condensed Jacobian ``(nfree, nfree)``, or of the
        bordered one ``(nfree + border, nfree + border)``
    border : number of Lagrange multipliers (0 without a border)
    """

    def __init__(self, cell: CellProblem, quadrature: QuadraturePoints) -> None:
        if cell.comm.size != 1:
            raise ValueError("CellOperators needs a cell template on one process")
        V, n = cell.V, cell.size
        bs = V.dofmap.index_map_bs
        self.size = n
        self.nfull = nfull = (V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts) * bs
        ncell, nq = quadrature.num_owned_cells, quadrature.num_points_per_cell
        self.num_points = P = ncell * nq
        self.weights = np.asarray(quadrature.volumes, dtype=float)

        # --- local gradient operators: (cells, q, n, dofs per cell), dofs unrolled node-major
        G = measure(cell.kinematics, cell.gdim)
        expr = fem.Expression(G(ufl.TrialFunction(V)), quadrature.points)
        d = V.dofmap.dof_layout.num_dofs * bs
        self.dofs_per_cell = d
        self.B_local = Bl = expr.eval(cell.mesh, quadrature.cells).reshape(ncell, nq, n, d)
        nodes = V.dofmap.list[:ncell]
        self.cell_dofs = cdofs = (nodes[:, :, None] * bs + np.arange(bs)).reshape(ncell, d)

        rows = np.broadcast_to(np.arange(P * n).reshape(ncell, nq, n, 1), Bl.shape).ravel()
        cols = np.broadcast_to(cdofs[:, None, None, :], Bl.shape).ravel()
        self.B_full = sp.csr_matrix((Bl.ravel(), (rows, cols)), shape=(P * n, nfull))

        # --- condensation: full DOF -> (free DOF, coefficient) --------------------------
        self.prolongation = Pm = self._prolongation(cell)
        self.nfree = Pm.shape[1]
        self.B = (self.B_full @ Pm).tocsr()
        self.B.sort_indices()
        self.Bt = self.B.T.tocsr()
        self.B_full_t = self.B_full.T.tocsr()
        self._jacobian_scatter(Pm)
        self.border = 0
        self._border_values: np.ndarray | None = None
        self._projector: tuple[np.ndarray, np.ndarray] | None = None
        if cell.border is not None:
            self._add_border(cell.border.G[:, self.free])
        self._kernels: dict[bool, tuple | None] = {}

    # ------------------------------------------------------------------------------------
    def _prolongation(self, cell: CellProblem) -> sp.csr_matrix:
        """``P`` ``(nfull, nfree)`` with ``w = P x`` (see the module docstring)."""
        nfull = self.nfull
        pinned = np.zeros(nfull, dtype=bool)
        for bc in cell.bcs:
            idx, num_owned = bc.dof_indices()
            pinned[idx] = True
        mpc = cell.mpc
        slaves = np.asarray(mpc.slaves, dtype=np.int64)
        is_slave = np.zeros(nfull, dtype=bool)
        is_slave[slaves] = True
        self.free = free = np.flatnonzero(~pinned & ~is_slave)
        column = np.full(nfull, -1, dtype=np.int64)
        column[free] = np.arange(free.size)
        rows, cols, vals = [free], [column[free]], [np.ones(free.size)]
        masters = mpc.masters
        coeffs, offsets = mpc.coefficients()
        for s in slaves:
            if pinned[s]:
                continue
            m = np.asarray(masters.links(int(s)), dtype=np.int64)
            c = np.asarray(coeffs[offsets[s]:offsets[s + 1]], dtype=float)
            if is_slave[m].any():
                raise ValueError("a periodic master is itself a slave; the condensation needs one level")
            keep = ~pinned[m]
            rows.append(np.full(int(keep.sum()), s))
            cols.append(column[m[keep]])
            vals.append(c[keep])
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(nfull, free.size))

    def _jacobian_scatter(self, Pm: sp.csr_matrix) -> None:
        """The CSR pattern of ``K = P^T (sum_e K_e) P`` and the sparse scatter ``S`` with
        ``K.data = S @ vec(K_e)`` (``vec`` over cells, then rows, then columns of ``K_e``)."""
        ncell, d = self.cell_dofs.shape
        nfree = self.nfree
        # each full DOF's (free column, coefficient) list, padded to the longest
        counts = np.diff(Pm.indptr)
        kmax = max(int(counts.max(initial=0)), 1)
        col = np.full((self.nfull, kmax), -1, dtype=np.int64)
        coef = np.zeros((self.nfull, kmax))
        slot = np.arange(Pm.nnz) - np.repeat(Pm.indptr[:-1], counts)
        row_of = np.repeat(np.arange(self.nfull), counts)
        col[row_of, slot] = Pm.indices
        coef[row_of, slot] = Pm.data
        ci, cc = col[self.cell_dofs], coef[self.cell_dofs]  # (ncell, d, kmax)
        # all pairs (a, k1) x (b, k2) within a cell
        m1 = np.broadcast_to(ci[:, :, :, None, None], (ncell, d, kmax, d, kmax))
        m2 = np.broadcast_to(ci[:, None, None, :, :], (ncell, d, kmax, d, kmax))
        val = cc[:, :, :, None, None] * cc[:, None, None, :, :]
        ke = np.broadcast_to((np.arange(ncell)[:, None, None] * d * d + np.arange(d)[None, :, None] * d
                              + np.arange(d)[None, None, :])[:, :, None, :, None], (ncell, d, kmax, d, kmax))
        ok = (m1 >= 0) & (m2 >= 0)
        key = m1[ok] * nfree + m2[ok]
        keys, pos = np.unique(key, return_inverse=True)
        r, c = np.divmod(keys, nfree)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=nfree))]).astype(np.int32)
        self.indices = c.astype(np.int32)
        self.S = sp.csr_matrix((val[ok], (pos.ravel(), ke[ok])), shape=(keys.size, ncell * d * d))
        self.nnz = keys.size

    def _add_border(self, G: np.ndarray) -> None:
        """Extend the Jacobian pattern by the constraint rows ``G`` ``(m, nfree)``: each row
        of ``K`` gets its nonzero ``G^T`` columns (``nfree + i``) after its own, then the
        ``m`` rows of ``G``; ``S`` moves to the new positions of ``K``'s entries."""
        m, nfree = G.shape
        K = sp.csr_matrix((np.arange(1, self.nnz + 1, dtype=float), self.indices, self.indptr), shape=(nfree, nfree))
        Gs = sp.csr_matrix(G)
        M = sp.bmat([[K, Gs.T], [Gs, None]], format="csr")
        M.sort_indices()
        # K's entry k (value k + 1) now sits at position p; the other positions hold G's values
        rows = np.repeat(np.arange(nfree + m), np.diff(M.indptr))
        in_k = (rows < nfree) & (M.indices < nfree)
        pos_k = np.zeros(self.nnz, dtype=np.int64)
        pos_k[M.data[in_k].astype(np.int64) - 1] = np.flatnonzero(in_k)
        values = np.where(in_k, 0.0, M.data)
        R = sp.csr_matrix((np.ones(self.nnz), (pos_k, np.arange(self.nnz))), shape=(M.nnz, self.nnz))
        self.S = (R @ self.S).tocsr()
        self.indptr, self.indices = M.indptr.astype(np.int32), M.indices.astype(np.int32)
        self.nnz, self.border, self._border_values = M.nnz, m, values
        self._projector = (G, np.linalg.inv(G @ G.T))

    def pad(self, rhs: np.ndarray) -> np.ndarray:
        """Right-hand sides ``(nfree, k)`` of the bordered system (zero multiplier rows)."""
        return rhs if not self.border else np.vstack([rhs, np.zeros((self.border, rhs.shape[1]))])

    # ------------------------------------------------------------------------------------
    def gradients(self, E: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Micro gradients ``(N, P, n)`` of macro gradients ``E`` ``(N, n)`` and free
        fluctuations ``X`` ``(N, nfree)``."""
        N, n = E.shape
        g = (self.B @ X.T).T.reshape(N, self.num_points, n)
        return g + E[:, None, :]

    def forces(self, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Condensed residuals ``(N, nfree)`` and the norms of the uncondensed internal
        forces ``(N,)`` of micro fluxes ``(N, P, n)``."""
        N = flux.shape[0]
        wf = (flux * self.weights[None, :, None]).reshape(N, -1).T
        r = (self.Bt @ wf).T
        if self._projector is not None:  # without the part the multipliers balance
            G, gram_inv = self._projector
            r = r - (r @ G.T) @ gram_inv @ G
        return r, np.linalg.norm(self.B_full_t @ wf, axis=0)

    def condensed(self, field: np.ndarray) -> np.ndarray:
        """``B^T (W field)`` for per-point vectors ``(N, P, n)`` or matrices ``(N, P, n, m)``
        -> ``(N, nfree)`` or ``(N, nfree, m)``."""
        N = field.shape[0]
        wf = field * self.weights[None, :, None] if field.ndim == 3 else field * self.weights[None, :, None, None]
        if field.ndim == 3:
            return (self.Bt @ wf.reshape(N, -1).T).T
        m = field.shape[3]
        out = self.Bt @ wf.reshape(N, -1, m).transpose(1, 0, 2).reshape(-1, N * m)
        return out.reshape(self.nfree, N, m).transpose(1, 0, 2)

    def jacobian_values(self, tangent: np.ndarray, symmetric: bool = False) -> np.ndarray:
        """Values ``(N, nnz)`` of the condensed Jacobians ``B^T diag(W T) B`` in the CSR
        pattern (:attr:`indptr`, :attr:`indices`) for micro tangents ``(N, P, n, n)``.

        ``symmetric`` says the caller's tangents are symmetric (``T = T^T`` at every micro
        point); then only their upper triangles are read, and only the upper triangles of
        the element matrices are formed (about a third of the work and memory).

        The element matrices are ``K_e = A_e t_e`` for all points at once: ``A_e`` (per
        cell, precomputed at the first call: ``w_q B_e^T . B_e`` for every pair of tangent
        components) times the cell's tangent components ``t_e`` ``(components, N)``, one
        matrix product per cell with the points as columns; then ``S`` sums them into the
        condensed pattern. If the ``A_e`` of all cells would take more than
        :attr:`KERNEL_BYTES` (large 3D or high-order cells), ``K_e = B_e^T (W T) B_e`` is
        formed per cell and point instead (:meth:`_jacobian_values_per_cell`, the same
        numbers to round-off)."""
        N, _, n, _ = tangent.shape
        ncell, nq = self.B_local.shape[:2]
        kernel = self._kernel(symmetric)
        if kernel is None:
            return self._jacobian_values_per_cell(tangent)
        A, tcomp, S = kernel
        out = np.empty((N, self.nnz))
        W = self.KERNEL_WIDTH
        T = np.zeros((-(-N // W) * W, ncell, nq, tcomp.size))  # zero points pad the last group
        T[:N] = tangent.reshape(N, ncell, nq, n * n)[:, :, :, tcomp]
        for a in range(0, N, W):
            # (ncell, nq t, W): always W points per product, so that a point's values do not
            # depend on the batch it is evaluated in (BLAS's round-off depends on the width)
            X = np.ascontiguousarray(T[a:a + W].reshape(W, ncell, -1).transpose(1, 2, 0))
            m = min(W, N - a)
            Ke = np.matmul(A, X)[:, :, :m]  # (ncell, k, m)
            out[a:a + m] = (S @ Ke.reshape(-1, m)).T
        if self._border_values is not None:
            out += self._border_values
        return out

    #: memory the per-cell kernels of :meth:`jacobian_values` may take (bytes)
    KERNEL_BYTES = 32e6
    #: points per kernel product in :meth:`jacobian_values` (fixed: see there)
    KERNEL_WIDTH = 32

    def _kernel(self, symmetric: bool):
        """``(A, tangent components, S)`` of :meth:`jacobian_values` (cached), or ``None``
        if ``A`` would exceed :attr:`KERNEL_BYTES`."""
        cache = self._kernels
        if symmetric in cache:
            return cache[symmetric]
        ncell, nq, n, d = self.B_local.shape
        if symmetric:
            ti, tj = np.triu_indices(n)
            ka, kb = np.triu_indices(d)
        else:
            ti, tj = np.divmod(np.arange(n * n), n)
            ka, kb = np.divmod(np.arange(d * d), d)
        if 8.0 * ncell * ka.size * nq * ti.size > self.KERNEL_BYTES:
            cache[symmetric] = None
            return None
        Bl, w = self.B_local, self.weights.reshape(ncell, nq)
        # K_e[a, b] = sum_q w_q sum_ij B_ia T_ij B_jb; with T symmetric the pair (i, j), i < j,
        # also carries (j, i)
        A = Bl[:, :, ti][:, :, :, ka] * Bl[:, :, tj][:, :, :, kb]  # (ncell, nq, t, k)
        if symmetric:
            off = ti != tj
            A[:, :, off] += Bl[:, :, tj[off]][:, :, :, ka] * Bl[:, :, ti[off]][:, :, :, kb]
        A *= w[:, :, None, None]
        A = np.ascontiguousarray(A.transpose(0, 3, 1, 2)).reshape(ncell, ka.size, nq * ti.size)
        S = self.S
        if symmetric:  # the upper-triangle entry (a, b) of K_e also stands for (b, a)
            cols = (np.arange(ncell)[:, None] * d * d + np.concatenate([ka * d + kb, (kb * d + ka)[ka != kb]])).ravel()
            sym = np.concatenate([np.arange(ka.size), np.flatnonzero(ka != kb)])
            rows = (np.arange(ncell)[:, None] * ka.size + sym).ravel()
            R = sp.csr_matrix((np.ones(cols.size), (cols, rows)), shape=(ncell * d * d, ncell * ka.size))
            S = (S @ R).tocsr()
        cache[symmetric] = (A, ti * n + tj, S)
        return cache[symmetric]

    def _jacobian_values_per_cell(self, tangent: np.ndarray) -> np.ndarray:
        """:meth:`jacobian_values` by ``K_e = B_e^T (W T) B_e`` per cell and point."""
        N, _, n, _ = tangent.shape
        ncell, nq, _, d = self.B_local.shape
        WT = (tangent * self.weights[None, :, None, None]).reshape(N, ncell, nq, n, n)
        Bl = self.B_local
        tmp = np.matmul(WT, Bl[None])  # (N, ncell, nq, n, d)
        Ke = np.matmul(Bl.transpose(0, 1, 3, 2)[None], tmp).sum(axis=2)  # (N, ncell, d, d)
        out = (self.S @ Ke.reshape(N, -1).T).T
        return out if self._border_values is None else out + self._border_values

    def to_full(self, X: np.ndarray) -> np.ndarray:
        """Free values ``(N, nfree, ...)`` -> the template's condensed vectors ``(N, nfull, ...)``
        (zeros at slaves and pins)."""
        out = np.zeros((X.shape[0], self.nfull, *X.shape[2:]))
        out[:, self.free] = X
        return out
