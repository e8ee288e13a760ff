"""Boundary conditions of the macro problem, all scaled by one load factor.

:class:`Dirichlet` (a displacement component on a tagged boundary) and :class:`Traction`
(a traction vector on a tagged boundary) are what :class:`fe2.macro.problem.MacroProblem`
takes; :func:`from_config` turns the ``[[macro.dirichlet]]`` and ``[[macro.traction]]``
entries of a case into them, with boundaries named or numbered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fe2.macro.mesh import MacroMesh

__all__ = ["AXES", "Dirichlet", "Traction", "from_config"]

#: displacement component names
AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class Dirichlet:
    """Displacement component ``component`` on boundary ``tag`` equal to ``load * value``."""

    tag: int
    component: int
    value: float
    name: str = ""


@dataclass(frozen=True)
class Traction:
    """Traction ``load * value`` on boundary ``tag``."""

    tag: int
    value: tuple[float, ...]
    name: str = ""


def from_config(dirichlet: Sequence[Any], traction: Sequence[Any], mesh: MacroMesh, source: str = "case"
                ) -> tuple[list[Dirichlet], list[Traction]]:
    """The boundary conditions of configured ``[[macro.dirichlet]]`` / ``[[macro.traction]]``
    entries (:class:`fe2.io.config.DirichletConfig`, :class:`fe2.io.config.TractionConfig`)
    on ``mesh``; a boundary that the mesh does not have raises
    :class:`~fe2.core.errors.MeshError` naming ``source`` (collective)."""
    bcs = [Dirichlet(mesh.boundary_tag(d.boundary, source),
                     AXES[d.component] if isinstance(d.component, str) else d.component,
                     d.value, str(d.boundary)) for d in dirichlet]
    loads = [Traction(mesh.boundary_tag(t.boundary, source), t.value, str(t.boundary)) for t in traction]
    return bcs, loads
