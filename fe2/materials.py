"""Constitutive laws at quadrature points, vectorised over all points at once.

Two levels, two interfaces:

**A law** (:class:`Material`) maps gradients and the *committed* internal state of ``N``
points to fluxes, algorithmic tangents and the *trial* state, in one call::

    flux, tangent, trial = law.integrate(grad, state)   # (N, n), (N, n, n), (N, m)

- ``kinematics == "small"``: ``grad`` is the Mandel strain, ``flux`` the Mandel stress
  (:mod:`fe2.tensors` order; plane strain when ``gdim == 2``);
- ``kinematics == "finite"``: ``grad`` is the deformation gradient ``F`` flattened row-major
  (``[F11, F12, F21, F22]`` in 2D), ``flux`` the first Piola–Kirchhoff stress ``P`` in the
  same layout, ``tangent`` is ``dP/dF``;
- the state is one flat float array per point, ``state_size`` long (0 for elastic laws);
  ``state_layout`` names its parts. ``integrate`` never modifies its inputs.

No Python loop over points: everything is ``numpy`` over the leading axis.

**A macro material** (:class:`PointMaterial`) is what the macro problem talks to: a set of
points with trial/committed state. ``evaluate(grad)`` works from the committed state and
keeps the result as trial state; ``commit()`` after a converged load step, ``revert()``
after a failed one. :class:`MaterialPoints` adapts a law; :class:`fe2.rve.CellProblem` (an
RVE at every point) is another implementation.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from fe2.tensors import isotropic_stiffness, strain_size


class Material(Protocol):
    """A vectorised constitutive law (see the module docstring)."""

    kinematics: str
    gdim: int
    size: int
    state_size: int
    state_layout: dict[str, slice]

    def initial_state(self, N: int) -> np.ndarray:
        """``(N, state_size)`` state of a virgin material."""
        ...

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(flux (N, n), tangent (N, n, n), trial state (N, state_size))``."""
        ...


class PointMaterial(Protocol):
    """What the macro problem needs at its quadrature points."""

    size: int

    def evaluate(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes ``(N, n)`` and tangents ``(N, n, n)`` from the committed state; the
        resulting state becomes the trial state."""
        ...

    def commit(self) -> None:
        """Make the trial state the committed state (after a converged step)."""
        ...

    def revert(self) -> None:
        """Discard the trial state (after a failed step)."""
        ...

    # Optional (looked up with getattr by the macro problem):
    #   symmetric_tangent        False if the tangent can be non-symmetric (default True)
    #   set_time_increment(dt)   pseudo-time increment of the next evaluation (viscous laws)
    #   internal_fields()        committed scalar fields per point, {name: (N,)}; the name
    #                            "dissipation" is the dissipated energy per unit volume


def law_fields(law: Material, state: np.ndarray) -> dict[str, np.ndarray]:
    """Scalar internal variables of a law's states ``(N, m)`` worth writing out, by name:
    ``damage``, ``dissipation`` (energy per unit volume), ``equivalent_plastic_strain``."""
    layout = getattr(law, "state_layout", {})
    names = {"omega": "damage", "dissipation": "dissipation", "p": "equivalent_plastic_strain"}
    return {out: np.asarray(state)[..., layout[key]][..., 0] for key, out in names.items() if key in layout}


class LinearElastic:
    """Linear elasticity ``sigma = C eps`` with a constant Mandel stiffness (small strain).

    Use :meth:`isotropic` for ``(E, nu)``; any symmetric positive definite ``C`` works
    (e.g. :func:`fe2.tensors.transversely_isotropic_stiffness` for fibres).
    """

    kinematics = "small"
    state_size = 0
    state_layout: dict[str, slice] = {}

    def __init__(self, C: np.ndarray) -> None:
        self.C = np.asarray(C, dtype=float)
        self.size = self.C.shape[0]
        self.gdim = 2 if self.size == 3 else 3
        if self.C.shape != (strain_size(self.gdim),) * 2:
            raise ValueError(f"stiffness must be 3x3 (2D) or 6x6 (3D) Mandel, got {self.C.shape}")

    @classmethod
    def isotropic(cls, E: float, nu: float, gdim: int) -> "LinearElastic":
        return cls(isotropic_stiffness(E, nu, gdim))

    def initial_state(self, N: int) -> np.ndarray:
        return np.zeros((N, 0))

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        grad = np.atleast_2d(grad)
        N = grad.shape[0]
        return grad @ self.C.T, np.broadcast_to(self.C, (N,) + self.C.shape), np.zeros((N, 0))


class MaterialPoints:
    """``N`` points of one law with committed and trial state (a :class:`PointMaterial`)."""

    def __init__(self, law: Material, N: int = 0) -> None:
        self.law = law
        self.size = law.size
        self.kinematics = law.kinematics
        self.resize(N)

    def resize(self, N: int) -> None:
        """Serve ``N`` points, all in the virgin state."""
        self.committed = self.law.initial_state(N)
        self.trial = self.committed.copy()

    def _sized(self, grad: np.ndarray) -> np.ndarray:
        """``grad`` as ``(N, n)``; the first call with ``N`` points sizes the set."""
        grad = np.atleast_2d(grad)
        if grad.shape[0] != self.committed.shape[0]:
            self.resize(grad.shape[0])
        return grad

    def evaluate(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """From the committed state (the first call with ``N`` points sizes the set)."""
        grad = self._sized(grad)
        flux, tangent, self.trial = self.law.integrate(grad, self.committed)
        return flux, tangent

    def evaluate_nonlocal(self, grad: np.ndarray, e_nl: np.ndarray) -> tuple[np.ndarray, ...]:
        """For the implicit gradient model: the law's damage is driven by the nonlocal
        equivalent strain ``e_nl`` ``(N,)`` (laws with ``integrate_driven``, e.g.
        :class:`fe2.damage.IsotropicDamage`). Returns ``sigma (N, n)``, ``dsigma/deps``
        at fixed ``e_nl`` ``(N, n, n)``, ``dsigma/de_nl (N, n)``, the local equivalent
        strain ``e_loc (N,)``, ``de_loc/deps (N, n)`` and ``de_loc/de_nl (N,)`` (zero)."""
        if not hasattr(self.law, "integrate_driven"):
            raise ValueError(f"{type(self.law).__name__} has no nonlocal (driven) form; "
                             "gradient regularization needs a damage law")
        grad = self._sized(grad)
        sigma, C, ds, e, de, self.trial = self.law.integrate_driven(grad, self.committed, e_nl)
        return sigma, C, ds, e, de, np.zeros(grad.shape[0])

    def commit(self) -> None:
        self.committed = self.trial.copy()

    def revert(self) -> None:
        self.trial = self.committed.copy()

    def set_time_increment(self, dt: float) -> None:
        """Forward the pseudo-time increment to a rate-dependent law."""
        if hasattr(self.law, "set_time_increment"):
            self.law.set_time_increment(dt)

    def internal_fields(self) -> dict[str, np.ndarray]:
        """Committed internal variables per point (:func:`law_fields`)."""
        return law_fields(self.law, self.committed)


class LinearMaterial(MaterialPoints):
    """Convenience: points of a linear elastic law with Mandel stiffness ``C`` (any count)."""

    def __init__(self, C: np.ndarray) -> None:
        super().__init__(LinearElastic(C), 0)
        self.C = self.law.C

    def evaluate(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flux, tangent, _ = self.law.integrate(grad, np.zeros((np.atleast_2d(grad).shape[0], 0)))
        return flux, tangent
