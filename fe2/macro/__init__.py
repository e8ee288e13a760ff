"""The macro side of FE²: the part's mesh, its loads and the macro problem.

- :mod:`~fe2.macro.mesh`: macro meshes with named boundaries (generators, gmsh files)
- :mod:`~fe2.macro.loads`: Dirichlet and traction conditions scaled by the load factor
- :mod:`~fe2.macro.formulations`: local and implicit-gradient formulations
- :mod:`~fe2.macro.problem`: macro equilibrium with the material at the quadrature points
- :mod:`~fe2.macro.supports`: checks of the supports (conflicting values, free rigid-body motions)
- :mod:`~fe2.macro.observables`: what a run reports (reactions, boundary means, integrals, cell averages)
- :mod:`~fe2.macro.pattern`: the load pattern that dissipation-based path following reads
"""

#: the public surface is the modules named above
__all__: list[str] = []
