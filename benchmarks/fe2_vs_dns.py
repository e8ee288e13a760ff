"""FE² against direct numerical simulation (DNS) of an elastoplastic composite strip.

Specimen: the square ``[0, L] x [0, L]`` (plane strain) made of ``n x n`` periodic cells
of a J2 matrix with stiff elastic circular inclusions (radius ``0.3`` of the cell), clamped
on the left edge (``u = 0``) and sheared by the right edge (``u_x = 0``, ``u_y = delta``),
top and bottom free. The clamped ends make the macro field far from homogeneous
(shear plus bending, plastic zones at the corners spreading inwards).

- **FE²** (:func:`fe2.twoscale.run`): the plain square as macro mesh (``macro_n x macro_n``
  crossed triangles, P2), a nonlinear RVE (:func:`fe2.geometry.generators.circle_inclusion`, radius
  0.3, element size ``h``) at every macro quadrature point. It does not depend on ``n``
  (the RVE is scale-free), so it runs once per coupling scheme (``--schemes``: the
  monolithic scheme, fe2's default, and the nested one, the reference; the first listed
  is the one compared with the DNS).
- **DNS** for ``n = 4, 8, 16, 24, 32`` (scale ratio ``eps = 1/n``): gmsh meshes the whole
  specimen with all ``n^2`` inclusions, element size ``h L / n`` (the RVE's relative
  resolution), and :class:`fe2.macro.problem.MacroProblem` solves it with a
  :class:`fe2.materials.phasewise.PhaseMaterial` (J2 in matrix cells, elastic in inclusion
  cells), same Lagrange degree as the RVE, same load factors, once per linear solver
  (``--dns-solvers``: MacroProblem's default MUMPS LU, and Cholesky, CHOLMOD on one rank,
  MUMPS on several: the DNS Jacobian is symmetric positive definite).

Compared: the reaction on the loaded edge at every load step, and the displacement at
the cell centres (the inclusion centres, where the periodic fluctuation of a centrally
symmetric cell vanishes), both against FE²; the forces of the two schemes and of the DNS
solvers against each other; and the cost, FE² wall time over DNS wall time per ``n`` and
DNS solver, with the ``n`` where they cross (interpolated in log-log).

Runs serially or under MPI (both FE² and the DNS are distributed over the ranks)::

    bash docker/fe2-env mpirun -n 2 python3 benchmarks/fe2_vs_dns.py           # full, ~30 min
    bash docker/fe2-env python3 benchmarks/fe2_vs_dns.py --quick                # n = 2, 4, coarse

Results go to ``benchmarks/results/fe2_vs_dns.json`` (rewritten after every ``n``); see
``benchmarks/README.md`` for the fields.
"""

from __future__ import annotations

import machine  # first: pins BLAS/OpenMP threads to one per rank

import datetime  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

HERE = Path(__file__).resolve().parent

DEFAULT_OUTPUT = HERE / "results" / "fe2_vs_dns.json"

#: phases of the composite (fe2 case-file syntax)
PHASES = {
    "matrix": {"tag": 1, "law": "j2", "E": 1.0, "nu": 0.3, "sigma_y": 0.01, "H_iso": 0.1},
    "inclusion": {"tag": 2, "law": "elastic", "E": 10.0, "nu": 0.2},
}
RADIUS = 0.3  # inclusion radius / cell size

FULL = {"ns": [4, 8, 16, 24, 32], "h": 0.1, "degree": 2, "macro_n": 16, "steps": 6}
QUICK = {"ns": [2, 4], "h": 0.25, "degree": 1, "macro_n": 4, "steps": 3}

#: FE² coupling schemes (``[solver] scheme``); the first given is compared with the DNS
SCHEMES = ("monolithic", "nested")
#: linear solvers of the DNS Newton systems (:func:`dns_solver_options`)
DNS_SOLVERS = ("lu", "cholesky")


