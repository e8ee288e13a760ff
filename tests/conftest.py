"""Shared fixtures. The suite runs serially and under ``mpirun -n 2``; each test's
MPI-aware parts use the communicators they are given, and after every test a
collective garbage collection + barrier keeps PETSc objects from being destroyed out of
step across ranks (the dolfinx test-suite habit)."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]

if MPI.COMM_WORLD.size > 1:
    # mpirun gives each rank a pseudo-terminal; plain text keeps both ranks' logs readable
    os.environ.setdefault("PY_COLORS", "0")


def serial_env(**extra: str) -> dict[str, str]:
    """This process's environment without the MPI launcher's variables, so that a child
    process started from a test (itself possibly under mpirun) runs as a plain serial job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _collective_cleanup():
    yield
    gc.collect()
    MPI.COMM_WORLD.barrier()


def structured_rve(gdim: int, n: int, tag_of=None, comm=MPI.COMM_SELF):
    """A unit-cell RVE on a structured mesh (periodic by construction), tags from
    ``tag_of(midpoints) -> int array`` (default: all 1)."""
    from dolfinx import mesh as dmesh

    if gdim == 2:
        m = dmesh.create_unit_square(comm, n, n, diagonal=dmesh.DiagonalType.crossed)
    else:
        m = dmesh.create_unit_cube(comm, n, n, n)
    tdim = m.topology.dim
    nc = m.topology.index_map(tdim).size_local
    cells = np.arange(nc, dtype=np.int32)
    mid = dmesh.compute_midpoints(m, tdim, cells)
    vals = np.ones(nc, dtype=np.int32) if tag_of is None else np.asarray(tag_of(mid), dtype=np.int32)
    tags = dmesh.meshtags(m, tdim, cells, vals)
    return SimpleNamespace(mesh=m, cell_tags=tags, box_min=np.zeros(gdim), box_max=np.ones(gdim),
                           path=f"structured {gdim}D n={n}")


@pytest.fixture
def rank_tmp(tmp_path):
    """A temporary folder private to this rank."""
    return tmp_path
