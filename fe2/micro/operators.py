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

**A template distributed over several processes** (``[parallel] ranks_per_rve``): each
process holds the operators of its own cells and micro points. Its free DOFs are its owned
ones; the columns of its ``B`` are its free DOFs followed by the other processes' free DOFs
its cells touch (its *halo*, :class:`Halo`): :meth:`CellOperators.gradients` first fetches
their values from their owners, and :meth:`CellOperators.forces` /
:meth:`CellOperators.condensed` send the contributions to them back to the owners and add
them there. The Jacobian is given as coordinate entries in the global numbering of the free
DOFs (each process's owned ones, consecutively by rank; the multipliers of a border after
rank 0's), summed by PETSc over the processes (:attr:`CellOperators.coo`). Every quantity a
method returns is then the process's owned part; norms and volume averages are the
caller's to sum over the processes.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import ufl
from dolfinx import fem
from mpi4py import MPI

from fe2 import kernels
from fe2.core.kinematics import gradient_size, measure
from fe2.kernels.cells import forces as cell_forces
from fe2.kernels.cells import gradients as cell_gradients
from fe2.kernels.jacobian import jacobian_values as kernel_values

if TYPE_CHECKING:
    from fe2.core.quadrature import QuadraturePoints
    from fe2.micro.space import CondensedSpace

__all__ = ["CellOperators", "Halo"]


class Halo:
    """Rows of a distributed array owned by one process and needed by others (collective
    on ``comm``): each process owns ``num_owned`` consecutive rows of the global numbering
    (by rank) and needs the rows ``ghosts`` (global numbers, unique, none its own).

    Arrays carry the rows on axis 1 (``(N, rows, ...)``: the points of a batch first)."""

    def __init__(self, comm: MPI.Comm, num_owned: int, ghosts: np.ndarray) -> None:
        self.comm = comm
        self.num_owned = num_owned
        self.ghosts = ghosts = np.asarray(ghosts, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(comm.allgather(num_owned))])
        owner = np.searchsorted(offsets, ghosts, side="right") - 1
        #: per rank: the positions in ``ghosts`` of the rows that rank owns
        self._recv = [np.flatnonzero(owner == r) for r in range(comm.size)]
        #: per rank: the local indices of this process's rows that rank needs
        self._send = comm.alltoall([ghosts[idx] - offsets[r] for r, idx in enumerate(self._recv)])

    def forward(self, X: np.ndarray) -> np.ndarray:
        """The ghost rows ``(N, ghosts, ...)`` of owned rows ``X`` ``(N, num_owned, ...)``."""
        parts = self.comm.alltoall([np.ascontiguousarray(X[:, idx]) for idx in self._send])
        out = np.empty((X.shape[0], self.ghosts.size, *X.shape[2:]))
        for idx, part in zip(self._recv, parts):
            out[:, idx] = part
        return out

    def reverse(self, owned: np.ndarray, ghost: np.ndarray) -> np.ndarray:
        """``owned`` ``(N, num_owned, ...)`` plus every process's contributions to its rows
        (``ghost`` ``(N, ghosts, ...)`` on each: contributions to their owners' rows)."""
        parts = self.comm.alltoall([np.ascontiguousarray(ghost[:, idx]) for idx in self._recv])
        out = np.array(owned, dtype=float)
        for idx, part in zip(self._send, parts):
            out[:, idx] += part  # (a process asks for each row once: no repeated index)
        return out


