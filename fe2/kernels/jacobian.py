"""The values of condensed micro Jacobians from the micro tangents of many macro points, as a
compiled loop (the numpy reference is
:meth:`fe2.micro.operators.CellOperators.jacobian_values`, the same products in BLAS
batches and a sparse scatter): per cell, its element matrices ``K_e = A_e t_e`` for a block
of points (``A_e``: the precomputed products ``w_q B_e^T . B_e`` of each pair of tangent
components, ``t_e`` the cell's tangent components; only the products that are not zero by
the structure of ``B``: a third of them for 3D P1 cells), scattered at once through the
condensation (periodic slaves onto their masters with their coefficients). Each point's
values are formed on their own, in a fixed order: they do not depend on the batch.

The same loop gives any other per-cell linear map of the tangents that ends in the
condensed space, e.g. the sensitivity loads ``B^T W T`` (:meth:`~fe2.micro.operators.
CellOperators.condensed`): only ``A``, the components read and the scatter differ."""

from __future__ import annotations

import numpy as np

from fe2.kernels import jit

__all__ = ["BLOCK", "jacobian_values"]

#: points per block: the block's sums (``values x BLOCK`` doubles) stay in the cache
BLOCK = 16


@jit
def jacobian_values(A, columns, tangent, components, nq, ptr, dst, coef, base, out):
    """Write the values of ``m`` points into ``out`` ``(m, nnz)``, ``BLOCK`` points at a
    time (the points innermost: each element entry's coefficients and places are read
    once per block).

    ``A`` ``(ncell, k, c)`` with ``columns`` ``(k, c)``: per cell and element entry, the
    coefficients of the (structurally) nonzero products of tangent components at its micro
    points, ``columns`` saying which (index ``q * t + j``: micro point ``q``, component
    ``components[j]``, ``t`` components; rows shorter than ``c`` are padded with zero
    coefficients); ``tangent`` ``(m, ncell * nq, n * n)``; the scatter, by element entry
    ``cell * k + entry``: its entries ``ptr[i]:ptr[i + 1]`` add ``coef[j]`` times it to
    value ``dst[j]``; ``base`` ``(nnz,)``: constant values (a Lagrange border's) the sums
    start from."""
    m = tangent.shape[0]
    ncell, k, c_max = A.shape
    t = components.size
    nnz = base.size
    acc = np.empty((nnz, BLOCK))
    tv = np.empty((nq * t, BLOCK))
    ke = np.empty(BLOCK)
    for p0 in range(0, m, BLOCK):
        b = min(BLOCK, m - p0)
        for j in range(nnz):
            for p in range(b):
                acc[j, p] = base[j]
        for e in range(ncell):
            for q in range(nq):
                for c in range(t):
                    for p in range(b):
                        tv[q * t + c, p] = tangent[p0 + p, e * nq + q, components[c]]
            for kk in range(k):
                for p in range(b):
                    ke[p] = 0.0
                for c in range(c_max):
                    a = A[e, kk, c]
                    col = columns[kk, c]
                    for p in range(b):
                        ke[p] += a * tv[col, p]
                row = e * k + kk
                for j in range(ptr[row], ptr[row + 1]):
                    d, cf = dst[j], coef[j]
                    for p in range(b):
                        acc[d, p] += cf * ke[p]
        for p in range(b):
            for j in range(nnz):
                out[p0 + p, j] = acc[j, p]
