"""FE²: a macro problem distributed over MPI ranks whose material response comes from RVEs.

Each rank builds **one** RVE template (:class:`fe2.rve.CellProblem`: mesh, spaces,
forms, factorised matrix) on ``MPI.COMM_SELF`` and evaluates it, as one batch, at the
quadrature points of the macro cells it owns; nothing is created per point.
:func:`run` is the whole simulation: load steps, macro Newton, results on disk after
every converged step, progress on rank 0.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from fe2 import factory, pathfollowing
from fe2.config import CaseConfig
from fe2.errors import ConfigError, SolverError
from fe2.macro import AXES, Dirichlet, MacroProblem, Traction
from fe2.materials import LinearMaterial, MaterialPoints
from fe2.rve import NonlinearCellProblem
from fe2.results import ResultsWriter
from fe2.tensors import mandel_to_voigt_stiffness


def choose_material(cfg: CaseConfig, rve, comm: MPI.Comm) -> tuple[Any, str]:
    """The macro material of a case and a one-line description of it."""
    name = cfg.macro.material
    if name == "rve":
        return rve, f"FE2: an RVE solve at every macro quadrature point ({type(rve).__name__})"
    if name == "homogenized":
        if isinstance(rve, NonlinearCellProblem):
            raise ConfigError(f"{cfg.source}: key 'macro.material' = 'homogenized' needs linear phases; "
                              "the RVE has a nonlinear law (use 'rve' or a phase name)")
        return LinearMaterial(rve.effective_tensor), "single scale with the RVE's effective tensor"
    ph = next(p for p in rve.phases if p.name == name)
    law = ph.law
    return MaterialPoints(law, 0), f"single scale with phase '{name}''s law ({type(law).__name__})"


def nonlocal_length(cfg: CaseConfig, rve) -> float | None:
    """The internal length of a gradient-regularized case: the configured one, or the RVE's
    largest edge (its mesh read in macro length units); None for a local case."""
    if cfg.macro.regularization != "gradient":
        return None
    if cfg.macro.nonlocal_length is not None:
        return cfg.macro.nonlocal_length
    rm = rve.rve_mesh
    return float(np.max(np.asarray(rm.box_max) - np.asarray(rm.box_min)))


def _printer(comm: MPI.Comm, verbose: bool) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if verbose and comm.rank == 0:
            print(msg, flush=True)
    return say


@dataclass
class RunResult:
    """The summary (as written to ``summary.json``) and the macro problem at the end."""

    summary: dict[str, Any]
    problem: MacroProblem


def run(cfg: CaseConfig, comm: MPI.Comm, output: str | Path | None = None, verbose: bool = True) -> RunResult:
    """Run a two-scale case (collective on ``comm``).

    Returns the summary (also written to ``summary.json``) and the macro problem. Raises
    :class:`~fe2.errors.SolverError` if a load step does not converge; every converged
    step is already on disk then.
    """
    say = _printer(comm, verbose)
    t_start = time.perf_counter()
    # one results folder for all ranks (it must be on a file system they share)
    outdir = Path(comm.bcast(str(output if output is not None else cfg.output.directory), root=0))
    say(f"fe2: {cfg.title}  ({comm.size} MPI rank{'s' if comm.size > 1 else ''})")
    say(f"  results -> {outdir}/")

    t0 = time.perf_counter()
    rve = factory.cell_problem(cfg.rve, cfg.base_dir, cfg.source, outdir, comm)
    t_rve_setup = time.perf_counter() - t0
    Ceff = rve.effective_tensor
    say(f"  RVE: {rve.rve_mesh.path}, {rve.num_dofs} DOFs (P{rve.degree}), "
        f"fractions {', '.join(f'{k} {v:.4f}' for k, v in rve.volume_fractions.items())}; "
        f"template ready in {t_rve_setup:.2f} s")

    mm = factory.macro_mesh(cfg.macro.mesh, cfg.base_dir, comm)
    dirichlet = [Dirichlet(mm.boundary_tag(d.boundary, cfg.source),
                           AXES[d.component] if isinstance(d.component, str) else d.component,
                           d.value, str(d.boundary)) for d in cfg.macro.dirichlet]
    traction = [Traction(mm.boundary_tag(t.boundary, cfg.source), t.value, str(t.boundary))
                for t in cfg.macro.traction]
    material, material_note = choose_material(cfg, rve, comm)
    length = nonlocal_length(cfg, rve)
    problem = MacroProblem(mm, material, degree=cfg.macro.degree,
                           quadrature_degree=cfg.macro.quadrature_degree, dirichlet=dirichlet,
                           traction=traction, petsc_options=cfg.solver.petsc_options, nonlocal_length=length)
    ndofs = problem.V.dofmap.index_map.size_global * problem.V.dofmap.index_map_bs
    counts = comm.gather(problem.num_owned_points, root=0)
    say(f"  macro: {mm.description}; P{cfg.macro.degree}, {ndofs} DOFs, "
        f"{problem.num_points_global} quadrature points"
        + (f" (per rank: {', '.join(map(str, counts))})" if comm.size > 1 and comm.rank == 0 else ""))
    say(f"  material: {material_note}")
    if length is not None:
        say(f"  regularization: implicit gradient, internal length l = {length:.6g}"
            + (" (the RVE edge)" if cfg.macro.nonlocal_length is None else ""))

    writer = ResultsWriter(outdir, mm.mesh, write_fields=cfg.output.format == "xdmf")
    summary: dict[str, Any] = {
        "title": cfg.title, "source": cfg.source, "ranks": comm.size, "host": platform.node(),
        "material": cfg.macro.material, "nonlocal_length": length,
        "rve": {"mesh": str(rve.rve_mesh.path), "dofs": rve.num_dofs, "degree": rve.degree,
                "volume_fractions": rve.volume_fractions,
                "effective_tensor_voigt": (mandel_to_voigt_stiffness(Ceff) if problem.kinematics == "small"
                                           else None),
                "effective_tensor_mandel": Ceff, "setup_seconds": t_rve_setup},
        "macro": {"dofs": ndofs, "quadrature_points": problem.num_points_global,
                  "degree": cfg.macro.degree},
        "config": asdict(cfg),
        "steps": [],
    }
    total_rve_points = 0
    status = "completed"
    try:
        for step in pathfollowing.follow(problem, cfg.loading, cfg.solver, log=say if verbose else None):
            rep = step.report
            total_rve_points += step.material_points
            reac = problem.reactions()
            internal = problem.internal_fields()
            energy = {"external_work": problem.work}
            if "dissipation" in internal:
                energy["dissipated_energy"] = problem.dissipated_energy(internal)
            row = {"step": step.number, "load_factor": step.load_factor, "control": step.control,
                   "newton_iterations": rep.iterations, **reac, **energy,
                   "residuals": rep.residuals, "time_rve_s": rep.time_material,
                   "time_macro_s": rep.time_macro, "time_step_s": step.wall}
            writer.history(row)
            writer.fields(step.load_factor, problem.u, problem.cell_averages(problem.strain),
                          problem.cell_averages(problem.sigma), problem.kinematics,
                          scalars={name: problem.cell_average_scalars(v) for name, v in internal.items()},
                          nodal={"nonlocal_strain": problem.e} if problem.gradient else None)
            summary["steps"].append(row)
            say(f"    converged in {rep.iterations} iteration(s), {step.wall:.2f} s "
                f"(RVE {rep.time_material:.2f} s, macro {rep.time_macro:.2f} s); "
                + (f"load factor {step.load_factor:.6g}, " if step.control == "dissipation" else "")
                + ", ".join(f"{kk} = {vv:.6g}" for kk, vv in reac.items()))
    except SolverError as err:
        status = "failed"
        raise SolverError(f"{err}; {len(summary['steps'])} converged steps are saved in {outdir}/") from None
    finally:
        summary["status"] = status
        summary["rve_evaluations"] = total_rve_points
        summary["wall_seconds"] = time.perf_counter() - t_start
        writer.summary(summary)
        problem.destroy()
    u_norm = problem.u.x.petsc_vec.norm()
    summary["displacement_norm"] = u_norm
    writer.summary(summary)
    say(f"fe2: done in {summary['wall_seconds']:.1f} s; {total_rve_points} RVE evaluations. "
        f"Results in {outdir}/ (fields.xdmf for ParaView, history.csv, summary.json)")
    return RunResult(summary, problem)