class CellOperators:
    """Precomputed operators of a cell problem with fluctuation space ``space`` (under its
    boundary condition) and macro gradients of ``kinematics``, at the micro points of
    ``quadrature`` (collective on the template's communicator; on several processes each
    holds its own part, see the module docstring).

    Attributes
    ----------
    nfull : local DOFs before the condensation (owned and ghost)
    num_owned : owned DOFs before the condensation (the template's condensed vectors)
    free : (nfree,) the owned index of each owned free DOF (the condensed vectors of the
        template hold the free values there and zeros at slaves and pins)
    nfree, next : owned free DOFs; columns of ``B`` (owned free DOFs, then the halo's)
    B, B_full : see the module docstring (``scipy.sparse`` CSR)
    weights : (P,) integration weight of each micro point
    indptr, indices : one process: CSR pattern of the condensed Jacobian ``(nfree,
        nfree)``, or of the bordered one ``(nfree + border, nfree + border)``
    coo : several processes: global (row, column) of each Jacobian entry this process
        contributes (:meth:`jacobian_values` gives their values)
    num_rows : rows of the (bordered) Jacobian on this process
    border : number of Lagrange multipliers (0 without a border)
    """

    def __init__(self, space: CondensedSpace, quadrature: QuadraturePoints, kinematics: str) -> None:
        self.comm = comm = space.comm
        self.parallel = comm.size > 1
        # the fluctuation space with the ghosts the periodic masters need (its DOF numbering
        # extends the template's space V's)
        gdim = space.mesh.geometry.dim
        V, Vm, n = space.V, space.mpc.function_space, gradient_size(kinematics, gdim)
        bs = Vm.dofmap.index_map_bs
        imap = Vm.dofmap.index_map
        self.size = n
        self.num_owned = imap.size_local * bs
        self.nfull = nfull = (imap.size_local + imap.num_ghosts) * bs
        ncell, nq = quadrature.num_owned_cells, quadrature.num_points_per_cell
        self.num_points = P = ncell * nq
        self.weights = np.asarray(quadrature.volumes, dtype=float)

        # --- local gradient operators: (cells, q, n, dofs per cell), dofs unrolled node-major
        G = measure(kinematics, gdim)
        expr = fem.Expression(G(ufl.TrialFunction(V)), quadrature.points)
        d = V.dofmap.dof_layout.num_dofs * bs
        self.dofs_per_cell = d
        self.B_local = Bl = expr.eval(space.mesh, quadrature.cells).reshape(ncell, nq, n, d)
        nodes = V.dofmap.list[:ncell]
        self.cell_dofs = cdofs = (nodes[:, :, None] * bs + np.arange(bs)).reshape(ncell, d)

        rows = np.broadcast_to(np.arange(P * n).reshape(ncell, nq, n, 1), Bl.shape).ravel()
        cols = np.broadcast_to(cdofs[:, None, None, :], Bl.shape).ravel()
        self.B_full = sp.csr_matrix((Bl.ravel(), (rows, cols)), shape=(P * n, nfull))

        # --- condensation: full DOF -> (free DOF, coefficient) --------------------------
        border_rows = 0 if space.border is None else space.border.G.shape[0]
        self.prolongation = Pm = self._prolongation(space, Vm, border_rows)
        self.next = Pm.shape[1]
        self.B = (self.B_full @ Pm).tocsr()
        self.B.sort_indices()
        self.Bt = self.B.T.tocsr()
        self.B_full_t = self.B_full.T.tocsr()
        self.prolongation_t = Pm.T.tocsr()
        self._jacobian_scatter(Pm)
        self.border = self.border_local = 0
        self._border_values: np.ndarray | None = None
        self._projector: tuple[np.ndarray, np.ndarray] | None = None
        if space.border is not None:
            self._add_border(space.border.G[:, self.free])
        self._kernels: dict = {}  # (:meth:`_kernel`, :meth:`_scatter`: made on first use)
        #: the owned and ghost DOFs before the condensation (the forces' norm)
        self.full_halo = None
        if self.parallel:
            ghosts = (np.asarray(imap.ghosts, dtype=np.int64)[:, None] * bs + np.arange(bs)).ravel()
            self.full_halo = Halo(comm, self.num_owned, ghosts)

    # ------------------------------------------------------------------------------------
    def _prolongation(self, space: CondensedSpace, Vm, border_rows: int) -> sp.csr_matrix:
        """``P`` ``(nfull, next)`` with ``w = P x`` (see the module docstring); numbers the
        free DOFs and sets up the :attr:`halo`."""
        comm, nfull, nown = self.comm, self.nfull, self.num_owned
        pinned = np.zeros(nfull, dtype=bool)
        for bc in space.bcs:
            idx, _ = bc.dof_indices()
            pinned[idx] = True
        mpc = space.mpc
        slaves = np.asarray(mpc.slaves, dtype=np.int64)
        is_slave = np.zeros(nfull, dtype=bool)
        is_slave[slaves] = True
        self.free = free = np.flatnonzero(~pinned[:nown] & ~is_slave[:nown])
        self.nfree = nf = free.size
        # global numbering: each process's free DOFs by rank; a border's multipliers after rank 0's
        self.num_rows = nf + (border_rows if comm.rank == 0 else 0)
        self.row_start = start = (comm.exscan(self.num_rows) or 0) if self.parallel else 0
        self.multiplier_start = comm.bcast(nf, root=0) if self.parallel else nf
        # each local DOF: its global free number, -1 pinned, -2 slave (ghosts: as their owner says)
        code = np.full(nfull, -1, dtype=np.int64)
        code[:nown][is_slave[:nown]] = -2
        code[:nown][pinned[:nown]] = -1
        code[free] = start + np.arange(nf)
        if self.parallel:
            f = fem.Function(Vm)
            f.x.array[:nown] = code[:nown]
            f.x.scatter_forward()
            code[nown:] = np.rint(f.x.array[nown:nfull]).astype(np.int64)
            orphans = comm.allreduce(int(np.count_nonzero((code == -2) & ~is_slave)))
            if orphans:  # (raised on every process)
                raise ValueError(f"{orphans} ghost DOFs are periodic slaves without their masters on their "
                                 "process; the condensation needs them")
        rows, cols, vals = [np.flatnonzero(code >= 0)], [], []
        cols.append(code[rows[0]])
        vals.append(np.ones(rows[0].size))
        masters = mpc.masters
        coeffs, offsets = mpc.coefficients()
        nested = False
        for s in slaves:
            if code[s] != -2:  # pinned
                continue
            m = np.asarray(masters.links(int(s)), dtype=np.int64)
            c = np.asarray(coeffs[offsets[s]:offsets[s + 1]], dtype=float)
            nested |= bool((code[m] == -2).any())
            keep = code[m] >= 0
            rows.append(np.full(int(keep.sum()), s))
            cols.append(code[m[keep]])
            vals.append(c[keep])
        if (comm.allreduce(int(nested), op=MPI.MAX) if self.parallel else nested):  # (raised on every process)
            raise ValueError("a periodic master is itself a slave; the condensation needs one level")
        glob = np.concatenate(cols)
        mine = (glob >= start) & (glob < start + nf)
        #: the other processes' free DOFs this one's cells touch (global numbers, sorted)
        ghosts = np.unique(glob[~mine])
        self.halo = Halo(comm, self.num_rows, ghosts) if self.parallel else None
        #: global number of each column of ``B``
        self.columns = np.concatenate([start + np.arange(nf), ghosts])
        local = np.where(mine, glob - start, nf + np.searchsorted(ghosts, glob))
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), local)), shape=(nfull, nf + ghosts.size))

    def _jacobian_scatter(self, Pm: sp.csr_matrix) -> None:
        """The pattern of ``K = P^T (sum_e K_e) P`` (CSR on one process, global coordinates
        on several) and the sparse scatter ``S`` with ``K.data = S @ vec(K_e)`` (``vec``
        over cells, then rows, then columns of ``K_e``)."""
        ncell, d = self.cell_dofs.shape
        ncol = self.next
        # each full DOF's (column, coefficient) list, padded to the longest
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
        key = m1[ok] * ncol + m2[ok]
        keys, pos = np.unique(key, return_inverse=True)
        r, c = np.divmod(keys, ncol)
        if self.parallel:
            self.coo = (self.columns[r], self.columns[c])
        else:
            self.indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=ncol))]).astype(np.int32)
            self.indices = c.astype(np.int32)
        self.S = sp.csr_matrix((val[ok], (pos.ravel(), ke[ok])), shape=(keys.size, ncell * d * d))
        self.nnz = keys.size

    def _add_border(self, G: np.ndarray) -> None:
        """Extend the Jacobian pattern by the constraint rows ``G`` ``(m, nfree)``.

        One process: each row of ``K`` gets its nonzero ``G^T`` columns (``nfree + i``)
        after its own, then the ``m`` rows of ``G``; ``S`` moves to the new positions of
        ``K``'s entries. Several: the entries of ``G`` and ``G^T`` over this process's
        columns are appended to its coordinates (the multipliers' rows are rank 0's)."""
        m, nfree = G.shape
        self.border, self.border_local = m, (m if self.comm.rank == 0 else 0)
        self._projector = (G, np.linalg.inv(self.sum(G @ G.T)))
        if self.parallel:
            i, j = np.nonzero(G)
            rows, cols = self.row_start + j, self.multiplier_start + i
            self.coo = (np.concatenate([self.coo[0], rows, cols]), np.concatenate([self.coo[1], cols, rows]))
            extra = 2 * i.size
            self._border_values = np.concatenate([np.zeros(self.nnz), G[i, j], G[i, j]])
            self.S = sp.vstack([self.S, sp.csr_matrix((extra, self.S.shape[1]))]).tocsr()
            self.nnz += extra
            return
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
        self.nnz, self._border_values = M.nnz, values

    # --- sums over the processes of the template ------------------------------------------
    def sum(self, a):
        """``a`` summed over the template's processes (itself on one process)."""
        return self.comm.allreduce(a, op=MPI.SUM) if self.parallel else a

    def norms(self, r: np.ndarray) -> np.ndarray:
        """Euclidean norms ``(N,)`` of distributed vectors ``(N, owned rows)``."""
        return np.sqrt(self.sum(np.einsum("ij,ij->i", r, r))) if self.parallel else np.linalg.norm(r, axis=1)

    def _owned(self, r: np.ndarray) -> np.ndarray:
        """Contributions ``(N, next, ...)`` to the columns of ``B`` -> the owned free rows
        ``(N, nfree, ...)`` with the other processes' contributions added."""
        return r if self.halo is None else self.halo.reverse(r[:, :self.nfree], r[:, self.nfree:])

    def pad(self, rhs: np.ndarray) -> np.ndarray:
        """Right-hand sides ``(nfree, k)`` of the bordered system (zero multiplier rows)."""
        return rhs if not self.border_local else np.vstack([rhs, np.zeros((self.border_local, rhs.shape[1]))])

    # ------------------------------------------------------------------------------------
    def gradients(self, E: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Micro gradients ``(N, P, n)`` of macro gradients ``E`` ``(N, n)`` and free
        fluctuations ``X`` ``(N, nfree)``."""
        N, n = E.shape
        if self.halo is None and kernels.enabled():  # the compiled loop over the cells
            out = np.empty((N, self.num_points, n))
            cell_gradients(self.B_local, self.cell_dofs, *self._prolongation_csr, np.ascontiguousarray(E, dtype=float),
                           np.ascontiguousarray(X, dtype=float), out)
            return out
        if self.halo is not None:  # the halo's values from their owners
            X = np.concatenate([X, self.halo.forward(X)], axis=1)
        g = (self.B @ X.T).T.reshape(N, self.num_points, n)
        return g + E[:, None, :]

    @functools.cached_property
    def _prolongation_csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The prolongation's CSR arrays for the compiled kernels (one process)."""
        Pm = self.prolongation.tocsr()
        return Pm.indptr.astype(np.int64), Pm.indices.astype(np.int64), Pm.data.astype(float)

    def forces(self, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Condensed residuals ``(N, nfree)`` and the norms of the uncondensed internal
        forces ``(N,)`` of micro fluxes ``(N, P, n)``."""
        N = flux.shape[0]
        if self.full_halo is None and kernels.enabled():  # the compiled loop over the cells
            r, norms = np.empty((N, self.nfree)), np.empty(N)
            cell_forces(self.B_local, self.cell_dofs, self.weights, *self._prolongation_csr,
                        np.ascontiguousarray(flux, dtype=float), r, norms)
            if self._projector is not None:  # without the part the multipliers balance
                G, gram_inv = self._projector  # (row by row: a point's values do not depend on the batch)
                c = np.einsum("ml,lk->mk", np.einsum("mi,li->ml", r, G), gram_inv)
                r = r - np.einsum("mk,ki->mi", c, G)
            return r, norms
        wf = (flux * self.weights[None, :, None]).reshape(N, -1).T
        full = self.B_full_t @ wf  # (nfull, N): the uncondensed forces
        if self.full_halo is None:
            # B = B_full P: the condensed residual is P^T of the uncondensed forces (a cheap
            # sparse product instead of a second pass over the micro points)
            r, norms = (self.prolongation_t @ full).T, np.linalg.norm(full, axis=0)
        else:
            r = self._owned((self.Bt @ wf).T)
            full = full.T
            norms = self.norms(self.full_halo.reverse(full[:, :self.num_owned], full[:, self.num_owned:]))
        if self._projector is not None:  # without the part the multipliers balance
            G, gram_inv = self._projector
            r = r - self.sum(r @ G.T) @ gram_inv @ G
        return r, norms

    def condensed(self, field: np.ndarray) -> np.ndarray:
        """``B^T (W field)`` for per-point vectors ``(N, P, n)`` or matrices ``(N, P, n, m)``
        -> ``(N, nfree)`` or ``(N, nfree, m)``."""
        N = field.shape[0]
        if self.halo is None and kernels.enabled():  # the compiled loop over the cells
            cols = field if field.ndim == 4 else field[:, :, :, None]
            _, P, n, k = cols.shape
            Ac, columns, ptr, dst, coef = self._loads_kernel(k)
            out = np.empty((N, self.next * k))
            kernel_values(Ac, columns, np.ascontiguousarray(cols, dtype=float).reshape(N, P, n * k),
                          np.arange(n * k), P // self.B_local.shape[0], ptr, dst, coef, np.zeros(self.next * k), out)
            return out.reshape(N, self.next, k) if field.ndim == 4 else out
        wf = field * self.weights[None, :, None] if field.ndim == 3 else field * self.weights[None, :, None, None]
        if field.ndim == 3:
            return self._owned((self.Bt @ wf.reshape(N, -1).T).T)
        m = field.shape[3]
        out = self.Bt @ wf.reshape(N, -1, m).transpose(1, 0, 2).reshape(-1, N * m)
        return self._owned(out.reshape(self.next, N, m).transpose(1, 0, 2))

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
        if kernels.enabled():  # the compiled loop (:mod:`fe2.kernels.jacobian`)
            Ac, columns, ptr, dst, coef, base = self._scatter(symmetric, A, S)
            values = np.empty((N, self.nnz))
            kernel_values(Ac, columns, np.ascontiguousarray(tangent).reshape(N, ncell * nq, n * n), tcomp, nq, ptr, dst,
                          coef, base, values)
            return values
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

    def _scatter(self, symmetric: bool, A: np.ndarray, S: sp.csr_matrix) -> tuple:
        """``A`` and the scatter ``S`` of :meth:`_kernel` as the compiled kernel's arrays
        (cached): ``A`` without the products that are zero in every cell (the zeros of ``B``
        are the same in every cell: a displacement component enters only the strains that
        contain it), with the columns it keeps; the scatter's rows, columns and
        coefficients; the constant values (a border's) to start from."""
        key = ("scatter", symmetric)
        if key not in self._kernels:
            nonzero = (A != 0.0).any(axis=0)  # (k, columns)
            counts = nonzero.sum(axis=1)
            width = max(int(counts.max(initial=0)), 1)
            columns = np.zeros((A.shape[1], width), dtype=np.int64)
            Ac = np.zeros((A.shape[0], A.shape[1], width))
            for kk in range(A.shape[1]):  # (rows shorter than the widest: zero coefficients)
                keep = np.flatnonzero(nonzero[kk])
                columns[kk, :keep.size] = keep
                Ac[:, kk, :keep.size] = A[:, kk, keep]
            by_entry = S.T.tocsr()  # (the scatter by element entry: each cell's entries at once)
            by_entry.sort_indices()
            base = np.zeros(self.nnz) if self._border_values is None else np.asarray(self._border_values, float)
            self._kernels[key] = (Ac, columns, by_entry.indptr.astype(np.int64), by_entry.indices.astype(np.int64),
                                  by_entry.data.astype(float), base)
        return self._kernels[key]

    def _loads_kernel(self, k: int) -> tuple:
        """:meth:`condensed` of ``k`` columns per micro point as the arrays of the compiled
        Jacobian kernel (cached): element entry ``(cell, a, c)`` (``a`` a cell DOF, ``c`` a
        column) is ``sum_q w_q sum_i B_e[q, i, a] field[q, i, c]``, only over the ``(q, i)``
        where ``B`` is not zero by its structure; it scatters onto the free DOFs through
        the prolongation (``P^T``), column ``c`` of free DOF ``f`` at value ``f k + c``."""
        key = ("loads", k)
        if key not in self._kernels:
            ncell, nq, n, d = self.B_local.shape
            Bl, w = self.B_local, self.weights.reshape(ncell, nq)
            nonzero = (Bl != 0.0).any(axis=0)  # (nq, n, d)
            width = max(int(nonzero.sum(axis=(0, 1)).max(initial=0)), 1)
            columns = np.zeros((d * k, width), dtype=np.int64)
            Ac = np.zeros((ncell, d * k, width))
            for a in range(d):
                q, i = np.nonzero(nonzero[:, :, a])
                for c in range(k):
                    columns[a * k + c, :q.size] = q * n * k + i * k + c
                    Ac[:, a * k + c, :q.size] = w[:, q] * Bl[:, q, i, a]
            entries = np.arange(ncell * d * k)
            place = (np.repeat(self.cell_dofs, k, axis=1) * k + np.tile(np.arange(k), d)).ravel()
            to_full = sp.csr_matrix((np.ones(entries.size), (entries, place)), shape=(entries.size, self.nfull * k))
            scatter = (to_full @ sp.kron(self.prolongation, sp.identity(k), format="csr")).tocsr()
            scatter.sort_indices()
            self._kernels[key] = (Ac, columns, scatter.indptr.astype(np.int64), scatter.indices.astype(np.int64),
                                  scatter.data.astype(float))
        return self._kernels[key]

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
        """Free values ``(N, nfree, ...)`` -> the template's condensed vectors ``(N, num_owned,
        ...)`` (zeros at slaves and pins)."""
        out = np.zeros((X.shape[0], self.num_owned, *X.shape[2:]))
        out[:, self.free] = X
        return out
