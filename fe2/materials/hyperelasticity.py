"""Finite-strain hyperelastic laws (``kinematics == "finite"``).

The gradient is the deformation gradient ``F`` flattened row-major (``[F11, F12, F21, F22]``
in 2D), the flux the first Piola–Kirchhoff stress ``P`` in the same layout and the tangent
``A = dP/dF`` with ``A[:, i*d + J, k*d + L] = dP_iJ / dF_kL``. In 2D the state is plane
strain: ``F33 = 1`` and the out-of-plane components vanish.
"""

from __future__ import annotations

import numpy as np

from fe2 import kernels
from fe2.core.errors import SolverError
from fe2.core.tensors import lame
from fe2.kernels.hyperelastic import neo_hooke
from fe2.materials.base import Law, LawResult

__all__ = ["NeoHooke"]


class NeoHooke(Law):
    """Compressible Neo-Hookean solid.

    ``psi = mu/2 (I1 - 3 - 2 ln J) + lam/2 (ln J)^2`` with ``I1 = tr(F^T F)`` (plus 1 for
    ``F33 = 1`` in plane strain), so that::

        P = mu (F - F^-T) + lam ln J F^-T
        A_iJkL = mu d_ik d_JL + (mu - lam ln J) Finv_Li Finv_Jk + lam Finv_Ji Finv_Lk

    At ``F = I`` this is linear elasticity with Lamé constants ``(lam, mu)`` from
    ``(E, nu)``. There is no internal state.

    Parameters
    ----------
    E : Young's modulus (> 0)
    nu : Poisson's ratio (-1 < nu < 0.5)
    gdim : 2 (plane strain) or 3
    """

    kinematics = "finite"

    def __init__(self, E: float, nu: float, gdim: int) -> None:
        if gdim not in (2, 3):
            raise ValueError(f"NeoHooke: gdim must be 2 or 3, got {gdim}")
        if not (np.isfinite(E) and E > 0):
            raise ValueError(f"NeoHooke: E must be > 0, got {E}")
        if not (np.isfinite(nu) and -1.0 < nu < 0.5):
            raise ValueError(f"NeoHooke: nu must be in (-1, 0.5), got {nu}")
        self.E, self.nu, self.gdim = float(E), float(nu), gdim
        self.size = gdim * gdim
        self.lam, self.mu = lame(self.E, self.nu)

    def _deformation(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``F (N, d, d)`` and ``J (N,)`` from flattened gradients; raises on ``J <= 0``."""
        F = np.atleast_2d(np.asarray(F, dtype=float))
        d = self.gdim
        if F.ndim != 2 or F.shape[1] != self.size:
            raise ValueError(f"NeoHooke: expected F of shape (N, {self.size}), got {F.shape}")
        F = F.reshape(-1, d, d)
        J = np.linalg.det(F)
        bad = ~(J > 0.0)  # also catches NaN
        if bad.any():
            finite = J[np.isfinite(J)]
            smallest = finite.min() if finite.size else float("nan")
            raise SolverError(
                f"Neo-Hooke: det F <= 0 (or not finite) at {int(bad.sum())} of {J.size} points "
                f"(smallest J = {smallest:.6g}); the deformation is not admissible")
        return F, J

    def strain_energy(self, F: np.ndarray) -> np.ndarray:
        """Stored energy ``psi`` per point, ``(N,)``, for flattened ``F (N, d*d)``."""
        F, J = self._deformation(F)
        lnJ = np.log(J)
        I1 = np.einsum("nij,nij->n", F, F) + (1.0 if self.gdim == 2 else 0.0)
        return 0.5 * self.mu * (I1 - 3.0 - 2.0 * lnJ) + 0.5 * self.lam * lnJ**2

    def out_of_plane_stress(self, grad: np.ndarray, state: np.ndarray) -> np.ndarray | None:
        """Plane strain (``F33 = 1``): ``P_33 = mu (F33 - 1/F33) + lam ln J / F33 = lam ln J``."""
        if self.gdim != 2:
            return None
        F = np.atleast_2d(grad).reshape(-1, 2, 2)
        return self.lam * np.log(np.linalg.det(F))

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        """First Piola–Kirchhoff stress and ``dP/dF`` at ``N`` points: the compiled kernel
        (:func:`fe2.kernels.hyperelastic.neo_hooke`) if :func:`fe2.kernels.enabled`, else
        (and where ``det F <= 0``, to raise its error) :meth:`integrate_numpy`."""
        if not kernels.enabled():
            return self.integrate_numpy(grad, state)
        F = np.ascontiguousarray(np.atleast_2d(grad), dtype=float)
        if F.ndim != 2 or F.shape[1] != self.size:
            raise ValueError(f"NeoHooke: expected F of shape (N, {self.size}), got {F.shape}")
        N, n = F.shape
        P, A = np.empty((N, n)), np.empty((N, n, n))
        if neo_hooke(F, self.gdim, self.mu, self.lam, P, A):
            return self.integrate_numpy(grad, state)
        return LawResult(P, A, np.zeros((N, 0)))

    def integrate_numpy(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        """First Piola–Kirchhoff stress and ``dP/dF`` at ``N`` points, in numpy: the reference
        of the compiled kernel.

        Parameters
        ----------
        grad : (N, d*d) deformation gradient, row-major
        state : (N, 0) (unused)

        Returns
        -------
        flux : (N, d*d) ``P``, row-major
        tangent : (N, d*d, d*d) ``A[:, i*d+J, k*d+L] = dP_iJ/dF_kL``
        trial : (N, 0)

        Raises
        ------
        fe2.core.errors.SolverError
            if ``det F <= 0`` at any point (the caller should cut the step).
        """
        F, J = self._deformation(grad)
        N, d = F.shape[0], self.gdim
        mu, lam = self.mu, self.lam
        lnJ = np.log(J)
        Finv = np.linalg.inv(F)
        FinvT = np.transpose(Finv, (0, 2, 1))
        P = mu * F + (lam * lnJ - mu)[:, None, None] * FinvT
        eye = np.eye(d)
        A = mu * np.einsum("ik,JL->iJkL", eye, eye)[None]
        A = A + (mu - lam * lnJ)[:, None, None, None, None] * np.einsum("nLi,nJk->niJkL", Finv, Finv)
        A = A + lam * np.einsum("nJi,nLk->niJkL", Finv, Finv)
        return LawResult(P.reshape(N, d * d), A.reshape(N, d * d, d * d), np.zeros((N, 0)))
