"""RVE size study: apparent tensors of random cells of growing size (SVE -> RVE).

Below the size of a representative volume element, the apparent tensor of a random cell
(a statistical volume element, SVE) is a random variable: it depends on the realization
of the microstructure and on the micro boundary condition. :func:`rve_study` draws
``realizations`` cells of every size from a random generator, solves the linear cell
problems under the boundary conditions asked for, and reports the statistics a size
decision needs:

- per size and condition: the tensors of every realization, their mean and standard
  deviation (``ddof = 1``), and a scalar *headline* property (:func:`headline`);
- the decay of the headline's variance with the cell volume ``V``: for a short-range
  correlated microstructure ``D^2(V) = D^2(V_1) (V / V_1)^alpha`` with ``alpha`` about
  ``-1`` (Kanit et al. 2003), i.e. about ``-d`` in terms of the edge length ``L``
  (``V ~ L^d``); both exponents are reported (``variance_exponent_volume``,
  ``variance_exponent_length``) with the least-squares fit of ``log D^2`` against
  ``log V``;
- the bracketing ``linear >= periodic >= minimal`` (Loewner order) per realization and for
  the means, as the smallest eigenvalue of each difference, and the relative gap
  ``||C_linear - C_minimal|| / ||C_periodic||`` (Frobenius norms), which closes as the cell
  becomes representative;
- the smallest size that meets a tolerance (:func:`representative_size`).

The cell grows at a fixed microstructure: a size multiple ``s`` scales every edge of the
generator's cell by ``s`` and the number of inclusions ``n`` by ``s^d`` (rounded to the
nearest integer), at the same volume fraction and element size ``h``, so the inclusion
radius stays the same (exactly when ``n s^d`` is an integer; the actual radius is
reported).

Realizations are independent: realization ``k`` of the ``i``-th size (sizes in
increasing order) uses the generator seed ``seed + i * realizations + k``, is meshed and
solved on ``MPI.COMM_SELF`` by rank ``(i * realizations + k) % comm.size`` and gathered on
every rank, so its tensors and statistics do not depend on the number of ranks (its timings and
the rank of each realization do).

The caller passes the generator table and the phases (``fe2 rve-study`` reads them from
an RVE file; errors name the file as ``source`` and the ``rve.generate`` keys, as
:func:`fe2.io.factory.rve_mesh_path` does). :func:`write_plot` draws a report and
:func:`table` writes it as the lines ``fe2 rve-study`` prints.
"""

from __future__ import annotations

import inspect
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from fe2.core import physics as physics_registry
from fe2.core.errors import ConfigError, MeshError, collective
from fe2.geometry import generators
from fe2.geometry.rvemesh import load_rve_mesh
from fe2.micro.boundary import BOUNDARY_CONDITIONS
from fe2.micro.cell import CellProblem
from fe2.micro.phases import Phase

__all__ = ["RANDOM_KINDS", "bracketing", "generator_parameters", "headline", "power_fit", "realization_parameters",
           "representative_size", "rve_study", "table", "write_plot"]

#: generator kinds whose cells are random (``[rve.generate] kind``); the others are deterministic
RANDOM_KINDS = ("random",)

#: a Loewner difference counts as positive semi-definite down to this fraction of the tensor's norm
#: (round-off of the cell solves)
LOEWNER_TOLERANCE = 1e-10


def realization_parameters(generate: Mapping[str, Any], multiple: float, seed: int) -> dict[str, Any]:
    """Generator parameters of one realization of a cell ``multiple`` times the size of the
    generator's: every edge scaled by ``multiple``, the number of inclusions by
    ``multiple^d`` (rounded to the nearest integer, at least 1), the given ``seed``; the
    volume fraction, element size and the other parameters as given.

    Parameters
    ----------
    generate : the generator table (``kind`` and the parameters of
        :func:`fe2.geometry.generators.random_inclusions`; missing ones take its defaults)
    multiple : size multiple ``s > 0``
    seed : generator seed of this realization

    Returns
    -------
    dict : keyword parameters of the generator (without ``kind``)
    """
    params = generator_parameters(generate)
    size = np.asarray(params["size"], dtype=float)
    dim = size.size
    params["size"] = [float(multiple * v) for v in size]
    params["n"] = max(1, int(math.floor(params["n"] * multiple**dim + 0.5)))
    params["seed"] = int(seed)
    return params


