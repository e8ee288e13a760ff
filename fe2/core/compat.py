"""The few dolfinx names that differ between 0.9 (the target) and 0.10+.

Everything else in fe2 uses the dolfinx 0.9 API directly; only what changed lives here.
"""

from __future__ import annotations

import dolfinx

from fe2.core.meshing import gmsh_session

__all__ = ["DOLFINX_VERSION", "model_to_mesh", "read_from_msh"]

DOLFINX_VERSION = tuple(int(p) for p in dolfinx.__version__.split(".")[:2])

if DOLFINX_VERSION >= (0, 10):  # pragma: no cover - not the target version
    from dolfinx.io import gmsh as gmshio  # type: ignore[attr-defined]
else:
    from dolfinx.io import gmshio  # noqa: F401


def model_to_mesh(model, comm, rank: int, gdim: int):
    """``(mesh, cell_tags, facet_tags)`` from a gmsh model (collective on ``comm``)."""
    out = gmshio.model_to_mesh(model, comm, rank, gdim=gdim)
    if DOLFINX_VERSION >= (0, 10):  # pragma: no cover - returns a MeshData there
        return out.mesh, out.cell_tags, out.facet_tags
    return out


def read_from_msh(filename: str, comm, rank: int = 0, gdim: int = 3):
    """``(mesh, cell_tags, facet_tags)`` from a gmsh ``.msh`` file (collective), read on
    ``rank`` in a silent gmsh session (dolfinx's own reader lets gmsh print its progress,
    also under ``fe2 run -q``)."""
    if comm.rank != rank:
        return model_to_mesh(None, comm, rank, gdim=gdim)
    with gmsh_session("read") as gmsh:
        gmsh.merge(str(filename))
        return model_to_mesh(gmsh.model, comm, rank, gdim=gdim)
