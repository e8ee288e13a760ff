"""FE²: a macro problem distributed over MPI ranks whose material response comes from RVEs.

Each rank builds **one** RVE template (:class:`fe2.micro.cell.CellProblem` or
:class:`fe2.micro.nonlinear.NonlinearCellProblem`: mesh, spaces, forms, factorised
matrix) on ``MPI.COMM_SELF`` and evaluates it, as one batch, at the quadrature points of
the macro cells it owns; nothing is created per point. With ``[parallel] ranks_per_rve =
k > 1`` the template is distributed over a group of ``k`` ranks, which evaluates the points
of all its ranks together (:mod:`fe2.parallel.groups`). :func:`run` is the whole
simulation: set-up (:func:`setup`), path following (:func:`fe2.solvers.pathfollowing.follow`),
results on disk after every converged step, progress on rank 0.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from fe2.core import linalg
from fe2.core.errors import ConfigError, Fe2Error, Interrupted, RankFailed, SolverError, on_root
from fe2.core.stopping import StopRequest
from fe2.core.tensors import mandel_to_voigt_stiffness
from fe2.io import checkpoint, factory, results
from fe2.io.config import CaseConfig
from fe2.io.results import ResultsWriter
from fe2.io.snapshots import Snapshots
from fe2.macro import loads, supports
from fe2.macro.observables import Observables
from fe2.macro.problem import MacroProblem
from fe2.materials.base import PointMaterial
from fe2.materials.points import LinearMaterial, MaterialPoints
from fe2.parallel.groups import GroupMaterial, RankGroups
from fe2.solvers import pathfollowing
from fe2.solvers.pathfollowing import Step

__all__ = ["RunResult", "choose_material", "nonlocal_length", "run", "setup"]


def choose_material(cfg: CaseConfig, rve, comm: MPI.Comm) -> tuple[PointMaterial, str]:
    """The macro material of a case and a one-line description of it."""
    name = cfg.macro.material
    if name == "rve":
        scheme = getattr(rve, "scheme", None)
        how = {"monolithic": "; monolithic: one micro Newton step per macro iterate",
               "nested": "; nested: every RVE solved to convergence at every macro iterate"}.get(scheme, "")
        if scheme == "nested" and cfg.solver.scheme == "monolithic":
            how += " (the RVE has a damage phase)"
        return rve, f"FE2: an RVE solve at every macro quadrature point ({type(rve).__name__}){how}"
    if name == "homogenized":
        if not rve.linear:
            raise ConfigError(f"{cfg.source}: key 'macro.material' = 'homogenized' needs linear phases; "
                              "the RVE has a nonlinear law (use 'rve' or a phase name)")
        return (LinearMaterial(rve.effective_tensor, rve.kinematics,
                               rve.out_of_plane_row if rve.kinematics == "small" else None),
                "single scale with the RVE's effective tensor")
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


def setup(cfg: CaseConfig, comm: MPI.Comm, outdir: Path, say: Callable[[str], None], workdir: Path | None = None
          ) -> tuple[MacroProblem, dict[str, Any]]:
    """The RVE template, the macro mesh, its loads and the macro problem of a case
    (collective); the summary's description of them. A generated RVE mesh is written to
    ``workdir/rve.msh`` (default ``outdir``; each rank may have its own ``workdir``), and
    described as ``outdir/rve.msh``, where :func:`run` keeps it."""
    t0 = time.perf_counter()
    workdir = outdir if workdir is None else workdir
    linalg.check_options(cfg.solver.petsc_options, linalg.DIRECT_LU, f"{cfg.source}: key 'solver.petsc_options'",
                         comm)
    per_rve = cfg.parallel.ranks_per_rve
    if comm.size % per_rve:
        raise ConfigError(f"{cfg.source}: key 'parallel.ranks_per_rve' = {per_rve} must divide the number of MPI "
                          f"ranks ({comm.size}); run with a multiple of {per_rve} ranks")
    groups = RankGroups(comm, per_rve)
    rve = factory.cell_problem(cfg.rve, cfg.base_dir, cfg.source, workdir, comm, groups.comm,
                               scheme=cfg.solver.scheme if cfg.macro.material == "rve" else "nested")
    t_rve_setup = time.perf_counter() - t0
    Ceff = rve.effective_tensor
    mesh_path = str(rve.rve_mesh.path) if cfg.rve.mesh is not None else str(outdir / "rve.msh")
    say(f"  RVE: {mesh_path}{'' if cfg.rve.mesh is not None else ' (generated)'}, {rve.num_dofs} DOFs "
        f"(P{rve.degree}), {rve.boundary} boundary condition, "
        f"fractions {', '.join(f'{k} {v:.4f}' for k, v in rve.volume_fractions.items())}; "
        f"template ready in {t_rve_setup:.2f} s")

    mm = factory.macro_mesh(cfg.macro.mesh, cfg.base_dir, comm, cfg.source)
    if rve.gdim != mm.mesh.geometry.dim:
        what = (f"key 'rve.mesh' = '{cfg.rve.mesh}'" if cfg.rve.mesh
                else f"key 'rve.generate', kind '{cfg.rve.generate['kind']}'")
        raise ConfigError(f"{cfg.source}: the RVE ({what}) is {rve.gdim}D but the macro mesh is "
                          f"{mm.mesh.geometry.dim}D; the RVE must have the macro mesh's dimension")
    amplitudes = loads.amplitude_tables(cfg.loading.amplitudes)
    dirichlet, traction = loads.from_config(cfg.macro.dirichlet, cfg.macro.traction, mm, cfg.source,
                                            cfg.macro.flux, amplitudes)
    material, material_note = choose_material(cfg, rve, comm)
    if material is rve and per_rve > 1:
        material = GroupMaterial(rve, groups.comm)
        material_note += f"; each RVE solved by a group of {per_rve} ranks ({groups.count} groups)"
        if cfg.parallel.balance and groups.count > 1:
            balanced = material.balance_between(groups)
            material_note += ("; evaluations balanced between the groups" if balanced else
                              "; not balanced between the groups (a linear RVE, or RVE partitions that differ "
                              "between the groups)")
    elif material is rve and cfg.parallel.balance and hasattr(rve, "balance_over"):
        rve.balance_over(comm)
    length = nonlocal_length(cfg, rve)
    problem = MacroProblem(mm, material, degree=cfg.macro.degree,
                           quadrature_degree=cfg.macro.quadrature_degree, dirichlet=dirichlet,
                           traction=traction, petsc_options=cfg.solver.petsc_options, nonlocal_length=length,
                           source=cfg.macro.source, source_amplitude=amplitudes.get(cfg.macro.source_amplitude))
    clash = supports.conflicting_supports(problem)
    if clash:
        raise ConfigError(f"{cfg.source}: key 'macro.dirichlet': {'; '.join(clash)}; a node takes one value per "
                          "component, so prescribe that component on one of the two boundaries only, or the same "
                          "value on both")
    free = supports.free_rigid_motions(problem)
    if free and problem.scalar:
        raise ConfigError(f"{cfg.source}: key 'macro.dirichlet': no temperature is prescribed on any node (the "
                          "boundaries named have no facets), so the macro problem is singular")
    if free:
        raise ConfigError(f"{cfg.source}: key 'macro.dirichlet': the supports leave the body free to move "
                          f"({'; '.join(free)}), so the macro problem is singular; prescribe more displacement "
                          "components")
    ndofs = problem.V.dofmap.index_map.size_global * problem.V.dofmap.index_map_bs
    counts = comm.gather(problem.num_owned_points, root=0)
    say(f"  macro: {mm.description}; P{cfg.macro.degree}, {ndofs} DOFs, "
        f"{problem.num_points_global} quadrature points"
        + (f" (per rank: {', '.join(map(str, counts))})" if comm.size > 1 and comm.rank == 0 else ""))
    say(f"  material: {material_note}")
    times = pathfollowing.load_factors(cfg.loading)
    if amplitudes:
        ramped = [f"{e.name or e.tag}" for e in (*dirichlet, *traction)
                  if e.amplitude is None and np.any(np.asarray(e.value) != 0)]
        say(f"  loading: pseudo-time 0 to {times[-1]:g} in {len(times)} steps, amplitudes "
            f"{', '.join(amplitudes)}" + (f"; without an amplitude (scaled by t): {', '.join(ramped)}"
                                          if ramped else ""))
    if length is not None:
        say(f"  regularization: implicit gradient, internal length l = {length:.6g}"
            + (" (the RVE edge)" if cfg.macro.nonlocal_length is None else ""))
    summary: dict[str, Any] = {
        "title": cfg.title, "source": cfg.source, "ranks": comm.size, "host": platform.node(),
        "material": cfg.macro.material, "nonlocal_length": length,
        "rve": {"mesh": mesh_path, "dofs": rve.num_dofs, "degree": rve.degree, "boundary": rve.boundary,
                "volume_fractions": rve.volume_fractions,
                **({} if problem.scalar else {"effective_tensor_voigt": (
                    mandel_to_voigt_stiffness(Ceff) if problem.kinematics == "small" else None)}),
                ("effective_conductivity" if problem.scalar else "effective_tensor_mandel"): Ceff,
                "setup_seconds": t_rve_setup},
        "macro": {"dofs": ndofs, "quadrature_points": problem.num_points_global,
                  "degree": cfg.macro.degree},
        "config": asdict(cfg),
        "steps": [],
    }
    return problem, summary


class Progress:
    """How far a run is: the pseudo-time reached of the end time, the steps done and the time
    left, estimated from the wall time per unit of pseudo-time so far (the pseudo-time a
    run resumed at counts as done)."""

    def __init__(self, t_end: float, t_start: float = 0.0) -> None:
        self.t_end, self.t0, self.clock = t_end, t_start, time.perf_counter()
        self.done = 0.0

    def line(self, step: Step) -> str:
        span = self.t_end - self.t0
        self.done = max(self.done, (step.load_factor - self.t0) / span if span > 0 else 1.0)
        elapsed = time.perf_counter() - self.clock
        left = elapsed * (1 - self.done) / self.done if 0 < self.done < 1 else 0.0
        return (f"t = {step.load_factor:.6g} of {self.t_end:.6g} ({100 * min(self.done, 1.0):.0f} %), "
                f"{elapsed:.1f} s" + (f", about {_duration(left)} left" if self.done < 1 else ""))


def _duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _record(step: Step, problem: MacroProblem, observables: Observables, writer: ResultsWriter,
            say: Callable[[str], None], progress: Progress) -> dict[str, Any]:
    """Write one converged step to the results folder and the log (one line); its history row."""
    rep = step.report
    reac = observables.reactions()
    means = observables.boundary_means()
    internal = problem.internal_fields()
    energy = {} if problem.scalar else {"external_work": problem.work}
    if "dissipation" in internal:
        energy["dissipated_energy"] = observables.dissipated_energy(internal)
    row = {"step": step.number, "load_factor": step.load_factor, "control": step.control,
           "newton_iterations": rep.iterations, **reac, **means, **energy,
           "residuals": rep.residuals, "time_rve_s": rep.time_material,
           "time_macro_s": rep.time_macro, "time_step_s": step.wall}
    writer.history(row)
    writer.fields(step.load_factor, problem.u, observables.cell_averages(problem.strain),
                  observables.cell_averages(problem.sigma), out_of_plane=observables.out_of_plane_stress(),
                  scalars={name: observables.cell_average_scalars(v) for name, v in internal.items()},
                  nodal=problem.formulation.output_fields() or None)
    say(f"  step {step.number} [{progress.line(step)}]: {rep.iterations} iteration{'s' if rep.iterations != 1 else ''}"
        f", {step.wall:.2f} s (RVE {rep.time_material:.2f} s)"
        + (" under dissipation control" if step.control == "dissipation" else "") + "; "
        + ", ".join(f"{kk} = {vv:.6g}" for kk, vv in reac.items()))
    return row


def _statistics(material: PointMaterial, comm: MPI.Comm) -> dict[str, Any]:
    """The material's work counters summed over the ranks, and the micro ``seconds`` of
    each rank as ``seconds_per_rank`` (collective)."""
    mine = material.statistics()
    keys = sorted(set().union(*comm.allgather(set(mine))))
    out: dict[str, Any] = {k: comm.allreduce(mine.get(k, 0), op=MPI.SUM) for k in keys}
    if "seconds" in out:
        out["seconds_per_rank"] = comm.allgather(float(mine.get("seconds", 0.0)))
    return out


#: what a restart may change: everything else of the case is its physics
RESTART_MAY_CHANGE = ("title", "loading.steps", "loading.end_time", "loading.factors", "loading.min_step",
                      "loading.growth", "loading.easy_iterations", "loading.dissipation_increment", "solver", "output",
                      "parallel")


def _changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``key (old -> new)`` of every leaf that differs between two nested dicts of a case."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _changes(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new)) for c in _changes(a, b, f"{prefix}[{i}]")]
    return [] if old == new else [f"{prefix} ({old!r} -> {new!r})"]


def physics_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The changes of a case (as ``asdict`` of :class:`CaseConfig`, JSON round-tripped) that
    a restart refuses: all but :data:`RESTART_MAY_CHANGE` and the internal keys."""
    def strip(d: dict[str, Any]) -> dict[str, Any]:
        d = json.loads(json.dumps(d, default=str))
        for key in RESTART_MAY_CHANGE + ("source", "base_dir"):
            *parents, last = key.split(".")
            node = d
            for k in parents:
                node = node.get(k, {})
            node.pop(last, None)
        return d
    return _changes(strip(before), strip(now))


