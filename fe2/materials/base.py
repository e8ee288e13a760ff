"""What a constitutive law and a point material are: their interfaces, declared
capabilities and named results.

Two levels, two interfaces:

**A law** (:class:`Law`) maps gradients and the *committed* internal state of ``N``
points to fluxes, algorithmic tangents and the *trial* state, in one call::

    flux, tangent, trial = law.integrate(grad, state)   # (N, n), (N, n, n), (N, m)

- ``kinematics == "small"``: ``grad`` is the Mandel strain, ``flux`` the Mandel stress
  (:mod:`fe2.core.tensors` order; plane strain when ``gdim == 2``);
- ``kinematics == "finite"``: ``grad`` is the deformation gradient ``F`` flattened row-major
  (``[F11, F12, F21, F22]`` in 2D), ``flux`` the first Piola–Kirchhoff stress ``P`` in the
  same layout, ``tangent`` is ``dP/dF``;
- the state is one flat float array per point, ``state_size`` long (0 for elastic laws);
  ``state_layout`` names its parts. ``integrate`` never modifies its inputs.

No Python loop over points: everything is ``numpy`` over the leading axis. A law
*declares* what else it provides, as class attributes read by the code that uses it
(never sniffed with ``hasattr``): :attr:`Law.linear`, :attr:`Law.driven`,
:attr:`Law.symmetric_tangent`, :attr:`Law.rate_dependent`, :attr:`Law.output_fields`.

**A point material** (:class:`PointMaterial`) is what the macro problem talks to: a set of
points with trial/committed state. ``evaluate(grad)`` works from the committed state and
keeps the result as trial state; ``commit()`` after a converged load step, ``revert()``
after a failed one. :class:`fe2.materials.points.MaterialPoints` adapts a law,
:class:`fe2.materials.phasewise.PhaseMaterial` one law per cell tag, and
:class:`fe2.micro.nonlinear.NonlinearCellProblem` (an RVE at every point) is another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from fe2.core.kinematics import reference_gradient

__all__ = ["DrivenResult", "Law", "LawResult", "NonlocalResponse", "PointMaterial", "virgin_tangent"]


class LawResult(NamedTuple):
    """What :meth:`Law.integrate` returns for ``N`` points."""

    flux: np.ndarray  #: (N, n)
    tangent: np.ndarray  #: (N, n, n) consistent (algorithmic) tangent d flux / d grad
    state: np.ndarray  #: (N, state_size) trial state


class DrivenResult(NamedTuple):
    """What :meth:`Law.integrate_driven` returns for ``N`` points: the law driven by a given
    (nonlocal) strain ``drive`` instead of its own equivalent strain."""

    flux: np.ndarray  #: (N, n)
    tangent: np.ndarray  #: (N, n, n) d flux / d grad at fixed drive
    dflux_ddrive: np.ndarray  #: (N, n)
    equivalent: np.ndarray  #: (N,) the point's own (local) equivalent strain
    dequivalent: np.ndarray  #: (N, n) d equivalent / d grad
    state: np.ndarray  #: (N, state_size) trial state


class NonlocalResponse(NamedTuple):
    """What :meth:`PointMaterial.evaluate_nonlocal` returns for ``N`` points: everything the
    implicit-gradient macro problem's block tangent needs."""

    flux: np.ndarray  #: (N, n)
    tangent: np.ndarray  #: (N, n, n) d flux / d E at fixed e_nl
    dflux_de: np.ndarray  #: (N, n) d flux / d e_nl
    e_local: np.ndarray  #: (N,) the local equivalent strain
    de_local_dE: np.ndarray  #: (N, n)
    de_local_de: np.ndarray  #: (N,)


