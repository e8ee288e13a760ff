"""The compressible Neo-Hooke law (:class:`fe2.materials.hyperelasticity.NeoHooke`) as a
compiled point loop: ``P = mu F + (lam ln J - mu) F^-T`` and
``dP_iJ/dF_kL = mu d_ik d_JL + (mu - lam ln J) Finv_Li Finv_Jk + lam Finv_Ji Finv_Lk``,
one point at a time (the numpy reference is ``NeoHooke.integrate_numpy``)."""

from __future__ import annotations

import math

import numpy as np

from fe2.kernels import jit

__all__ = ["neo_hooke"]


@jit
def neo_hooke(F, d, mu, lam, P, A):
    """Integrate ``N`` points with flattened deformation gradients ``F`` ``(N, d * d)``
    (row-major): writes ``P`` ``(N, d * d)`` and ``A`` ``(N, d * d, d * d)``; returns the
    number of points with ``det F <= 0`` or not finite (their results are not set)."""
    N = F.shape[0]
    Fi = np.empty((d, d))
    bad = 0
    for p in range(N):
        if d == 2:
            a, b, c, e = F[p, 0], F[p, 1], F[p, 2], F[p, 3]
            J = a * e - b * c
            if not J > 0.0:
                bad += 1
                continue
            Fi[0, 0], Fi[0, 1], Fi[1, 0], Fi[1, 1] = e / J, -b / J, -c / J, a / J
        else:
            f = F[p]
            c00 = f[4] * f[8] - f[5] * f[7]
            c01 = f[5] * f[6] - f[3] * f[8]
            c02 = f[3] * f[7] - f[4] * f[6]
            J = f[0] * c00 + f[1] * c01 + f[2] * c02
            if not J > 0.0:
                bad += 1
                continue
            Fi[0, 0], Fi[1, 0], Fi[2, 0] = c00 / J, c01 / J, c02 / J
            Fi[0, 1] = (f[2] * f[7] - f[1] * f[8]) / J
            Fi[1, 1] = (f[0] * f[8] - f[2] * f[6]) / J
            Fi[2, 1] = (f[1] * f[6] - f[0] * f[7]) / J
            Fi[0, 2] = (f[1] * f[5] - f[2] * f[4]) / J
            Fi[1, 2] = (f[2] * f[3] - f[0] * f[5]) / J
            Fi[2, 2] = (f[0] * f[4] - f[1] * f[3]) / J
        lnJ = math.log(J)
        s = lam * lnJ - mu
        t = mu - lam * lnJ
        for i in range(d):
            for JJ in range(d):
                P[p, i * d + JJ] = mu * F[p, i * d + JJ] + s * Fi[JJ, i]
                for k in range(d):
                    for L in range(d):
                        v = t * Fi[L, i] * Fi[JJ, k] + lam * Fi[JJ, i] * Fi[L, k]
                        if i == k and JJ == L:
                            v += mu
                        A[p, i * d + JJ, k * d + L] = v
    return bad
