"""The values of a condensed micro Jacobian ``K = sum_e S_e K_e`` from the micro tangents
of one macro point, as a compiled loop over the cells (the numpy reference is
:meth:`fe2.micro.operators.CellOperators.jacobian_values`): each cell's element matrix
``K_e = sum_q w_q B_q^T T_q B_q`` is formed once and scattered through the condensation
(periodic slaves onto their masters with their coefficients) straight into the value array
of the factoriser's matrix."""

from __future__ import annotations

import numpy as np

from fe2.kernels import jit

__all__ = ["jacobian_values"]


@jit
def jacobian_values(B, weights, tangent, dst, src, coef, base, symmetric, out):
    """Write the Jacobian values of one point into ``out`` ``(nnz,)``.

    ``B`` ``(ncell, nq, n, d)``: the gradient operator of each cell at its micro points;
    ``weights`` ``(ncell * nq,)``; ``tangent`` ``(ncell * nq, n, n)``; the scatter: element
    entry ``src[j]`` (``cell * d * d + a * d + b``) times ``coef[j]`` adds to ``out[dst[j]]``;
    ``base`` ``(nnz,)``: constant values (a Lagrange border's) the sum starts from;
    ``symmetric``: the tangents are symmetric, so only the upper triangles of the element
    matrices are formed (and mirrored)."""
    ncell, nq, n, d = B.shape
    Ke = np.zeros(ncell * d * d)
    tmp = np.empty((n, d))
    for e in range(ncell):
        off = e * d * d
        for q in range(nq):
            p = e * nq + q
            w = weights[p]
            for i in range(n):  # tmp = (w T) B
                for b in range(d):
                    s = 0.0
                    for j in range(n):
                        s += tangent[p, i, j] * B[e, q, j, b]
                    tmp[i, b] = w * s
            for a in range(d):
                for b in range(a if symmetric else 0, d):
                    s = 0.0
                    for i in range(n):
                        s += B[e, q, i, a] * tmp[i, b]
                    Ke[off + a * d + b] += s
        if symmetric:
            for a in range(d):
                for b in range(a):
                    Ke[off + a * d + b] = Ke[off + b * d + a]
    for j in range(out.size):
        out[j] = base[j]
    for j in range(src.size):
        out[dst[j]] += coef[j] * Ke[src[j]]
