"""What every other part of fe2 builds on.

- :mod:`~fe2.core.errors`: exceptions shown to users without traceback; collective errors
- :mod:`~fe2.core.stopping`: clean stops of a run (signals, wall-clock limit), agreed by all ranks
- :mod:`~fe2.core.compat`: the few dolfinx names that differ between 0.9 and 0.10+
- :mod:`~fe2.core.linalg`: PETSc options and prefixes (the one place), direct solvers
- :mod:`~fe2.core.tensors`: Voigt/Mandel notation, isotropic tensors, closed-form bounds
- :mod:`~fe2.core.kinematics`: gradient measures (small strain, deformation gradient, scalar)
- :mod:`~fe2.core.physics`: the registry of physics
- :mod:`~fe2.core.quadrature`: the quadrature points of owned cells (point volumes, averages)
- :mod:`~fe2.core.meshing`: gmsh sessions
- :mod:`~fe2.core.paths`: where fe2 may write (checked before any work)
- :mod:`~fe2.core.environment`: what an installation provides (``fe2 info``); reproducible mesh
  partitions
"""

#: the public surface is the modules named above
__all__: list[str] = []
