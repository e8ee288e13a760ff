"""``fe2 plot``: the default curve of a history, the plotted data, several folders, the
files written, and a one-line error for every input that cannot be plotted."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fe2.cli import main
from fe2.core.errors import ConfigError
from fe2.io import plot

ROOT_RANK = MPI.COMM_WORLD.rank == 0
PNG = b"\x89PNG\r\n\x1a\n"


def write_results(folder: Path, columns: dict, title: str | None = None, extra_rows: list | None = None) -> Path:
    """A results folder with ``history.csv`` (the columns given, plus ``control`` and
    ``residuals``, written with repr like fe2 run) and, with a ``title``, ``summary.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(columns.values())))
    keys = ["step", "load_factor", "control", "newton_iterations", *[k for k in columns if k not in
                                                                     ("step", "load_factor", "newton_iterations")],
            "residuals", "time_rve_s", "time_macro_s", "time_step_s"]
    base = {"step": [str(i + 1) for i in range(n)], "load_factor": [repr((i + 1) / n) for i in range(n)],
            "control": ["load"] * n, "newton_iterations": [str(2 + i % 3) for i in range(n)],
            "residuals": ["1.000000e+00 1.000000e-08"] * n, "time_rve_s": [repr(0.1 * (i + 1)) for i in range(n)],
            "time_macro_s": ["0.01"] * n, "time_step_s": [repr(0.1 * (i + 1) + 0.02) for i in range(n)]}
    base.update({k: [repr(float(v)) if not isinstance(v, str) else v for v in vals] for k, vals in columns.items()})
    with open(folder / "history.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for i in range(n):
            w.writerow([base[k][i] for k in keys])
        for row in extra_rows or []:
            w.writerow(row)
    if title is not None:
        (folder / "summary.json").write_text(json.dumps({"title": title, "status": "completed"}))
    return folder


#: a bar pulled at its right end (left fixed in x, bottom in y): the right end is loaded
U_RIGHT = [0.001, 0.002, 0.0035, 0.005]
PULL = {"reaction_left_x": [-0.5, -0.9, -1.1, -1.2], "reaction_bottom_y": [1e-17, -2e-17, 3e-17, 0.0],
        "reaction_right_x": [0.5, 0.9, 1.1, 1.2], "external_work": [2.5e-4, 1.2e-3, 2.7e-3, 4.4e-3],
        "displacement_left_x": [0.0] * 4, "displacement_bottom_y": [-1e-4, -2e-4, -3e-4, -4e-4],
        "displacement_right_x": U_RIGHT}


def test_numeric_columns_skip_text_and_lists_and_read_empty_values_as_nan():
    rows = [{"step": "1", "control": "load", "residuals": "1e-1", "a": "0.5", "b": "", "c": ""},
            {"step": "2", "control": "dissipation", "residuals": "1e-2", "a": "", "b": "1e300", "c": ""}]
    cols = plot.numeric_columns(rows)
    assert list(cols) == ["step", "a", "b"]  # header order; "c" has no value at all
    assert cols["step"].tolist() == [1.0, 2.0] and cols["b"][1] == 1e300
    assert cols["a"][0] == 0.5 and np.isnan(cols["a"][1]) and np.isnan(cols["b"][0])


def test_default_curve_is_the_loaded_boundary():
    cols = {k: np.array(v) for k, v in PULL.items()}
    assert plot.default_curve(cols) == ("displacement_right_x", "reaction_right_x")
    # a traction-loaded boundary whose name has an underscore, moving more: its force column
    cols.update(displacement_top_edge_y=np.array([0.0, -0.01, 0.02, 0.0]),
                force_top_edge_y=np.array([0.0, 1.0, 2.0, 3.0]))
    assert plot.default_curve(cols) == ("displacement_top_edge_y", "force_top_edge_y")
    # a displacement without a force column is no candidate
    cols["displacement_free_y"] = np.array([0.0, 0.0, 0.0, 1.0])
    assert plot.default_curve(cols) == ("displacement_top_edge_y", "force_top_edge_y")


def test_default_curve_breaks_a_displacement_tie_by_the_force():
    u = np.array([0.0, -0.5, 1.0])  # equal max |u| = 1 on both boundaries
    cols = {"load_factor": np.array([0.2, 0.5, 1.0]), "displacement_a_x": u, "reaction_a_x": np.array([0, 1, 2.0]),
            "displacement_b_y": u.copy(), "reaction_b_y": np.array([0, -1, -2.5])}
    assert plot.default_curve(cols) == ("displacement_b_y", "reaction_b_y")
    cols["reaction_b_y"] = -cols["reaction_a_x"]  # a tie in both: the first in column order
    assert plot.default_curve(cols) == ("displacement_a_x", "reaction_a_x")


def test_default_curve_for_conduction():
    cols = {"load_factor": np.array([0.5, 1.0]), "heat_in_hole": np.array([-1.0, -2.0]),
            "heat_in_top": np.array([0.7, 1.4]), "heat_source": np.array([0.3, 0.6]),
            "temperature_hole": np.array([0.0, 0.0]), "temperature_top": np.array([-5.0, -10.0])}
    assert plot.default_curve(cols) == ("temperature_top", "heat_in_top")


def test_default_curve_without_displacement_columns_falls_back_to_the_load_factor():
    cols = {k: np.array(v) for k, v in PULL.items() if not k.startswith("displacement_")}
    cols["load_factor"] = np.array([0.25, 0.5, 0.75, 1.0])
    cols["reaction_left_x"] = cols["reaction_left_x"] * 1.5  # the largest max |value|, negative
    cols["force_top_y"] = np.array([0.0, 1.0, 1.7, 0.0])
    assert plot.default_curve(cols) == ("load_factor", "reaction_left_x")
    thermal = {"load_factor": np.array([1.0]), "heat_in_hole": np.array([-2.0]), "heat_source": np.array([9.0])}
    assert plot.default_curve(thermal) == ("load_factor", "heat_in_hole")  # a source is no boundary's heat
    with pytest.raises(ConfigError, match="--x and --y"):
        plot.default_curve({"load_factor": np.array([1.0]), "external_work": np.array([1.0])})


def test_plotted_data_are_the_history_columns(tmp_path):
    folder = write_results(tmp_path / "pull", PULL, title="bar in tension")
    curve = plot.read_curve(folder)
    assert (curve.x, curve.y, curve.label) == ("displacement_right_x", "reaction_right_x", "bar in tension (pull)")
    fig = plot.make_figure([curve])
    try:
        ax_curve, ax_newton, ax_time = fig.axes[:3]
        (line,) = ax_curve.get_lines()
        # from the unloaded state (the origin), then the history's rows
        assert np.abs(np.asarray(line.get_xdata()) - np.array([0.0, *U_RIGHT])).max() <= 1e-15
        assert np.abs(np.asarray(line.get_ydata()) - np.array([0.0, *PULL["reaction_right_x"]])).max() <= 1e-15
        assert line.get_label() == "bar in tension (pull)"
        assert ax_curve.get_xlabel() == "displacement_right_x" and ax_curve.get_ylabel() == "reaction_right_x"
        assert ax_curve.get_title() == "force-displacement curve of 'right', x"
        assert [p.get_height() for p in ax_newton.patches] == [2, 3, 4, 2]
        step, rve = ax_time.get_lines()
        assert np.abs(np.asarray(step.get_ydata()) - (0.1 * np.arange(1, 5) + 0.02)).max() <= 1e-15
        assert np.abs(np.asarray(rve.get_ydata()) - 0.1 * np.arange(1, 5)).max() <= 1e-15
        assert rve.get_linestyle() == "--" and np.asarray(rve.get_xdata()).tolist() == [1, 2, 3, 4]
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_explicit_columns(tmp_path):
    folder = write_results(tmp_path / "pull", PULL)
    curve = plot.read_curve(folder, x="load_factor", y="external_work")
    assert curve.xs.tolist() == [0.25, 0.5, 0.75, 1.0] and curve.ys.tolist() == PULL["external_work"]
    assert curve.points()[0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]  # both vanish at rest
    newton = plot.read_curve(folder, x="load_factor", y="newton_iterations")
    assert newton.points()[1].tolist() == [2, 3, 4, 2]  # not a quantity of the state: no origin
    only_y = plot.read_curve(folder, y="reaction_left_x")  # x stays the default one
    assert (only_y.x, only_y.y) == ("displacement_right_x", "reaction_left_x")
    assert only_y.label == "pull"  # no summary.json: the folder's name


def test_several_folders_share_the_panels_one_colour_each(tmp_path):
    local = write_results(tmp_path / "local", PULL, title="damage bar, local")
    gradient = write_results(tmp_path / "gradient", {**PULL, "reaction_right_x": [0.4, 0.7, 0.8, 0.6]},
                             title="damage bar, gradient")
    old = write_results(tmp_path / "old" / "gradient",  # older results: no displacement columns, same name
                        {k: v[:3] for k, v in PULL.items() if not k.startswith("displacement_")})
    made = plot.plot_results([local, gradient, old], output=tmp_path / "cmp.png")
    assert made.paths == [tmp_path / "cmp.png", tmp_path / "cmp.pdf"]
    ax_curve, ax_newton, ax_time = made.figure.axes[:3]
    lines = ax_curve.get_lines()
    assert [ln.get_label() for ln in lines] == ["damage bar, local (local)",
                                                f"damage bar, gradient ({gradient})", str(old)]
    assert np.asarray(lines[1].get_ydata()).tolist() == [0.0, 0.4, 0.7, 0.8, 0.6]
    assert np.asarray(lines[2].get_xdata()).tolist() == [0.0, 1 / 3, 2 / 3, 1.0]  # the fallback: load factor
    assert np.asarray(lines[2].get_ydata()).tolist() == [0.0, -0.5, -0.9, -1.1]  # first of the equal |reactions|
    assert len({ln.get_color() for ln in lines}) == 3
    assert len(ax_newton.patches) == 4 + 4 + 3 and len(ax_time.get_lines()) == 6
    assert ax_curve.get_xlabel() == "displacement_right_x, load_factor"
    assert [t.get_text() for t in made.figure.legends[0].get_texts()] == [ln.get_label() for ln in lines]
    assert (tmp_path / "cmp.png").read_bytes()[:8] == PNG and (tmp_path / "cmp.pdf").read_bytes()[:4] == b"%PDF"


def test_output_stem(tmp_path):
    assert plot.output_stem(["res/a", "b"]) == Path("res/a/plot")
    assert plot.output_stem(["a"], "out/cmp.PDF") == Path("out/cmp")
    assert plot.output_stem(["a"], "out/cmp.v2") == Path("out/cmp.v2")
    assert plot.output_stem(["a"], "out/") == Path("out/plot")
    assert plot.output_stem(["a"], tmp_path) == tmp_path / "plot"  # an existing folder


def run_main(capsys, *argv):
    code = main(["plot", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_png_and_pdf_and_says_what(tmp_path, capsys):
    a = write_results(tmp_path / "a", PULL, title="A")
    b = write_results(tmp_path / "b", PULL)
    code, out, err = run_main(capsys, a, b, "--x", "step", "--y", "external_work")
    assert code == 0, err
    if ROOT_RANK:
        assert out.splitlines() == [f"{a}: external_work against step, 4 steps",
                                    f"{b}: external_work against step, 4 steps",
                                    f"wrote {a}/plot.png, {a}/plot.pdf"]
        assert (a / "plot.png").read_bytes()[:8] == PNG and (a / "plot.pdf").read_bytes()[:4] == b"%PDF"
    code, out, err = run_main(capsys, b, "-q", "-o", tmp_path / "new" / "b.png")
    assert code == 0 and out == "" and err == ""
    if ROOT_RANK:
        assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["b.pdf", "b.png"]


def _no_rows(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "history.csv").write_text("step,load_factor,control\n")
    return [tmp_path / "r"]


def _empty_file(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "history.csv").write_text("")
    return [tmp_path / "r"]


def _a_file(tmp_path):
    (tmp_path / "r").write_text("x")
    return [tmp_path / "r"]


def _no_history(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text("{}")
    return [tmp_path / "r"]


def _pull(tmp_path, *more):
    return [write_results(tmp_path / "r", PULL), *more]


def _under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    return _pull(tmp_path, "-o", tmp_path / "f" / "cmp")


def _no_force(tmp_path):
    return [write_results(tmp_path / "r", {"external_work": [1.0, 2.0]})]


ERRORS = {
    "missing folder": (lambda p: [write_results(p / "ok", PULL), p / "nonesuch"], "results folder '{t}/nonesuch' "
                       "does not exist"),
    "a file": (_a_file, "'{t}/r' is not a folder: give the results folder of a run"),
    "no history": (_no_history, "results folder '{t}/r' has no history.csv"),
    "header only": (_no_rows, "'{t}/r/history.csv' has no rows: the run has not converged a load step yet"),
    "empty history": (_empty_file, "'{t}/r/history.csv' has no rows"),
    "unknown column": (lambda p: _pull(p, "--y", "reaction_rigth_x"),
                       "results folder '{t}/r': --y column 'reaction_rigth_x' does not exist in history.csv; "
                       "numeric columns: step, load_factor, newton_iterations, reaction_left_x, reaction_bottom_y, "
                       "reaction_right_x, external_work, displacement_left_x, displacement_bottom_y, "
                       "displacement_right_x, time_rve_s, time_macro_s, time_step_s"),
    "non-numeric column": (lambda p: _pull(p, "--x", "residuals"),
                           "results folder '{t}/r': --x column 'residuals' is not numeric in history.csv; numeric "
                           "columns: step,"),
    "unwritable output": (_under_a_file, "cannot write the plot '{t}/f/cmp.png': '{t}/f' is a file; give another "
                          "-o STEM"),
    "nothing to plot": (_no_force, "results folder '{t}/r': no reaction_, force_ or heat_in_ column to plot; "
                        "choose the columns with --x and --y"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_cli_errors_are_one_line(tmp_path, capsys, case):
    make, message = ERRORS[case]
    code, out, err = run_main(capsys, *make(tmp_path))
    assert code == 2
    if ROOT_RANK:
        assert err.count("\n") == 1 and "Traceback" not in err and out == ""
        assert err.startswith("fe2: error: " + message.format(t=tmp_path)), err
    assert not list(tmp_path.rglob("plot.p*")) and not list(tmp_path.rglob("cmp.p*"))


def test_cli_without_matplotlib_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    code, out, err = run_main(capsys, write_results(tmp_path / "r", PULL))
    assert code == 2
    if ROOT_RANK:
        assert err.startswith("fe2: error: matplotlib is not installed") and err.count("\n") == 1
    assert not (tmp_path / "r" / "plot.png").exists()


def test_plot_of_a_real_run_draws_the_loaded_boundary_from_the_origin(tmp_path):
    """A run's own history: the moved right edge is chosen (not the fixed left one, whose
    reaction is as large), and its curve is the history's rows after the origin."""
    from mpi4py import MPI

    from helpers import run_case

    case = {"title": "pulled strip", "macro": {
        "degree": 1, "material": "matrix", "mesh": {"generator": "rectangle", "structured": 2},
        "dirichlet": [{"boundary": "left", "component": "x"}, {"boundary": "bottom", "component": "y"},
                      {"boundary": "right", "component": "x", "value": 0.02}]},
        "loading": {"steps": 3},
        "rve": {"generate": {"kind": "laminate", "dim": 2, "fractions": [0.5, 0.5], "h": 0.5},
                "phases": {"matrix": {"tag": 1, "E": 1.0, "nu": 0.3}, "b": {"tag": 2, "E": 2.0, "nu": 0.3}}},
        "output": {"format": "none"}}
    res = run_case(case, tmp=tmp_path)
    if MPI.COMM_WORLD.rank != 0:
        return
    made = plot.plot_results([tmp_path])  # rank 0's folder, where the run wrote
    (curve,) = made.curves
    assert (curve.x, curve.y) == ("displacement_right_x", "reaction_right_x")
    xs, ys = curve.points()
    steps = res.summary["steps"]
    assert xs.tolist() == pytest.approx([0.0] + [0.02 * (k + 1) / 3 for k in range(3)], rel=1e-12)
    assert ys.tolist() == pytest.approx([0.0] + [s["reaction_right_x"] for s in steps], rel=1e-12)
    assert ys[-1] > 0.005  # E ~ 1.5 times 2 % strain on a unit edge
    assert [p.name for p in made.paths] == ["plot.png", "plot.pdf"]
