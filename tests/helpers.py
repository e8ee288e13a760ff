"""Helpers shared by test modules (plain functions; fixtures live in conftest.py).

Test modules import from here, never from one another. ``tests/`` is on ``sys.path``
through ``[tool.pytest.ini_options] pythonpath`` in pyproject.toml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]


def serial_env(**extra: str) -> dict[str, str]:
    """This process's environment without the MPI launcher's variables, so that a child
    process started from a test (itself possibly under mpirun) runs as a plain serial job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    env.update(extra)
    return env


def structured_rve(gdim: int, n: int, tag_of=None, comm=MPI.COMM_SELF, box_min=None, box_max=None):
    """An RVE on a structured ``n^gdim`` mesh of the box ``[box_min, box_max]`` (default the
    unit cell; periodic by construction), tags from ``tag_of(midpoints) -> int array``
    (default: all 1)."""
    from dolfinx import mesh as dmesh

    lo = np.zeros(gdim) if box_min is None else np.asarray(box_min, dtype=float)
    hi = np.ones(gdim) if box_max is None else np.asarray(box_max, dtype=float)
    if gdim == 2:
        m = dmesh.create_rectangle(comm, [lo, hi], [n, n], diagonal=dmesh.DiagonalType.crossed)
    else:
        m = dmesh.create_box(comm, [lo, hi], [n, n, n])
    tdim = m.topology.dim
    nc = m.topology.index_map(tdim).size_local + m.topology.index_map(tdim).num_ghosts  # ghosts tagged too
    cells = np.arange(nc, dtype=np.int32)
    mid = dmesh.compute_midpoints(m, tdim, cells)
    vals = np.ones(nc, dtype=np.int32) if tag_of is None else np.asarray(tag_of(mid), dtype=np.int32)
    tags = dmesh.meshtags(m, tdim, cells, vals)
    return SimpleNamespace(mesh=m, cell_tags=tags, box_min=lo, box_max=hi,
                           path=f"structured {gdim}D n={n} box {lo.tolist()}..{hi.tolist()}")


def inclusion_rve(gdim: int, n: int):
    """A structured unit cell with a centred square (cube) inclusion of half the edge, tag 2."""
    return structured_rve(gdim, n, lambda m: np.where(np.all(np.abs(m[:, :gdim] - 0.5) < 0.25, axis=1), 2, 1))


#: a J2 matrix law with isotropic, saturation and kinematic hardening (case-table form)
J2_TABLE = {"law": "j2", "E": 1.0, "nu": 0.3, "sigma_y": 0.01, "H_iso": 0.2, "Q": 0.005, "b": 50.0, "H_kin": 0.1}


def plastic_plate_case(title: str, checkpoint_every: int = 1) -> dict:
    """A small FE² case table (a few seconds): a quarter plate with a hole, pulled on the
    right past yield in 4 steps; a circular elastic inclusion in a J2 matrix."""
    return {
        "title": title,
        "macro": {"degree": 1, "mesh": {"generator": "plate_with_hole", "h": 0.3, "h_hole": 0.15, "radius": 0.3},
                  "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0},
                                {"boundary": "right", "component": "x", "value": 0.03}]},
        "loading": {"steps": 4},
        "rve": {"rtol": 1e-12, "generate": {"kind": "circle", "radius": 0.3, "h": 0.25},
                "phases": {"matrix": dict(J2_TABLE, tag=1),
                           "inclusion": {"law": "elastic", "tag": 2, "E": 10.0, "nu": 0.2}}},
        "solver": {"rtol": 1e-10, "atol": 1e-14, "max_iterations": 12},
        "output": {"format": "xdmf", "checkpoint_every": checkpoint_every},
    }


def run_case(data: dict, comm=MPI.COMM_WORLD, tmp=None, restart: bool = False):
    """Parse a case table and run it (collective on ``comm``; ``restart``: from the newest
    checkpoint in ``tmp``); the :class:`fe2.twoscale.RunResult`."""
    from fe2 import twoscale
    from fe2.io import config

    cfg = config.parse_case(json.loads(json.dumps(data)), "test-case")
    out = comm.bcast(str(tmp), root=0) if comm.size > 1 else str(tmp)
    return twoscale.run(cfg, comm, output=out, verbose=False, restart=restart)


def serial_and_parallel(data: dict, tmp):
    """Run a case on every rank alone and on all ranks together (under ``mpirun -n 2``);
    assert that every rank owns macro points in the parallel run. Returns both results."""
    world = MPI.COMM_WORLD
    base = world.bcast(str(tmp), root=0)
    serial = run_case(data, MPI.COMM_SELF, tmp=f"{base}/s{world.rank}")
    parallel = run_case(data, world, tmp=f"{base}/p")
    assert world.allreduce(parallel.problem.num_owned_points, op=MPI.MIN) > 0  # every rank owns macro points
    return serial, parallel


def gathered_field(u, comm):
    """All owned DOF values of ``u`` with their coordinates, sorted by coordinates."""
    V = u.function_space
    bs = V.dofmap.index_map_bs
    n = V.dofmap.index_map.size_local
    x = V.tabulate_dof_coordinates()[:n]
    vals = u.x.array[: n * bs].reshape(n, bs)
    xs = np.concatenate(comm.allgather(np.round(x, 12)))
    vs = np.concatenate(comm.allgather(vals))
    order = np.lexsort(xs.T[::-1])
    return xs[order], vs[order]


