"""The parallel layer of the micro side: how RVE evaluations use the MPI ranks.

- :mod:`~fe2.parallel.balance`: dynamic load balancing; any micro engine's evaluations
  move between ranks by measured cost, their history stays home
- :mod:`~fe2.parallel.groups`: RVEs on sub-communicators (``[parallel] ranks_per_rve``):
  the rank groups and the macro material of a rank whose RVE is distributed over a group
- :mod:`~fe2.parallel.layout`: the partition-independent layout of an RVE's per-point
  state (checkpoints readable on any number of ranks and groups)

A new balancing scheme is a new ``assign`` rule in ``balance.py``; it serves every engine
through the engine contract (:mod:`fe2.micro.engines`).
"""

#: the public surface is the modules named above
__all__: list[str] = []
