"""What an installation provides (``fe2 info``): the versions of fe2 and of the stack it runs
on, the MPI library, and the direct solvers PETSc offers, so that a user can see what a
container or a cluster module gives before a run needs it.

:func:`reproducible_partitions` (called when :mod:`fe2` is imported) makes the graph
partitioner give the same mesh partition in every run.

Nothing here is collective: :func:`report` looks at this process only (the factorisers are
tried on ``PETSc.COMM_SELF``), with the size of the communicator passed in.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["FACTORISERS", "PACKAGES", "PARTITIONER_THREADS", "factorisers", "kernel_cache", "missing", "report",
           "reproducible_partitions", "text"]

#: Python packages: name -> what fe2 needs it for (``None``: required)
PACKAGES: dict[str, str | None] = {
    "dolfinx": None, "basix": None, "ufl": None, "ffcx": None, "dolfinx_mpc": None, "petsc4py": None,
    "mpi4py": None, "numpy": None, "scipy": None, "gmsh": None, "meshio": None,
    "h5py": "reading fields.xdmf with meshio", "matplotlib": "fe2 plot, fe2 rve-study's plot",
}
#: PETSc's direct solver packages fe2 may use, and the factorisations tried for each
FACTORISERS: dict[str, tuple[str, ...]] = {
    "mumps": ("lu", "cholesky"), "cholmod": ("cholesky",), "umfpack": ("lu",), "klu": ("lu",),
    "superlu": ("lu",), "superlu_dist": ("lu",), "mkl_pardiso": ("lu", "cholesky"), "strumpack": ("lu",),
    "petsc": ("lu", "cholesky"),
}
#: what the default solver options use (:mod:`fe2.core.linalg`): MUMPS for the macro problem
#: and distributed cells, CHOLMOD for a cell on one process
REQUIRED_FACTORISERS = ("mumps", "cholmod")
#: the environment variable of the number of threads of (PT-)SCOTCH, dolfinx's graph partitioner
PARTITIONER_THREADS = "SCOTCH_PTHREAD_NUMBER"


def reproducible_partitions() -> None:
    """Let (PT-)SCOTCH partition meshes with one thread, unless ``SCOTCH_PTHREAD_NUMBER`` is
    set already. With several threads SCOTCH 7 returns a different partition of the same
    mesh from one call to the next; a different partition sums the same contributions in a
    different order, so two runs of a case on the same ranks differed in the last digits
    (and the groups of ``[parallel] ranks_per_rve`` could partition their RVEs differently,
    which turns load balancing between them off). SCOTCH reads the variable when it
    partitions (setting it after importing dolfinx works), so this must run before the first
    mesh is made: importing :mod:`fe2` does it."""
    os.environ.setdefault(PARTITIONER_THREADS, "1")


def _private(folder: Path) -> bool:
    """Make ``folder`` (mode 0700) and tell whether it is this user's alone: owned by them,
    writable, not writable by group or others (numba's cache index is a pickle: a folder
    another user can write would let them run code in fe2)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022 and os.access(folder, os.W_OK)


def kernel_cache() -> str | None:
    """Point numba's on-disk cache of the compiled kernels (:mod:`fe2.kernels`) at
    ``$FE2_KERNEL_CACHE``, else ``~/.cache/fe2/numba``; where that cannot be written (a
    read-only home on a cluster) or is not the user's alone, a new private temporary
    folder. Left alone when ``$NUMBA_CACHE_DIR`` is set or the kernels are off
    (``FE2_KERNELS=numpy``). Numba reads the variable once, when it is first imported, and
    dolfinx imports it: so importing :mod:`fe2` calls this first (numba's cache would be the
    source tree's ``__pycache__`` otherwise, shared by everyone who can write there).
    Returns the folder (None: left alone)."""
    if "NUMBA_CACHE_DIR" in os.environ or os.environ.get("FE2_KERNELS", "compiled") == "numpy":
        return None
    base = os.environ.get("FE2_KERNEL_CACHE")
    if not base:
        home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(home) / "fe2" / "numba")
    if not _private(Path(base)):
        base = tempfile.mkdtemp(prefix="fe2-numba-")
    os.environ["NUMBA_CACHE_DIR"] = base
    return base


