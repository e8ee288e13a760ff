"""Boundary conditions of the macro problem and how they follow the pseudo-time.

:class:`Dirichlet` (a displacement component, or the temperature, on a tagged boundary)
and :class:`Traction` (a traction vector, or an inward heat flux, on a tagged boundary) are
what :class:`fe2.macro.problem.MacroProblem` takes; :func:`from_config` turns the
``[[macro.dirichlet]]``, ``[[macro.traction]]`` and ``[[macro.flux]]`` entries of a case
into them, with boundaries named or numbered.

Each load is ``value * a(t)`` at pseudo-time ``t``: ``a`` is the load's
:class:`Amplitude` (a piecewise-linear table of ``(time, value)`` pairs, as Abaqus'
``*AMPLITUDE`` or a MOOSE ``PiecewiseLinear`` function), or ``a(t) = t`` for a load without
one, so that ``t`` is then the load factor. Loads with different amplitudes give
non-proportional paths (tension, then shear), unloading, reloading and cycles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fe2.core.errors import ConfigError
from fe2.macro.mesh import MacroMesh

__all__ = ["AXES", "Amplitude", "Dirichlet", "Traction", "amplitude_tables", "from_config", "scale"]

#: displacement component names
AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class Amplitude:
    """A piecewise-linear function of the pseudo-time through the points ``(times[i],
    values[i])`` (``times`` strictly increasing), constant beyond the first and the last
    point."""

    times: tuple[float, ...]
    values: tuple[float, ...]
    name: str = ""

    def __post_init__(self) -> None:
        t = np.asarray(self.times, float)
        if not len(t) or len(t) != len(self.values) or np.any(np.diff(t) <= 0):
            raise ValueError(f"amplitude {self.name!r}: needs as many values as times, and increasing times")

    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[float]], name: str = "") -> Amplitude:
        """From ``[(time, value), ...]``."""
        return cls(tuple(float(p[0]) for p in pairs), tuple(float(p[1]) for p in pairs), name)

    def __call__(self, t: float) -> float:
        return float(np.interp(t, self.times, self.values))


def amplitude_tables(pairs: Mapping[str, Sequence[Sequence[float]]] | None) -> dict[str, Amplitude]:
    """:class:`Amplitude` objects by name from ``[loading.amplitudes]``'s ``(time, value)`` pairs."""
    return {name: Amplitude.from_pairs(p, name) for name, p in (pairs or {}).items()}


def scale(amplitude: Amplitude | None, t: float) -> float:
    """The factor of a load with ``amplitude`` at pseudo-time ``t``: ``amplitude(t)``, or
    ``t`` without one."""
    return t if amplitude is None else amplitude(t)


@dataclass(frozen=True)
class Dirichlet:
    """Displacement component ``component`` (None: the scalar field, a temperature) on
    boundary ``tag`` equal to ``value * a(t)`` (:func:`scale`)."""

    tag: int
    component: int | None
    value: float
    name: str = ""
    amplitude: Amplitude | None = None


@dataclass(frozen=True)
class Traction:
    """Surface load ``value * a(t)`` (:func:`scale`) on boundary ``tag``: a traction vector
    (``gdim`` values), or one value, the heat flux into the body, for a scalar field."""

    tag: int
    value: tuple[float, ...]
    name: str = ""
    amplitude: Amplitude | None = None


def from_config(dirichlet: Sequence[Any], traction: Sequence[Any], mesh: MacroMesh, source: str = "case",
                flux: Sequence[Any] = (), amplitudes: Mapping[str, Amplitude] | None = None
                ) -> tuple[list[Dirichlet], list[Traction]]:
    """The boundary conditions of configured ``[[macro.dirichlet]]`` / ``[[macro.traction]]``
    / ``[[macro.flux]]`` entries (:class:`fe2.io.config.DirichletConfig`,
    :class:`fe2.io.config.TractionConfig`, :class:`fe2.io.config.FluxConfig`) on ``mesh``:
    heat fluxes become one-value :class:`Traction` entries. A boundary that the mesh does not
    have raises :class:`~fe2.core.errors.MeshError` naming ``source``, a component or a
    traction vector that does not fit the mesh's dimension
    :class:`~fe2.core.errors.ConfigError` (collective). ``amplitudes``: the
    :func:`amplitude_tables` by name (validated: every name an entry uses is there)."""
    def amp(entry: Any) -> Amplitude | None:
        return None if getattr(entry, "amplitude", None) is None else amplitudes[entry.amplitude]

    gdim = mesh.mesh.geometry.dim
    names = list(AXES)[:gdim]
    bcs = []
    for i, d in enumerate(dirichlet):
        component = AXES[d.component] if isinstance(d.component, str) else d.component
        if component is not None and component >= gdim:
            raise ConfigError(f"{source}: key 'macro.dirichlet[{i}].component' must be one of "
                              f"{', '.join(repr(n) for n in names)} (or 0 to {gdim - 1}) for a {gdim}D macro mesh, "
                              f"got {d.component!r}")
        bcs.append(Dirichlet(mesh.boundary_tag(d.boundary, source), component, d.value, str(d.boundary), amp(d)))
    loads = []
    for i, t in enumerate(traction):
        if len(t.value) != gdim:
            raise ConfigError(f"{source}: key 'macro.traction[{i}].value' must have {gdim} components "
                              f"({', '.join(names)}) for a {gdim}D macro mesh, got {list(t.value)!r}")
        loads.append(Traction(mesh.boundary_tag(t.boundary, source), t.value, str(t.boundary), amp(t)))
    for f in flux:
        loads.append(Traction(mesh.boundary_tag(f.boundary, source), (f.value,), str(f.boundary), amp(f)))
    return bcs, loads
