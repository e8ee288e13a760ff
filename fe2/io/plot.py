"""Plots of results folders of ``fe2 run`` (``fe2 plot``), with matplotlib (Agg backend).

A results folder's ``history.csv`` has one row per converged load step. :func:`plot_results`
draws one figure of three panels from one or several folders, one colour per folder:

1. a curve of two history columns, by default the force-displacement curve of the loaded
   boundary (:func:`default_curve`), or any two numeric columns (``--x`` / ``--y``);
2. the Newton iterations of every step;
3. the wall time of every step (``time_step_s``, solid) and the part spent in the RVE
   solves (``time_rve_s``, dashed).

It writes ``STEM.png`` and ``STEM.pdf``. Input that cannot be plotted (a missing folder, no
or an empty ``history.csv``, an unknown or non-numeric column, an output path where nothing
can be written) raises :class:`~fe2.core.errors.ConfigError` with a one-line message; a
missing matplotlib raises :class:`~fe2.core.errors.Fe2Error`. Not collective: call it on
one rank.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fe2.core.errors import ConfigError, Fe2Error
from fe2.core.paths import unwritable

__all__ = ["AT_REST", "AT_REST_PREFIXES", "FORCE_PREFIXES", "Curve", "Plot", "default_curve", "folder_title",
           "make_figure", "numeric_columns", "output_stem", "plot_results", "read_curve", "read_history_columns",
           "save_figure"]

#: history columns of boundary forces: reactions on prescribed displacements, resultants of
#: applied tractions (mechanics), heat flowing in through a boundary (conduction)
FORCE_PREFIXES = ("reaction_", "force_", "heat_in_")

#: columns that are zero in the unloaded state at pseudo-time 0, where a run starts (its
#: history has no row for it): a curve of two of them starts at the origin
AT_REST_PREFIXES = (*FORCE_PREFIXES, "displacement_", "temperature_")
AT_REST = ("load_factor", "external_work", "dissipated_energy", "heat_source")

#: the suffixes of the written files
_FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class Curve:
    """The curve of one results folder: the columns ``x`` and ``y`` of its history."""

    #: the results folder, as given
    folder: Path
    #: the legend entry: the run's title (``summary.json``) and the folder's name
    label: str
    x: str
    y: str
    #: every numeric column of the history (:func:`numeric_columns`), by name
    columns: Mapping[str, np.ndarray] = field(repr=False)

    @property
    def xs(self) -> np.ndarray:
        """The values of column ``x``, one per converged step."""
        return self.columns[self.x]

    @property
    def ys(self) -> np.ndarray:
        """The values of column ``y``, one per converged step."""
        return self.columns[self.y]

    @property
    def from_rest(self) -> bool:
        """Both columns vanish in the unloaded state the run starts from (:data:`AT_REST`)."""
        return all(c in AT_REST or c.startswith(AT_REST_PREFIXES) for c in (self.x, self.y))

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """What is drawn: ``(xs, ys)``, after the origin when the curve starts :attr:`from_rest`."""
        if not self.from_rest:
            return self.xs, self.ys
        return np.concatenate([[0.0], self.xs]), np.concatenate([[0.0], self.ys])


@dataclass
class Plot:
    """What :func:`plot_results` made: the files it wrote, the figure (closed, so that
    pyplot forgets it; its axes and lines can still be read) and the curves drawn."""

    paths: list[Path]
    figure: Any
    curves: list[Curve]


def numeric_columns(rows: Sequence[Mapping[str, str | None]]) -> dict[str, np.ndarray]:
    """The numeric columns of history rows (as :func:`fe2.io.results.read_history` returns
    them: dicts of strings), as float arrays, in the order of the header. A column is numeric
    when every one of its values parses as a float, except empty ones (NaN here), and at
    least one is not empty: ``control`` is not, nor is ``residuals`` (a list per step, even
    when every list has one value)."""
    names = [k for k in (rows[0] if rows else {}) if k is not None and k != "residuals"]
    out: dict[str, np.ndarray] = {}
    for name in names:
        values = []
        for row in rows:
            text = (row.get(name) or "").strip()
            if not text:
                values.append(np.nan)
                continue
            try:
                values.append(float(text))
            except ValueError:
                break
        else:
            if any(v == v for v in values):  # not all NaN
                out[name] = np.array(values, dtype=float)
    return out


def read_history_columns(folder: str | Path) -> dict[str, np.ndarray]:
    """The numeric columns of ``folder/history.csv`` (:func:`numeric_columns`). Raises
    :class:`~fe2.core.errors.ConfigError` when ``folder`` is not a folder, has no (readable)
    ``history.csv``, or its history has no rows."""
    return numeric_columns(_history_rows(Path(folder)))


def _history_rows(d: Path) -> list[dict[str, str]]:
    if not d.exists():
        raise ConfigError(f"results folder '{d}' does not exist")
    if not d.is_dir():
        raise ConfigError(f"'{d}' is not a folder: give the results folder of a run (fe2 run -o / [output] "
                          "directory)")
    path = d / "history.csv"
    if not path.is_file():
        raise ConfigError(f"results folder '{d}' has no history.csv: not the results of fe2 run, or a run that "
                          "has not written any")
    try:
        with open(path, newline="") as fh:  # as fe2.io.results.read_history, without importing dolfinx
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read '{path}': {getattr(e, 'strerror', None) or e}") from None
    if not rows:
        raise ConfigError(f"'{path}' has no rows: the run has not converged a load step yet")
    return rows


def _peak(values: np.ndarray) -> float:
    """max |value| over the values that are not NaN (0 when there are none)."""
    a = np.abs(values[~np.isnan(values)])
    return float(a.max()) if a.size else 0.0


def default_curve(columns: Mapping[str, np.ndarray]) -> tuple[str, str]:
    """The history columns ``(x, y)`` of the force-displacement curve of the loaded boundary.

    The candidates are the pairs of a boundary's mean displacement and its force in the same
    component, ``(displacement_<b>_<c>, reaction_<b>_<c>)`` or ``(displacement_<b>_<c>,
    force_<b>_<c>)`` (a reaction before a force), and for conduction ``(temperature_<b>,
    heat_in_<b>)``. The loaded one is the pair whose first column has the largest
    ``max |value|`` over the steps; on a tie, the one whose force has; then the first in
    the history's column order. Without such a pair (results written before the
    displacement columns existed): ``x = load_factor`` and ``y`` the reaction, force or
    ``heat_in_`` column with the largest ``max |value|``. Raises
    :class:`~fe2.core.errors.ConfigError` when there is no such column either."""
    pairs = []
    for name in columns:
        for prefix, forces in (("displacement_", ("reaction_", "force_")), ("temperature_", ("heat_in_",))):
            if name.startswith(prefix) and len(name) > len(prefix):
                rest = name[len(prefix):]
                force = next((f + rest for f in forces if f + rest in columns), None)
                if force is not None:
                    pairs.append((name, force))
    if pairs:
        # max() keeps the first of equal keys: the history's column order breaks the last ties
        return max(pairs, key=lambda p: (_peak(columns[p[0]]), _peak(columns[p[1]])))
    forces = [name for name in columns if name.startswith(FORCE_PREFIXES)]
    if not forces:
        raise ConfigError("no reaction_, force_ or heat_in_ column to plot; choose the columns with --x and --y")
    x = "load_factor" if "load_factor" in columns else "step"
    return x, max(forces, key=lambda name: _peak(columns[name]))


def folder_title(folder: str | Path) -> str | None:
    """The run's ``title`` from ``folder/summary.json``, or None (no file, no title, not JSON)."""
    try:
        title = json.loads((Path(folder) / "summary.json").read_text()).get("title")
    except (OSError, ValueError, AttributeError):
        return None
    return str(title) if title else None


