"""Material laws at quadrature points and the interface every law (and every RVE) meets.

A *material* answers, for a batch of ``N`` points at once: given the macro gradients
``E`` (``(N, n)``, Mandel), return the fluxes ``(N, n)`` and consistent tangents
``(N, n, n)``. Macro code calls :meth:`Material.evaluate` and does not care whether
the answer comes from a closed-form law or from RVE solves
(:class:`fe2.rve.CellProblem` has the same method).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Material(Protocol):
    """What the macro problem needs from a constitutive model."""

    size: int

    def evaluate(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes ``(N, n)`` and tangents ``(N, n, n)`` for gradients ``E`` ``(N, n)``."""
        ...


class LinearMaterial:
    """A linear law ``sigma = C E`` with a constant Mandel tensor ``C`` ``(n, n)``."""

    def __init__(self, C: np.ndarray) -> None:
        self.C = np.asarray(C, dtype=float)
        self.size = self.C.shape[0]

    def evaluate(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        E = np.atleast_2d(E)
        return E @ self.C.T, np.broadcast_to(self.C, (E.shape[0],) + self.C.shape)
