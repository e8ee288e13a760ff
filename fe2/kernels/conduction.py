"""Gradient-dependent heat conduction (:class:`fe2.materials.conduction.NonlinearConduction`)
as a compiled point loop: ``k(g) = k + c |g|^2`` with ``c = k / g_ref^2``, flux ``k(g) g``,
tangent ``k(g) I + 2 c g g^T`` (the numpy reference is
``NonlinearConduction.integrate_numpy``)."""

from __future__ import annotations

from fe2.kernels import jit

__all__ = ["nonlinear_conduction"]


@jit
def nonlinear_conduction(g, k, c, flux, tangent):
    """Write the fluxes ``(N, d)`` and tangents ``(N, d, d)`` of gradients ``g`` ``(N, d)``."""
    N, d = g.shape
    for p in range(N):
        s = 0.0
        for i in range(d):
            s += g[p, i] * g[p, i]
        kg = k + c * s
        for i in range(d):
            flux[p, i] = kg * g[p, i]
            for j in range(d):
                tangent[p, i, j] = 2.0 * c * g[p, i] * g[p, j] + (kg if i == j else 0.0)
