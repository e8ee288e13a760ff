"""The configuration schema: every table of a case or RVE file as a frozen dataclass.

Every key is a field with a ``doc`` (rendered by :func:`~fe2.io.config.reference.reference_markdown`
into the configuration reference of README.md) and, where it matters, a ``check`` of its
own value; :mod:`~fe2.io.config.binding` reads them. Checks that relate several keys are in
:mod:`~fe2.io.config.validation`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from fe2.core.physics import BOUNDARY_CONDITIONS, PHYSICS
from fe2.materials.registry import LAWS
from fe2.micro.engines import ENGINES
from fe2.micro.rules import SCHEMES
from fe2.solvers.pathfollowing import CONTROLS

__all__ = ["CaseConfig", "DirichletConfig", "FluxConfig", "LoadingConfig", "MacroConfig", "MacroMeshConfig",
           "OutputConfig", "ParallelConfig", "PhaseConfig", "RVEConfig", "RVEFile", "SNAPSHOT_STEPS", "SnapshotConfig",
           "SolverConfig", "TractionConfig"]


def _f(default: Any = dataclasses.MISSING, doc: str = "", check: Any = None, **kw: Any) -> Any:
    """A key: a dataclass field with its ``doc`` and ``check`` (see :mod:`~fe2.io.config.binding`);
    a list or dict default is copied for every instance."""
    meta = {"doc": doc, "check": check}
    if default is dataclasses.MISSING:
        return field(metadata=meta, **kw)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


# --- checks: return None if fine, else the "must ..." text -----------------------------
def positive(v):
    return None if v > 0 else "must be > 0"


def nonnegative(v):
    return None if v >= 0 else "must be >= 0"


def one_of(*allowed):
    def check(v):
        return None if v in allowed else "must be one of " + ", ".join(repr(a) for a in allowed)
    return check


def int_range(lo, hi):
    def check(v):
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"
    return check


def poisson(v):
    return None if -1.0 < v < 0.5 else "must satisfy -1 < nu < 0.5"


def _choices(registry: dict[str, Any], last: str = ", ") -> str:
    """``name`` (doc) of every entry of a registry, for the configuration reference."""
    items = [f"``{name}`` ({spec.doc})" for name, spec in registry.items()]
    return ", ".join(items[:-1]) + last + items[-1] if len(items) > 1 else items[0]


# --- schema ------------------------------------------------------------------------------


def _amplitude() -> Any:
    """The ``amplitude`` key of a macro load."""
    return _f(None, doc="name of a ``[loading.amplitudes]`` table the value follows in pseudo-time t (default: "
                        "scaled by t itself)")


@dataclass(frozen=True)
class PhaseConfig:
    """``[rve.phases.<name>]``: one material phase of the RVE."""

    tag: int = _f(doc="physical group tag of the phase's cells in the RVE mesh", check=positive)
    law: str | None = _f(None, doc=_choices(LAWS) + "; default ``elastic``, or ``conduction`` with physics = "
                                                    "conduction", check=one_of(*LAWS))
    E: float | None = _f(None, doc="Young's modulus (elastic, j2, neo_hooke, damage)", check=positive)
    nu: float | None = _f(None, doc="Poisson's ratio, -1 < nu < 0.5", check=poisson)
    k: float | None = _f(None, doc="conductivity (conduction; nonlinear_conduction: at zero gradient)", check=positive)
    grad_ref: float | None = _f(None, doc="nonlinear_conduction: temperature-gradient magnitude at which the "
                                          "conductivity has doubled", check=positive)
    sigma_y: float | None = _f(None, doc="j2: initial yield stress", check=positive)
    H_iso: float | None = _f(None, doc="j2: linear isotropic hardening modulus (default 0)", check=nonnegative)
    Q: float | None = _f(None, doc="j2: saturation (Voce) hardening stress R = Q (1 - exp(-b p)) (default 0)",
                         check=nonnegative)
    b: float | None = _f(None, doc="j2: saturation rate (default 0)", check=nonnegative)
    H_kin: float | None = _f(None, doc="j2: linear kinematic (Prager) hardening modulus (default 0)",
                             check=nonnegative)
    E_L: float | None = _f(None, doc="transversely_isotropic: axial Young's modulus", check=positive)
    E_T: float | None = _f(None, doc="transversely_isotropic: transverse Young's modulus", check=positive)
    nu_LT: float | None = _f(None, doc="transversely_isotropic: axial-transverse Poisson's ratio")
    nu_TT: float | None = _f(None, doc="transversely_isotropic: transverse Poisson's ratio", check=poisson)
    G_LT: float | None = _f(None, doc="transversely_isotropic: axial shear modulus", check=positive)
    axis: tuple[float, ...] | None = _f(None, doc="transversely_isotropic: fibre direction (default x)")
    kappa0: float | None = _f(None, doc="damage: equivalent strain at which damage starts", check=positive)
    softening: str | None = _f(None, doc="damage: ``exponential`` (default; Peerlings et al. 1996) or ``linear`` "
                                         "(stress falls linearly to zero at kappa_u)",
                               check=one_of("exponential", "linear"))
    kappa_u: float | None = _f(None, doc="damage, linear softening: equivalent strain at zero stress (> kappa0)",
                               check=positive)
    alpha: float | None = _f(None, doc="damage, exponential softening: 1 - residual stress fraction (default 0.99)",
                             check=lambda v: None if 0 <= v <= 1 else "must be in [0, 1]")
    beta: float | None = _f(None, doc="damage, exponential softening: softening rate (default 100)", check=positive)
    equivalent_strain: str | None = _f(None, doc="damage: ``mises`` (modified von Mises, default) or ``mazars``",
                                       check=one_of("mises", "mazars"))
    compression_ratio: float | None = _f(
        None, doc="damage, modified von Mises: compressive/tensile strength ratio k (default 10)",
        check=lambda v: None if v >= 1 else "must be >= 1")
    viscosity: float | None = _f(None, doc="damage: relaxation time of the viscous regularization in load-factor "
                                           "units (default 0: rate independent)", check=nonnegative)
    max_damage: float | None = _f(None, doc="damage: cap on the damage variable (default 0.99999)",
                                  check=lambda v: None if 0 < v < 1 else "must be in (0, 1)")


@dataclass(frozen=True)
class RVEConfig:
    """``[rve]``: the representative volume element (cell problem)."""

    phases: dict[str, PhaseConfig] = _f(doc="table of phases, ``[rve.phases.<name>]``")
    mesh: str | None = _f(None, doc="gmsh .msh file with physical groups on cells (relative to this file)")
    generate: dict[str, Any] | None = _f(
        None, doc="instead of ``mesh``: generator ``kind`` (circle, random, laminate, sphere) and its "
                  "parameters, as for ``fe2 mesh``")
    physics: str = _f("elasticity", doc=_choices(PHYSICS, " or "), check=one_of(*PHYSICS))
    degree: int = _f(1, doc="Lagrange degree of the fluctuation field", check=int_range(1, 2))
    boundary: str = _f("periodic", doc="micro boundary condition of the fluctuation: ``periodic``, ``linear`` "
                                       "(zero on the cell boundary: the stiffest apparent tensor) or ``minimal`` "
                                       "(zero mean gradient, uniform tractions in the weak sense: the most "
                                       "compliant)", check=one_of(*BOUNDARY_CONDITIONS))
    rtol: float = _f(1e-10, doc="micro Newton tolerance: residual norm relative to the residual the macro "
                                "gradient alone causes", check=positive)
    max_iterations: int = _f(25, doc="micro Newton iterations before a micro solve fails (nested scheme; "
                                     "monolithic: one per macro iterate)", check=positive)
    petsc_options: dict[str, Any] = _f({}, doc="PETSc options of the cell solvers (default by measurement: "
                                               "CHOLMOD Cholesky for symmetric positive definite Jacobians, "
                                               "else PETSc's LU for small and MUMPS for larger ones; the "
                                               "``reference`` engine's per-point solver: MUMPS)")
    engine: str = _f("batched", doc="micro engine of nonlinear RVEs: ``batched`` (all macro points of a rank "
                                    "iterate together, no assembly per point) or ``reference`` (one point at a "
                                    "time with dolfinx assembly: the slow reference path, for diagnosis)",
                     check=one_of(*ENGINES))


#: the keys of ``[macro.mesh]`` each generator uses (a key it does not use is refused, not ignored)
GENERATOR_KEYS = {
    "plate_with_hole": ("width", "height", "thickness", "order", "radius", "h", "h_hole"),
    "rectangle": ("width", "height", "h", "structured", "cells_y"),
    "bar": ("width", "height", "h", "structured", "cells_y", "imperfection", "imperfection_width", "imperfection_at"),
    "box": ("width", "height", "depth", "h", "structured", "cells_y", "cells_z"),
}


@dataclass(frozen=True)
class MacroMeshConfig:
    """``[macro.mesh]``: the macro mesh, a file or a built-in generator."""

    file: str | None = _f(None, doc="gmsh .msh file of the macro domain (facet physical groups as boundaries)")
    generator: str | None = _f(None, doc="built-in generator: ``plate_with_hole`` (quarter plate, symmetry "
                                         "edges left/bottom; 3D with ``thickness``), ``rectangle``, ``bar`` (a "
                                         "rectangle whose height is reduced smoothly at mid-length, so that it "
                                         "localizes there) or ``box`` (3D, e.g. a beam). Boundaries: left/right "
                                         "(x = 0, width), bottom/top (y), back/front (z = 0, depth or thickness), "
                                         "hole", check=one_of("plate_with_hole", "rectangle", "bar", "box"))
    width: float = _f(1.0, doc="generator: domain width (x)", check=positive)
    height: float = _f(1.0, doc="generator: domain height (y)", check=positive)
    depth: float = _f(1.0, doc="box: domain depth (z)", check=positive)
    thickness: float | None = _f(None, doc="plate_with_hole: plate thickness (z); given, the plate is a 3D slab",
                                 check=positive)
    order: int = _f(1, doc="plate_with_hole: geometry order of the cells (2: curved cells that follow the hole)",
                    check=int_range(1, 2))
    radius: float = _f(0.3, doc="plate_with_hole: hole radius", check=positive)
    h: float = _f(0.1, doc="generator: element size", check=positive)
    h_hole: float | None = _f(None, doc="plate_with_hole: element size at the hole (default h/3)", check=positive)
    structured: int | None = _f(None, doc="rectangle, bar, box: ``n`` cells along x of a structured mesh (default "
                                          "width / h)", check=positive)
    cells_y: int | None = _f(None, doc="rectangle, bar, box: cells along y (default: n for rectangle, 1 for bar, "
                                       "about cubic cells for box)", check=positive)
    cells_z: int | None = _f(None, doc="box: cells along z (default: about cubic cells)", check=positive)
    imperfection: float = _f(0.1, doc="bar: relative height reduction at ``imperfection_at``",
                             check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)")
    imperfection_width: float | None = _f(None, doc="bar: length scale w of the reduction "
                                                    "exp(-((x - x_c)/w)^2) (default: height)", check=positive)
    imperfection_at: float = _f(0.5, doc="bar: where the height is reduced, x_c / length (0.5: mid-length; "
                                         "near 0 or 1: a strip notched near one end)",
                                check=lambda v: None if 0 <= v <= 1 else "must be in [0, 1]")


@dataclass(frozen=True)
class DirichletConfig:
    """``[[macro.dirichlet]]``: a prescribed displacement component (or temperature) on a boundary.
    Two entries whose boundaries share nodes (a corner, an edge) must prescribe the same
    value there in every component they both give (or 0 in both)."""

    boundary: str | int = _f(doc="boundary name (generator meshes: left, right, bottom, top, back, front, hole; "
                                 "a gmsh file: its facet physical group names) or facet tag")
    component: str | int | None = _f(None, doc="``x``, ``y``, ``z`` (or 0, 1, 2): the displacement component; "
                                               "required for mechanics, not given for conduction",
                                     check=one_of("x", "y", "z", 0, 1, 2))
    value: float = _f(0.0, doc="displacement (conduction: temperature) at full load (scaled by the load factor t, or "
                               "by its amplitude)")
    amplitude: str | None = _amplitude()


@dataclass(frozen=True)
class TractionConfig:
    """``[[macro.traction]]``: a surface traction on a boundary (mechanics)."""

    boundary: str | int = _f(doc="boundary name or facet tag")
    value: tuple[float, ...] = _f(doc="traction vector at full load (scaled by the load factor t, or by its "
                                      "amplitude)")
    amplitude: str | None = _amplitude()


@dataclass(frozen=True)
class FluxConfig:
    """``[[macro.flux]]``: a heat flux into the body through a boundary (conduction)."""

    boundary: str | int = _f(doc="boundary name or facet tag")
    value: float = _f(doc="heat flux into the body, ``-q.n`` (power per unit area), at full load (scaled by the "
                          "load factor t, or by its amplitude); negative: heat leaves")
    amplitude: str | None = _amplitude()


@dataclass(frozen=True)
class MacroConfig:
    """``[macro]``: the macro problem."""

    mesh: MacroMeshConfig = _f(doc="the macro mesh, see ``[macro.mesh]``")
    degree: int = _f(2, doc="Lagrange degree of the macro displacement (or temperature)", check=int_range(1, 2))
    quadrature_degree: int | None = _f(None, doc="macro quadrature degree (default 2*(degree-1), at least 1; "
                                                 "on curved, second-order cells 2*degree + 2; on quadrilaterals and "
                                                 "hexahedra 2*degree, full integration)",
                                       check=int_range(1, 8))
    dirichlet: tuple[DirichletConfig, ...] = _f((), doc="prescribed displacements (conduction: temperatures), "
                                                        "``[[macro.dirichlet]]``")
    traction: tuple[TractionConfig, ...] = _f((), doc="tractions, ``[[macro.traction]]`` (mechanics)")
    flux: tuple[FluxConfig, ...] = _f((), doc="heat fluxes into the body, ``[[macro.flux]]`` (conduction)")
    source: float | None = _f(None, doc="conduction: heat source per unit volume at full load (scaled by the load "
                                        "factor t, or by ``source_amplitude``)")
    source_amplitude: str | None = _f(None, doc="name of a ``[loading.amplitudes]`` table the source follows")
    material: str = _f("rve", doc="``rve`` (FE²: an RVE solve at every quadrature point), ``homogenized`` "
                                  "(single scale with the RVE's effective tensor: elastic, or the conductivity; "
                                  "linear phases only), or the name of an RVE phase (single scale with that phase's "
                                  "law, for comparisons)")
    regularization: str = _f("none", doc="``none`` (local continuum: with softening the damage band shrinks to "
                                         "one element) or ``gradient`` (implicit gradient enhancement: a nonlocal "
                                         "equivalent strain e solves e - l^2 div grad e = e_loc and drives the "
                                         "damage; needs a ``damage`` phase)",
                             check=one_of("none", "gradient"))
    nonlocal_length: float | None = _f(None, doc="gradient: internal length l in macro length units (default: the "
                                                 "RVE's edge length, the RVE mesh read in macro units)",
                                       check=positive)


@dataclass(frozen=True)
class LoadingConfig:
    """``[loading]``: load steps in pseudo-time ``t``, which runs from 0 to ``end_time``. A load
    without an amplitude is its value times ``t`` (``t`` is its load factor); a load with
    ``amplitude = "name"`` is its value times the piecewise-linear table ``name`` of
    ``[loading.amplitudes]`` at ``t``. The steps end at every time point of the amplitudes, so
    that reversals are reached exactly."""

    steps: int = _f(4, doc="number of equal pseudo-time steps from 0 to ``end_time`` (the amplitudes' time points "
                           "are added)", check=positive)
    end_time: float | None = _f(None, doc="pseudo-time at the end of the run (default: the last time point of the "
                                          "amplitudes, or 1 without amplitudes)", check=positive)
    factors: tuple[float, ...] | None = _f(None, doc="explicit pseudo-times (load factors) of the steps, positive and "
                                                     "increasing; the last one ends the run (overrides ``steps`` and "
                                                     "``end_time``; the amplitudes' time points are added)")
    amplitudes: dict[str, tuple[tuple[float, ...], ...]] = _f(
        {}, doc="amplitude tables by name, ``name = [[t0, a0], [t1, a1], ...]`` (times increasing, >= 0): "
                "piecewise linear in between, constant before the first and after the last point, e.g. "
                "``cycle = [[0, 0], [1, 1], [2, -1], [3, 0]]``. The body is unloaded at t = 0 whatever the tables "
                "say there")
    min_step: float = _f(1e-4, doc="smallest load-factor increment: when a step fails (a micro or macro solve "
                                   "does not converge) it is halved down to this, then the run stops",
                         check=positive)
    growth: float = _f(1.5, doc="after an easy step (Newton iterations <= easy_iterations) the increment grows "
                                "by this factor (>= 1), up to the nominal step",
                       check=lambda v: None if v >= 1 else "must be >= 1")
    easy_iterations: int = _f(4, doc="see ``growth``", check=positive)
    control: str = _f("load", doc=_choices(CONTROLS, " or ") + ". With ``dissipation`` the dissipation increment is "
                                  "halved on failure down to ``min_step`` / nominal step times its first value and "
                                  "grown by ``growth``", check=one_of(*CONTROLS))
    dissipation_onset: float = _f(0.01, doc="dissipation control starts after the first load step that dissipates "
                                            "more than this fraction of its external work; that step's dissipation "
                                            "is the first increment (if load control fails before, the first "
                                            "increment is this fraction of the stored energy; a large value, e.g. "
                                            "1e9, keeps load control until it cannot proceed)", check=positive)
    dissipation_increment: float | None = _f(None, doc="dissipation control: the largest energy dissipated in one step "
                                                       "(default: no limit; the increment starts as said under "
                                                       "``dissipation_onset`` and grows by ``growth`` after easy "
                                                       "steps)",
                                             check=positive)


@dataclass(frozen=True)
class SolverConfig:
    """``[solver]``: macro Newton."""

    rtol: float = _f(1e-10, doc="Newton stops when the residual norm falls below rtol x the first one (and, "
                                "under the monolithic scheme, every RVE's micro residual is within its "
                                "tolerance)", check=positive)
    atol: float = _f(1e-12, doc="... or below atol", check=positive)
    max_iterations: int = _f(20, doc="Newton iterations per load step before the step fails", check=positive)
    petsc_options: dict[str, Any] = _f({}, doc="PETSc options of the macro linear solver (default: MUMPS LU)")
    scheme: str = _f("monolithic", doc="how the RVEs' Newton iterations are coupled to the macro Newton (FE² "
                                       "with nonlinear RVEs): ``monolithic`` (one micro Newton step per macro "
                                       "iterate, the micro residual condensed into the macro one: one "
                                       "factorisation per RVE and iterate) or ``nested`` (every macro iterate "
                                       "solves each RVE to convergence: the classical scheme, the reference). "
                                       "The converged results are the same. RVEs with a damage (softening) phase "
                                       "are always nested", check=one_of(*SCHEMES))


#: the names of the steps of an ``[[output.rve_snapshots]]`` entry besides a list of numbers
SNAPSHOT_STEPS = ("last", "all")


@dataclass(frozen=True)
class SnapshotConfig:
    """``[[output.rve_snapshots]]``: the micro fields of the RVE at one macro quadrature point
    (fluctuation, micro displacement, strain, stress, internal variables), written as
    ``rve_snapshots/<name>_<step>.xdmf`` in the results folder. The point is the one nearest
    ``point``, or the one where the internal variable ``max`` is largest at the step written."""

    name: str | None = _f(None, doc="file name of the snapshot: letters, digits, ``-`` and ``_`` (default ``rve1``, "
                                    "``rve2``, ... in the order of the entries)",
                          check=lambda v: None if re.fullmatch(r"[A-Za-z0-9_-]+", v) else
                          "must be letters, digits, '-' and '_' only")
    point: tuple[float, ...] | None = _f(None, doc="macro coordinates (x, y[, z]): the RVE of the macro quadrature "
                                                   "point nearest to them")
    max: str | None = _f(None, doc="instead of ``point``: the RVE of the macro point where this internal variable "
                                   "of the RVE (its volume average: ``damage``, ``dissipation``, "
                                   "``equivalent_plastic_strain``) is largest, chosen anew at every step written")
    steps: str | tuple[int, ...] = _f("last", doc="``last`` (the last converged step: its file replaces the "
                                                  "previous step's), ``all``, or a list of step numbers")


@dataclass(frozen=True)
class OutputConfig:
    """``[output]``: results."""

    directory: str = _f("results", doc="results folder (relative to the working directory)",
                        check=lambda v: None if v.strip() else "must not be empty (a folder path, relative to the "
                                                               "working directory)")
    format: str = _f("xdmf", doc="field output: ``xdmf`` or ``none``", check=one_of("xdmf", "none"))
    checkpoint_every: int = _f(1, doc="write a checkpoint (``checkpoint/`` in the results folder: macro fields, "
                                      "path-following state and every RVE's committed state) every this many "
                                      "converged steps and after the last one, so that ``fe2 run --restart`` can "
                                      "go on from it, on any number of ranks; 0: none. A run stopped by a signal or "
                                      "``--max-wall`` writes one of its last converged step whatever this says",
                                  check=nonnegative)
    rve_snapshots: tuple[SnapshotConfig, ...] = _f((), doc="RVE snapshots, ``[[output.rve_snapshots]]`` "
                                                             "(FE² only)")


@dataclass(frozen=True)
class ParallelConfig:
    """``[parallel]``: how the MPI ranks share the work."""

    balance: bool = _f(True, doc="move RVE evaluations between ranks so that every rank gets a similar measured "
                                 "micro cost (the rank owning a plastic or damaged zone would otherwise do most "
                                 "of the work); results are the same either way. Any micro engine; no effect on "
                                 "one rank. With ``ranks_per_rve`` > 1, between the groups")
    ranks_per_rve: int = _f(1, check=positive,
                            doc="MPI ranks that solve each RVE together: the ranks are split into groups of this "
                                "many consecutive ranks (it must divide the rank count), each group solves the "
                                "RVEs of its ranks' macro points with the RVE mesh distributed over the group "
                                "(MUMPS, either micro engine; with ``balance``, evaluations move between groups); "
                                "the macro problem stays on all ranks. For RVEs too big for one core; small RVEs "
                                "are faster as groups of 1 (see the README)")


@dataclass(frozen=True)
class CaseConfig:
    """A two-scale case (``fe2 run``)."""

    macro: MacroConfig = _f(doc="``[macro]``")
    rve: RVEConfig = _f(doc="``[rve]``")
    title: str = _f("fe2 case", doc="a name shown in the log and the results")
    loading: LoadingConfig = _f(LoadingConfig(), doc="``[loading]``")
    solver: SolverConfig = _f(SolverConfig(), doc="``[solver]``")
    output: OutputConfig = _f(OutputConfig(), doc="``[output]``")
    parallel: ParallelConfig = _f(ParallelConfig(), doc="``[parallel]``")
    source: str = field(default="<memory>", metadata={"internal": True})
    base_dir: str = field(default=".", metadata={"internal": True})


@dataclass(frozen=True)
class RVEFile:
    """An RVE file (``fe2 homogenize``): only ``[rve]`` is read, other tables are ignored."""

    rve: RVEConfig
    source: str = "<memory>"
    base_dir: str = "."
