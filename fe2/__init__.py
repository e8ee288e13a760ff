"""fe2: two-scale (FE²) computational homogenization on FEniCSx.

Subpackages, one concept each (see README.md, "Layout"):

- :mod:`fe2.core`       errors, dolfinx compatibility, PETSc options, tensors, kinematics,
  the physics registry, quadrature points, gmsh sessions
- :mod:`fe2.materials`  the law and point-material interfaces, the state bank, the law
  registry, the laws, one-law and phase-wise point materials
- :mod:`fe2.geometry`   RVE geometry: periodic mesh generators, reading RVE meshes, periodicity
- :mod:`fe2.micro`      the cell problems: micro boundary conditions, the condensed fluctuation
  space, the linear and the nonlinear cell problem, the description of the micro problem,
  the micro Newton's rules and the micro engines (``micro/engines/``)
- :mod:`fe2.parallel`   load balancing, rank groups (``ranks_per_rve``), the
  partition-independent state layout
- :mod:`fe2.studies`    studies on the cell problems: the RVE size study
- :mod:`fe2.macro`      macro meshes, loads, formulations (local, gradient), the macro problem
- :mod:`fe2.solvers`    the Newton driver, path following (one class per control)
- :mod:`fe2.io`         configuration, the factory, the results folder, example cases
- :mod:`fe2.twoscale`   an FE² run: set-up, path following, results
- :mod:`fe2.cli`        the ``fe2`` command line
"""

from fe2.core.environment import kernel_cache, reproducible_partitions

__version__ = "0.1.0"
reproducible_partitions()  # the same mesh partition in every run (see the function)
kernel_cache()  # the compiled kernels' cache, before dolfinx imports numba (see the function)
__all__ = ["__version__"]