# --------------------------------------------------------------------------------------
# bookkeeping
# --------------------------------------------------------------------------------------
def machine_info(comm: MPI.Comm) -> dict:
    return {**machine.machine_info(), "mpi_ranks": comm.size}


class Log:
    def __init__(self, comm: MPI.Comm, verbose: bool):
        self.comm, self.verbose = comm, verbose

    def __call__(self, msg: str) -> None:
        if self.comm.rank == 0:
            print(msg, flush=True)

    def detail(self, msg: str) -> None:
        if self.verbose:
            self(msg)


# --------------------------------------------------------------------------------------
# the case
# --------------------------------------------------------------------------------------
def boundary_conditions(load: str, delta: float) -> list[dict]:
    """Clamped left edge; the right edge sheared (u_x = 0, u_y = delta) or pulled
    (u_x = delta, u_y = 0)."""
    right = (0.0, delta) if load == "shear" else (delta, 0.0)
    return [{"boundary": "left", "component": "x", "value": 0.0},
            {"boundary": "left", "component": "y", "value": 0.0},
            {"boundary": "right", "component": "x", "value": right[0]},
            {"boundary": "right", "component": "y", "value": right[1]}]


def phases_of(args) -> dict:
    """The phases; ``--elastic`` keeps the matrix elastic (a diagnostic: no plasticity)."""
    if not args.elastic:
        return PHASES
    m = PHASES["matrix"]
    return {**PHASES, "matrix": {"tag": m["tag"], "law": "elastic", "E": m["E"], "nu": m["nu"]}}


def case_dict(args, h: float, degree: int, macro_n: int, steps: int, scheme: str = SCHEMES[0]) -> dict:
    return {
        "title": f"FE2 vs DNS: {args.load} of a clamped square",
        "macro": {"mesh": {"generator": "rectangle", "width": args.length, "height": args.length,
                           "structured": macro_n},
                  "degree": 2, "material": "rve",
                  "dirichlet": boundary_conditions(args.load, args.delta)},
        "rve": {"generate": {"kind": "circle", "radius": RADIUS, "h": h}, "degree": degree,
                "phases": phases_of(args)},
        "loading": {"steps": steps},
        "solver": {"rtol": args.rtol, "atol": 1e-14, "scheme": scheme},
        "output": {"format": "none"},
    }


def reaction_key(load: str) -> str:
    return "reaction_right_y" if load == "shear" else "reaction_right_x"


def dns_solver_options(name: str, ranks: int) -> dict | None:
    """PETSc options of the DNS linear solver ``name`` for :class:`~fe2.macro.problem.MacroProblem`
    (None: its default, :data:`fe2.core.linalg.DIRECT_LU`, MUMPS LU). ``cholesky``: the
    fastest symmetric factoriser fe2 has for the symmetric positive definite DNS Jacobian,
    CHOLMOD on one rank (serial only), MUMPS Cholesky on several."""
    if name == "lu":
        return None
    if name == "cholesky":
        return {"ksp_type": "preonly", "pc_type": "cholesky",
                "pc_factor_mat_solver_type": "cholmod" if ranks == 1 else "mumps"}
    raise ValueError(f"unknown DNS solver {name!r}; known: {', '.join(DNS_SOLVERS)}")


def relative_difference(F: np.ndarray, F_ref: np.ndarray) -> float:
    """max over steps of |F - F_ref| / max |F_ref|."""
    return float(np.abs(np.asarray(F) - np.asarray(F_ref)).max() / np.abs(np.asarray(F_ref)).max())