def _version(name: str) -> str | None:
    """The version of package ``name``, ``"present"`` without one, None if it cannot be imported."""
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - absent or broken: either way not usable
        return None
    version = getattr(module, "__version__", None)
    if not version:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "present"
    return str(version)


def factorisers() -> dict[str, list[str]]:
    """The factorisations (``lu``, ``cholesky``) each of :data:`FACTORISERS` performs here, tried
    on a small matrix; a package PETSc was built without is absent."""
    from fe2.core.errors import ConfigError
    from fe2.core.linalg import DIRECT_LU, check_options

    out = {}
    for name, kinds in FACTORISERS.items():
        works = []
        for kind in kinds:
            try:
                check_options({"pc_type": kind, "pc_factor_mat_solver_type": name}, DIRECT_LU, name)
            except ConfigError:
                continue
            works.append(kind)
        if works:
            out[name] = works
    return out


def report(size: int = 1) -> dict[str, Any]:
    """Versions and capabilities as a JSON-able dict (``size``: the ranks of the run)."""
    import numpy as np
    from mpi4py import MPI
    from petsc4py import PETSc

    from fe2 import __version__

    packages = {name: _version(name) for name in PACKAGES}
    dolfinx_features = {}
    if packages["dolfinx"]:
        import dolfinx.common

        dolfinx_features = {k[4:]: bool(getattr(dolfinx.common, k)) for k in dir(dolfinx.common)
                            if k.startswith("has_") and isinstance(getattr(dolfinx.common, k), bool)}
    major, minor, patch = PETSc.Sys.getVersion()
    return {
        "fe2": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
        "dolfinx_features": dolfinx_features,
        "petsc": {"version": f"{major}.{minor}.{patch}", "scalar": np.dtype(PETSc.ScalarType).name,
                  "index": np.dtype(PETSc.IntType).name, "factorisers": factorisers()},
        "mpi": {"library": MPI.Get_library_version().replace("\0", "").strip().splitlines()[0].strip(),
                "standard": "{}.{}".format(*MPI.Get_version()), "ranks": size},
        "partitioner_threads": os.environ.get(PARTITIONER_THREADS),
    }


def missing(info: dict[str, Any]) -> list[str]:
    """What fe2 needs and ``info`` lacks (an empty list: everything is there)."""
    out = [name for name, why in PACKAGES.items() if why is None and not info["packages"][name]]
    have = info["petsc"]["factorisers"]
    return out + [f"PETSc with {name}" for name in REQUIRED_FACTORISERS if name not in have]


def text(info: dict[str, Any]) -> str:
    """The report as lines for a terminal."""
    lines = [f"fe2 {info['fe2']} (Python {info['python']}, {info['platform']})"]
    p = info["petsc"]
    lines.append(f"PETSc {p['version']} ({p['scalar']} scalars, {p['index']} indices); direct solvers: "
                 + (", ".join(f"{k} ({'/'.join(v)})" for k, v in p["factorisers"].items()) or "none"))
    m = info["mpi"]
    lines.append(f"MPI {m['standard']}: {m['library']}; {m['ranks']} rank{'s' if m['ranks'] != 1 else ''}")
    width = max(map(len, PACKAGES))
    for name, why in PACKAGES.items():
        v = info["packages"][name]
        state = v if v else ("MISSING (required)" if why is None else "not installed")
        lines.append(f"  {name:{width}s}  {state}" + (f"  [{why}]" if why and not v else ""))
    if info["dolfinx_features"]:
        lines.append("dolfinx built with: " + ", ".join(k for k, v in info["dolfinx_features"].items() if v))
    threads = info.get("partitioner_threads")
    lines.append(f"mesh partitions: {PARTITIONER_THREADS}={threads} " + (
        "(the same in every run)" if threads == "1" else "(may change from run to run: results differ in the "
                                                         "last digits; unset it or set 1)"))
    gone = missing(info)
    lines.append("everything fe2 needs is here" if not gone else "MISSING: " + ", ".join(gone))
    return "\n".join(lines)
