"""The ``fe2`` command line.

::

    fe2 run [CASE.toml] [-o DIR]          two-scale simulation (under mpirun); no CASE: the default case
    fe2 homogenize RVE.toml [--json]      effective tensor of an RVE
    fe2 rve-study RVE.toml [--sizes ...]  RVE size statistics of a random microstructure (SVE -> RVE)
    fe2 mesh KIND OUT.msh [--PARAM V ...] periodic RVE mesh generators (circle, random, laminate, sphere)
    fe2 plot RESULTS... [--x C --y C]     force-displacement curve, Newton iterations and time per step
    fe2 config                            print the configuration reference (Markdown)

Errors caused by input or by a failed solve print one line ``fe2: error: ...`` and
exit with status 2 (input) or 3 (solver); anything else is a bug and keeps its traceback
(status 4 when it ends several MPI ranks). A run stopped cleanly (a signal, ``--max-wall``)
prints one line ``fe2: stopped by ...`` with the command that continues it, and exits with
status 5.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

__all__ = ["EXIT_BUG", "EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_SOLVER", "build_parser", "homogenize_report", "main"]

EXIT_INPUT = 2
EXIT_SOLVER = 3
#: an internal error (a bug) on one of several MPI ranks: every rank is ended with it
EXIT_BUG = 4
#: a run stopped cleanly (SIGTERM, SIGINT, SIGUSR1 or --max-wall): continue it with --restart
EXIT_INTERRUPTED = 5


def _add_mesh_parsers(sub: argparse._SubParsersAction) -> None:
    from fe2.geometry import generators

    p = sub.add_parser("mesh", help="generate a periodic RVE mesh (gmsh)",
                       description="Generate a periodic RVE mesh with tagged phases (matrix = 1, inclusions = 2; "
                                   "laminate layers 1, 2, ...). Opposite faces carry matching nodes.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, fn in generators.GENERATORS.items():
        doc = inspect.getdoc(fn) or ""
        kp = kinds.add_parser(kind, help=doc.splitlines()[0] if doc else kind, description=doc,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        kp.add_argument("output", help="the .msh file to write")
        for name, par in inspect.signature(fn).parameters.items():
            if par.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            default = par.default
            kp.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default,
                            type=_literal, metavar="V",
                            help=f"default: {default!r}")


def _literal(text: str) -> Any:
    """A command-line value as a number, a list of numbers (``0.5,0.5``) or a string."""
    parts = text.split(",")
    vals = []
    for p in parts:
        try:
            vals.append(int(p))
        except ValueError:
            try:
                vals.append(float(p))
            except ValueError:
                vals.append(p)
    return vals[0] if len(vals) == 1 and "," not in text else tuple(vals)


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (``--max-wall``)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from fe2 import __version__
    from fe2.core.physics import BOUNDARY_CONDITIONS

    parser = argparse.ArgumentParser(prog="fe2", description="FE² two-scale computational homogenization on FEniCSx.")
    parser.add_argument("--version", action="version", version=f"fe2 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("run", help="run a two-scale case (use under mpirun)",
                       description="Run a two-scale FE² case. Without CASE, the embedded default case "
                                   "(a plate with a hole in tension, inclusion composite) runs.")
    r.add_argument("case", nargs="?", help="case file (TOML); see `fe2 config`")
    r.add_argument("-o", "--output", help="results folder (overrides [output] directory)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    r.add_argument("-v", "--verbose", action="store_true",
                   help="also every step attempt and Newton iteration (default: one line per converged step)")
    r.add_argument("--restart", nargs="?", const="", metavar="DIR",
                   help="go on from the newest checkpoint in the results folder (DIR, or the -o / [output] "
                        "one), on any number of ranks; the case may change only its output, solver, parallel "
                        "and load-stepping options and the final load factor")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the results of another run in the results folder (without it such a folder "
                        "is refused)")
    r.add_argument("--max-wall", type=_seconds, metavar="SECONDS",
                   help="stop cleanly (checkpoint, status 'interrupted', exit status 5) before the run's wall "
                        "clock passes SECONDS: set it below a batch job's time limit")
    r.add_argument("--example", metavar="NAME", help="run an embedded example case (see --list-examples)")
    r.add_argument("--list-examples", action="store_true", help="list the embedded example cases and exit")
    r.add_argument("--print-default", action="store_true",
                   help="print the default case file (or the --example one) and exit")

    h = sub.add_parser("homogenize", help="effective tensor of an RVE",
                       description="Solve the cell problems of an RVE and print its effective (apparent) tensor.")
    h.add_argument("rve", help="RVE file (TOML with an [rve] table; a case file works too)")
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    h.add_argument("--notation", choices=("voigt", "mandel"), default="voigt",
                   help="tensor notation of the output (default voigt: engineering shear strain)")
    h.add_argument("--keep-mesh", metavar="FILE", help="where to keep a generated RVE mesh")
    h.add_argument("--boundary", choices=BOUNDARY_CONDITIONS,
                   help="micro boundary condition, overriding [rve] boundary (default: the file's, else periodic)")

    st = sub.add_parser(
        "rve-study", help="RVE size statistics of a random microstructure (SVE -> RVE)",
        description="Draw REALIZATIONS random cells of every size from the RVE file's random generator, solve "
                    "their cell problems under the micro boundary conditions, and report the apparent tensors' "
                    "mean and standard deviation, the decay of the variance with the cell volume, the bracketing "
                    "linear >= periodic >= minimal, and the smallest size that meets the tolerance. Writes "
                    "DIR/rve_study.json, DIR/rve_study.png and DIR/rve_study.pdf. Realizations run in parallel "
                    "over the MPI ranks; the results do not depend on their number.")
    st.add_argument("rve", help='RVE file (TOML) whose [rve.generate] has kind = "random"')
    st.add_argument("--sizes", default="1,2,3", metavar="S1,S2,...",
                    help="size multiples s of the generator's cell: edges times s, inclusions times s^d at the "
                         "same radius and volume fraction (default 1,2,3)")
    st.add_argument("--realizations", default="8", metavar="N",
                    help="random cells per size, >= 2 (default 8)")
    st.add_argument("--boundary", default=",".join(BOUNDARY_CONDITIONS), metavar="BC,...",
                    help=f"micro boundary conditions, among {', '.join(BOUNDARY_CONDITIONS)} (default all three)")
    st.add_argument("--tolerance", default="0.02", metavar="TOL",
                    help="relative tolerance of the representative size (default 0.02): the relative standard "
                         "deviation of the headline property of one realization, and the relative gap between "
                         "the linear and minimal mean tensors")
    st.add_argument("--seed", metavar="SEED",
                    help="base seed (default: rve.generate.seed, else 0); realization k of the i-th size uses "
                         "SEED + i * N + k")
    st.add_argument("-o", "--output", metavar="DIR",
                    help="results folder (default results/<RVE file name>-rve-study)")
    st.add_argument("--keep-meshes", action="store_true", help="keep the realizations' meshes in DIR/meshes/")
    st.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    st.add_argument("-q", "--quiet", action="store_true", help="no progress lines")

    _add_mesh_parsers(sub)

    pl = sub.add_parser(
        "plot", help="plot results folders: force-displacement curve, Newton iterations, time per step",
        description="Plot the history.csv of one or several results folders of fe2 run into STEM.png and "
                    "STEM.pdf, one colour per folder: the force-displacement curve of the loaded boundary (the "
                    "boundary whose mean displacement, or temperature, is largest against its reaction, "
                    "traction resultant or heat inflow; without displacement columns the largest force "
                    "against load_factor), the Newton iterations and the wall time of every load step.")
    pl.add_argument("results", nargs="+", metavar="RESULTS",
                    help="results folders (fe2 run -o / [output] directory); several are drawn in the same panels")
    pl.add_argument("--x", metavar="COLUMN",
                    help="history.csv column on the curve's horizontal axis (any numeric column; default: "
                         "chosen per folder as described above)")
    pl.add_argument("--y", metavar="COLUMN",
                    help="history.csv column on the curve's vertical axis (default: chosen per folder)")
    pl.add_argument("-o", "--output", metavar="STEM",
                    help="write STEM.png and STEM.pdf (a .png or .pdf suffix is dropped; an existing folder: "
                         "FOLDER/plot); default: plot.png and plot.pdf in the first RESULTS folder")
    pl.add_argument("-q", "--quiet", action="store_true", help="print nothing (errors still go to stderr)")

    sub.add_parser("config", help="print the configuration reference (Markdown)")
    inf = sub.add_parser("info", help="versions of fe2, dolfinx, PETSc and MPI; PETSc's direct solvers",
                         description="Print what this installation provides: the versions of fe2, Python, the "
                                     "FEniCSx packages, dolfinx_mpc, PETSc (with the direct solvers it offers) and "
                                     "the MPI library, and whether anything fe2 needs is missing (exit status 1 "
                                     "then).")
    inf.add_argument("--json", action="store_true", help="print JSON instead of lines")
    return parser


def _cmd_info(args: argparse.Namespace) -> int:
    import json

    from mpi4py import MPI

    from fe2.core import environment

    comm = MPI.COMM_WORLD
    info = environment.report(comm.size) if comm.rank == 0 else None
    if comm.rank == 0:
        print(json.dumps(info, indent=2) if args.json else environment.text(info))
    return int(comm.bcast(bool(environment.missing(info)) if comm.rank == 0 else None, root=0))


def _cmd_run(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from fe2 import twoscale
    from fe2.core.errors import ConfigError
    from fe2.io import config

    if args.list_examples:
        if MPI.COMM_WORLD.rank == 0:
            for name in config.example_names():
                title = config.example_case(name).title
                print(f"{name:20s} {title}{'  (default)' if name + '.toml' == config.DEFAULT_CASE else ''}")
        return 0
    if args.print_default:
        if MPI.COMM_WORLD.rank == 0:
            print(config.example_text(args.example or config.DEFAULT_CASE[:-5]), end="")
        return 0
    if args.case and args.example:
        raise ConfigError("give either a case file or --example, not both")
    if args.case:
        cfg = config.load_case(args.case)
    elif args.example:
        cfg = config.example_case(args.example)
    else:
        cfg = config.default_case()
    output = args.restart if args.restart else args.output
    if args.restart is not None and args.overwrite:
        raise ConfigError("give either --restart (continue the run in the results folder) or --overwrite "
                          "(replace it), not both")
    twoscale.run(cfg, MPI.COMM_WORLD, output=output, verbose=not args.quiet, restart=args.restart is not None,
                 overwrite=args.overwrite, max_wall=args.max_wall, newton=args.verbose)
    return 0


def _continue_command(args: argparse.Namespace, results: Path) -> str:
    """The ``fe2 run`` command line that continues a stopped run in ``results``."""
    import shlex

    words = ["fe2", "run"]
    if args.case:
        words.append(args.case)
    elif args.example:
        words += ["--example", args.example]
    words += ["--restart", str(results)]
    if args.max_wall:
        words += ["--max-wall", f"{args.max_wall:g}"]
    return " ".join(shlex.quote(w) for w in words)


def homogenize_report(cp, rve_file: str, notation: str) -> dict[str, Any]:
    """The JSON-able report of ``fe2 homogenize``."""
    import numpy as np

    from fe2.core.tensors import STRAIN_COMPONENTS, mandel_to_voigt_stiffness

    C = cp.effective_tensor
    if cp.physics == "elasticity":
        comps = list(STRAIN_COMPONENTS[cp.gdim])
        tensor = mandel_to_voigt_stiffness(C) if notation == "voigt" else C
        note = ("Voigt: strain [..., 2 eps_ij] (engineering shear), stress [..., sigma_ij]" if notation == "voigt"
                else "Mandel: [..., sqrt(2) t_ij] for strain and stress")
    elif cp.physics == "finite_strain":  # the tangent dP/dF at F = I, F flattened row-major
        comps = [f"F{a}{b}" for a in "xyz"[: cp.gdim] for b in "xyz"[: cp.gdim]]
        tensor, notation, note = C, "matrix", "tangent dP/dF at F = I (F and P flattened row-major)"
    else:
        comps = list("xyz"[: cp.gdim])
        tensor, notation, note = C, "matrix", "conductivity tensor K: q = -K grad T"
    return {
        "rve": rve_file, "mesh": str(cp.rve_mesh.path), "physics": cp.physics, "boundary": cp.boundary,
        "dimension": cp.gdim,
        "plane_strain": cp.physics == "elasticity" and cp.gdim == 2,
        "degree": cp.degree, "dofs": cp.num_dofs,
        "notation": notation, "notation_note": note, "components": comps,
        "tensor": np.asarray(tensor).tolist(),
        "volume_fractions": cp.volume_fractions,
        "phases": {p.name: p.tag for p in cp.phases},
        "min_eigenvalue": float(np.linalg.eigvalsh(0.5 * (C + C.T)).min()),
        "asymmetry": float(np.abs(C - C.T).max() / np.abs(C).max()),
    }


def _cmd_homogenize(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from fe2.core.errors import ConfigError, on_root
    from fe2.core.paths import unwritable
    from fe2.io import config, factory

    cfg = config.load_rve(args.rve)
    if args.boundary:
        cfg = dataclasses.replace(cfg, rve=dataclasses.replace(cfg.rve, boundary=args.boundary))
    keep = Path(args.keep_mesh) if args.keep_mesh else None
    if keep is not None and cfg.rve.generate is None:
        raise ConfigError(f"--keep-mesh: {args.rve} names its RVE mesh ('{cfg.rve.mesh}'), so there is no generated "
                          "mesh to keep; leave --keep-mesh out")
    if keep is not None and keep.is_dir():
        raise ConfigError(f"--keep-mesh: '{keep}' is a folder; give the file to write, e.g. {keep / 'rve.msh'}")
    if keep is not None and unwritable(keep.parent):
        raise ConfigError(f"--keep-mesh: '{keep}': {unwritable(keep.parent)}; give a file where fe2 may write")
    comm = MPI.COMM_SELF  # (every rank homogenizes on its own; rank 0 reports and keeps the mesh)
    with tempfile.TemporaryDirectory(prefix="fe2-") as tmp:
        cp = factory.cell_problem(cfg.rve, cfg.base_dir, cfg.source, Path(tmp), comm)
        report = homogenize_report(cp, args.rve, args.notation)
        if keep is not None:  # written once, whole: a copy beside the target, then renamed onto it
            def copy() -> None:
                part = keep.with_name(f".{keep.name}.part")
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / "rve.msh", part)
                os.replace(part, keep)

            on_root(MPI.COMM_WORLD, copy)
            report["mesh"] = str(keep)
    if MPI.COMM_WORLD.rank != 0:
        return 0
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"RVE {args.rve}: mesh {report['mesh']}, {report['physics']} "
          f"({'plane strain, ' if report['plane_strain'] else ''}{report['dimension']}D), "
          f"P{report['degree']}, {report['dofs']} DOFs, {report['boundary']} boundary condition")
    print("volume fractions: " + ", ".join(f"{k} {v:.6f}" for k, v in report["volume_fractions"].items()))
    print(f"effective tensor ({report['notation']}; {report['notation_note']}):")
    comps = report["components"]
    print("        " + "".join(f"{c:>14}" for c in comps))
    for c, row in zip(comps, report["tensor"]):
        print(f"  {c:>4}  " + "".join(f"{v:14.6g}" for v in row))
    return 0


def _flag_values(flag: str, text: str, convert: Any, what: str, single: bool = False) -> list[Any]:
    """The comma-separated values of a command-line flag (one value if ``single``), each
    through ``convert`` (which returns None for a bad one); a
    :class:`~fe2.core.errors.ConfigError` naming the flag and ``what`` is allowed otherwise."""
    from fe2.core.errors import ConfigError

    values = [convert(part.strip()) for part in str(text).split(",")]
    if (not values or any(v is None for v in values) or len(set(values)) != len(values)
            or (single and len(values) != 1)):
        raise ConfigError(f"{flag} must be {what}, got {text!r}")
    return values


def _positive_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def _integer_at_least(low: int) -> Any:
    def convert(text: str) -> int | None:
        try:
            value = int(text)
        except ValueError:
            return None
        return value if value >= low else None
    return convert


def _cmd_rve_study(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from fe2.core.errors import ConfigError, on_root
    from fe2.core.paths import unwritable
    from fe2.core.physics import BOUNDARY_CONDITIONS, PHYSICS
    from fe2.io import config, factory
    from fe2.studies import rve_size

    sizes = _flag_values("--sizes", args.sizes, _positive_number,
                         "distinct numbers > 0 separated by commas (multiples of the generator's cell size)")
    (realizations,) = _flag_values("--realizations", args.realizations, _integer_at_least(2),
                                   "an integer >= 2 (a standard deviation needs two realizations)", single=True)
    boundaries = _flag_values("--boundary", args.boundary, lambda t: t if t in BOUNDARY_CONDITIONS else None,
                              f"distinct names among {', '.join(BOUNDARY_CONDITIONS)} separated by commas")
    (tolerance,) = _flag_values("--tolerance", args.tolerance, _positive_number,
                                "a number > 0 (a relative tolerance, e.g. 0.02)", single=True)
    seed = None if args.seed is None else _flag_values("--seed", args.seed, _integer_at_least(0),
                                                       "an integer >= 0", single=True)[0]
    cfg = config.load_rve(args.rve)
    rve, source = cfg.rve, cfg.source
    if rve.generate is None:
        raise ConfigError(f"{source}: key 'rve.mesh' = '{rve.mesh}': fe2 rve-study draws random cells from a "
                          f"generator; give [rve.generate] with kind = {rve_size.RANDOM_KINDS[0]!r} instead of a mesh "
                          "file")
    linear_physics = [name for name, p in PHYSICS.items() if p.kinematics != "finite"]
    if rve.physics not in linear_physics:
        raise ConfigError(f"{source}: key 'rve.physics' = {rve.physics!r}: fe2 rve-study computes linear "
                          f"apparent tensors; allowed: {', '.join(map(repr, linear_physics))}")
    generate = dict(rve.generate)
    gdim = len(rve_size.generator_parameters(generate, source)["size"])
    phases = factory.phases(rve, gdim, source)
    for ph in phases:
        if ph.law is not None and not ph.law.linear:
            raise ConfigError(f"{source}: key 'rve.phases.{ph.name}.law' = {rve.phases[ph.name].law!r}: fe2 "
                              "rve-study computes linear apparent tensors and needs linear phases (a nonlinear "
                              "law's tangent depends on the load)")
    world = MPI.COMM_WORLD
    out = Path(world.bcast(args.output or f"results/{Path(args.rve).stem}-rve-study", root=0))
    problem = unwritable(out)
    if problem:
        raise ConfigError(f"{out}: cannot write the results there: {problem}")

    def say(line: str) -> None:  # progress: to stderr when stdout carries the JSON
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    report = rve_size.rve_study(generate, phases, world, physics=rve.physics, sizes=sizes, realizations=realizations,
                             boundaries=boundaries, tolerance=tolerance, degree=rve.degree,
                             petsc_options=rve.petsc_options, seed=seed,
                             workdir=out / "meshes" if args.keep_meshes else None, source=source,
                             log=None if args.quiet else say)

    def write() -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "rve_study.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        try:
            return [path, *rve_size.write_plot(report, out / "rve_study")]
        except ImportError:
            print("fe2: matplotlib is not installed: no plot written", file=sys.stderr)
            return [path]

    written = on_root(world, write)
    if world.rank != 0:
        return 0
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for line in rve_size.table(report):
        print(line)
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from fe2.core.errors import on_root
    from fe2.io import plot

    def draw() -> list[str]:
        made = plot.plot_results(args.results, output=args.output, x=args.x, y=args.y)
        lines = [f"{c.folder}: {c.y} against {c.x}, {len(c.xs)} step{'s' if len(c.xs) != 1 else ''}"
                 for c in made.curves]
        return [*lines, f"wrote {', '.join(str(p) for p in made.paths)}"]

    world = MPI.COMM_WORLD  # under mpirun, rank 0 reads and writes
    lines = on_root(world, draw)
    if world.rank == 0 and not args.quiet:
        for line in lines:
            print(line)
    return 0


def _cmd_mesh(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from fe2.core.errors import on_root
    from fe2.geometry import generators

    fn = generators.GENERATORS[args.kind]
    params = {name: getattr(args, name) for name, p in inspect.signature(fn).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY}
    comm = MPI.COMM_WORLD  # under mpirun, rank 0 writes the one file
    info = on_root(comm, generators.generate, args.kind, args.output, **params)
    if comm.rank == 0:
        print(f"wrote {info.path}: {info.dim}D, {info.num_nodes} nodes, {info.num_cells} cells; "
              f"phases {info.phase_tags}; volume fractions "
              + ", ".join(f"{k} {v:.4f}" for k, v in info.volume_fractions.items()))
    return 0


#: seconds the ranks wait for each other after an error before the ones that got there end
#: all of them (an error that only some ranks raised would leave the others waiting)
AGREE_SECONDS = 20.0


#: message tag of the exchange after an error (point-to-point: it cannot get mixed up with
#: a collective call that other ranks may be waiting in)
_FAILED_TAG = 31_337


def _all_failed(comm, seconds: float | None = None) -> bool:
    """Whether every other rank of ``comm`` also reached this call (after an error) within
    ``seconds`` (default :data:`AGREE_SECONDS`): each rank sends every other one a message
    and waits for theirs. Not a collective call, so a rank that is waiting elsewhere does
    not hold it up beyond ``seconds``."""
    import time

    import numpy as np
    from mpi4py import MPI

    others = [r for r in range(comm.size) if r != comm.rank]
    note = np.ones(1, dtype=np.int32)
    inbox = np.zeros((len(others), 1), dtype=np.int32)
    sends = [comm.Isend(note, dest=r, tag=_FAILED_TAG) for r in others]
    recvs = [comm.Irecv(inbox[i], source=r, tag=_FAILED_TAG) for i, r in enumerate(others)]
    end = time.monotonic() + (AGREE_SECONDS if seconds is None else seconds)
    while not MPI.Request.Testall(recvs):
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    MPI.Request.Waitall(sends)
    return True


#: seconds between a message and the abort after it, for mpirun to pass the message on (an
#: abort that follows at once can end the job before mpirun has forwarded the rank's stderr)
ABORT_DELAY = 0.5


def _abort(comm, code: int) -> None:
    """End every rank of ``comm`` with exit status ``code`` (``MPI_Abort``), after
    :data:`ABORT_DELAY`."""
    import time

    time.sleep(ABORT_DELAY)
    comm.Abort(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fe2`` console script; returns the exit status.

    A user-facing error (:class:`~fe2.core.errors.Fe2Error`) is printed once, by rank 0,
    as one line, when every rank raised it (fe2 raises such errors on all ranks together:
    :func:`~fe2.core.errors.collective`); when some ranks did not get there within
    :data:`AGREE_SECONDS`, the ranks that did print it with their rank and end every rank
    (``MPI_Abort``) with the error's exit status, so that no rank is left waiting. A bug
    prints its traceback and ends every rank (status 4)."""
    from mpi4py import MPI

    from fe2.core.errors import Fe2Error, Interrupted, RankFailed, SolverError

    parser = build_parser()
    args = parser.parse_args(argv)
    world = MPI.COMM_WORLD
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "homogenize":
            return _cmd_homogenize(args)
        if args.command == "rve-study":
            return _cmd_rve_study(args)
        if args.command == "mesh":
            return _cmd_mesh(args)
        if args.command == "plot":
            return _cmd_plot(args)
        if args.command == "info":
            return _cmd_info(args)
        if args.command == "config":
            from fe2.io.config import reference_markdown

            if world.rank == 0:
                print(reference_markdown())
            return 0
    except Fe2Error as err:
        if isinstance(err, RankFailed):  # another rank's bug: it prints its traceback and ends every rank
            print(f"fe2: error: [rank {world.rank}] {err}", file=sys.stderr, flush=True)
            _abort(world, EXIT_BUG)
        if isinstance(err, Interrupted):
            code = EXIT_INTERRUPTED
            restart = (f"; continue with: {f'mpirun -n {world.size} ' if world.size > 1 else ''}"
                       f"{_continue_command(args, err.results)}" if getattr(err, "restartable", False) else "")
            line = f"fe2: {err}{restart}"
        else:
            code = EXIT_SOLVER if isinstance(err, SolverError) else EXIT_INPUT
            line = f"fe2: error: {err}"
        if world.size == 1 or _all_failed(world):
            if world.rank == 0:
                print(line, file=sys.stderr, flush=True)
            return code
        print(line.replace("fe2: error: ", f"fe2: error: [rank {world.rank}] ", 1), file=sys.stderr, flush=True)
        _abort(world, code)
    except Exception:
        # a bug: on several ranks the others would wait forever in their next collective
        # call, so print the traceback and end every rank
        if world.size == 1:
            raise
        print(f"fe2: internal error on rank {world.rank}; ending all ranks", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        _abort(world, EXIT_BUG)
    parser.error(f"unknown command {args.command}")
    return EXIT_INPUT
