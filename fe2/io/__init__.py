"""Input and output: case files, building objects from them, the results folder.

- :mod:`~fe2.io.config`: TOML configuration parsed into frozen dataclasses and validated
- :mod:`~fe2.io.factory`: configuration -> RVE templates, laws, macro meshes
- :mod:`~fe2.io.results`: the results folder (fields, history, summary)
- ``fe2/io/cases/``: the embedded example cases (``fe2 run --example NAME``)
"""

#: the public surface is the modules named above
__all__: list[str] = []
