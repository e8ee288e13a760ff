"""``fe2 info``: the versions it reports are the imported packages' own, PETSc's direct solvers
are the ones that factorise (MUMPS and CHOLMOD, which the runtime has; CHOLMOD only as
Cholesky), anything required and missing is named with exit status 1, and under MPI rank 0
prints once with the rank count."""

import copy
import importlib.metadata
import json

import dolfinx
from mpi4py import MPI
from petsc4py import PETSc

from fe2 import __version__
from fe2.cli import main
from fe2.core import environment


def run_info(capsys, *argv):
    code = main(["info", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json_reports_the_stack(capsys):
    code, out, _ = run_info(capsys, "--json")
    assert code == 0
    if MPI.COMM_WORLD.rank != 0:
        assert out == ""  # printed once
        return
    info = json.loads(out)
    assert info["fe2"] == __version__
    assert info["packages"]["dolfinx"] == dolfinx.__version__
    assert info["packages"]["dolfinx_mpc"] == importlib.metadata.version("dolfinx_mpc")
    assert info["petsc"]["version"] == "{}.{}.{}".format(*PETSc.Sys.getVersion())
    assert info["mpi"]["ranks"] == MPI.COMM_WORLD.size
    assert info["mpi"]["library"] and "\0" not in info["mpi"]["library"]
    f = info["petsc"]["factorisers"]
    assert f["mumps"] == ["lu", "cholesky"] and f["cholmod"] == ["cholesky"]
    assert set(f) <= set(environment.FACTORISERS)
    assert environment.missing(info) == []
    assert info["partitioner_threads"] == "1"  # set by importing fe2


def test_info_says_whether_mesh_partitions_are_reproducible():
    info = environment.report()
    assert "\nmesh partitions: SCOTCH_PTHREAD_NUMBER=1 (the same in every run)\n" in environment.text(info)
    info["partitioner_threads"] = "4"  # a user's setting
    assert "SCOTCH_PTHREAD_NUMBER=4 (may change from run to run" in environment.text(info)


def test_missing_parts_are_named(capsys, monkeypatch):
    info = environment.report()
    lacking = copy.deepcopy(info)
    lacking["packages"]["dolfinx_mpc"] = None
    lacking["packages"]["matplotlib"] = None  # optional
    del lacking["petsc"]["factorisers"]["cholmod"]
    assert environment.missing(lacking) == ["dolfinx_mpc", "PETSc with cholmod"]
    text = environment.text(lacking)
    assert "  dolfinx_mpc  MISSING (required)\n" in text and "  matplotlib   not installed  [fe2 plot" in text
    assert text.endswith("MISSING: dolfinx_mpc, PETSc with cholmod")
    monkeypatch.setattr(environment, "report", lambda size=1: lacking)
    code, out, _ = run_info(capsys)
    assert code == 1
    if MPI.COMM_WORLD.rank == 0:
        assert out.strip().endswith("MISSING: dolfinx_mpc, PETSc with cholmod")


def test_a_factoriser_petsc_lacks_is_not_offered(monkeypatch):
    monkeypatch.setattr(environment, "FACTORISERS", {"nonsense": ("lu",), "mumps": ("lu",), "cholmod": ("lu",)})
    assert environment.factorisers() == {"mumps": ["lu"]}  # CHOLMOD factorises only as Cholesky
