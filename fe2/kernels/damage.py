"""Isotropic damage (:class:`fe2.materials.damage.IsotropicDamage`) as compiled point loops:
the modified von Mises equivalent strain and its gradient, and the law driven by a given
strain (local damage drives it by its own equivalent strain), one point at a time (the
numpy references are ``IsotropicDamage.equivalent_numpy`` and
``IsotropicDamage.integrate_driven_3d_numpy``)."""

from __future__ import annotations

import math

from fe2.kernels import jit

__all__ = ["driven_damage", "mises_equivalent"]


@jit
def mises_equivalent(eps3, k, nu, e, de):
    """Modified von Mises equivalent strains ``e`` ``(N,)`` and gradients ``de`` ``(N, 6)``
    of 3D Mandel strains ``eps3`` ``(N, 6)`` (ratio ``k`` of compressive to tensile strength)."""
    N = eps3.shape[0]
    a = (k - 1.0) / (1.0 - 2.0 * nu)
    c = 12.0 * k / (1.0 + nu) ** 2
    c6 = 6.0 * k / (1.0 + nu) ** 2
    for p in range(N):
        I1 = eps3[p, 0] + eps3[p, 1] + eps3[p, 2]
        m = I1 / 3.0
        J2 = 0.0
        for i in range(6):
            dv = eps3[p, i] - (m if i < 3 else 0.0)
            J2 += dv * dv
        J2 *= 0.5
        root = math.sqrt(a * a * I1 * I1 + c * J2)
        e[p] = a * I1 / (2.0 * k) + root / (2.0 * k)
        for i in range(6):
            v = a / (2.0 * k) if i < 3 else 0.0
            if root > 0.0:
                dv = eps3[p, i] - (m if i < 3 else 0.0)
                droot = (a * a * I1 if i < 3 else 0.0) + c6 * dv
                v += droot / (2.0 * k * root)
            de[p, i] = v


@jit
def _damage(kappa, kappa0, linear, kappa_u, alpha, beta, max_damage):
    """``omega(kappa)`` and ``d omega / d kappa``."""
    kk = max(kappa, kappa0)
    if linear:
        if kk >= kappa_u:
            w, dw = 1.0, 0.0
        else:
            w = kappa_u * (kk - kappa0) / (kk * (kappa_u - kappa0))
            dw = kappa_u * kappa0 / ((kappa_u - kappa0) * kk ** 2)
    else:
        ex = math.exp(-beta * (kk - kappa0))
        w = 1.0 - kappa0 / kk * (1.0 - alpha + alpha * ex)
        dw = kappa0 / kk ** 2 * (1.0 - alpha + alpha * ex) + kappa0 / kk * alpha * beta * ex
    if kappa <= kappa0:
        return 0.0, 0.0
    if w >= max_damage:
        return max_damage, 0.0
    return w, dw


@jit
def driven_damage(eps3, state, drive, C3, kappa0, linear, kappa_u, alpha, beta, max_damage, r,
                  sigma, C, dsig, trial):
    """The law driven by ``drive`` ``(N,)`` at 3D Mandel strains ``eps3`` ``(N, 6)`` from
    committed states ``(N, 4)`` (kappa, omega, dissipation, Y); ``r = dt / viscosity``
    (``< 0``: rate-independent). Writes the stress, the secant stiffness at fixed drive,
    ``d sigma / d drive`` and the trial states."""
    N = eps3.shape[0]
    for p in range(N):
        kappa_n, omega_n, D_n, Y_n = state[p, 0], state[p, 1], state[p, 2], state[p, 3]
        if r >= 0.0:
            target = (kappa_n + r * drive[p]) / (1.0 + r)
            slope = r / (1.0 + r)
        else:
            target, slope = drive[p], 1.0
        loading = target > kappa_n
        kappa = target if loading else kappa_n
        omega, domega = _damage(kappa, kappa0, linear, kappa_u, alpha, beta, max_damage)
        omega = max(omega, omega_n)
        Y = 0.0
        for i in range(6):
            s0 = 0.0
            for j in range(6):
                s0 += eps3[p, j] * C3[i, j]
            sigma[p, i] = (1.0 - omega) * s0
            dsig[p, i] = -(domega * slope if loading else 0.0) * s0
            Y += eps3[p, i] * s0
            for j in range(6):
                C[p, i, j] = (1.0 - omega) * C3[i, j]
        Y *= 0.5
        trial[p, 0] = kappa
        trial[p, 1] = omega
        trial[p, 2] = D_n + 0.5 * (Y_n + Y) * (omega - omega_n)
        trial[p, 3] = Y