class Law:
    """Base class of the vectorised constitutive laws (see the module docstring).

    Subclasses set ``size``, ``gdim`` and implement :meth:`integrate`; the class attributes
    below are the declared capabilities, with the defaults of a plain rate-independent law.
    """

    kinematics: str = "small"
    gdim: int
    size: int
    #: number of internal variables per point, and the name -> slice of each
    state_size: int = 0
    state_layout: dict[str, slice] = {}
    #: constant tangent and no state: one factorisation serves every macro point
    linear: bool = False
    #: :meth:`integrate_driven` and :meth:`equivalent_of` exist (implicit gradient damage)
    driven: bool = False
    #: the consistent tangent is symmetric (Cholesky may be used)
    symmetric_tangent: bool = True
    #: internal variables written to the results: state_layout key -> output field name
    output_fields: dict[str, str] = {}

    @property
    def rate_dependent(self) -> bool:
        """True if the response depends on the pseudo-time increment (:meth:`set_time_increment`)."""
        return False

    def initial_state(self, N: int) -> np.ndarray:
        """``(N, state_size)`` state of a virgin material (zeros unless a law says otherwise)."""
        return np.zeros((N, self.state_size))

    def set_time_increment(self, dt: float) -> None:
        """Pseudo-time increment of the next integration (a no-op for rate-independent laws)."""

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        """Flux, consistent tangent and trial state of ``N`` points."""
        raise NotImplementedError

    def flux(self, grad: np.ndarray, state: np.ndarray) -> np.ndarray:
        """The flux ``(N, n)`` of points at gradients ``grad`` in states ``state`` that
        :meth:`integrate` (or :meth:`integrate_driven`) returned for them: the converged
        stress, without evolving the state again. The default integrates once more from
        ``state``, which changes nothing for a rate-independent law whose state is
        converged at ``grad``; laws for which that does not hold (rate-dependent or driven
        ones) override it."""
        return self.integrate(grad, state).flux

    def integrate_driven(self, grad: np.ndarray, state: np.ndarray, drive: np.ndarray,
                         equivalent: tuple[np.ndarray, np.ndarray] | None = None) -> DrivenResult:
        """The law driven by ``drive`` ``(N,)`` (only if :attr:`driven`)."""
        raise NotImplementedError(f"{type(self).__name__} has no driven (nonlocal) form")

    def equivalent_of(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Equivalent strain ``(N,)`` and its gradient ``(N, n)`` (only if :attr:`driven`)."""
        raise NotImplementedError(f"{type(self).__name__} has no equivalent strain")

    def out_of_plane_stress(self, grad: np.ndarray, state: np.ndarray) -> np.ndarray | None:
        """Plane strain (a small-strain or finite-strain law with ``gdim == 2``): the
        out-of-plane stress ``sigma_zz`` (finite strain: ``P_33``) ``(N,)`` at in-plane
        gradients ``grad`` and states ``state`` (those :meth:`integrate` returned for them).
        ``None``: the law has no such component (3D, conduction) or cannot say (the default)."""
        return None

    def fields(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """The :attr:`output_fields` of states ``(..., state_size)`` by output name,
        each ``(...)`` (e.g. ``damage``, ``dissipation``, ``equivalent_plastic_strain``)."""
        st = np.asarray(state)
        return {out: st[..., self.state_layout[key]][..., 0] for key, out in self.output_fields.items()}


def virgin_tangent(law: Law) -> np.ndarray:
    """A law's tangent at the reference gradient (zero strain, ``F = I``) in its virgin
    state: the phase tensor of a law phase, and the elastic cell's tangent there."""
    g0 = reference_gradient(law.kinematics, law.gdim)[None, :]
    return np.array(law.integrate(g0, law.initial_state(1))[1][0])



class PointMaterial:
    """Base class of the materials the macro problem evaluates at its quadrature points.

    Subclasses implement :meth:`evaluate` and keep their history in a
    :class:`fe2.materials.state.StateBank` called ``bank`` (or override
    :meth:`commit` ... :meth:`set_state`). Capabilities: :attr:`kinematics`,
    :attr:`size`, :attr:`nonlocal_form`.
    """

    kinematics: str = "small"
    size: int
    #: :meth:`evaluate_nonlocal` exists (a driven damage law, an RVE with a damage phase)
    nonlocal_form: bool = False
    bank: Any = None

    def evaluate(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes ``(N, n)`` and tangents ``(N, n, n)`` from the committed state; the
        resulting state becomes the trial state."""
        raise NotImplementedError

    def evaluate_nonlocal(self, grad: np.ndarray, e_nl: np.ndarray) -> NonlocalResponse:
        """As :meth:`evaluate`, driven by the nonlocal equivalent strain ``e_nl`` ``(N,)``
        (only if :attr:`nonlocal_form`)."""
        raise ValueError(f"{type(self).__name__} has no nonlocal (driven) form; "
                         "gradient regularization needs a damage law")

    def set_time_increment(self, dt: float) -> None:
        """Pseudo-time increment of the next evaluation (rate-dependent laws)."""

    def out_of_plane_stress(self, grad: np.ndarray) -> np.ndarray | None:
        """Plane strain: the out-of-plane stress ``sigma_zz`` (finite strain ``P_33``) per
        point ``(N,)`` at the committed state, whose macro gradients are ``grad`` ``(N, n)``
        (RVEs: the volume average). ``None``: no such component (3D, conduction) or the
        material cannot say (the default)."""
        return None

    def internal_fields(self) -> dict[str, np.ndarray]:
        """Committed scalar internal variables per point, ``{name: (N,)}``; the name
        ``dissipation`` is the dissipated energy per unit volume."""
        return {}

    def unsettled_points(self) -> int:
        """Points whose own equations are not yet solved at the last evaluation (an RVE's
        cell problem under the monolithic scheme, :mod:`fe2.micro.problem`): the macro
        Newton iterates until there are none on any rank. 0 for materials that solve them
        in every evaluation (not collective)."""
        return 0

    def statistics(self) -> dict[str, float]:
        """Counters of the work done so far on this process (e.g. micro solves,
        factorisations; ``seconds`` of micro work); empty if the material keeps none."""
        return {}

    def commit(self) -> None:
        """Make the trial state the committed state (after a converged step)."""
        if self.bank is not None:
            self.bank.commit()

    def revert(self) -> None:
        """Discard the trial state (after a failed step)."""
        if self.bank is not None:
            self.bank.revert()

    def get_state(self) -> dict[str, np.ndarray]:
        """The committed state as named arrays (copies)."""
        return {} if self.bank is None else self.bank.get_state()

    def unloading_tangent(self) -> np.ndarray | None:
        """The tangent ``(N, n, n)`` of every point unloading elastically from its committed
        state, which the macro Newton takes for its first update where the load turns (a
        plastic point's consistent tangent would throw that update far past the other side);
        None when the material has no such tangent (the default: e.g. softening, whose
        unloading is secant, and finite strain)."""
        return None

    def upgrade_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``state`` as written by an older fe2, in today's layout (:meth:`set_state` takes
        both; a checkpoint compares the upgraded arrays with :meth:`get_state`'s)."""
        return dict(state)

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a committed state from :meth:`get_state`'s arrays (trial = committed)."""
        if self.bank is not None:
            self.bank.set_state(state)
