"""The values of condensed micro Jacobians from the micro tangents of many macro points, as a
compiled loop (the numpy reference is
:meth:`fe2.micro.operators.CellOperators.jacobian_values`, the same products in BLAS
batches and a sparse scatter): per cell, its element matrices ``K_e = A_e t_e`` for all
points (``A_e``: the precomputed products ``w_q B_e^T . B_e`` of each pair of tangent
components, ``t_e`` the cell's tangent components; only the products that are not zero by
the structure of ``B``: a third of them for 3D P1 cells), then the scatter through the
condensation (periodic slaves onto their masters with their coefficients). Each point's
values are formed on their own, in a fixed order: they do not depend on the batch."""

from __future__ import annotations

import numpy as np

from fe2.kernels import jit

__all__ = ["jacobian_values"]


@jit
def jacobian_values(A, columns, tangent, components, nq, dst, src, coef, base, out):
    """Write the Jacobian values of ``m`` points into ``out`` ``(nnz, m)`` (the points
    innermost: each element entry's coefficients and places are read once for all points).

    ``A`` ``(ncell, k, c)`` with ``columns`` ``(k, c)``: per cell and element entry, the
    coefficients of the (structurally) nonzero products of tangent components at its micro
    points, ``columns`` saying which (index ``q * t + j``: micro point ``q``, component
    ``components[j]``, ``t`` components; rows shorter than ``c`` are padded with zero
    coefficients); ``tangent`` ``(m, ncell * nq, n * n)``; the scatter: element entry
    ``src[j]`` (``cell * k + entry``) times ``coef[j]`` adds to row ``dst[j]``; ``base``
    ``(nnz,)``: constant values (a Lagrange border's) the sums start from."""
    m = tangent.shape[0]
    ncell, k, c_max = A.shape
    t = components.size
    Ke = np.zeros((ncell * k, m))
    tv = np.empty((nq * t, m))
    for e in range(ncell):
        for q in range(nq):
            for c in range(t):
                for p in range(m):
                    tv[q * t + c, p] = tangent[p, e * nq + q, components[c]]
        for kk in range(k):
            row = e * k + kk
            for c in range(c_max):
                a = A[e, kk, c]
                col = columns[kk, c]
                for p in range(m):
                    Ke[row, p] += a * tv[col, p]
    for j in range(out.shape[0]):
        for p in range(m):
            out[j, p] = base[j]
    for j in range(src.size):
        d, s, cf = dst[j], src[j], coef[j]
        for p in range(m):
            out[d, p] += cf * Ke[s, p]
