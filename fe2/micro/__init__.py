"""The micro side of FE²: RVE meshes and the cell problems solved on them.

- :mod:`~fe2.geometry.generators`: gmsh generators of periodic RVE meshes with tagged phases
- :mod:`~fe2.geometry.rvemesh`: loading RVE meshes and checking that they are periodic
- :mod:`~fe2.micro.boundary`: micro boundary conditions (periodic, corners pinned)
- :mod:`~fe2.micro.cell`: the linear cell problem (effective tensor, batched evaluation)
- :mod:`~fe2.micro.nonlinear`: the nonlinear cell problem, an RVE with history at every
  macro point (micro Newton, consistent tangent by sensitivities)
- :mod:`~fe2.studies.rve_size`: RVE size statistics of random cells (SVE -> RVE): apparent
  tensors over realizations and sizes, variance decay, bracketing, representative size
"""

#: the public surface is the modules named above
__all__: list[str] = []
