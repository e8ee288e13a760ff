"""Studies built on the cell problems, each a module with its report builders.

- :mod:`~fe2.studies.rve_size`: the RVE size study (``fe2 rve-study``): apparent tensors
  of random cells over realizations and sizes, statistics, variance decay, bracketing,
  representative size, the printed table and the plot
"""

#: the public surface is the modules named above
__all__: list[str] = []