def _latest_checkpoint(comm: MPI.Comm, outdir: Path) -> Path:
    """The newest checkpoint of ``outdir`` (collective); a one-line error if there is none."""
    folder = on_root(comm, checkpoint.latest, outdir)
    if folder is None:
        raise ConfigError(f"{outdir}: no checkpoint to restart from (checkpoint/latest.json is missing; "
                          "run without --restart, or set [output] checkpoint_every > 0)")
    return folder


def _unused_amplitudes(cfg: CaseConfig) -> list[str]:
    """A warning for each ``[loading.amplitudes]`` table that no load follows."""
    m = cfg.macro
    used = {e.amplitude for e in (*m.dirichlet, *m.traction, *m.flux)} | {m.source_amplitude}
    return [f"{cfg.source}: key 'loading.amplitudes.{name}': no load follows this amplitude (loads without "
            "'amplitude' are scaled by the load factor t); name it in a load's 'amplitude', or remove it"
            for name in (cfg.loading.amplitudes or {}) if name not in used]


def input_hashes(cfg: CaseConfig) -> dict[str, str]:
    """SHA-256 of the case's input mesh files by key (``rve.mesh``, ``macro.mesh.file``; a
    generated mesh has none: its parameters are in the case). Not collective."""
    out = {}
    for key, name in (("rve.mesh", cfg.rve.mesh), ("macro.mesh.file", cfg.macro.mesh.file)):
        if name:
            try:
                out[key] = hashlib.sha256((Path(cfg.base_dir) / name).read_bytes()).hexdigest()
            except OSError:
                pass  # (the set-up says what is wrong with the file)
    return out


