"""Fixtures. The suite runs serially and under ``mpirun -n 2``; each test's MPI-aware
parts use the communicators they are given, and after every test a collective garbage
collection + barrier keeps PETSc objects from being destroyed out of step across ranks
(the dolfinx test-suite habit). Shared plain helpers are in ``helpers.py``."""

from __future__ import annotations

import gc
import os

import pytest
from mpi4py import MPI

if MPI.COMM_WORLD.size > 1:
    # mpirun gives each rank a pseudo-terminal; plain text keeps both ranks' logs readable
    os.environ.setdefault("PY_COLORS", "0")


def pytest_collection_finish(session):
    """Everything alive once the test modules are imported (modules, their constants, the
    collected tests) lives to the end: frozen, the garbage collection after each test does
    not walk it again (a full collection of it took about 40 ms, after every test)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _collective_cleanup():
    yield
    gc.collect()
    MPI.COMM_WORLD.barrier()
