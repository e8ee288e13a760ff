"""Micro gradients and internal forces of many macro points as compiled loops over the cells
(the numpy references are :meth:`fe2.micro.operators.CellOperators.gradients` and
``forces``, sparse products with the assembled operators): each point's free fluctuation is
prolonged to all DOFs (periodic slaves from their masters), gathered per cell and multiplied
by the cell's gradient operator; the forces go the other way. The results come out in the
layout the laws take, ``(points, micro points, components)``, without transposed copies."""

from __future__ import annotations

import math

import numpy as np

from fe2.kernels import jit

__all__ = ["forces", "gradients"]


@jit
def gradients(B, cell_dofs, p_ptr, p_idx, p_val, E, X, out):
    """``out`` ``(m, ncell * nq, n)`` = ``E + B x`` for free fluctuations ``X`` ``(m, nfree)``;
    ``B`` ``(ncell, nq, n, d)``, ``cell_dofs`` ``(ncell, d)``; the prolongation ``P``
    ``(nfull, nfree)`` as CSR (``p_ptr``, ``p_idx``, ``p_val``)."""
    m, n = E.shape
    ncell, nq, _, d = B.shape
    nfull = p_ptr.size - 1
    full = np.empty(nfull)
    xe = np.empty(d)
    for p in range(m):
        for j in range(nfull):
            s = 0.0
            for k in range(p_ptr[j], p_ptr[j + 1]):
                s += p_val[k] * X[p, p_idx[k]]
            full[j] = s
        for e in range(ncell):
            for a in range(d):
                xe[a] = full[cell_dofs[e, a]]
            for q in range(nq):
                row = e * nq + q
                for i in range(n):
                    s = 0.0
                    for a in range(d):
                        s += B[e, q, i, a] * xe[a]
                    out[p, row, i] = E[p, i] + s


@jit
def forces(B, cell_dofs, weights, p_ptr, p_idx, p_val, flux, r, norms):
    """The condensed residuals ``r`` ``(m, nfree)`` (``P^T B_full^T (W flux)``) and the norms
    ``(m,)`` of the uncondensed internal forces ``B_full^T (W flux)`` of micro fluxes
    ``flux`` ``(m, ncell * nq, n)`` (arguments as :func:`gradients`)."""
    m = flux.shape[0]
    ncell, nq, n, d = B.shape
    nfull = p_ptr.size - 1
    full = np.empty(nfull)
    wf = np.empty(n)
    for p in range(m):
        full[:] = 0.0
        for e in range(ncell):
            for q in range(nq):
                row = e * nq + q
                for i in range(n):
                    wf[i] = weights[row] * flux[p, row, i]
                for a in range(d):
                    s = 0.0
                    for i in range(n):
                        s += B[e, q, i, a] * wf[i]
                    full[cell_dofs[e, a]] += s
        s2 = 0.0
        for j in range(nfull):
            s2 += full[j] * full[j]
        norms[p] = math.sqrt(s2)
        for c in range(r.shape[1]):
            r[p, c] = 0.0
        for j in range(nfull):
            fj = full[j]
            for k in range(p_ptr[j], p_ptr[j + 1]):
                r[p, p_idx[k]] += p_val[k] * fj
