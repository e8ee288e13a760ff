"""The micro side of FE²: the cell problems on an RVE and the engines that solve them.

- :mod:`~fe2.micro.boundary`: micro boundary conditions (linear, periodic with the corners
  pinned, minimal through a Lagrange-multiplier border)
- :mod:`~fe2.micro.space`: the fluctuation space under its boundary condition: assembly
  through the condensation, solves, dot products (used by the cells and the engines)
- :mod:`~fe2.micro.phases`: the phases of an RVE (cells of a tag and their material)
- :mod:`~fe2.micro.cell`: the linear cell problem (effective tensor, batched evaluation),
  also the elastic template of a nonlinear cell
- :mod:`~fe2.micro.nonlinear`: the nonlinear cell problem, an RVE with history at every
  macro point: the state bank, answers reused, the engine and the balancer it uses
- :mod:`~fe2.micro.problem`: the immutable description of a nonlinear cell's micro
  problem, what a micro engine gets
- :mod:`~fe2.micro.rules`: the micro Newton's rules (tolerances, round-off floor, line
  search, failures), shared by every engine
- :mod:`~fe2.micro.operators`: the precomputed operators of the micro points (gradients,
  residuals, Jacobian values without assembly)
- :mod:`~fe2.micro.engines`: the micro engines behind one contract (``batched``,
  ``reference``)

RVE meshes are made and read in :mod:`fe2.geometry`; load balancing, rank groups and the
partition-independent state layout are :mod:`fe2.parallel`; the RVE size study is
:mod:`fe2.studies.rve_size`.
"""

#: the public surface is the modules named above
__all__: list[str] = []
