"""The registry of constitutive laws: one entry per ``law = "..."`` of a phase.

Configuration validation (which parameters a law needs and accepts, which physics it
fits), the generated configuration reference and the factory that builds the law all
read :data:`LAWS`; adding a law means adding one :class:`LawSpec` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fe2.core.tensors import PLANE_STRAIN, transversely_isotropic_stiffness
from fe2.materials.base import Law
from fe2.materials.conduction import LinearConduction, NonlinearConduction
from fe2.materials.damage import IsotropicDamage
from fe2.materials.elastic import LinearElastic
from fe2.materials.hyperelasticity import NeoHooke
from fe2.materials.plasticity import J2Plasticity

__all__ = ["DEFAULT_LAW", "LAWS", "LawSpec", "build"]


@dataclass(frozen=True)
class LawSpec:
    """One law of the registry.

    Attributes
    ----------
    name : the configuration value (``[rve.phases.<name>] law``)
    doc : one phrase for the configuration reference
    required, optional : the phase parameters (``PhaseConfig`` fields) it needs and accepts
    kinematics : ``small``, ``finite`` or ``scalar`` (the physics it fits, :mod:`fe2.core.physics`)
    driven : it has a nonlocal (driven) form and dissipates by damage: gradient
        regularization and dissipation control need such a law
    make : ``(parameters given, gdim) -> law``; ``parameters`` holds only the keys given
    """

    name: str
    doc: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    kinematics: str
    make: Callable[[Mapping[str, Any], int], Law]
    driven: bool = False


def _transversely_isotropic(p: Mapping[str, Any], gdim: int) -> Law:
    axis = p.get("axis", (1.0, 0.0, 0.0)[:gdim] + (0.0,) * (3 - gdim))
    constants = (p["E_L"], p["E_T"], p["nu_LT"], p["nu_TT"], p["G_LT"])
    C = transversely_isotropic_stiffness(*constants, axis=tuple(axis), gdim=gdim)
    if gdim == 3:
        return LinearElastic(C)
    C3 = transversely_isotropic_stiffness(*constants, axis=(*axis, 0.0)[:3], gdim=3)
    return LinearElastic(C, out_of_plane=C3[2, PLANE_STRAIN])


def _j2(p: Mapping[str, Any], gdim: int) -> Law:
    return J2Plasticity(p["E"], p["nu"], p["sigma_y"], gdim, H_iso=p.get("H_iso", 0.0), Q=p.get("Q", 0.0),
                        b=p.get("b", 0.0), H_kin=p.get("H_kin", 0.0))


def _damage(p: Mapping[str, Any], gdim: int) -> Law:
    opt = {k: p[k] for k in ("softening", "kappa_u", "alpha", "beta", "equivalent_strain", "viscosity",
                             "max_damage") if k in p}
    if "compression_ratio" in p:
        opt["k"] = p["compression_ratio"]
    if opt.get("softening") == "linear" and "kappa_u" not in p:
        raise ValueError("kappa_u is required for softening = 'linear'")
    return IsotropicDamage(p["E"], p["nu"], p["kappa0"], gdim, **opt)


#: name -> :class:`LawSpec`, in the order of the configuration reference
LAWS: dict[str, LawSpec] = {s.name: s for s in (
    LawSpec("elastic", "isotropic", ("E", "nu"), (), "small",
            lambda p, gdim: LinearElastic.isotropic(p["E"], p["nu"], gdim)),
    LawSpec("j2", "small-strain J2 plasticity", ("E", "nu", "sigma_y"), ("H_iso", "Q", "b", "H_kin"), "small", _j2),
    LawSpec("neo_hooke", "finite strain", ("E", "nu"), (), "finite",
            lambda p, gdim: NeoHooke(p["E"], p["nu"], gdim)),
    LawSpec("transversely_isotropic", "linear, fibres", ("E_L", "E_T", "nu_LT", "nu_TT", "G_LT"), ("axis",),
            "small", _transversely_isotropic),
    LawSpec("damage", "isotropic damage with strain softening", ("E", "nu", "kappa0"),
            ("softening", "kappa_u", "alpha", "beta", "equivalent_strain", "compression_ratio", "viscosity",
             "max_damage"), "small", _damage, driven=True),
    LawSpec("conduction", "Fourier heat conduction, heat flux -k grad T", ("k",), (), "scalar",
            lambda p, gdim: LinearConduction.isotropic(p["k"], gdim)),
    LawSpec("nonlinear_conduction", "conductivity k (1 + |grad T|^2 / grad_ref^2), growing with the temperature "
            "gradient", ("k", "grad_ref"), (), "scalar",
            lambda p, gdim: NonlinearConduction(p["k"], p["grad_ref"], gdim)),
)}

#: the law of a phase that names none, by kinematics (finite strain has no default: ``elastic``
#: is refused there, with the list of its laws)
DEFAULT_LAW = {"small": "elastic", "finite": "elastic", "scalar": "conduction"}


def build(name: str, parameters: Mapping[str, Any], gdim: int) -> Law:
    """The law ``name`` with the given parameters (``None`` values count as not given).
    Raises ValueError for an unknown law or a bad value (the message names it)."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r} (laws: {', '.join(LAWS)})")
    return LAWS[name].make({k: v for k, v in parameters.items() if v is not None}, gdim)
