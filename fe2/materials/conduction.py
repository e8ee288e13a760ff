"""Heat conduction laws (``kinematics == "scalar"``).

The gradient is the temperature gradient ``g = grad T`` ``(N, gdim)``; the flux is
``K(g) g``, the *negative* heat flux (Fourier: ``q = -K grad T``), so that the flux/gradient
pair has the sign convention of stress/strain and the tangent ``d flux / d g`` is positive
definite. There is no internal state.
"""

from __future__ import annotations

import numpy as np

from fe2 import kernels
from fe2.core.tensors import isotropic_conductivity
from fe2.kernels.conduction import nonlinear_conduction
from fe2.materials.base import Law, LawResult

__all__ = ["LinearConduction", "NonlinearConduction"]


def _gradients(grad: np.ndarray, gdim: int, who: str) -> np.ndarray:
    g = np.atleast_2d(np.asarray(grad, dtype=float))
    if g.ndim != 2 or g.shape[1] != gdim:
        raise ValueError(f"{who}: expected gradients of shape (N, {gdim}), got {g.shape}")
    return g


class LinearConduction(Law):
    """Fourier conduction with a constant conductivity tensor ``K`` ``(gdim, gdim)``
    (symmetric positive definite): flux ``K g``. :meth:`isotropic` for ``k I``."""

    kinematics = "scalar"
    linear = True

    def __init__(self, K: np.ndarray) -> None:
        self.K = np.asarray(K, dtype=float)
        if self.K.ndim != 2 or self.K.shape[0] != self.K.shape[1] or self.K.shape[0] not in (2, 3):
            raise ValueError(f"conductivity must be 2x2 or 3x3, got shape {self.K.shape}")
        self.gdim = self.size = self.K.shape[0]

    @classmethod
    def isotropic(cls, k: float, gdim: int) -> LinearConduction:
        if not (np.isfinite(k) and k > 0):
            raise ValueError(f"conductivity k must be > 0, got {k}")
        return cls(isotropic_conductivity(float(k), gdim))

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        g = _gradients(grad, self.gdim, "LinearConduction")
        N = g.shape[0]
        return LawResult(g @ self.K.T, np.broadcast_to(self.K, (N,) + self.K.shape), np.zeros((N, 0)))


class NonlinearConduction(Law):
    """Isotropic conduction whose conductivity grows with the temperature gradient::

        k(g) = k (1 + |g|^2 / g_ref^2),   flux = k(g) g,
        d flux / d g = k(g) I + (2 k / g_ref^2) g g^T

    (symmetric positive definite: the heat flux is a monotone function of the gradient,
    so cell and macro problems have unique solutions). ``g_ref`` is the gradient magnitude
    at which the conductivity has doubled; for ``|g| << g_ref`` it is Fourier's law with
    ``k``.

    Parameters
    ----------
    k : conductivity at zero gradient (> 0)
    grad_ref : gradient magnitude at which the conductivity is ``2 k`` (> 0)
    gdim : 2 or 3
    """

    kinematics = "scalar"

    def __init__(self, k: float, grad_ref: float, gdim: int) -> None:
        if gdim not in (2, 3):
            raise ValueError(f"NonlinearConduction: gdim must be 2 or 3, got {gdim}")
        for name, val in (("k", k), ("grad_ref", grad_ref)):
            if not (np.isfinite(val) and val > 0):
                raise ValueError(f"NonlinearConduction: {name} must be > 0, got {val}")
        self.k, self.grad_ref, self.gdim, self.size = float(k), float(grad_ref), gdim, gdim

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        """Fluxes and tangents: the compiled kernel
        (:func:`fe2.kernels.conduction.nonlinear_conduction`) if :func:`fe2.kernels.enabled`,
        else :meth:`integrate_numpy`."""
        if not kernels.enabled():
            return self.integrate_numpy(grad, state)
        g = np.ascontiguousarray(_gradients(grad, self.gdim, "NonlinearConduction"))
        N = g.shape[0]
        flux, tangent = np.empty((N, self.gdim)), np.empty((N, self.gdim, self.gdim))
        nonlinear_conduction(g, self.k, self.k / self.grad_ref**2, flux, tangent)
        return LawResult(flux, tangent, np.zeros((N, 0)))

    def integrate_numpy(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        """Fluxes and tangents in numpy: the reference of the compiled kernel."""
        g = _gradients(grad, self.gdim, "NonlinearConduction")
        c = self.k / self.grad_ref**2
        kg = self.k + c * np.einsum("ni,ni->n", g, g)
        tangent = kg[:, None, None] * np.eye(self.gdim) + 2.0 * c * g[:, :, None] * g[:, None, :]
        return LawResult(kg[:, None] * g, tangent, np.zeros((g.shape[0], 0)))
