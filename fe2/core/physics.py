"""The registry of physics: what a cell problem (and a two-scale run) solves for.

Configuration validation, the configuration reference, the cell problems and the factory
all read :data:`PHYSICS`; adding a physics means adding one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fe2.core import kinematics as kin

__all__ = ["BOUNDARY_CONDITIONS", "PHYSICS", "Physics", "get"]

#: the micro boundary conditions of a cell problem (:mod:`fe2.micro.boundary`), from the
#: stiffest apparent tensor to the most compliant
BOUNDARY_CONDITIONS = ("linear", "periodic", "minimal")


@dataclass(frozen=True)
class Physics:
    """One kind of cell problem.

    Attributes
    ----------
    name : the configuration value (``[rve] physics``)
    kinematics : the gradient measure (:mod:`fe2.core.kinematics`): ``small``, ``finite``, ``scalar``
    doc : one line for the configuration reference
    """

    name: str
    kinematics: str
    doc: str

    @property
    def vector_field(self) -> bool:
        """True for a displacement (vector) field, False for a scalar (temperature)."""
        return self.kinematics != "scalar"

    def gradient_size(self, gdim: int) -> int:
        """Number of macro gradient components."""
        return kin.gradient_size(self.kinematics, gdim)

    def reference_gradient(self, gdim: int) -> np.ndarray:
        """The macro gradient of the undeformed state (zero strain, or ``F = I``)."""
        return kin.reference_gradient(self.kinematics, gdim)


#: name -> :class:`Physics`
PHYSICS: dict[str, Physics] = {p.name: p for p in (
    Physics("elasticity", "small", "small strain; plane strain in 2D"),
    Physics("finite_strain", "finite", "total Lagrangian, F -> P"),
    Physics("conduction", "scalar", "steady heat conduction, temperature -> heat flux"),
)}


def get(name: str) -> Physics:
    """The physics called ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return PHYSICS[name]
    except KeyError:
        raise ValueError(f"physics must be one of {tuple(PHYSICS)}, got {name!r}") from None