def crossover(ns, ratios) -> dict:
    """Where FE² and the DNS cost the same: the ``n`` with FE²/DNS = 1, linear in
    ``log(ratio)`` against ``log(n)`` between the first two measured ``n`` (ascending)
    whose ratios bracket 1. Not bracketed: ``n`` is None and ``side`` says where it lies,
    ``"above"`` the largest measured ``n`` (FE² slower at every ``n``) or ``"below"`` the
    smallest (FE² faster at every ``n``)."""
    pairs = sorted(zip(ns, ratios))
    out = {"n": None, "eps": None, "bracket": None, "side": None, "crossings": 0}
    if not pairs:
        return out
    for (n0, r0), (n1, r1) in zip(pairs, pairs[1:]):
        l0, l1 = np.log(r0), np.log(r1)
        if l0 * l1 <= 0.0 and l0 != l1:
            out["crossings"] += 1
            if out["bracket"] is None:
                n = float(np.exp(np.log(n0) + l0 / (l0 - l1) * (np.log(n1) - np.log(n0))))
                out.update(n=n, eps=1.0 / n, bracket=[n0, n1])
    if out["bracket"] is None:
        rs = [r for _, r in pairs]
        out["side"] = "above" if min(rs) > 1.0 else "below" if max(rs) < 1.0 else None
    return out


# --------------------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------------------
def dns_mesh(comm: MPI.Comm, L: float, n: int, h: float):
    """The specimen with all n^2 inclusions (gmsh OCC on rank 0, distributed): cell tags
    matrix = 1 / inclusion = 2, facet tags left/bottom/right/top = 1/2/3/4."""
    from fe2.core.compat import model_to_mesh
    from fe2.core.meshing import gmsh_session
    from fe2.macro.mesh import BOUNDARY_TAGS, MacroMesh
    from fe2.geometry.generators import INCLUSION_TAG, MATRIX_TAG

    a = L / n
    options = {"Mesh.MeshSizeMax": h * a, "Mesh.MeshSizeFromPoints": 0.0}
    with gmsh_session("dns", options=options) as gmsh:
        if comm.rank == 0:
            occ = gmsh.model.occ
            box = occ.addRectangle(0.0, 0.0, 0.0, L, L)
            disks = [(2, occ.addDisk((i + 0.5) * a, (j + 0.5) * a, 0.0, RADIUS * a, RADIUS * a))
                     for j in range(n) for i in range(n)]
            _, children = occ.fragment([(2, box)], disks)
            occ.synchronize()
            inclusion = sorted({t for ch in children[1:] for d, t in ch if d == 2})
            matrix = sorted({t for _, t in gmsh.model.getEntities(2)} - set(inclusion))
            gmsh.model.addPhysicalGroup(2, matrix, MATRIX_TAG, name="matrix")
            gmsh.model.addPhysicalGroup(2, inclusion, INCLUSION_TAG, name="inclusion")
            tol = 1e-6 * L
            sides = {"left": lambda b: b[3] < tol, "bottom": lambda b: b[4] < tol,
                     "right": lambda b: b[0] > L - tol, "top": lambda b: b[1] > L - tol}
            for name, on in sides.items():
                curves = [c for _, c in gmsh.model.getEntities(1) if on(gmsh.model.getBoundingBox(1, c))]
                gmsh.model.addPhysicalGroup(1, curves, BOUNDARY_TAGS[name], name=name)
            gmsh.model.mesh.generate(2)
        mesh, cell_tags, facet_tags = model_to_mesh(gmsh.model, comm, 0, gdim=2)
    boundaries = {k: v for k, v in BOUNDARY_TAGS.items() if k != "hole"}
    return MacroMesh(mesh, facet_tags, boundaries, f"DNS {n} x {n} cells, h = {h} cell"), cell_tags


def drive(problem, targets, rtol: float, log: Log, min_step: float = 1e-4, max_iterations: int = 20,
          growth: float = 1.5, easy: int = 4) -> list[dict]:
    """Load steps to the ``targets`` with the cut-back rule of :func:`fe2.twoscale.run`
    (:func:`fe2.solvers.pathfollowing.follow` under load control)."""
    from fe2.io import config
    from fe2.macro.observables import Observables
    from fe2.solvers import pathfollowing

    observables = Observables(problem)
    loading = config.LoadingConfig(factors=tuple(targets), min_step=min_step, growth=growth, easy_iterations=easy)
    solver = config.SolverConfig(rtol=rtol, atol=1e-14, max_iterations=max_iterations)
    rows = []
    for step in pathfollowing.follow(problem, loading, solver):
        row = {"load_factor": step.load_factor, "newton_iterations": step.report.iterations,
               "time_step_s": step.wall, **observables.reactions()}
        rows.append(row)
        log.detail(f"    DNS load {step.load_factor:.4g}: {step.report.iterations} Newton iterations, "
                   f"{row['time_step_s']:.1f} s")
    return rows