def generator_parameters(generate: Mapping[str, Any], source: str = "rve") -> dict[str, Any]:
    """The generator table with the generator's defaults filled in (without ``kind``); a
    kind that is not random is a :class:`~fe2.core.errors.ConfigError`, a parameter the
    size scaling needs (``size``, ``n``, ``volume_fraction``) that is not valid a
    :class:`~fe2.core.errors.MeshError`, both naming ``source`` and the key (the generator
    checks the others when it runs)."""
    kind = generate.get("kind")
    if kind not in RANDOM_KINDS:
        raise ConfigError(f"{source}: key 'rve.generate.kind' = {kind!r}: the RVE size study draws random cells; "
                          f"allowed: {', '.join(map(repr, RANDOM_KINDS))}")
    fn = generators.GENERATORS[kind]
    params = {name: p.default for name, p in inspect.signature(fn).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = [k for k in generate if k != "kind" and k not in params]
    if unknown:
        raise MeshError(f"{source}: key 'rve.generate.{unknown[0]}' is not a parameter of kind {kind!r} "
                        f"(parameters: {', '.join(params)})")
    params.update({k: v for k, v in generate.items() if k != "kind"})
    size = params["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(_number(v) and math.isfinite(v) and v > 0 for v in size)):
        raise MeshError(f"{source}: key 'rve.generate.size' must be a list of 2 numbers > 0 (the cell's edges), "
                        f"got {size!r}")
    if not isinstance(params["n"], int) or isinstance(params["n"], bool) or params["n"] < 1:
        raise MeshError(f"{source}: key 'rve.generate.n' must be an integer >= 1, got {params['n']!r}")
    vf = params["volume_fraction"]
    if not (_number(vf) and 0 < vf <= generators.MAX_VOLUME_FRACTION):
        raise MeshError(f"{source}: key 'rve.generate.volume_fraction' must be in "
                        f"(0, {generators.MAX_VOLUME_FRACTION}], got {vf!r}")
    if not isinstance(params["seed"], int) or isinstance(params["seed"], bool) or params["seed"] < 0:
        raise MeshError(f"{source}: key 'rve.generate.seed' must be an integer >= 0, got {params['seed']!r}")
    return params


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def headline(physics: str, gdim: int) -> tuple[list[int], str]:
    """The scalar headline property of an apparent tensor: the mean of its normal diagonal
    components, the indices of those components and a description.

    Elasticity: ``(C_11 + C_22) / 2`` (``+ C_33``, over 3, in 3D), the mean normal
    stiffness (Mandel and Voigt agree on these components); conduction: the mean diagonal
    conductivity ``tr K / d``. Averaging the directions makes it independent of how a
    realization happens to be oriented (a quarter turn of the cell swaps ``C_11`` and
    ``C_22``), so its scatter is that of the realizations' stiffness, not of their small
    anisotropy.
    """
    spec = physics_registry.get(physics)
    if spec.kinematics == "finite":
        raise ValueError("the size study solves linear cell problems: physics 'finite_strain' is not supported")
    idx = list(range(gdim))
    letter = "C" if spec.vector_field else "K"
    terms = " + ".join(f"{letter}_{i + 1}{i + 1}" for i in idx)
    what = "mean normal stiffness" if spec.vector_field else "mean diagonal conductivity"
    return idx, f"{what} ({terms}) / {gdim}"


def _loewner_min(A: np.ndarray) -> float:
    """Smallest eigenvalue of the symmetric part of ``A``."""
    return float(np.linalg.eigvalsh(0.5 * (A + A.T)).min())


def bracketing(tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The Loewner order of the apparent tensors of one cell (or of the means).

    Parameters
    ----------
    tensors : ``{boundary condition: (n, n) tensor}`` for some of
        :data:`fe2.micro.boundary.BOUNDARY_CONDITIONS`

    Returns
    -------
    dict with ``min_eigenvalue``: for each pair of consecutive conditions present, stiffest
    first (``"linear-periodic"``, ``"periodic-minimal"``; ``"linear-minimal"`` when
    periodic is absent), the smallest eigenvalue of the symmetric part of the difference;
    ``holds``: all of them >= ``-LOEWNER_TOLERANCE * ||reference||``; ``gap``:
    ``||C_linear - C_minimal|| / ||reference||`` (None unless both are present). The
    reference is the periodic tensor, else the mean of the others.
    """
    present = [bc for bc in BOUNDARY_CONDITIONS if bc in tensors]
    ref = tensors["periodic"] if "periodic" in tensors else sum(tensors[bc] for bc in present) / len(present)
    scale = float(np.linalg.norm(ref))
    mins = {f"{a}-{b}": _loewner_min(np.asarray(tensors[a]) - np.asarray(tensors[b]))
            for a, b in zip(present, present[1:])}
    gap = None
    if "linear" in tensors and "minimal" in tensors:
        gap = float(np.linalg.norm(np.asarray(tensors["linear"]) - np.asarray(tensors["minimal"])) / scale)
    return {"min_eigenvalue": mins, "holds": all(v >= -LOEWNER_TOLERANCE * scale for v in mins.values()),
            "gap": gap}


def power_fit(x: Sequence[float], y: Sequence[float]) -> dict[str, Any] | None:
    """Least-squares fit ``log y = log_prefactor + exponent log x`` over the points with
    ``y > 0``; None with fewer than two such points.

    Returns
    -------
    dict : ``exponent``, ``log_prefactor``, ``stderr`` (standard error of the exponent from
        the residuals; None with two points) and ``points`` (number of points used)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y) & (y > 0) & (x > 0)
    m = int(ok.sum())
    if m < 2:
        return None
    lx, ly = np.log(x[ok]), np.log(y[ok])
    sxx = float(((lx - lx.mean()) ** 2).sum())
    if sxx == 0.0:
        return None
    slope = float(((lx - lx.mean()) * (ly - ly.mean())).sum() / sxx)
    intercept = float(ly.mean() - slope * lx.mean())
    stderr = None
    if m > 2:
        resid = ly - intercept - slope * lx
        stderr = float(math.sqrt(float((resid**2).sum()) / (m - 2) / sxx))
    return {"exponent": slope, "log_prefactor": intercept, "stderr": stderr, "points": m}


def _from_on(ok: Sequence[bool], multiples: Sequence[float]) -> float | None:
    """The smallest multiple from which on (that one and every larger studied one) ``ok``
    holds, or None."""
    found = None
    for s, good in zip(reversed(multiples), reversed(ok)):
        if not good:
            break
        found = s
    return found


def representative_size(report: Mapping[str, Any], tolerance: float) -> dict[str, Any]:
    """The smallest studied size multiple from which on a tolerance is met, per criterion.

    - ``scatter`` (per boundary condition): the relative standard deviation of the
      headline property over the realizations, ``std / mean``, is at most ``tolerance``:
      one realization of that size is within ``tolerance`` of the mean (one standard
      deviation);
    - ``bracket``: the relative gap of the mean tensors ``||C_linear - C_minimal|| /
      ||C_periodic||`` is at most ``tolerance``: the boundary condition no longer matters
      (needs the linear and minimal conditions);
    - ``combined``: all of the above.

    "From which on" means at that size and at every larger studied size (a noisy estimate
    that dips below the tolerance once does not count). When no studied size meets a
    criterion, ``size`` is None and ``extrapolated_size`` is the multiple at which the fitted
    power law meets it (variance: ``D^2 ~ V^alpha`` with the mean of the largest size; gap:
    ``gap ~ s^beta``), None when the fit does not decay; it can fall inside the studied range
    when the measured values scatter about the fit.
    """
    multiples = [e["multiple"] for e in report["sizes"]]
    dim = report["dimension"]
    v1 = report["unit_volume"]
    out: dict[str, Any] = {"tolerance": tolerance, "scatter": {}, "bracket": None}
    for bc in report["boundaries"]:
        ok = [e["boundary"][bc]["relative_std"] <= tolerance for e in report["sizes"]]
        size, extra = _from_on(ok, multiples), None
        fit = report["fits"]["variance"].get(bc)
        if size is None and fit is not None and fit["variance_exponent_volume"] < 0:
            mean = report["sizes"][-1]["boundary"][bc]["headline_mean"]
            # D^2(V) = exp(a) V^alpha <= (tol mean)^2
            volume = math.exp((math.log((tolerance * mean) ** 2) - fit["log_prefactor"])
                              / fit["variance_exponent_volume"])
            extra = (volume / v1) ** (1.0 / dim)
        out["scatter"][bc] = {"size": size, "extrapolated_size": extra}
    gaps = [e["bracketing"]["gap_of_means"] for e in report["sizes"]]
    if all(g is not None for g in gaps):
        size, extra = _from_on([g <= tolerance for g in gaps], multiples), None
        fit = report["fits"]["gap"]
        if size is None and fit is not None and fit["gap_exponent_length"] < 0:
            extra = math.exp((math.log(tolerance) - fit["log_prefactor"]) / fit["gap_exponent_length"])
        out["bracket"] = {"size": size, "extrapolated_size": extra}
    parts = list(out["scatter"].values()) + ([out["bracket"]] if out["bracket"] is not None else [])
    if all(p["size"] is not None for p in parts):
        out["combined"] = {"size": max(p["size"] for p in parts), "extrapolated_size": None}
    else:
        known = [p["size"] if p["size"] is not None else p["extrapolated_size"] for p in parts]
        out["combined"] = {"size": None, "extrapolated_size": max(known) if all(k is not None for k in known)
                           else None}
    return out


def _realization(params: dict[str, Any], phases: Sequence[Phase], physics: str, degree: int,
                 petsc_options: Mapping[str, Any] | None, boundaries: Sequence[str], path: Path,
                 source: str, multiple: float) -> dict[str, Any]:
    """Mesh one random cell and solve its cell problems on ``MPI.COMM_SELF``."""
    start = time.perf_counter()
    try:
        info = generators.generate("random", path, **params)
    except MeshError as err:
        raise MeshError(f"{source}: key 'rve.generate' (size multiple {multiple:g}, seed {params['seed']}): "
                        f"{err}") from None
    rm = load_rve_mesh(path, MPI.COMM_SELF)
    tensors, dofs, fractions = {}, 0, {}
    for bc in boundaries:
        cp = CellProblem(rm, phases, physics=physics, degree=degree, petsc_options=petsc_options, source=source,
                         boundary=bc)
        tensors[bc] = np.array(cp.effective_tensor)
        dofs, fractions = cp.num_dofs, dict(cp.volume_fractions)
        cp.destroy()
    return {"tensors": tensors, "dofs": int(dofs), "cells": int(info.num_cells), "mesh_volume_fractions": fractions,
            "seconds": time.perf_counter() - start}


def rve_study(generate: Mapping[str, Any], phases: Sequence[Phase], comm: MPI.Comm, *,
              physics: str = "elasticity", sizes: Sequence[float] = (1.0, 2.0, 3.0), realizations: int = 8,
              boundaries: Sequence[str] = BOUNDARY_CONDITIONS, tolerance: float = 0.02, degree: int = 1,
              petsc_options: Mapping[str, Any] | None = None, seed: int | None = None,
              workdir: str | Path | None = None, source: str = "rve",
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Apparent tensors of random cells of several sizes, their statistics and the size
    that meets a tolerance (collective on ``comm``; every rank gets the whole report).

    Parameters
    ----------
    generate : generator table with ``kind`` in :data:`RANDOM_KINDS` and the parameters of
        :func:`fe2.geometry.generators.random_inclusions` (the cell of size multiple 1)
    phases : the phases of the cells (linear: tensors), tags as the generator's
        (matrix 1, inclusion 2)
    comm : the realizations are spread over its ranks (each solved on ``MPI.COMM_SELF``)
    physics : ``"elasticity"`` (small strain, plane strain in 2D) or ``"conduction"``
    sizes : size multiples ``s > 0`` (distinct), sorted increasingly in the report
    realizations : cells per size, >= 2
    boundaries : micro boundary conditions, a subset of
        :data:`fe2.micro.boundary.BOUNDARY_CONDITIONS` (reported in that order)
    tolerance : of :func:`representative_size`, > 0
    degree, petsc_options : of the cell problems (:class:`fe2.micro.cell.CellProblem`)
    seed : base seed (default: the generator table's ``seed``, else 0); realization ``k``
        of the ``i``-th size uses ``seed + i * realizations + k``
    workdir : where the meshes are written (kept), as ``size<s>_seed<seed>.msh``; default:
        a temporary folder per rank, removed at the end
    source : where the generator table came from, for error messages (e.g. the RVE file)
    log : called on rank 0 with one progress line per size (None: silent)

    Returns
    -------
    dict : JSON-able report; see the module docstring and README.md ("RVE size study")

    Raises
    ------
    ValueError
        On a bad argument (the command line checks its flags first).
    ConfigError
        When the generator is not random (:data:`RANDOM_KINDS`).
    MeshError
        On a bad generator parameter, or when a realization cannot be generated (names
        ``source``, the size and the seed); raised on every rank.
    """
    wall = time.perf_counter()
    sizes = sorted(float(s) for s in sizes)
    if not sizes or not all(math.isfinite(s) and s > 0 for s in sizes) or len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must be distinct finite numbers > 0, got {sizes}")
    if int(realizations) != realizations or realizations < 2:
        raise ValueError(f"realizations must be an integer >= 2, got {realizations!r}")
    realizations = int(realizations)
    unknown = [bc for bc in boundaries if bc not in BOUNDARY_CONDITIONS]
    if unknown or not boundaries or len(set(boundaries)) != len(boundaries):
        raise ValueError(f"boundaries must be distinct names among {', '.join(BOUNDARY_CONDITIONS)}, "
                         f"got {list(boundaries)}")
    boundaries = [bc for bc in BOUNDARY_CONDITIONS if bc in boundaries]
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    base = generator_parameters(generate, source)
    base_seed = int(base["seed"] if seed is None else seed)
    size0 = np.asarray(base["size"], dtype=float)
    dim = size0.size
    indices, headline_name = headline(physics, dim)
    unit_volume = float(np.prod(size0))
    vf = float(base["volume_fraction"])
    radius0 = math.sqrt(vf * unit_volume / (base["n"] * math.pi)) if dim == 2 else None

    def head(C: np.ndarray) -> float:
        return float(np.mean([C[i, i] for i in indices]))

    with tempfile.TemporaryDirectory(prefix="fe2-rve-study-") as tmp:
        folder = Path(tmp if workdir is None else workdir)
        entries = []
        for i, s in enumerate(sizes):
            start = time.perf_counter()
            seeds = [base_seed + i * realizations + k for k in range(realizations)]
            mine = [k for k in range(realizations) if (i * realizations + k) % comm.size == comm.rank]

            def solve(s=s, seeds=seeds, mine=mine) -> dict[int, dict[str, Any]]:
                out = {}
                for k in mine:
                    params = realization_parameters(generate, s, seeds[k])
                    out[k] = _realization(params, phases, physics, degree, petsc_options, boundaries,
                                          folder / f"size{s:g}_seed{seeds[k]}.msh", source, s)
                return out

            done: dict[int, dict[str, Any]] = {}
            for part in comm.allgather(collective(comm, solve)):
                done.update(part)
            runs = [done[k] for k in range(realizations)]
            params = realization_parameters(generate, s, seeds[0])
            n = params["n"]
            edge = [float(v) for v in params["size"]]
            volume = float(np.prod(edge))
            radius = math.sqrt(vf * volume / (n * math.pi)) if dim == 2 else None
            entry: dict[str, Any] = {
                "multiple": s, "edge": edge, "volume": volume, "inclusions": n,
                "inclusions_exact": float(base["n"] * s**dim), "radius": radius,
                "radius_change": None if radius0 is None else radius / radius0 - 1.0,
                "edge_over_radius": None if radius is None else float(min(edge) / radius),
                "volume_fraction": vf,
                "mesh_volume_fractions": {name: float(np.mean([r["mesh_volume_fractions"][name] for r in runs]))
                                          for name in runs[0]["mesh_volume_fractions"]},
                "seeds": seeds, "rank": [(i * realizations + k) % comm.size for k in range(realizations)],
                "cells": [r["cells"] for r in runs], "dofs": [r["dofs"] for r in runs],
                "seconds": [r["seconds"] for r in runs], "boundary": {},
            }
            for bc in boundaries:
                Cs = np.array([r["tensors"][bc] for r in runs])
                h = np.array([head(C) for C in Cs])
                mean, std = float(h.mean()), float(h.std(ddof=1))
                entry["boundary"][bc] = {
                    "tensors": Cs.tolist(), "mean": Cs.mean(axis=0).tolist(), "std": Cs.std(axis=0, ddof=1).tolist(),
                    "headline": h.tolist(), "headline_mean": mean, "headline_std": std,
                    "headline_variance": float(h.var(ddof=1)), "relative_std": std / abs(mean),
                    # Kanit et al. 2003: relative error of the mean of n realizations, 2 D / (Z sqrt(n)),
                    # and the n that brings it to the tolerance
                    "mean_error_95": 2.0 * std / (abs(mean) * math.sqrt(realizations)),
                    "realizations_needed": max(1, math.ceil((2.0 * std / (tolerance * abs(mean))) ** 2)),
                }
            per = [bracketing({bc: np.array(entry["boundary"][bc]["tensors"][k]) for bc in boundaries})
                   for k in range(realizations)]
            of_means = bracketing({bc: np.array(entry["boundary"][bc]["mean"]) for bc in boundaries})
            entry["bracketing"] = {
                "min_eigenvalue": {pair: [p["min_eigenvalue"][pair] for p in per]
                                   for pair in of_means["min_eigenvalue"]},
                "min_eigenvalue_of_means": of_means["min_eigenvalue"],
                "holds": all(p["holds"] for p in per) and of_means["holds"],
                "gap": None if of_means["gap"] is None else [p["gap"] for p in per],
                "gap_of_means": of_means["gap"],
            }
            entry["wall_time"] = time.perf_counter() - start
            entries.append(entry)
            if log is not None and comm.rank == 0:
                log(_progress_line(entry, boundaries, realizations))

    report: dict[str, Any] = {
        "rve": source, "physics": physics, "dimension": dim,
        "notation": "mandel" if physics_registry.get(physics).vector_field else "matrix",
        "headline": {"name": headline_name, "indices": indices},
        "generator": dict(base, kind=generate["kind"]),
        "unit_volume": unit_volume,
        "boundaries": boundaries, "realizations": realizations, "seed": base_seed,
        "seed_rule": "seed + i * realizations + k for realization k of the i-th size",
        "ranks": comm.size, "sizes": entries,
        "bracketing_holds": all(e["bracketing"]["holds"] for e in entries),
    }
    fits: dict[str, Any] = {"variance": {}, "gap": None}
    for bc in boundaries:
        fit = power_fit([e["volume"] for e in entries], [e["boundary"][bc]["headline_variance"] for e in entries])
        if fit is not None:
            # a sample variance of N values has a relative error of about sqrt(2 / (N - 1)), i.e.
            # about that much in log D^2: the exponent's sampling error is that over sqrt(S_xx)
            logv = np.log([e["volume"] for e in entries])
            sampling = math.sqrt(2.0 / (realizations - 1) / float(((logv - logv.mean()) ** 2).sum()))
            fit = {"variance_exponent_volume": fit["exponent"], "variance_exponent_length": dim * fit["exponent"],
                   "sampling_error_length": dim * sampling,
                   "stderr_length": None if fit["stderr"] is None else dim * fit["stderr"],
                   "log_prefactor": fit["log_prefactor"],
                   "variance_at_multiple_1": math.exp(fit["log_prefactor"]) * unit_volume ** fit["exponent"],
                   "points": fit["points"]}
        fits["variance"][bc] = fit
    if all(e["bracketing"]["gap_of_means"] is not None for e in entries):
        fit = power_fit(sizes, [e["bracketing"]["gap_of_means"] for e in entries])
        if fit is not None:
            fits["gap"] = {"gap_exponent_length": fit["exponent"], "stderr": fit["stderr"],
                           "log_prefactor": fit["log_prefactor"], "gap_at_multiple_1": math.exp(fit["log_prefactor"]),
                           "points": fit["points"]}
    report["fits"] = fits
    report["representative_size"] = representative_size(report, tolerance)
    report["wall_time"] = time.perf_counter() - wall
    return report


def _progress_line(entry: Mapping[str, Any], boundaries: Sequence[str], realizations: int) -> str:
    radius = f", r {entry['radius']:.4g}" if entry["radius"] is not None else ""
    stats = ", ".join(f"{bc} {b['headline_mean']:.5g} +- {b['headline_std']:.2g}"
                      for bc, b in ((bc, entry["boundary"][bc]) for bc in boundaries))
    gap = entry["bracketing"]["gap_of_means"]
    return (f"size {entry['multiple']:g} ({entry['inclusions']} inclusions{radius}, {realizations} realizations, "
            f"{int(np.mean(entry['dofs']))} DOFs): {stats}" + ("" if gap is None else f"; gap {gap:.3g}")
            + f"; {entry['wall_time']:.1f} s")


def write_plot(report: Mapping[str, Any], stem: str | Path) -> list[Path]:
    """Plot a report of :func:`rve_study` into ``stem.png`` and ``stem.pdf`` (matplotlib,
    Agg backend): the headline property's mean +- one standard deviation against the size
    multiple for each boundary condition; its variance against the cell volume (log-log)
    with the fitted power laws; the relative gap of the mean tensors against the size
    multiple (log-log) with its fit and the tolerance. Returns the files written. Not
    collective: call it on one rank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = Path(stem)
    sizes = report["sizes"]
    s = np.array([e["multiple"] for e in sizes])
    vol = np.array([e["volume"] for e in sizes])
    tol = report["representative_size"]["tolerance"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axes[0]
    for j, bc in enumerate(report["boundaries"]):
        mean = np.array([e["boundary"][bc]["headline_mean"] for e in sizes])
        std = np.array([e["boundary"][bc]["headline_std"] for e in sizes])
        ax.errorbar(s * (1 + 0.015 * (j - 1)), mean, yerr=std, marker="o", capsize=3, label=bc)
    ax.set_xlabel("size multiple s (edge / generator's edge)")
    ax.set_ylabel(report["headline"]["name"])
    ax.set_title(f"mean ± std over {report['realizations']} realizations")
    ax.legend()
    ax = axes[1]
    for bc in report["boundaries"]:
        var = np.array([e["boundary"][bc]["headline_variance"] for e in sizes])
        (line,) = ax.loglog(vol, var, "o", label=bc)
        fit = report["fits"]["variance"].get(bc)
        if fit is not None:
            vv = np.geomspace(vol.min(), vol.max(), 50)
            ax.loglog(vv, np.exp(fit["log_prefactor"]) * vv ** fit["variance_exponent_volume"], "-",
                      color=line.get_color(),
                      label=f"{bc} fit: V^{fit['variance_exponent_volume']:.2f} "
                            f"(L^{fit['variance_exponent_length']:.2f})")
    ax.set_xlabel("cell volume V")
    ax.set_ylabel("variance of the headline")
    ax.set_title(f"variance decay (expected V^-1 = L^-{report['dimension']})")
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[2]
    gaps = [e["bracketing"]["gap_of_means"] for e in sizes]
    if all(g is not None for g in gaps):
        ax.loglog(s, gaps, "o", label="||C_lin - C_min|| / ||C_per|| (means)")
        fit = report["fits"]["gap"]
        if fit is not None:
            ss = np.geomspace(s.min(), s.max(), 50)
            ax.loglog(ss, np.exp(fit["log_prefactor"]) * ss ** fit["gap_exponent_length"], "-",
                      label=f"fit: s^{fit['gap_exponent_length']:.2f}")
        ax.axhline(tol, color="k", ls=":", label=f"tolerance {tol:g}")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "needs the linear and minimal conditions", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xticks(s, [f"{v:g}" for v in s])
    ax.minorticks_off()
    ax.set_xlabel("size multiple s")
    ax.set_ylabel("relative gap of the mean tensors")
    ax.set_title("bracket gap linear - minimal")
    fig.suptitle(f"RVE size study: {report['rve']} ({report['physics']}, {report['dimension']}D)")
    fig.tight_layout()
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("png", "pdf"):
        path = stem.with_name(stem.name + f".{ext}")
        fig.savefig(path, dpi=120)
        written.append(path)
    plt.close(fig)
    return written


def table(report: dict[str, Any]) -> list[str]:
    """The lines ``fe2 rve-study`` prints for a report of :func:`rve_study`: the sizes with
    each boundary condition's headline mean and scatter, the bracketing, the fits and the
    representative size."""
    bcs = report["boundaries"]
    gen = report["generator"]
    first = report["sizes"][0]
    radius = f", radius {first['radius']:.4g}" if first.get("radius") else ""
    lines = [f"RVE size study of {report['rve']}: {report['physics']} {report['dimension']}D, random inclusions "
             f"(volume fraction {gen['volume_fraction']:g}{radius}), {report['realizations']} realizations per "
             f"size on {report['ranks']} rank{'s' if report['ranks'] > 1 else ''}, {report['wall_time']:.1f} s",
             f"headline property: {report['headline']['name']} (mean +- standard deviation over the realizations)"]
    head = f"{'size':>6} {'L/r':>6} {'incl.':>6} {'DOFs':>7}" + "".join(f"{bc:>20}" for bc in bcs)
    has_gap = report["sizes"][0]["bracketing"]["gap_of_means"] is not None
    lines.append(head + (f"{'gap':>8}" if has_gap else "") + f"{'bracket':>9}")
    for e in report["sizes"]:
        row = (f"{e['multiple']:>6g} {e['edge_over_radius'] or float('nan'):>6.3g} {e['inclusions']:>6d} "
               f"{int(sum(e['dofs']) / len(e['dofs'])):>7d}")
        for bc in bcs:
            b = e["boundary"][bc]
            row += f"{b['headline_mean']:>11.5g} +- {b['headline_std']:<6.2g}"
        if has_gap:
            row += f"{e['bracketing']['gap_of_means']:>8.3g}"
        br = e["bracketing"]
        holds = ("holds" if br["holds"] else "FAILS") if br["min_eigenvalue_of_means"] else "-"
        lines.append(row + f"{holds:>9}")
    fits = report["fits"]
    parts = []
    for bc in bcs:
        f = fits["variance"][bc]
        if f is not None:
            parts.append(f"{bc} {f['variance_exponent_length']:.2f} +- {f['sampling_error_length']:.2g}")
    if parts:
        lines.append(f"variance ~ L^alpha (expected about -{report['dimension']}; +- sampling error): "
                     + ", ".join(parts))
    if fits["gap"] is not None:
        lines.append(f"gap ~ L^{fits['gap']['gap_exponent_length']:.2f}")
    rs = report["representative_size"]

    def when(c: dict[str, Any] | None) -> str:
        if c is None:
            return "n/a"
        if c["size"] is not None:
            return f"from size {c['size']:g}"
        extra = c["extrapolated_size"]
        return "not reached" + (f" (power law: size {extra:.3g})" if extra is not None else "")

    lines.append(f"tolerance {rs['tolerance']:g}: scatter " + ", ".join(f"{bc} {when(c)}" for bc, c in
                                                                      rs["scatter"].items())
                 + f"; bracket gap {when(rs['bracket'])}; all: {when(rs['combined'])}")
    return lines
