"""fe2: two-scale (FE²) computational homogenization on FEniCSx.

Modules, one concept each:

- :mod:`fe2.errors`    exception types whose messages are shown to users without traceback
- :mod:`fe2.compat`    the few dolfinx names that differ between 0.9 and 0.10+
- :mod:`fe2.petsc`     the one helper that owns PETSc options and prefixes
- :mod:`fe2.tensors`   Voigt/Mandel notation, isotropic tensors, closed-form bounds
- :mod:`fe2.meshgen`   gmsh generators of periodic RVE meshes
- :mod:`fe2.rvemesh`   loading RVE meshes and checking that they are periodic
- :mod:`fe2.rve`       periodic cell problems (conduction, small-strain elasticity)
- :mod:`fe2.macro`     the macro problem: quadrature-space stress/tangent, Newton
- :mod:`fe2.twoscale`  FE² coupling: RVE responses at the macro quadrature points
- :mod:`fe2.config`    TOML configuration parsed once into frozen dataclasses
- :mod:`fe2.cli`       the ``fe2`` command line
"""

__version__ = "0.1.0"