def _folder_name(folder: Path) -> str:
    return folder.name or folder.resolve().name or str(folder)


def read_curve(folder: str | Path, x: str | None = None, y: str | None = None, name: str | None = None) -> Curve:
    """The curve of one results folder: columns ``x`` and ``y`` of its history, each by
    default the one :func:`default_curve` chooses. ``name``: the folder's name in the legend
    (default its last path component), after the run's title if ``summary.json`` has one.
    Raises :class:`~fe2.core.errors.ConfigError` for a folder without history rows
    (:func:`read_history_columns`) and for a column that the history does not have or that
    is not numeric, naming the folder, the column and the numeric columns it has."""
    d = Path(folder)
    rows = _history_rows(d)
    columns = numeric_columns(rows)
    if x is None or y is None:
        try:
            dx, dy = default_curve(columns)
        except ConfigError as e:
            raise ConfigError(f"results folder '{d}': {e}") from None
        x, y = x or dx, y or dy
    for flag, col in (("--x", x), ("--y", y)):
        if col not in columns:
            what = "is not numeric" if col in rows[0] else "does not exist"
            raise ConfigError(f"results folder '{d}': {flag} column '{col}' {what} in history.csv; numeric "
                              f"columns: {', '.join(columns)}")
    title = folder_title(d)
    name = name or _folder_name(d)
    return Curve(folder=d, label=f"{title} ({name})" if title else name, x=x, y=y, columns=columns)


