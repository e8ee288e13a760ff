"""The phases of an RVE: which cells carry which material.

A :class:`Phase` names the cells of one physical tag of the RVE mesh and gives their
material: a constant tangent (a linear phase) or a constitutive law
(:class:`fe2.materials.base.Law`, a nonlinear RVE). :func:`virgin_tangent` is a law's
tangent in its initial state at zero strain, the elastic cell's tangent there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fe2.materials.base import virgin_tangent

__all__ = ["Phase", "virgin_tangent"]


@dataclass(frozen=True)
class Phase:
    """A material phase of an RVE: the cells with physical tag ``tag``.

    ``tensor`` is the phase's (initial) tangent in the layout of the macro gradient:
    Mandel stiffness ``(n, n)`` (small strain), conductivity ``(gdim, gdim)``, or
    ``dP/dF`` at ``F = I`` ``(gdim^2, gdim^2)`` (finite strain). ``law`` is the
    constitutive law (:class:`fe2.materials.base.Law`) of a nonlinear RVE; with a law
    and no tensor, the tensor is the law's tangent in its initial state.
    """

    name: str
    tag: int
    tensor: np.ndarray | None = None
    law: Any = None

    def __post_init__(self) -> None:
        if self.tensor is None:
            if self.law is None:
                raise ValueError(f"phase {self.name!r} needs a tensor or a law")
            object.__setattr__(self, "tensor", virgin_tangent(self.law))
