"""Gradient measures: what a field's "macro gradient" is, per kind of kinematics.

Three kinds, named by the ``kinematics`` attribute of laws and materials:

- ``"small"``: the Mandel vector of ``sym(grad u)`` (:mod:`fe2.core.tensors` order), size 3
  (2D, plane strain) or 6; the flux is the Mandel stress;
- ``"finite"``: the deformation gradient ``F = I + grad u`` flattened row-major
  (``[F11, F12, F21, F22]`` in 2D), size ``gdim^2``; the flux is the first Piola–Kirchhoff
  stress in the same layout;
- ``"scalar"``: ``grad T`` of a scalar field (conduction), size ``gdim``.

:func:`measure` gives the UFL expression of the measure of a field *without* the
reference (``grad u`` flattened for ``"finite"``); :func:`reference_gradient` is the value
of the undeformed state that is added to it (``F = I``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import ufl

from fe2.core.tensors import SQRT2, strain_size

__all__ = ["KINEMATICS", "flat_grad", "gradient_size", "mandel_strain", "measure", "reference_gradient"]

#: The kinds of kinematics fe2 knows.
KINEMATICS = ("small", "finite", "scalar")


def _check(kinematics: str) -> None:
    if kinematics not in KINEMATICS:
        raise ValueError(f"kinematics must be one of {KINEMATICS}, got {kinematics!r}")


def gradient_size(kinematics: str, gdim: int) -> int:
    """Number of components of the gradient measure."""
    _check(kinematics)
    return {"small": strain_size(gdim), "finite": gdim * gdim, "scalar": gdim}[kinematics]


def reference_gradient(kinematics: str, gdim: int) -> np.ndarray:
    """The gradient of the undeformed state: zero, or ``F = I`` flattened (``"finite"``)."""
    _check(kinematics)
    if kinematics == "finite":
        return np.eye(gdim).ravel()
    return np.zeros(gradient_size(kinematics, gdim))


def mandel_strain(u: Any, gdim: int) -> Any:
    """UFL Mandel vector of ``sym(grad(u))``."""
    e = ufl.sym(ufl.grad(u))
    if gdim == 2:
        return ufl.as_vector([e[0, 0], e[1, 1], SQRT2 * e[0, 1]])
    return ufl.as_vector([e[0, 0], e[1, 1], e[2, 2], SQRT2 * e[1, 2], SQRT2 * e[0, 2], SQRT2 * e[0, 1]])


def flat_grad(u: Any, gdim: int) -> Any:
    """UFL ``grad(u)`` flattened row-major (``[u1,1, u1,2, u2,1, u2,2]`` in 2D)."""
    g = ufl.grad(u)
    return ufl.as_vector([g[i, j] for i in range(gdim) for j in range(gdim)])


def measure(kinematics: str, gdim: int) -> Callable[[Any], Any]:
    """``u -> UFL gradient measure of u`` (without the reference gradient)."""
    _check(kinematics)
    if kinematics == "small":
        return lambda u: mandel_strain(u, gdim)
    if kinematics == "finite":
        return lambda u: flat_grad(u, gdim)
    return ufl.grad
