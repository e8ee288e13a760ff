"""Validation of a whole file: the checks that relate several keys, and reading case and RVE files.

:func:`parse_case` and :func:`parse_rve` bind a table to the schema
(:mod:`~fe2.io.config.binding`, which checks each value on its own), then check what
depends on more than one key: a phase's parameters against its law, loads against the
physics, amplitudes, load factors, snapshots, regularization and path-following control.
:func:`load_case` and :func:`load_rve` read the file first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fe2.core.errors import ConfigError
from fe2.core.physics import PHYSICS
from fe2.io.config.binding import Context, build, convert, read_toml
from fe2.io.config.schema import (
    GENERATOR_KEYS,
    SNAPSHOT_STEPS,
    CaseConfig,
    LoadingConfig,
    MacroConfig,
    PhaseConfig,
    RVEConfig,
    RVEFile,
    SnapshotConfig,
)
from fe2.materials.registry import DEFAULT_LAW, LAWS
from fe2.solvers.pathfollowing import CONTROLS, load_factors

__all__ = ["load_case", "load_rve", "parse_case", "parse_rve"]


def _validate_rve(rve: RVEConfig, ctx: Context) -> RVEConfig:
    """Check an ``[rve]`` table; return it with every phase's law named (the physics' default
    where a phase names none)."""
    if (rve.mesh is None) == (rve.generate is None):
        ctx.fail("rve", "needs exactly one of 'mesh' (a .msh file) or 'generate' (a generator table)")
    if not rve.phases:
        ctx.fail("rve.phases", "needs at least one phase, e.g. [rve.phases.matrix] with tag, E, nu")
    physics = PHYSICS[rve.physics]
    phases = {}
    for name, ph in rve.phases.items():
        key = f"rve.phases.{name}"
        ph = dataclasses.replace(ph, law=ph.law or DEFAULT_LAW[physics.kinematics])
        spec = LAWS[ph.law]
        if spec.kinematics != physics.kinematics:
            needs = " or ".join(repr(p.name) for p in PHYSICS.values() if p.kinematics == spec.kinematics)
            laws = ", ".join(repr(n) for n, s in LAWS.items() if s.kinematics == physics.kinematics)
            ctx.fail(f"{key}.law", f"'{ph.law}' needs physics = {needs}; with physics = '{rve.physics}' the laws "
                                   f"are {laws}")
        for attr in spec.required:
            if getattr(ph, attr) is None:
                ctx.fail(f"{key}.{attr}", f"is required for law = '{ph.law}'")
        used = set(spec.required) | set(spec.optional) | {"tag", "law"}
        for f in dataclasses.fields(PhaseConfig):
            if f.name not in used and getattr(ph, f.name) is not None:
                ctx.fail(f"{key}.{f.name}", f"is not a parameter of law = '{ph.law}' "
                                            f"(parameters: {', '.join(spec.required + spec.optional)})")
        phases[name] = ph
    if rve.generate is not None and "kind" not in rve.generate:
        ctx.fail("rve.generate.kind", "is required (circle, random, laminate, sphere)")
    return dataclasses.replace(rve, phases=phases)


def _validate_amplitudes(loading: LoadingConfig, ctx: Context) -> None:
    for name, table in loading.amplitudes.items():
        key = f"loading.amplitudes.{name}"
        if not table:
            ctx.fail(key, "must have at least one [time, value] pair")
        for i, pair in enumerate(table):
            if len(pair) != 2:
                ctx.fail(f"{key}[{i}]", f"must be a [time, value] pair, got {list(pair)!r}")
            if pair[0] < 0:
                ctx.fail(f"{key}[{i}]", f"must have a time >= 0 (pseudo-time starts at 0), got {list(pair)!r}")
            if i and not pair[0] > table[i - 1][0]:
                ctx.fail(f"{key}[{i}]", f"must have a time larger than the pair before it ({table[i - 1][0]!r}), got "
                                        f"{list(pair)!r}")


def _validate_loading(loading: LoadingConfig, ctx: Context) -> None:
    _validate_amplitudes(loading, ctx)
    factors = loading.factors
    if factors is not None:
        if loading.end_time is not None:
            ctx.fail("loading.end_time", "is not used with 'factors' (the last factor ends the run); remove one")
        if not factors:
            ctx.fail("loading.factors", "must not be empty")
        for i, f in enumerate(factors):
            if not f > 0:
                ctx.fail(f"loading.factors[{i}]", f"must be > 0 (the load factors go from 0 up), got {f!r}")
            if i and not f > factors[i - 1]:
                ctx.fail(f"loading.factors[{i}]", f"must be larger than the factor before it ({factors[i - 1]!r}): "
                                                  "the load factors are pseudo-times and increase (to unload or "
                                                  f"cycle, give the loads an amplitude), got {f!r}")
    times = load_factors(loading)
    increments = [b - a for a, b in zip((0.0, *times), times)]
    nominal, what = min(increments), ("the smallest increment of loading.factors and the amplitudes' time points"
                                      if factors is not None or loading.amplitudes else
                                      f"end time / loading.steps = {times[-1]:g}/{loading.steps}")
    if loading.min_step > nominal:
        ctx.fail("loading.min_step", f"must not be larger than the nominal load step ({nominal:g}, {what}), "
                                     f"got {loading.min_step!r}")


def _amplitude_keys(macro: MacroConfig) -> list[tuple[str, str]]:
    """``(key, amplitude name)`` of every macro load that names an amplitude."""
    out = [(f"macro.{kind}[{i}].amplitude", e.amplitude) for kind in ("dirichlet", "traction", "flux")
           for i, e in enumerate(getattr(macro, kind)) if e.amplitude is not None]
    return out + ([("macro.source_amplitude", macro.source_amplitude)] if macro.source_amplitude is not None else [])


def _validate_macro_loads(macro: MacroConfig, mechanical: bool, ctx: Context,
                          amplitudes: dict[str, Any] | None = None) -> None:
    """The macro loads fit the physics: displacement components, tractions (mechanics);
    temperatures, heat fluxes and a heat source (conduction); the amplitudes they name exist."""
    for key, name in _amplitude_keys(macro):
        if name not in (amplitudes or {}):
            known = ", ".join(repr(n) for n in amplitudes or {}) or "none is defined"
            ctx.fail(key, f"names amplitude {name!r}, which [loading.amplitudes] does not define ({known})")
    if macro.source_amplitude is not None and macro.source is None:
        ctx.fail("macro.source_amplitude", "is given without a 'source'")
    for i, d in enumerate(macro.dirichlet):
        if mechanical and d.component is None:
            ctx.fail(f"macro.dirichlet[{i}].component", "is required for a mechanical case ('x', 'y' or 'z')")
        if not mechanical and d.component is not None:
            ctx.fail(f"macro.dirichlet[{i}].component", "is not used with physics = 'conduction' (the value is a "
                                                        "temperature); remove it")
    if mechanical:
        if macro.flux:
            ctx.fail("macro.flux", "is a heat flux, for physics = 'conduction'; a mechanical case has "
                                   "[[macro.traction]]")
        if macro.source is not None:
            ctx.fail("macro.source", "is a heat source, for physics = 'conduction'")
    elif macro.traction:
        ctx.fail("macro.traction", "is mechanical; with physics = 'conduction' give heat fluxes as [[macro.flux]]")


def _validate_snapshots(cfg: CaseConfig, ctx: Context) -> tuple[SnapshotConfig, ...]:
    """Check the ``[[output.rve_snapshots]]`` entries; return them with every name given."""
    out, names = [], {}
    for i, snap in enumerate(cfg.output.rve_snapshots):
        key = f"output.rve_snapshots[{i}]"
        if cfg.macro.material != "rve":
            ctx.fail(key, f"needs macro.material = 'rve' (an RVE at every macro point); it is "
                          f"{cfg.macro.material!r}")
        if (snap.point is None) == (snap.max is None):
            ctx.fail(key, "needs exactly one of 'point' (macro coordinates) or 'max' (an internal variable, e.g. "
                          "'damage')")
        if snap.point is not None and len(snap.point) not in (2, 3):
            ctx.fail(f"{key}.point", f"must be 2 or 3 coordinates, got {list(snap.point)!r}")
        if isinstance(snap.steps, str) and snap.steps not in SNAPSHOT_STEPS:
            ctx.fail(f"{key}.steps", f"must be {' or '.join(map(repr, SNAPSHOT_STEPS))} or a list of step numbers, "
                                     f"got {snap.steps!r}")
        if not isinstance(snap.steps, str) and (not snap.steps or min(snap.steps) < 1):
            ctx.fail(f"{key}.steps", f"must be step numbers >= 1, got {list(snap.steps)!r}")
        name = snap.name or f"rve{i + 1}"
        if name in names:
            ctx.fail(f"{key}.name", f"{name!r} is also the name of output.rve_snapshots[{names[name]}]; give each "
                                    "snapshot its own name")
        names[name] = i
        out.append(dataclasses.replace(snap, name=name))
    return tuple(out)


def _driven_phases(cfg: CaseConfig) -> list[str]:
    """Names of the RVE phases whose law is driven (dissipates by damage)."""
    return [name for name, ph in cfg.rve.phases.items() if LAWS[ph.law].driven]


def parse_case(data: dict, filename: str = "<memory>", base_dir: str = ".") -> CaseConfig:
    """Validate a case table (as read from TOML) into a :class:`CaseConfig`."""
    ctx = Context(filename)
    cfg = build(CaseConfig, data, "", ctx)
    cfg = dataclasses.replace(cfg, rve=_validate_rve(cfg.rve, ctx))
    mm = cfg.macro.mesh
    if (mm.file is None) == (mm.generator is None):
        ctx.fail("macro.mesh", "needs exactly one of 'file' or 'generator'")
    given = set((data.get("macro") or {}).get("mesh") or {}) - {"file", "generator"}
    uses = set(GENERATOR_KEYS.get(mm.generator, ()))
    for key in sorted(given - uses):
        if mm.file is not None:
            ctx.fail(f"macro.mesh.{key}", f"is a generator's key; a mesh file ('file' = '{mm.file}') takes no "
                                          "other key")
        hint = "; for a 3D plate give 'thickness'" if mm.generator == "plate_with_hole" and key == "depth" else ""
        ctx.fail(f"macro.mesh.{key}", f"is not used by generator '{mm.generator}' (its keys: "
                                      f"{', '.join(GENERATOR_KEYS[mm.generator])}){hint}")
    if mm.generator == "plate_with_hole" and not mm.radius < min(mm.width, mm.height):
        ctx.fail("macro.mesh.radius", f"must be smaller than width and height, got {mm.radius}")
    if cfg.macro.material not in ("rve", "homogenized") and cfg.macro.material not in cfg.rve.phases:
        ctx.fail("macro.material", f"must be 'rve', 'homogenized' or an RVE phase name "
                                   f"({', '.join(cfg.rve.phases)}), got {cfg.macro.material!r}")
    if not cfg.macro.dirichlet:
        ctx.fail("macro.dirichlet", "needs at least one [[macro.dirichlet]] entry "
                                    "(the macro problem would be singular)")
    _validate_macro_loads(cfg.macro, PHYSICS[cfg.rve.physics].vector_field, ctx, cfg.loading.amplitudes)
    if cfg.macro.regularization == "gradient":
        if cfg.rve.physics != "elasticity":
            ctx.fail("macro.regularization", "'gradient' needs rve.physics = 'elasticity' (small strain)")
        if not _driven_phases(cfg):
            ctx.fail("macro.regularization", "'gradient' needs an RVE phase with law = 'damage'")
        if cfg.macro.material == "homogenized":
            ctx.fail("macro.material", "'homogenized' is elastic; it cannot be used with regularization = 'gradient'")
        ph = cfg.rve.phases.get(cfg.macro.material)
        if ph is not None and not LAWS[ph.law].driven:
            ctx.fail("macro.material", f"phase '{cfg.macro.material}' has law '{ph.law}'; regularization = "
                                       "'gradient' needs a damage law")
    elif cfg.macro.nonlocal_length is not None:
        ctx.fail("macro.nonlocal_length", "is only used with regularization = 'gradient'")
    _validate_loading(cfg.loading, ctx)
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output,
                                                              rve_snapshots=_validate_snapshots(cfg, ctx)))
    ph = cfg.rve.phases.get(cfg.macro.material)
    if CONTROLS[cfg.loading.control].needs_damage and (
            not _driven_phases(cfg) or cfg.macro.material == "homogenized"
            or (ph is not None and not LAWS[ph.law].driven)):
        ctx.fail("loading.control", f"= '{cfg.loading.control}' needs a material that dissipates by damage "
                                    "(an RVE phase with law = 'damage'); use 'load'")
    if CONTROLS[cfg.loading.control].proportional and _amplitude_keys(cfg.macro):
        ctx.fail("loading.control", f"= '{cfg.loading.control}' needs proportional loads (one load factor), but "
                                    f"'{_amplitude_keys(cfg.macro)[0][0]}' names an amplitude; use 'load'")
    return dataclasses.replace(cfg, source=filename, base_dir=base_dir)


def parse_rve(data: dict, filename: str = "<memory>", base_dir: str = ".") -> RVEFile:
    """Validate the ``[rve]`` table of a file into an :class:`RVEFile`."""
    ctx = Context(filename)
    if "rve" not in data:
        raise ConfigError(f"{filename}: has no [rve] table")
    rve = _validate_rve(convert(RVEConfig, data["rve"], "rve", ctx), ctx)
    return RVEFile(rve=rve, source=filename, base_dir=base_dir)


def load_case(path: str | Path) -> CaseConfig:
    """Read and validate a case file (not collective; every rank may call it)."""
    path = Path(path)
    return parse_case(read_toml(path), str(path), str(path.parent))


def load_rve(path: str | Path) -> RVEFile:
    """Read and validate the ``[rve]`` table of an RVE or case file."""
    path = Path(path)
    return parse_rve(read_toml(path), str(path), str(path.parent))
