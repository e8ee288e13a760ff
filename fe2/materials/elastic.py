"""Linear elasticity with a constant Mandel stiffness (small strain)."""

from __future__ import annotations

import numpy as np

from fe2.core.tensors import isotropic_stiffness, lame, strain_size
from fe2.materials.base import Law, LawResult

__all__ = ["LinearElastic"]


class LinearElastic(Law):
    """Linear elasticity ``sigma = C eps`` with a constant Mandel stiffness (small strain).

    Use :meth:`isotropic` for ``(E, nu)``; any symmetric positive definite ``C`` works
    (e.g. :func:`fe2.core.tensors.transversely_isotropic_stiffness` for fibres).
    ``out_of_plane`` (plane strain): the row of the 3D stiffness that gives ``sigma_zz``
    from ``[eps_xx, eps_yy, sqrt 2 eps_xy]`` (``[lambda, lambda, 0]`` when isotropic), for
    :meth:`out_of_plane_stress`.
    """

    linear = True

    def __init__(self, C: np.ndarray, out_of_plane: np.ndarray | None = None) -> None:
        self.C = np.asarray(C, dtype=float)
        self.zz_row = None if out_of_plane is None else np.asarray(out_of_plane, dtype=float).reshape(-1)
        self.size = self.C.shape[0]
        self.gdim = 2 if self.size == 3 else 3
        if self.C.shape != (strain_size(self.gdim),) * 2:
            raise ValueError(f"stiffness must be 3x3 (2D) or 6x6 (3D) Mandel, got {self.C.shape}")

    @classmethod
    def isotropic(cls, E: float, nu: float, gdim: int) -> LinearElastic:
        lam, _ = lame(E, nu)
        return cls(isotropic_stiffness(E, nu, gdim), [lam, lam, 0.0] if gdim == 2 else None)

    def out_of_plane_stress(self, grad: np.ndarray, state: np.ndarray) -> np.ndarray | None:
        """``sigma_zz`` in plane strain: :attr:`zz_row` times the in-plane strain."""
        if self.gdim != 2 or self.zz_row is None:
            return None
        return np.atleast_2d(grad) @ self.zz_row

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        grad = np.atleast_2d(grad)
        N = grad.shape[0]
        return LawResult(grad @ self.C.T, np.broadcast_to(self.C, (N,) + self.C.shape), np.zeros((N, 0)))