# --------------------------------------------------------------------------------------
# point evaluation
# --------------------------------------------------------------------------------------
def eval_at_points(u, points: np.ndarray) -> np.ndarray:
    """Values of ``u`` at ``points`` ``(P, 2)``, the same on every rank (collective).

    Each rank evaluates the points inside its owned cells; a point on a partition
    boundary is found by several ranks and averaged (the field is continuous there)."""
    from dolfinx import geometry

    mesh = u.function_space.mesh
    comm = mesh.comm
    tdim = mesh.topology.dim
    nown = mesh.topology.index_map(tdim).size_local
    tree = geometry.bb_tree(mesh, tdim, np.arange(nown, dtype=np.int32))
    p3 = np.zeros((points.shape[0], 3))
    p3[:, : points.shape[1]] = points
    colliding = geometry.compute_colliding_cells(mesh, geometry.compute_collisions_points(tree, p3), p3)
    bs = u.function_space.dofmap.index_map_bs
    vals = np.zeros((points.shape[0], bs))
    found = np.zeros(points.shape[0])
    idx, cells = [], []
    for i in range(points.shape[0]):
        links = colliding.links(i)
        links = links[links < nown]
        if links.size:
            idx.append(i)
            cells.append(links[0])
    if idx:
        vals[idx] = u.eval(p3[idx], np.asarray(cells, dtype=np.int32))
        found[idx] = 1.0
    vals = comm.allreduce(vals, op=MPI.SUM)
    found = comm.allreduce(found, op=MPI.SUM)
    if np.any(found == 0):
        raise RuntimeError(f"{int(np.sum(found == 0))} sample points are outside the mesh")
    return vals / found[:, None]


