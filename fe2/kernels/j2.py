"""The J2 return mapping (:class:`fe2.materials.plasticity.J2Plasticity`) as a compiled
point loop: the same radial return, local Newton for the plastic multiplier under Voce
hardening, and consistent tangent as ``J2Plasticity.integrate_3d``'s numpy, one point at a
time (see :mod:`fe2.materials.plasticity` for the equations)."""

from __future__ import annotations

import math

import numpy as np

from fe2.kernels import jit

__all__ = ["return_mapping"]

_SQRT32 = math.sqrt(1.5)
_SQRT23 = math.sqrt(2.0 / 3.0)
_SQRT6 = math.sqrt(6.0)


@jit
def return_mapping(eps, state, comps, C, Idev, K, G, sigma_y, H_iso, Q, b, H_kin, rtol, maxiter,
                   sigma, tangent, trial):
    """Integrate ``N`` points: strains ``eps`` ``(N, k)`` in the Mandel components
    ``comps`` ``(k,)`` of 3D, committed states ``state`` ``(N, 13)``; ``C``, ``Idev``: the
    3D elastic stiffness and deviatoric projector restricted to ``comps`` ``(k, k)``.
    Writes ``sigma`` ``(N, k)``, ``tangent`` ``(N, k, k)``, ``trial`` ``(N, 13)``; returns
    the number of points whose local Newton did not converge (their results are not set)."""
    N, k = eps.shape
    voce = Q > 0.0 and b > 0.0
    h0 = 3.0 * G + H_kin
    failed = 0
    e = np.empty(6)
    xi = np.empty(6)
    for i in range(N):
        for a in range(6):
            e[a] = -state[i, a]
        for j in range(k):
            e[comps[j]] += eps[i, j]
        tr = e[0] + e[1] + e[2]
        for a in range(6):
            xi[a] = (2.0 * G) * e[a]
        for a in range(3):
            xi[a] -= (2.0 * G / 3.0) * tr
        mean = K * tr
        for j in range(k):
            c = comps[j]
            sigma[i, j] = xi[c] + (mean if c < 3 else 0.0)
        norm2 = 0.0
        for a in range(6):
            xi[a] -= state[i, 6 + a]
            norm2 += xi[a] * xi[a]
        norm_xi = math.sqrt(norm2)
        q_tr = _SQRT32 * norm_xi
        p_n = state[i, 12]
        R_n = H_iso * p_n + (Q * (1.0 - math.exp(-b * p_n)) if voce else 0.0)
        f_tr = q_tr - sigma_y - R_n
        for a in range(13):
            trial[i, a] = state[i, a]
        for j in range(k):
            for m in range(k):
                tangent[i, j, m] = C[j, m]
        if not f_tr > 0.0:
            continue
        # the plastic multiplier
        if not voce:
            dp = f_tr / (h0 + H_iso)
        else:
            dp = 0.0
            done = False
            for _ in range(maxiter):
                e_b = math.exp(-b * (p_n + dp))
                R = H_iso * (p_n + dp) + Q * (1.0 - e_b)
                dR = H_iso + Q * b * e_b
                g = q_tr - h0 * dp - sigma_y - R
                step = g / (h0 + dR)
                if abs(g) <= rtol * q_tr or abs(step) <= 1e-16 * dp:
                    done = True
                    break
                dp += step
            if not done:
                failed += 1
                continue
        p = p_n + dp
        for j in range(k):
            sigma[i, j] -= (_SQRT6 * G * dp) * (xi[comps[j]] / norm_xi)
        for a in range(6):
            n_a = xi[a] / norm_xi
            trial[i, a] += (_SQRT32 * dp) * n_a
            trial[i, 6 + a] += (_SQRT23 * H_kin * dp) * n_a
        trial[i, 12] = p
        dR = H_iso + (Q * b * math.exp(-b * p) if voce else 0.0)
        aa = 3.0 * G * dp / q_tr
        theta_bar = 3.0 * G / (3.0 * G + H_kin + dR) - aa
        for j in range(k):
            nj = xi[comps[j]] / norm_xi
            for m in range(k):
                nm = xi[comps[m]] / norm_xi
                tangent[i, j, m] -= (2.0 * G * aa) * Idev[j, m] + (2.0 * G * theta_bar) * (nj * nm)
    return failed
