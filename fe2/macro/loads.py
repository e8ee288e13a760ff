"""Boundary conditions of the macro problem, all scaled by one load factor.

:class:`Dirichlet` (a displacement component, or the temperature, on a tagged boundary)
and :class:`Traction` (a traction vector, or an inward heat flux, on a tagged boundary) are
what :class:`fe2.macro.problem.MacroProblem` takes; :func:`from_config` turns the
``[[macro.dirichlet]]``, ``[[macro.traction]]`` and ``[[macro.flux]]`` entries of a case
into them, with boundaries named or numbered.
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
    """Displacement component ``component`` (None: the scalar field, a temperature) on
    boundary ``tag`` equal to ``load * value``."""

    tag: int
    component: int | None
    value: float
    name: str = ""


@dataclass(frozen=True)
class Traction:
    """Surface load ``load * value`` on boundary ``tag``: a traction vector (``gdim``
    values), or one value, the heat flux into the body, for a scalar field."""

    tag: int
    value: tuple[float, ...]
    name: str = ""


def from_config(dirichlet: Sequence[Any], traction: Sequence[Any], mesh: MacroMesh, source: str = "case",
                flux: Sequence[Any] = ()) -> tuple[list[Dirichlet], list[Traction]]:
    """The boundary conditions of configured ``[[macro.dirichlet]]`` / ``[[macro.traction]]``
    / ``[[macro.flux]]`` entries (:class:`fe2.io.config.DirichletConfig`,
    :class:`fe2.io.config.TractionConfig`, :class:`fe2.io.config.FluxConfig`) on ``mesh``:
    heat fluxes become one-value :class:`Traction` entries. A boundary that the mesh does not
    have raises :class:`~fe2.core.errors.MeshError` naming ``source``, a component or a
    traction vector that does not fit the mesh's dimension
    :class:`~fe2.core.errors.ConfigError` (collective)."""
    gdim = mesh.mesh.geometry.dim
    names = list(AXES)[:gdim]
    bcs = []
    for i, d in enumerate(dirichlet):
        component = AXES[d.component] if isinstance(d.component, str) else d.component
        if component is not None and component >= gdim:
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
    for f in flux:
        loads.append(Traction(mesh.boundary_tag(f.boundary, source), (f.value,), str(f.boundary)))
    return bcs, loads