def cell_centres(L: float, n: int) -> np.ndarray:
    c = (np.arange(n) + 0.5) * L / n
    X, Y = np.meshgrid(c, c, indexing="ij")
    return np.column_stack([X.ravel(), Y.ravel()])


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = machine.parser(__doc__, DEFAULT_OUTPUT, "n = 2, 4 on coarse meshes (smoke test)")
    ap.add_argument("--ns", type=int, nargs="+", help="cells per side of the DNS specimens")
    ap.add_argument("--h", type=float, help="element size relative to the cell (RVE and DNS)")
    ap.add_argument("--degree", type=int, choices=(1, 2), help="Lagrange degree of the RVE and the DNS")
    ap.add_argument("--macro-n", type=int, help="FE2 macro mesh: macro_n x macro_n crossed triangles, P2")
    ap.add_argument("--macro-check", type=int,
                    help="also run FE2 on a macro_check x macro_check mesh to show how much the FE2 answer "
                         "still depends on the macro mesh (0: skip; default macro_n / 2)")
    ap.add_argument("--steps", type=int, help="equal load steps")
    ap.add_argument("--load", choices=("shear", "tension"), default="shear", help="right-edge loading")
    ap.add_argument("--delta", type=float, default=0.03, help="right-edge displacement at full load (/ L)")
    ap.add_argument("--length", type=float, default=1.0, help="specimen side L")
    ap.add_argument("--rtol", type=float, default=1e-8, help="macro / DNS Newton tolerance")
    ap.add_argument("--elastic", action="store_true", help="diagnostic: elastic matrix (no plasticity)")
    ap.add_argument("--schemes", nargs="+", choices=SCHEMES, default=list(SCHEMES),
                    help="FE2 coupling schemes, each run once; the first is compared with the DNS and runs the "
                         "macro check (default: %(default)s)")
    ap.add_argument("--dns-solvers", nargs="+", choices=DNS_SOLVERS, default=list(DNS_SOLVERS),
                    help="linear solvers of the DNS, each a DNS of its own per n; the first gives the accuracy "
                         "table (default: %(default)s)")
    ap.add_argument("--verbose", action="store_true", help="log every load step")
    args = ap.parse_args(argv)
    for name in ("schemes", "dns_solvers"):
        if len(set(getattr(args, name))) != len(getattr(args, name)):
            ap.error(f"--{name.replace('_', '-')}: each at most once")
    schemes, solvers = args.schemes, args.dns_solvers
    preset = QUICK if args.quick else FULL
    ns = args.ns or preset["ns"]
    h = args.h or preset["h"]
    degree = args.degree or preset["degree"]
    macro_n = args.macro_n or preset["macro_n"]
    steps = args.steps or preset["steps"]
    macro_check = macro_n // 2 if args.macro_check is None else args.macro_check
    args.delta *= args.length

    from fe2 import twoscale
    from fe2.core import linalg
    from fe2.io import config, factory
    from fe2.macro import loads
    from fe2.macro.problem import MacroProblem
    from fe2.materials.phasewise import PhaseMaterial
    from fe2.solvers import pathfollowing

    comm = MPI.COMM_WORLD
    log = Log(comm, args.verbose)
    t_start = time.perf_counter()
    out_path = Path(args.output)
    result = {
        "benchmark": "fe2_vs_dns",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "complete": False,
        "machine": machine_info(comm) if comm.rank == 0 else None,
        "config": {"quick": args.quick, "length": args.length, "load": args.load, "delta": args.delta,
                   "steps": steps, "ns": ns, "h_relative": h, "degree": degree, "macro_n": macro_n,
                   "macro_check_n": macro_check, "macro_degree": 2, "rtol": args.rtol,
                   "inclusion_radius_relative": RADIUS,
                   "phases": phases_of(args), "schemes": schemes, "dns_solvers": solvers,
                   "dns_petsc_options": {name: dns_solver_options(name, comm.size) or dict(linalg.DIRECT_LU)
                                         for name in solvers}},
        "fe2": None,
        "fe2_schemes": {},
        "scheme_force_difference_rel": None,
        "fe2_macro_check": None,
        "table": [],
        "crossover": {},
    }

    def write() -> None:
        if comm.rank == 0:
            result["wall_seconds"] = time.perf_counter() - t_start
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(result, indent=1))

    log(f"fe2_vs_dns: {args.load} of a clamped {args.length} x {args.length} square, delta = {args.delta}, "
        f"{steps} steps; RVE/DNS P{degree}, h = {h} x cell; FE2 macro {macro_n} x {macro_n} crossed P2, "
        f"schemes {', '.join(schemes)}; DNS solvers {', '.join(solvers)}; {comm.size} rank(s)")
    # the DNS uses its BCs, phases
    cfg = config.parse_case(case_dict(args, h, degree, macro_n, steps, schemes[0]), "fe2_vs_dns")
    targets = pathfollowing.load_factors(cfg.loading)
    key = reaction_key(args.load)

    # ---- FE² (once per scheme, and once more on a coarser macro mesh) ---------------------
    def fe2(m: int, scheme: str):
        c = config.parse_case(case_dict(args, h, degree, m, steps, scheme), "fe2_vs_dns")
        workdir = comm.bcast(tempfile.mkdtemp(prefix="fe2_vs_dns_") if comm.rank == 0 else None, root=0)
        try:
            comm.barrier()
            t0 = time.perf_counter()
            run = twoscale.run(c, comm, output=workdir, verbose=args.verbose)
            wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        finally:
            if comm.rank == 0:
                shutil.rmtree(workdir, ignore_errors=True)
        s = run.summary
        by_load = {round(r["load_factor"], 12): r for r in s["steps"]}
        F = np.array([by_load[round(t, 12)][key] for t in targets])
        info = {"scheme": scheme, "macro_n": m, "wall_s": wall, "macro_dofs": s["macro"]["dofs"],
                "quadrature_points": s["macro"]["quadrature_points"], "rve_dofs": s["rve"]["dofs"],
                "rve_volume_fractions": s["rve"]["volume_fractions"],
                "rve_evaluations": s["rve_evaluations"], "rve_statistics": s.get("rve_statistics"),
                "load_steps": len(s["steps"]),
                "newton_iterations": sum(r["newton_iterations"] for r in s["steps"]),
                "load_factors": targets, "forces": F.tolist(),
                "steps": [{"load_factor": r["load_factor"], "newton_iterations": r["newton_iterations"],
                           "force": r[key]} for r in s["steps"]]}
        stats = s.get("rve_statistics") or {}
        log(f"FE2 (macro {m} x {m}, {scheme}): {s['macro']['dofs']} macro DOFs, {s['macro']['quadrature_points']} "
            f"RVEs of {s['rve']['dofs']} DOFs; {len(s['steps'])} steps, {info['newton_iterations']} Newton "
            f"iterations, {s['rve_evaluations']} RVE solves, {stats.get('factorisations', 0):.0f} factorisations, "
            f"{wall:.1f} s; final {key} = {F[-1]:.6g}")
        return info, F, run.problem.u

    forces = {}
    for scheme in schemes:
        info, forces[scheme], u = fe2(macro_n, scheme)
        result["fe2_schemes"][scheme] = info
        if scheme == schemes[0]:
            result["fe2"], F_fe2, u_fe2 = info, forces[scheme], u
        if {"monolithic", "nested"} <= forces.keys():
            result["scheme_force_difference_rel"] = relative_difference(forces["monolithic"], forces["nested"])
            log(f"  FE2 monolithic against nested: forces differ by {result['scheme_force_difference_rel']:.2e} "
                "(relative)")
        write()
    fe2_wall = result["fe2"]["wall_s"]
    u_coarse = None
    if macro_check:
        result["fe2_macro_check"], F_coarse, u_coarse = fe2(macro_check, schemes[0])
        result["fe2_macro_check"]["force_change_rel"] = float(np.abs(F_coarse - F_fe2).max() / np.abs(F_fe2).max())
        log(f"  FE2 macro mesh {macro_check} -> {macro_n}: forces change by "
            f"{result['fe2_macro_check']['force_change_rel']:.2e} (relative)")
        write()

    # ---- DNS per n, once per linear solver --------------------------------------------------
    phases = factory.phases(cfg.rve, 2, "fe2_vs_dns")
    rms = lambda a: float(np.sqrt(np.mean(a**2)))  # noqa: E731
    scale = float(np.abs(F_fe2).max())
    for n in ns:
        comm.barrier()
        t0 = time.perf_counter()
        mm, cell_tags = dns_mesh(comm, args.length, n, h)
        t_mesh = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        cells = comm.allreduce(mm.mesh.topology.index_map(2).size_local, op=MPI.SUM)
        pts = cell_centres(args.length, n)
        uf = eval_at_points(u_fe2, pts)
        ref = rms(np.linalg.norm(uf, axis=1))
        disp_check = None
        if u_coarse is not None:
            disp_check = rms(np.linalg.norm(eval_at_points(u_coarse, pts) - uf, axis=1)) / ref
        runs = {}
        for solver in solvers:
            material = PhaseMaterial(cell_tags, {ph.tag: ph.law for ph in phases})
            dirichlet, _ = loads.from_config(cfg.macro.dirichlet, (), mm, "fe2_vs_dns")
            comm.barrier()
            t1 = time.perf_counter()
            problem = MacroProblem(mm, material, degree=degree, dirichlet=dirichlet,
                                   petsc_options=dns_solver_options(solver, comm.size))
            t_setup = comm.allreduce(time.perf_counter() - t1, op=MPI.MAX)
            dofs = problem.V.dofmap.index_map.size_global * problem.V.dofmap.index_map_bs
            if solver == solvers[0]:
                log(f"DNS n = {n}: {cells} cells, {dofs} DOFs (mesh {t_mesh:.1f} s)")
            comm.barrier()
            t1 = time.perf_counter()
            rows = drive(problem, targets, args.rtol, log)
            t_solve = comm.allreduce(time.perf_counter() - t1, op=MPI.MAX)
            dns_rows = {round(r["load_factor"], 12): r for r in rows}
            F_dns = np.array([dns_rows[round(t, 12)][key] for t in targets])
            ud = eval_at_points(problem.u, pts)  # displacement at the cell centres (final load)
            run = {"wall_s": t_mesh + t_solve, "solve_s": t_solve, "setup_s": t_setup,
                   "factor_solver": problem.ksp.getPC().getFactorSolverType(),
                   "load_steps": len(rows), "newton_iterations": sum(r["newton_iterations"] for r in rows),
                   "forces": F_dns.tolist(), "fe2_over_dns": fe2_wall / (t_mesh + t_solve)}
            if solver == solvers[0]:
                first_F, first_u = F_dns, ud
                err = np.linalg.norm(ud - uf, axis=1)
                # plastic zone: share of the matrix quadrature points with accumulated plastic strain > 0
                state = material.committed_state(PHASES["matrix"]["tag"])
                p = state[:, -1] if state.shape[1] else np.zeros(0)
                plastic_points = comm.allreduce(int(np.sum(p > 0)), op=MPI.SUM)
                matrix_points = comm.allreduce(int(p.size), op=MPI.SUM)
                force_err = np.abs(F_dns - F_fe2) / scale
                row = {"n": n, "eps": 1.0 / n, "dns_cells": cells, "dns_dofs": dofs,
                       "dns_wall_s": t_mesh + t_solve, "dns_mesh_s": t_mesh, "dns_solve_s": t_solve,
                       "dns_load_steps": len(rows), "dns_newton_iterations": run["newton_iterations"],
                       "fe2_wall_s": fe2_wall,
                       "force_error_rel": float(force_err.max()),
                       "force_error_rel_per_step": force_err.tolist(),
                       "displacement_error_rel": rms(err) / ref,
                       "displacement_error_max_rel": float(err.max()) / ref,
                       "sample_points": int(pts.shape[0]),
                       "fe2_macro_check_displacement_change_rel": disp_check,
                       "dns_plastic_point_fraction": plastic_points / max(matrix_points, 1),
                       "forces_dns": F_dns.tolist()}
            run["force_difference_rel"] = relative_difference(F_dns, first_F)
            run["displacement_difference_rel"] = rms(np.linalg.norm(ud - first_u, axis=1)) / rms(
                np.linalg.norm(first_u, axis=1))
            runs[solver] = run
            problem.destroy()
            log(f"  {solver:>8s} ({run['factor_solver']}): {rows[-1]['load_factor']:.3g} load, {len(rows)} steps, "
                f"{run['newton_iterations']} Newton iterations, {t_solve:.1f} s; FE2/DNS "
                f"{run['fe2_over_dns']:.3g}"
                + ("" if solver == solvers[0] else
                   f"; forces differ from {solvers[0]}'s by {run['force_difference_rel']:.1e}"))
        row["dns_solvers"] = runs
        row["fe2_over_dns"] = {solver: r["fe2_over_dns"] for solver, r in runs.items()}
        row["dns_solver_force_difference_rel"] = max(r["force_difference_rel"] for r in runs.values())
        result["table"].append(row)
        result["crossover"] = {solver: crossover([r["n"] for r in result["table"]],
                                                 [r["fe2_over_dns"][solver] for r in result["table"]])
                               for solver in solvers}
        log(f"  force error {row['force_error_rel']:.3e}, displacement error {row['displacement_error_rel']:.3e}; "
            f"plastic matrix points {row['dns_plastic_point_fraction']:.2f}")
        write()

    result["complete"] = True
    write()
    if comm.rank == 0:
        print_tables(result, F_fe2, macro_n, out_path)
    return 0