def rve_fd_tangent(rve, E, h):
    """Central differences of the homogenized stress of an RVE, all from the committed state."""
    n = E.size
    C = np.zeros((n, n))
    for k in range(n):
        d = np.zeros(n)
        d[k] = h
        sp, _ = rve.evaluate((E + d)[None])
        sm, _ = rve.evaluate((E - d)[None])
        C[:, k] = (sp[0] - sm[0]) / (2 * h)
    return C


def rel(A, B):
    """Relative difference in the Frobenius norm."""
    return np.linalg.norm(A - B) / np.linalg.norm(B)


def relmax(a, b):
    """Relative difference in the max norm."""
    return np.abs(a - b).max() / np.abs(b).max()


#: the fields of a mechanical results file, in the order written
FIELDS = ["displacement", "strain", "stress", "von_mises_stress", "equivalent_strain"]


def xdmf_stamps(path) -> list[tuple[float, list[str]]]:
    """``(time, attribute names)`` of every time stamp of a results ``fields.xdmf``; asserts
    fe2's layout: one temporal collection, named ``fields``."""
    import xml.etree.ElementTree as ET

    (series,) = ET.parse(path).getroot().findall(".//Grid[@GridType='Collection']")
    assert series.get("Name") == "fields"
    return [(float(g.find("Time").get("Value")), [a.get("Name") for a in g.findall("Attribute")])
            for g in series.findall("Grid")]


#: the script of :func:`spawn`: run a case, killing itself after a checkpoint if asked
SPAWNED_RUN = """
import json, os, signal, sys
from mpi4py import MPI
from fe2 import twoscale
from fe2.io import checkpoint, config
case, out, kill_after, restart = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
write = checkpoint.write
def write_then_die(*args, **kwargs):
    folder = write(*args, **kwargs)
    if kill_after and args[4]["k"] >= kill_after and MPI.COMM_WORLD.rank == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return folder
checkpoint.write = write_then_die
with open(case) as fh:
    cfg = config.parse_case(json.load(fh), case)
twoscale.run(cfg, MPI.COMM_WORLD, output=out, verbose=False, restart=restart)
"""


def spawn(case: dict, out: Path, ranks: int = 1, kill_after: int = 0, restart: bool = False):
    """Run ``case`` into ``out`` in a new process (``mpirun -n ranks``); killed with SIGKILL
    after the checkpoint of step ``kill_after`` (0: never). The finished process."""
    path = out.parent / f"{out.name}.json"
    path.write_text(json.dumps(case))
    env = serial_env(PYTHONPATH=str(ROOT), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [sys.executable, "-c", SPAWNED_RUN, str(path), str(out), str(kill_after), "1" if restart else "0"]
    if ranks > 1:  # (more ranks than cores: oversubscribed, as a test may ask)
        cmd = ["mpirun", "-n", str(ranks), *(["--oversubscribe"] if ranks > (os.cpu_count() or 1) else []), *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=out.parent)
    if kill_after:
        assert p.returncode != 0, p.stderr
        assert "Traceback" not in p.stderr, p.stderr
    else:
        assert p.returncode == 0, p.stderr
    return p


def quadratic_constants(residuals):
    """``e_{k+1} / e_k^2`` of the relative residuals ``e`` after the first update, where
    round-off does not yet dominate: bounded for quadratic convergence (for linear
    convergence at rate ``c`` it is ``c / e_k``, which grows without bound)."""
    e = np.asarray(residuals) / residuals[0]
    return [e[k + 1] / e[k] ** 2 for k in range(1, len(e) - 1) if e[k + 1] > 1e-13]


#: the thermal cases' inclusion conductivity and matrix laws
K_INCLUSION = 10.0
NONLINEAR_CONDUCTION = {"law": "nonlinear_conduction", "k": 1.0, "grad_ref": 0.5}
LINEAR_CONDUCTION = {"law": "conduction", "k": 1.0}
PLATE = {"generator": "plate_with_hole", "h": 0.3, "h_hole": 0.15, "radius": 0.3}


def thermal_case(matrix, mesh=PLATE, dirichlet=({"boundary": "hole", "value": 0.0},),
                 flux=({"boundary": "top", "value": 2.0},), source=1.0, material="rve", steps=2, degree=2,
                 rve_generate=None, output="none"):
    macro = {"degree": degree, "material": material, "mesh": dict(mesh), "dirichlet": list(dirichlet),
             "flux": list(flux)}
    if source is not None:
        macro["source"] = source
    """A thermal FE² case on a plate with a hole (or ``mesh``) with a ``matrix`` law around
    a conducting inclusion; a fresh copy, which tests edit."""
    return json.loads(json.dumps({  # a deep copy: tests edit it
        "title": "thermal test", "macro": macro, "loading": {"steps": steps},
        "rve": {"physics": "conduction", "rtol": 1e-12,
                "generate": rve_generate or {"kind": "circle", "radius": 0.3, "h": 0.2},
                "phases": {"matrix": dict(matrix, tag=1), "inclusion": {"law": "conduction", "tag": 2,
                                                                         "k": K_INCLUSION}}},
        "solver": {"rtol": 1e-11, "atol": 1e-14, "max_iterations": 12},
        "output": {"format": output},
    }))


def case_toml(table: dict, prefix: str = "") -> str:
    """A case table as TOML text (the subset the case helpers use), for runs through the command line."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines, tables = [], []
    for k, v in table.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {value(v)}")
    out = "\n".join(lines) + "\n"
    for k, v in tables:
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out += f"\n[{name}]\n" + case_toml(v, name + ".")
        else:
            for item in v:
                out += f"\n[[{name}]]\n" + case_toml(item, name + ".")
    return out