def _pyplot():
    """matplotlib's pyplot on the Agg backend; a one-line :class:`Fe2Error` without it."""
    try:
        import matplotlib
    except ImportError:
        raise Fe2Error("matplotlib is not installed: fe2 plot needs it (pip install matplotlib, or apt install "
                       "python3-matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axis_label(names: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(names))


def make_figure(curves: Sequence[Curve]):
    """The figure of :func:`plot_results` for ``curves``, one colour per curve, with one
    legend below the panels (the curves' ``label``): the curve panel (``axes[0]``: one line
    per curve, its data exactly the curve's :meth:`Curve.points`), the Newton iterations per
    step (``axes[1]``: one bar per step and curve, side by side) and the wall time per step
    (``axes[2]``: ``time_step_s`` solid, ``time_rve_s`` dashed). A history without the
    iterations or times leaves its curve out of that panel. Returns the matplotlib Figure
    (open: close it with ``matplotlib.pyplot.close``)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4 + 0.2 * len(curves)), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax_curve, ax_newton, ax_time = axes
    width = 0.8 / len(curves)
    for k, c in enumerate(curves):
        colour = colours[k % len(colours)]
        ax_curve.plot(*c.points(), "o-", ms=3, color=colour, label=c.label)
        step = c.columns.get("step", np.arange(1.0, len(c.xs) + 1))
        if "newton_iterations" in c.columns:
            ax_newton.bar(step + (k - (len(curves) - 1) / 2) * width, c.columns["newton_iterations"], width=width,
                          color=colour, label=c.label)
        if "time_step_s" in c.columns:
            ax_time.plot(step, c.columns["time_step_s"], "-", color=colour, label=f"{c.label}: step")
        if "time_rve_s" in c.columns:
            ax_time.plot(step, c.columns["time_rve_s"], "--", color=colour, label=f"{c.label}: RVE solves")
    pairs = {(c.x, c.y) for c in curves}
    ax_curve.set_title(_curve_title(*pairs.pop()) if len(pairs) == 1 else "history columns")
    ax_curve.locator_params(axis="x", nbins=6)  # long tick labels (-0.0075) must not run into each other
    ax_curve.set_xlabel(_axis_label([c.x for c in curves]))
    ax_curve.set_ylabel(_axis_label([c.y for c in curves]))
    ax_newton.set_xlabel("step")
    ax_newton.set_ylabel("Newton iterations")
    ax_newton.set_title("Newton iterations per step")
    ax_newton.yaxis.get_major_locator().set_params(integer=True)
    ax_time.set_xlabel("step")
    ax_time.set_ylabel("wall time [s]")
    ax_time.set_title("wall time per step (solid: step, dashed: RVE solves)")
    ax_time.set_ylim(bottom=0.0)
    for ax in (ax_newton, ax_time):
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = ax_curve.get_legend_handles_labels()
    try:
        fig.legend(handles, labels, loc="outside lower center", ncols=1 if len(curves) > 2 else len(curves))
    except ValueError:  # matplotlib < 3.7: no "outside" placement
        fig.legend(handles, labels, loc="lower center", ncols=1 if len(curves) > 2 else len(curves))
    return fig


def _curve_title(x: str, y: str) -> str:
    for prefix, what in (("displacement_", "force-displacement curve"), ("temperature_", "heat-temperature curve")):
        if x.startswith(prefix):
            rest = x[len(prefix):]
            if prefix == "displacement_" and rest[-2:] in ("_x", "_y", "_z"):
                return f"{what} of '{rest[:-2]}', {rest[-1]}"
            return f"{what} of '{rest}'"
    return f"{y} against {x}"


def output_stem(folders: Sequence[str | Path], output: str | Path | None = None) -> Path:
    """Where :func:`plot_results` writes: ``output`` without a ``.png`` / ``.pdf`` suffix
    (``FOLDER/plot`` when ``output`` is an existing folder or ends with a slash), by default
    ``<first folder>/plot``."""
    if output is None:
        return Path(folders[0]) / "plot"
    text = str(output)
    stem = Path(text)
    if text.endswith(("/", "\\")) or stem.is_dir():
        return stem / "plot"
    if stem.suffix.lower() in {f".{ext}" for ext in _FORMATS}:
        stem = stem.with_suffix("")
    return stem


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``fig`` to ``stem.png`` and ``stem.pdf`` (creating the folder); the paths.
    Raises :class:`~fe2.core.errors.ConfigError` when they cannot be written."""
    stem = Path(stem)
    problem = unwritable(stem.parent)
    if problem:
        raise ConfigError(f"cannot write the plot '{stem}.png': {problem}; give another -o STEM")
    written = []
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        for ext in _FORMATS:
            path = stem.with_name(f"{stem.name}.{ext}")
            fig.savefig(path, dpi=120)
            written.append(path)
    except OSError as e:
        raise ConfigError(f"cannot write the plot '{stem}.png': {e.strerror or e}; give another -o STEM") from None
    return written


def plot_results(folders: Sequence[str | Path], output: str | Path | None = None, x: str | None = None,
                 y: str | None = None) -> Plot:
    """Plot the results folders ``folders`` (one colour each) into ``STEM.png`` and
    ``STEM.pdf`` (:func:`output_stem`: by default ``plot.png`` and ``plot.pdf`` in the first
    folder). ``x``, ``y``: the history columns of the curve panel; each one not given is
    chosen per folder by :func:`default_curve`. Legend: each run's title and the folder's
    name (its path as given when two folders share a name). Every folder is read and checked
    before anything is drawn or written. Raises :class:`~fe2.core.errors.ConfigError` for
    input that cannot be plotted and :class:`~fe2.core.errors.Fe2Error` without matplotlib."""
    if not folders:
        raise ConfigError("no results folder to plot")
    paths = [Path(f) for f in folders]
    names = [_folder_name(p) for p in paths]
    curves = [read_curve(p, x, y, name=str(p) if names.count(n) > 1 else n) for p, n in zip(paths, names)]
    stem = output_stem(paths, output)
    problem = unwritable(stem.parent)
    if problem:
        raise ConfigError(f"cannot write the plot '{stem}.png': {problem}; give another -o STEM")
    plt = _pyplot()
    fig = make_figure(curves)
    try:
        written = save_figure(fig, stem)
    finally:
        plt.close(fig)
    return Plot(paths=written, figure=fig, curves=curves)
