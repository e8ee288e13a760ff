"""Nonlinear solution: one Newton driver, and path following along the load.

- :mod:`~fe2.solvers.newton`: the Newton driver every nonlinear system uses
- :mod:`~fe2.solvers.pathfollowing`: load stepping, load control and dissipation-based
  arc length, one class per control
"""

#: the public surface is the modules named above
__all__: list[str] = []
