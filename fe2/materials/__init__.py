"""Constitutive laws and the materials the macro problem evaluates at its points.

- :mod:`~fe2.materials.base`: the :class:`Law` and :class:`PointMaterial` interfaces,
  their declared capabilities and named results
- :mod:`~fe2.materials.state`: the :class:`StateBank` of trial/committed history
- :mod:`~fe2.materials.registry`: the registry of laws (``law = "..."``)
- laws: :mod:`~fe2.materials.elastic`, :mod:`~fe2.materials.plasticity`,
  :mod:`~fe2.materials.hyperelasticity`, :mod:`~fe2.materials.damage`,
  :mod:`~fe2.materials.conduction`
- point materials: :mod:`~fe2.materials.points` (one law),
  :mod:`~fe2.materials.phasewise` (one law per cell tag)
"""

from fe2.materials.base import DrivenResult, Law, LawResult, NonlocalResponse, PointMaterial
from fe2.materials.conduction import LinearConduction, NonlinearConduction
from fe2.materials.damage import IsotropicDamage
from fe2.materials.elastic import LinearElastic
from fe2.materials.hyperelasticity import NeoHooke
from fe2.materials.phasewise import PhaseMaterial
from fe2.materials.plasticity import J2Plasticity
from fe2.materials.points import LinearMaterial, MaterialPoints
from fe2.materials.state import StateBank

__all__ = ["DrivenResult", "IsotropicDamage", "J2Plasticity", "Law", "LawResult", "LinearConduction", "LinearElastic",
           "LinearMaterial", "MaterialPoints", "NeoHooke", "NonlinearConduction", "NonlocalResponse", "PhaseMaterial",
           "PointMaterial", "StateBank"]
