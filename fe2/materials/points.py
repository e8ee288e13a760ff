"""Point materials made of one law: ``N`` points with trial/committed state.

:class:`MaterialPoints` adapts a :class:`~fe2.materials.base.Law` to the
:class:`~fe2.materials.base.PointMaterial` interface the macro problem uses (its state in a
:class:`~fe2.materials.state.StateBank`); :class:`LinearMaterial` is the stateless case of
a constant stiffness. :func:`evaluate_law` is the one routine that evaluates a law at a set
of points, locally or driven by a nonlocal strain; :class:`~fe2.materials.phasewise.PhaseMaterial`
uses it phase by phase.
"""

from __future__ import annotations

import numpy as np

from fe2.materials.base import Law, NonlocalResponse, PointMaterial, virgin_tangent
from fe2.materials.conduction import LinearConduction
from fe2.materials.elastic import LinearElastic
from fe2.materials.state import StateBank

__all__ = ["LinearMaterial", "MaterialPoints", "evaluate_law"]


def evaluate_law(law: Law, grad: np.ndarray, state: np.ndarray, e_nl: np.ndarray | None = None
                 ) -> tuple[tuple[np.ndarray, np.ndarray] | NonlocalResponse, np.ndarray]:
    """Evaluate ``law`` at points with gradients ``grad`` ``(N, n)`` from committed ``state``.

    Without ``e_nl``: ``((flux, tangent), trial state)``. With the nonlocal equivalent
    strain ``e_nl`` ``(N,)`` the law's damage is driven by it (the law must be
    :attr:`~fe2.materials.base.Law.driven`): ``(NonlocalResponse, trial state)`` with
    ``de_local_de = 0`` (a point's local strain does not depend on ``e_nl``)."""
    if e_nl is None:
        flux, tangent, trial = law.integrate(grad, state)
        return (flux, tangent), trial
    if not law.driven:
        raise ValueError(f"{type(law).__name__} has no nonlocal (driven) form; "
                         "gradient regularization needs a damage law")
    r = law.integrate_driven(grad, state, e_nl)
    return NonlocalResponse(r.flux, r.tangent, r.dflux_ddrive, r.equivalent, r.dequivalent,
                            np.zeros(grad.shape[0])), r.state


class MaterialPoints(PointMaterial):
    """``N`` points of one law with committed and trial state (bank array ``state``)."""

    def __init__(self, law: Law, N: int = 0) -> None:
        self.law = law
        self.size = law.size
        self.kinematics = law.kinematics
        self.nonlocal_form = law.driven
        self.bank = StateBank()
        self.resize(N)

    def resize(self, N: int) -> None:
        """Serve ``N`` points, all in the virgin state."""
        self.bank.allocate("state", self.law.initial_state(1)[0], N)

    @property
    def num_points(self) -> int:
        return self.bank.committed["state"].shape[0]

    def unloading_tangent(self) -> np.ndarray | None:
        """The law's virgin (elastic) tangent at every point, for a small-strain law that
        does not soften (None otherwise)."""
        law = self.law
        if law.kinematics != "small" or law.driven or law.linear:  # (linear: the consistent tangent is it)
            return None
        C = virgin_tangent(law)
        return np.broadcast_to(C, (self.num_points, *C.shape))

    def _sized(self, grad: np.ndarray) -> np.ndarray:
        """``grad`` as ``(N, n)``; the first call with ``N`` points sizes the set."""
        grad = np.atleast_2d(grad)
        if grad.shape[0] != self.num_points:
            self.resize(grad.shape[0])
        return grad

    def evaluate(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """From the committed state (the first call with ``N`` points sizes the set)."""
        grad = self._sized(grad)
        out, self.bank.trial["state"] = evaluate_law(self.law, grad, self.bank.committed["state"])
        return out

    def evaluate_nonlocal(self, grad: np.ndarray, e_nl: np.ndarray) -> NonlocalResponse:
        """For the implicit gradient model: the law's damage is driven by the nonlocal
        equivalent strain ``e_nl`` ``(N,)`` (a :attr:`~fe2.materials.base.Law.driven`
        law, e.g. :class:`fe2.materials.damage.IsotropicDamage`)."""
        grad = self._sized(grad)
        out, self.bank.trial["state"] = evaluate_law(self.law, grad, self.bank.committed["state"], e_nl)
        return out

    def set_time_increment(self, dt: float) -> None:
        """Forward the pseudo-time increment to a rate-dependent law."""
        if self.law.rate_dependent:
            self.law.set_time_increment(dt)

    def internal_fields(self) -> dict[str, np.ndarray]:
        """Committed internal variables per point (:meth:`~fe2.materials.base.Law.fields`)."""
        return self.law.fields(self.bank.committed["state"])

    def out_of_plane_stress(self, grad: np.ndarray) -> np.ndarray | None:
        """The law's :meth:`~fe2.materials.base.Law.out_of_plane_stress` at the committed state."""
        grad = np.atleast_2d(grad)
        state = self.bank.committed["state"] if grad.shape[0] == self.num_points else None
        if state is None:
            state = self.law.initial_state(grad.shape[0])
        return self.law.out_of_plane_stress(grad, state)


class LinearMaterial(MaterialPoints):
    """Points of a linear law (any count, no state): Mandel stiffness ``C`` (small strain),
    or a conductivity tensor ``C`` (``kinematics == "scalar"``). ``out_of_plane`` (plane
    strain): the row that gives ``sigma_zz`` from the in-plane strain (e.g. an RVE's
    :attr:`~fe2.micro.cell.CellProblem.out_of_plane_row`)."""

    def __init__(self, C: np.ndarray, kinematics: str = "small", out_of_plane: np.ndarray | None = None) -> None:
        if kinematics not in ("small", "scalar"):
            raise ValueError(f"a linear material is small strain or scalar, not {kinematics!r}")
        super().__init__(LinearElastic(C, out_of_plane) if kinematics == "small" else LinearConduction(C), 0)
        self.C = np.asarray(C, dtype=float)

    def evaluate(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flux, tangent, _ = self.law.integrate(grad, np.zeros((np.atleast_2d(grad).shape[0], 0)))
        return flux, tangent
