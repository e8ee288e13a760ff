"""RVE geometry: periodic cell meshes and their checks.

- :mod:`~fe2.geometry.generators`: gmsh generators of periodic RVE meshes with tagged
  phases (circle and sphere inclusions, random inclusions, laminates), behind one registry
  (``GENERATORS``, :func:`~fe2.geometry.generators.generate`)
- :mod:`~fe2.geometry.rvemesh`: reading an RVE mesh (gmsh), its phase tags and volumes,
  and the check that it is periodic (matching nodes on opposite faces)

A new generator is one function and one registry entry in ``generators.py``.
"""

#: the public surface is the modules named above
__all__: list[str] = []