def print_tables(result: dict, F_fe2: np.ndarray, macro_n: int, out_path: Path) -> None:
    """The accuracy table, the schemes, the cost table (FE²/DNS per n and DNS solver) and
    the crossovers."""
    solvers = result["config"]["dns_solvers"]
    head = (f"{'n':>4} {'eps':>7} {'dns_dofs':>9} {'dns_wall_s':>10} {'fe2_wall_s':>10} {'force_err':>10} "
            f"{'disp_err':>10} {'F_dns/F_fe2':>11} {'fe2_macro_chk':>13}")
    print("\n" + head + "\n" + "-" * len(head))
    for r in result["table"]:
        chk = r["fe2_macro_check_displacement_change_rel"]
        print(f"{r['n']:>4} {r['eps']:>7.4f} {r['dns_dofs']:>9} {r['dns_wall_s']:>10.1f} "
              f"{r['fe2_wall_s']:>10.1f} {r['force_error_rel']:>10.3e} {r['displacement_error_rel']:>10.3e} "
              f"{r['forces_dns'][-1] / F_fe2[-1]:>11.4f} {'-' if chk is None else f'{chk:.3e}':>13}")
    if result["fe2_macro_check"]:
        mc = result["fe2_macro_check"]
        print(f"FE2 macro mesh {mc['macro_n']} -> {macro_n}: forces change by {mc['force_change_rel']:.3e} "
              f"(fe2_macro_chk: displacement change at the sample points); errors below these are "
              "not resolved by the FE2 reference")
    print()
    for scheme, info in result["fe2_schemes"].items():
        st = info["rve_statistics"] or {}
        print(f"FE2 {scheme:>10s}: {info['wall_s']:8.1f} s, {info['newton_iterations']:4d} macro Newton iterations, "
              f"{info['rve_evaluations']} RVE evaluations, {st.get('factorisations', 0):.0f} factorisations")
    if result["scheme_force_difference_rel"] is not None:
        print(f"FE2 monolithic against nested: forces differ by {result['scheme_force_difference_rel']:.2e}")
    fe2_scheme = result["fe2"]["scheme"]
    cols = "".join(f" {'dns_s ' + s:>16}" for s in solvers) + "".join(f" {'fe2/' + s:>14}" for s in solvers)
    head = f"\n{'n':>4} {'eps':>7} {'fe2_s':>8}{cols} {'force_diff':>10}"
    print(head + f"   (fe2: {fe2_scheme})\n" + "-" * len(head))
    for r in result["table"]:
        print(f"{r['n']:>4} {r['eps']:>7.4f} {r['fe2_wall_s']:>8.1f}"
              + "".join(f" {r['dns_solvers'][s]['wall_s']:>16.2f}" for s in solvers)
              + "".join(f" {r['fe2_over_dns'][s]:>14.3g}" for s in solvers)
              + f" {r['dns_solver_force_difference_rel']:>10.1e}")
    for s in solvers:
        c = result["crossover"].get(s) or {}
        if c.get("n") is not None:
            print(f"crossover ({s}): FE2 = DNS at n = {c['n']:.1f} (eps = {c['eps']:.4f}), between n = "
                  f"{c['bracket'][0]} and {c['bracket'][1]}")
        else:
            where = {"above": "above the largest n measured (FE2 slower at every n)",
                     "below": "below the smallest n measured (FE2 faster at every n)"}.get(c.get("side"), "unknown")
            print(f"crossover ({s}): not bracketed; it lies {where}")
    print(f"\ntotal {result['wall_seconds']:.0f} s; results in {out_path}")


if __name__ == "__main__":
    sys.exit(main())