def _check_restart(cfg: CaseConfig, folder: Path, ck: checkpoint.Checkpoint) -> None:
    """Refuse a restart whose case differs from the checkpoint's in its physics, or whose
    input mesh files changed content since (not collective)."""
    changed = physics_changes(ck.config, asdict(cfg))
    now = input_hashes(cfg)
    changed += [f"{key} = '{_key_value(cfg, key)}': the file's content (its SHA-256 is not the checkpoint's)"
                for key, digest in ck.inputs.items() if key in now and now[key] != digest]
    if changed:
        raise ConfigError(f"{cfg.source}: cannot restart from {folder}: the case's physics changed: "
                          + "; ".join(changed) + " (a restart may change only the rank count, "
                          + ", ".join(RESTART_MAY_CHANGE) + ")")


def _key_value(cfg: CaseConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _earlier_restarts(comm: MPI.Comm, outdir: Path, ck: checkpoint.Checkpoint) -> list[dict[str, Any]]:
    """The restarts of the run so far (collective): the checkpoint's, or those of the
    folder's ``summary.json`` when it lists them and more (a restart that stopped before
    writing a checkpoint of its own is only there)."""
    def read() -> list[dict[str, Any]]:
        try:
            listed = json.loads((outdir / "summary.json").read_text()).get("restarts")
        except (OSError, ValueError, AttributeError):
            return ck.restarts
        ok = isinstance(listed, list) and len(listed) > len(ck.restarts) and listed[:len(ck.restarts)] == ck.restarts
        return listed if ok else ck.restarts

    return on_root(comm, read)


def _resume(cfg: CaseConfig, comm: MPI.Comm, problem: MacroProblem, folder: Path, summary: dict[str, Any],
            say: Callable[[str], None]) -> tuple[checkpoint.Checkpoint, tuple[dict[str, Any], np.ndarray]]:
    """Load checkpoint ``folder`` into ``problem`` (collective; its case was checked by
    :func:`_check_restart`)."""
    ck, fields = checkpoint.read(folder, comm, problem)
    problem.restore(fields, ck.work, ck.state["lam"])
    summary["steps"] = list(ck.steps)
    summary["restarts"] = _earlier_restarts(comm, folder.parent.parent, ck) + [
        {"step": ck.step, "load_factor": ck.state["lam"], "ranks": comm.size, "checkpoint_ranks": ck.ranks,
         "checkpoint": str(folder)}]
    say(f"  restart from {folder} (step {ck.step}, load factor {ck.state['lam']:.6g}, "
        f"written on {ck.ranks} rank{'s' if ck.ranks > 1 else ''})")
    return ck, (ck.state, fields["x_prev"])


def _checkpoint(cfg: CaseConfig, comm: MPI.Comm, problem: MacroProblem, outdir: Path, step: Step,
                summary: dict[str, Any]) -> None:
    fields = {**problem.checkpoint_fields(), "x_prev": step.x_prev}
    checkpoint.write(outdir, comm, problem, fields, step.state, summary["steps"], asdict(cfg),
                     summary.get("restarts", []), summary.get("input_sha256"))


def _prepare_folder(comm: MPI.Comm, outdir: Path, stage: Path, generated: bool, overwrite: bool) -> None:
    """Make the results folder once the set-up succeeded (collective): remove an older run's
    files when ``overwrite``, keep the generated RVE mesh from the staging folder."""
    def make() -> None:  # a file-system error becomes a one-line error on every rank (on_root)
        outdir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            results.clear(outdir)
        if generated:
            shutil.copyfile(stage / "rve.msh", outdir / "rve.msh")

    on_root(comm, make)


def run(cfg: CaseConfig, comm: MPI.Comm, output: str | Path | None = None, verbose: bool = True,
        restart: bool = False, overwrite: bool = False, max_wall: float | None = None,
        newton: bool = False) -> RunResult:
    """Run a two-scale case (collective on ``comm``).

    ``verbose``: the set-up, one line per converged step (:class:`Progress`: pseudo-time,
    iterations, reactions, the time left) and what the path following does on rank 0;
    ``newton`` adds every step attempt and Newton iteration.

    Returns the summary (also written to ``summary.json``) and the macro problem. Raises
    :class:`~fe2.core.errors.SolverError` if a load step does not converge; every converged
    step is already on disk then. ``restart``: go on from the newest checkpoint in the
    results folder (:mod:`fe2.io.checkpoint`), on any number of ranks; the case may differ
    from the checkpoint's only in :data:`RESTART_MAY_CHANGE`. ``overwrite``: replace the
    results of another run in the folder (refused otherwise, see
    :func:`fe2.io.results.check_folder`).

    Stops cleanly (:mod:`fe2.core.stopping`) on SIGTERM, SIGINT or SIGUSR1 (when called in the
    main thread) and when the run would pass ``max_wall`` seconds: the unfinished step is
    abandoned, a checkpoint of the last converged step is written (whatever
    ``checkpoint_every`` says), ``summary.json`` gets status ``interrupted``, and
    :class:`~fe2.core.errors.Interrupted` is raised with the reason; its ``results`` is the
    folder and ``restartable`` whether a checkpoint is there to continue from.

    Nothing is written into the results folder before the input is read and the set-up
    (RVE, macro mesh, loads, checkpoint) has succeeded.
    """
    say = _printer(comm, verbose)
    t_start = time.perf_counter()
    # one results folder for all ranks (it must be on a file system they share)
    outdir = Path(comm.bcast(str(output if output is not None else cfg.output.directory), root=0))
    on_root(comm, results.check_folder, outdir, cfg.source, restart, overwrite)
    say(f"fe2: {cfg.title}  ({comm.size} MPI rank{'s' if comm.size > 1 else ''})")
    say(f"  results -> {outdir}/")
    folder = _latest_checkpoint(comm, outdir) if restart else None
    if folder is not None:  # the case against the checkpoint's, before anything is built or read
        on_root(comm, lambda: _check_restart(cfg, folder, checkpoint.read_meta(folder)))
        if cfg.output.format == "xdmf" and (outdir / "fields.xdmf").exists():
            on_root(comm, results.parse_fields, outdir / "fields.xdmf")
    with StopRequest(comm, max_wall, start=t_start) as stop:
        with tempfile.TemporaryDirectory(prefix="fe2-stage-") as stage:
            problem, summary = setup(cfg, comm, outdir, say, workdir=Path(stage))
            summary["input_sha256"] = on_root(comm, input_hashes, cfg)
            observables = Observables(problem)
            resume, saved = None, 0
            if folder is not None:
                ck, resume = _resume(cfg, comm, problem, folder, summary, say)
                saved = ck.step
            planned = None if cfg.loading.control == "dissipation" else len(pathfollowing.load_factors(cfg.loading))
            snapshots = Snapshots(cfg.output.rve_snapshots, problem, outdir, cfg.source, planned)
            if snapshots.specs:
                say(f"  RVE snapshots -> {snapshots.describe()}")
            summary["warnings"] = _unused_amplitudes(cfg) + snapshots.warnings
            for line in summary["warnings"]:
                if comm.rank == 0:
                    print(f"fe2: warning: {line}", file=sys.stderr, flush=True)
            _prepare_folder(comm, outdir, Path(stage), cfg.rve.mesh is None, overwrite and not restart)
        writer = ResultsWriter(outdir, problem.mesh, write_fields=cfg.output.format == "xdmf",
                               resume=saved if restart else None, kinematics=problem.kinematics,
                               history=summary["steps"] if restart else None)
        summary["status"] = "running"
        writer.summary(summary)
        every = cfg.output.checkpoint_every
        total_rve_points = 0
        status = "completed"
        last: Step | None = None
        try:
            progress = Progress(pathfollowing.load_factors(cfg.loading)[-1], problem.time)
            for step in pathfollowing.follow(problem, cfg.loading, cfg.solver, log=say if verbose and newton else None,
                                             resume=resume, stop=stop, say=say):
                total_rve_points += step.material_points
                row = _record(step, problem, observables, writer, say, progress)
                summary["steps"].append(row)
                shots = snapshots.write(step.number, step.load_factor)
                if shots:
                    row["rve_snapshots"] = shots
                    snapshots.forget_replaced(summary["steps"])
                writer.summary(summary)  # status "running": a killed run shows how far it got
                last = step
                if every and step.number % every == 0:
                    _checkpoint(cfg, comm, problem, outdir, step, summary)
                    saved = step.number
            if every and last is not None and saved != last.number:  # and after the last step
                _checkpoint(cfg, comm, problem, outdir, last, summary)
        except SolverError as err:
            status, summary["failure"] = "failed", str(err)
            raise SolverError(f"{err}; {len(summary['steps'])} converged steps are saved in {outdir}/") from None
        except Interrupted as err:
            status = "interrupted"
            problem.revert()  # back to the last converged step
            if last is not None and saved != last.number:
                _checkpoint(cfg, comm, problem, outdir, last, summary)
                saved = last.number
            done = len(summary["steps"])
            lam = summary["steps"][-1]["load_factor"] if done else 0.0
            summary["interrupted"] = {"reason": str(err), "step": done, "load_factor": lam,
                                      "checkpoint_step": saved or None}
            stopped = Interrupted(f"stopped by {err} after step {done} (load factor {lam:.6g}); "
                                  + (f"checkpoint of step {saved} in {outdir}/checkpoint/" if saved else
                                     "no step had converged, so there is nothing to continue from"))
            stopped.results, stopped.restartable = outdir, bool(saved)
            raise stopped from None
        except RankFailed:  # another rank's bug: that rank may be gone, so no collective call may follow
            status = "crashed"
            raise
        except Fe2Error as err:  # raised on every rank together (e.g. a write that failed: a full disk)
            status, summary["failure"] = "failed", str(err)
            raise
        except BaseException:  # a bug, perhaps on this rank only: no collective call may follow
            status = "crashed"
            raise
        finally:
            summary["status"] = status
            summary["rve_evaluations"] = total_rve_points
            summary["wall_seconds"] = time.perf_counter() - t_start
            if status == "crashed":
                writer.summary(summary, collective=False)
            else:
                summary["rve_statistics"] = _statistics(problem.material, comm)
                try:
                    writer.summary(summary)  # collective: on disk when any rank goes on
                except Fe2Error:  # (a full disk: the error that ended the run says more; when it
                    if status == "completed":  # completed, this one is the news)
                        raise
                problem.destroy()
    summary["temperature_norm" if problem.scalar else "displacement_norm"] = problem.u.x.petsc_vec.norm()
    writer.summary(summary)
    written = ["history.csv", "summary.json"] if summary["steps"] else ["summary.json"]
    if cfg.output.format == "xdmf" and summary["steps"]:
        written.insert(0, "fields.xdmf for ParaView")
    say(f"fe2: done in {summary['wall_seconds']:.1f} s; {total_rve_points} RVE evaluations. "
        f"Results in {outdir}/ ({', '.join(written)})")
    return RunResult(summary, problem)
