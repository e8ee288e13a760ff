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

from fe2.core.errors import ConfigError
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
    :class:`~fe2.core.errors.MeshError` naming ``source``, a component or a traction
    vector that does not fit the mesh's dimension :class:`~fe2.core.errors.ConfigError`
    (collective)."""
    gdim = mesh.mesh.geometry.dim
    names = list(AXES)[:gdim]
    bcs = []
    for i, d in enumerate(dirichlet):
        component = AXES[d.component] if isinstance(d.component, str) else d.component
        if component >= gdim:
            raise ConfigError(f"{source}: key 'macro.dirichlet[{i}].component' must be one of "
                              f"{', '.join(repr(n) for n in names)} (or 0 to {gdim - 1}) for a {gdim}D macro mesh, "
                              f"got {d.component!r}")
        bcs.append(Dirichlet(mesh.boundary_tag(d.boundary, source), component, d.value, str(d.boundary)))
    loads = []
    for i, t in enumerate(traction):
        if len(t.value) != gdim:
            raise ConfigError(f"{source}: key 'macro.traction[{i}].value' must have {gdim} components "
                              f"({', '.join(names)}) for a {gdim}D macro mesh, got {list(t.value)!r}")
        loads.append(Traction(mesh.boundary_tag(t.boundary, source), t.value, str(t.boundary)))
    return bcs, loads
