"""The command line: homogenize / run / mesh / config, and one-line errors for bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fe2.cli import main
from fe2.io import config
from helpers import ROOT, serial_env

RVE_TOML = """
[rve]
physics = "elasticity"
degree = 1
[rve.generate]
kind = "laminate"
fractions = [0.5, 0.5]
normal = 1
h = 0.1
[rve.phases.soft]
tag = 1
E = 1.0
nu = 0.3
[rve.phases.stiff]
tag = 2
E = 10.0
nu = 0.3
"""


def write(tmp_path, text, name="rve.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_homogenize_json_laminate(tmp_path, capsys):
    code, out, err = run_main(capsys, "homogenize", write(tmp_path, RVE_TOML), "--json")
    assert code == 0, err
    if MPI.COMM_WORLD.rank != 0:
        return
    rep = json.loads(out)
    assert rep["notation"] == "voigt" and rep["components"] == ["xx", "yy", "xy"]
    C = np.array(rep["tensor"])
    ref = np.array([[6.493506, 1.048951, 0], [1.048951, 2.447552, 0], [0, 0, 0.699301]])
    assert np.abs(C - ref).max() < 5e-7
    assert rep["volume_fractions"]["soft"] == pytest.approx(0.5, abs=1e-12)
    assert rep["dofs"] > 0 and rep["plane_strain"] is True
    code, out, _ = run_main(capsys, "homogenize", write(tmp_path, RVE_TOML), "--json", "--notation", "mandel")
    if MPI.COMM_WORLD.rank == 0:
        assert json.loads(out)["tensor"][2][2] == pytest.approx(2 * 0.699301, abs=1e-6)


def test_homogenize_table_conduction(tmp_path, capsys):
    text = RVE_TOML.replace('"elasticity"', '"conduction"').replace("E = 1.0\nnu = 0.3", "k = 1.0").replace(
        "E = 10.0\nnu = 0.3", "k = 10.0")
    code, out, err = run_main(capsys, "homogenize", write(tmp_path, text))
    assert code == 0, err
    if MPI.COMM_WORLD.rank == 0:
        assert "5.5" in out and "1.81818" in out


def test_homogenize_boundary_conditions_on_a_conduction_laminate(tmp_path, capsys):
    # layers normal to y. Along them linear and periodic give the arithmetic mean (the
    # affine field is the exact solution); minimal, whose uniform boundary flux makes both
    # layers carry the same flux near x = 0 and 1, less. Across them periodic and minimal
    # give the harmonic mean (the piecewise-linear periodic fluctuation has zero mean
    # gradient) and linear, which forces the affine field on the sides x = 0, 1, more.
    text = RVE_TOML.replace('"elasticity"', '"conduction"').replace("E = 1.0\nnu = 0.3", "k = 1.0").replace(
        "E = 10.0\nnu = 0.3", "k = 10.0")
    K = {}
    for bc in ("linear", "periodic", "minimal"):
        code, out, err = run_main(capsys, "homogenize", write(tmp_path, text), "--json", "--boundary", bc)
        assert code == 0, err
        if MPI.COMM_WORLD.rank == 0:
            rep = json.loads(out)
            assert rep["boundary"] == bc
            K[bc] = np.array(rep["tensor"])
    if MPI.COMM_WORLD.rank == 0:
        assert K["linear"][0, 0] == pytest.approx(5.5, rel=1e-10)
        assert K["periodic"][0, 0] == pytest.approx(5.5, rel=1e-10)
        assert 1 / (0.5 + 0.05) < K["minimal"][0, 0] < 0.95 * 5.5
        assert K["periodic"][1, 1] == pytest.approx(1 / (0.5 + 0.05), rel=1e-10)
        assert K["minimal"][1, 1] == pytest.approx(1 / (0.5 + 0.05), rel=1e-10)
        assert K["linear"][1, 1] > 1.05 / (0.5 + 0.05)


@pytest.mark.parametrize("edit,message", [
    (("degree = 1", "degre = 1"), "key 'rve.degre' is not a known key (allowed here:"),
    (("degree = 1", 'degree = 1\nboundary = "dirichlet"'),
     "key 'rve.boundary' must be one of 'linear', 'periodic', 'minimal', got 'dirichlet'"),
    (("degree = 1", 'degree = "two"'), "key 'rve.degree' must be an integer, got 'two'"),
    (("E = 1.0", "E = -1.0"), "key 'rve.phases.soft.E' must be > 0, got -1.0"),
    (("nu = 0.3", "nu = 0.5"), "key 'rve.phases.soft.nu' must satisfy -1 < nu < 0.5, got 0.5"),
    (("tag = 2", "tag = 5"), "phase 'stiff' has tag 5, which no cell of RVE mesh"),
    (('kind = "laminate"', 'kind = "hexagon"'), "hexagon"),
    (("[rve.phases.soft]", "[rve.phases.soft\n"), "not valid TOML"),
])
def test_bad_rve_input_gives_one_line(tmp_path, capsys, edit, message):
    path = write(tmp_path, RVE_TOML.replace(*edit, 1))
    code, out, err = run_main(capsys, "homogenize", path)
    assert code == 2
    if MPI.COMM_WORLD.rank == 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("fe2: error: ")
        assert message in lines[0], lines[0]


def test_missing_phase_tag_names_file_and_tag(tmp_path, capsys):
    text = RVE_TOML.split("[rve.phases.stiff]")[0]
    code, _, err = run_main(capsys, "homogenize", write(tmp_path, text))
    assert code == 2
    if MPI.COMM_WORLD.rank == 0:
        assert "rve.toml: RVE mesh" in err and "cells with tag(s) [2] but no phase" in err


def test_non_periodic_mesh_rejected_via_cli(tmp_path, capsys):
    import gmsh

    msh = tmp_path / "bad.msh"
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("bad")
        gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
        gmsh.model.occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [1], 1)
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.2)
        gmsh.model.mesh.setTransfiniteCurve(2, 7)  # right edge gets 7 nodes, left keeps its own
        gmsh.model.mesh.generate(2)
        gmsh.write(str(msh))
    finally:
        gmsh.finalize()
    text = '[rve]\nmesh = "bad.msh"\n[rve.phases.m]\ntag = 1\nE = 1.0\nnu = 0.3\n'
    code, _, err = run_main(capsys, "homogenize", write(tmp_path, text))
    assert code == 2
    if MPI.COMM_WORLD.rank == 0:
        assert "is not periodic" in err and "has no partner on face" in err and "bad.msh" in err


def test_bad_case_file(tmp_path, capsys):
    text = (ROOT / "fe2" / "io" / "cases" / "plate_with_hole.toml").read_text()
    code, _, err = run_main(capsys, "run", write(tmp_path, text.replace('boundary = "right"', 'boundary = "rigth"'),
                                                  "case.toml"), "-o", tmp_path / "out", "-q")
    assert code == 2
    if MPI.COMM_WORLD.rank == 0:
        assert "boundary 'rigth' is not a boundary of the macro mesh" in err
    code, _, err = run_main(capsys, "run", write(tmp_path, text.replace("steps = 4", "steps = -4"), "c2.toml"))
    assert code == 2
    if MPI.COMM_WORLD.rank == 0:
        assert "c2.toml: key 'loading.steps' must be > 0, got -4" in err


@pytest.mark.parametrize("case,edit,message", [
    ("damage_bar", ('control = "dissipation"', 'control = "arc"'),
     "key 'loading.control' must be one of 'load', 'dissipation', got 'arc'"),
    ("plate_with_hole", ("steps = 4", 'steps = 4\ncontrol = "dissipation"'),
     "key 'loading.control' = 'dissipation' needs a material that dissipates by damage"),
    ("damage_bar", ('control = "dissipation"', 'control = "dissipation"\ndissipation_increment = -1.0'),
     "key 'loading.dissipation_increment' must be > 0, got -1.0"),
])
def test_bad_path_following_options(tmp_path, capsys, case, edit, message):
    text = (ROOT / "fe2" / "io" / "cases" / f"{case}.toml").read_text()
    assert edit[0] in text
    code, _, err = run_main(capsys, "run", write(tmp_path, text.replace(*edit), "case.toml"), "-o", tmp_path / "o")
    assert code == 2
    if MPI.COMM_WORLD.rank == 0:
        assert message in err, err


def test_print_default_case_is_a_valid_case(tmp_path, capsys):
    code, out, _ = run_main(capsys, "run", "--print-default")
    assert code == 0
    if MPI.COMM_WORLD.rank == 0:
        cfg = config.parse_case(__import__("tomllib").loads(out))
        assert cfg.macro.mesh.generator == "plate_with_hole" and cfg.macro.material == "rve"


def test_mesh_command_writes_periodic_mesh(tmp_path, capsys):
    out_msh = Path(MPI.COMM_WORLD.bcast(str(tmp_path / "c.msh"), root=0))  # under mpirun: rank 0 writes it
    code, out, err = run_main(capsys, "mesh", "circle", out_msh, "--radius", "0.2", "--h", "0.1")
    assert code == 0, err
    assert ("volume fractions" in out) == (MPI.COMM_WORLD.rank == 0)  # and prints once
    from fe2.geometry.rvemesh import load_rve_mesh, phase_volumes

    vols = phase_volumes(load_rve_mesh(out_msh, MPI.COMM_SELF))
    # an inscribed polygon with edges of at most h = 0.1: pi r^2 (1 - (h/r)^2 / 6) <= area <= pi r^2
    assert np.pi * 0.04 * (1 - 0.25 / 6) <= vols[2] <= np.pi * 0.04


def test_config_reference_in_readme_is_current(capsys):
    code, out, _ = run_main(capsys, "config")
    assert code == 0
    readme = (ROOT / "README.md").read_text()
    assert out.strip() in readme, "README.md's configuration reference differs from `fe2 config`"


@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns a separate fe2 process; serial run only")
def test_console_exit_status_and_no_traceback(tmp_path):
    env = serial_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONPATH=str(ROOT))
    path = write(tmp_path, RVE_TOML.replace("E = 1.0", "E = -1.0", 1))
    p = subprocess.run([sys.executable, "-m", "fe2", "homogenize", str(path)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert p.stderr.strip() == f"fe2: error: {path}: key 'rve.phases.soft.E' must be > 0, got -1.0"


def test_list_examples_and_print(capsys):
    code, out, _ = run_main(capsys, "run", "--list-examples")
    assert code == 0
    if MPI.COMM_WORLD.rank == 0:
        names = [line.split()[0] for line in out.strip().splitlines()]
        assert names == ["composite_beam_3d", "damage_bar", "hyperelastic_block_3d", "hyperelastic_plate",
                         "plastic_cycle", "plastic_plate", "plate_with_hole", "thermal_plate"]
    code, out, _ = run_main(capsys, "run", "--example", "plastic_plate", "--print-default")
    assert code == 0
    if MPI.COMM_WORLD.rank == 0:
        assert 'law = "j2"' in out
    code, _, err = run_main(capsys, "run", "--example", "nonesuch")
    assert code == 2
    if MPI.COMM_WORLD.rank == 0:
        assert ("no example case 'nonesuch' (examples: composite_beam_3d, damage_bar, hyperelastic_block_3d, "
                "hyperelastic_plate, plastic_cycle, plastic_plate, plate_with_hole, thermal_plate)") in err


@pytest.mark.parametrize("name", ["plastic_plate", "hyperelastic_plate", "damage_bar", "plastic_cycle"])
def test_nonlinear_examples_first_step(tmp_path, name):
    import dataclasses

    from fe2 import twoscale

    cfg = config.example_case(name)
    cfg = dataclasses.replace(cfg, loading=dataclasses.replace(cfg.loading, factors=(0.2,)),
                              output=dataclasses.replace(cfg.output, format="none"))
    out = MPI.COMM_WORLD.bcast(str(tmp_path), root=0)
    res = twoscale.run(cfg, MPI.COMM_WORLD, output=out, verbose=False)
    step = res.summary["steps"][-1]
    assert step["load_factor"] == 0.2 and step["newton_iterations"] <= 6
    assert step["reaction_right_x"] > 0
    assert step["reaction_left_x"] == pytest.approx(-step["reaction_right_x"], rel=1e-9)  # equilibrium


BUG_ON_RANK_1 = """
import sys
from fe2 import twoscale
from fe2.cli import main

def run(cfg, comm, **kw):
    if comm.rank == 1:
        raise RuntimeError("injected bug on rank 1")
    comm.barrier()  # rank 0 waits here for a rank that will never come

twoscale.run = run
sys.exit(main(["run", "--example", "plastic_plate", "-q"]))
"""


@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns mpirun itself; serial run only")
def test_a_bug_on_one_rank_ends_every_rank(tmp_path):
    env = serial_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONPATH=str(ROOT))
    p = subprocess.run(["mpirun", "-n", "2", sys.executable, "-c", BUG_ON_RANK_1], capture_output=True, text=True,
                       env=env, timeout=120, cwd=tmp_path)
    assert p.returncode != 0
    assert "fe2: internal error on rank 1; ending all ranks" in p.stderr
    assert "RuntimeError: injected bug on rank 1" in p.stderr


def test_restart_without_a_checkpoint_is_one_line(tmp_path, capsys):
    out = MPI.COMM_WORLD.bcast(str(tmp_path / "none"), root=0)
    assert main(["run", "--example", "plate_with_hole", "-q", "--restart", out]) == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert err.strip() == (f"fe2: error: {out}: no checkpoint to restart from (checkpoint/latest.json is "
                               "missing; run without --restart, or set [output] checkpoint_every > 0)")
    assert "Traceback" not in err and not Path(out).exists()  # nothing written


def test_commands_in_the_example_cases_exist():
    """Every ``fe2 ...`` command that an example case's comments advertise parses (the
    default case once advertised a ``--default-case`` that did not exist)."""
    import re

    from fe2.cli import build_parser

    found = 0
    for name in config.example_names():
        for line in config.example_text(name).splitlines():
            for cmd in re.findall(r"fe2 (run[^)#]*?)(?:\s{2,}|\)|$)", line.lstrip("# ")):
                words = cmd.split(">")[0].split()
                build_parser().parse_args(words)  # SystemExit on an unknown option
                found += 1
    assert found >= 5


def test_final_line_lists_only_what_was_written(tmp_path, capsys):
    import dataclasses

    from fe2 import twoscale

    cfg = config.default_case()
    cfg = dataclasses.replace(cfg, loading=dataclasses.replace(cfg.loading, factors=(0.5,)),
                              output=dataclasses.replace(cfg.output, format="none", checkpoint_every=0))
    out = MPI.COMM_WORLD.bcast(str(tmp_path / "run"), root=0)
    twoscale.run(cfg, MPI.COMM_WORLD, output=out, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    if MPI.COMM_WORLD.rank == 0:
        assert lines[-1].endswith(f"Results in {out}/ (history.csv, summary.json)")
        assert sorted(p.name for p in Path(out).iterdir()) == ["history.csv", "rve.msh", "summary.json"]


SMALL_CYCLE = """title = "small cycle"
[macro]
degree = 1
material = "matrix"
[macro.mesh]
generator = "rectangle"
structured = 1
[[macro.dirichlet]]
boundary = "left"
component = "x"
[[macro.dirichlet]]
boundary = "bottom"
component = "y"
[[macro.dirichlet]]
boundary = "right"
component = "x"
value = 0.01
amplitude = "cycle"
[loading]
steps = 2
[loading.amplitudes]
cycle = [[0, 0], [1, 1], [2, -1]]
[rve.generate]
kind = "laminate"
dim = 2
fractions = [0.5, 0.5]
h = 0.5
[rve.phases.matrix]
tag = 1
E = 1.0
nu = 0.3
[rve.phases.other]
tag = 2
E = 2.0
nu = 0.3
[output]
format = "none"
"""


@pytest.mark.parametrize("flag", [None, "-v", "-q"])
def test_run_prints_one_progress_line_per_step(tmp_path, capsys, flag):
    """Default: one line per converged step with the pseudo-time reached and the time left;
    -v adds the step attempts and Newton iterations; -q prints nothing."""
    folder = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    case = folder / "case.toml"
    if MPI.COMM_WORLD.rank == 0:
        case.write_text(SMALL_CYCLE)
    MPI.COMM_WORLD.barrier()
    code, out, _ = run_main(capsys, "run", case, "-o", folder / "out", *([flag] if flag else []))
    assert code == 0
    if MPI.COMM_WORLD.rank != 0 or flag == "-q":
        assert out == ""
        return
    lines = out.splitlines()
    progress = [ln for ln in lines if ln.startswith("  step ") and "[t = " in ln]
    # steps end at t = 1 and 2 (the equal steps) and at the corner t = 1 (merged): 2 steps
    assert progress[0].startswith("  step 1 [t = 1 of 2 (50 %), ")
    assert progress[1].startswith("  step 2 [t = 2 of 2 (100 %), ")
    assert len(progress) == 2 and " left]" in progress[0] and " left]" not in progress[1]
    assert "reaction_right_x = " in progress[1]
    newton = [ln for ln in lines if ln.lstrip().startswith("newton ")]
    assert (len(newton) > 0) == (flag == "-v")
    assert len(lines) == len(progress) + 7 + (len(newton) + 2 if flag == "-v" else 0)


def test_progress_estimates_the_time_left_from_the_pseudo_time_done():
    import time

    from fe2 import twoscale
    from fe2.solvers.pathfollowing import Step

    p = twoscale.Progress(t_end=4.0)
    p.clock = time.perf_counter() - 10.0  # 10 s into the run
    assert p.line(Step(1, 1.0, None, "load", 0.0, 1.0)).startswith("t = 1 of 4 (25 %), 10.0 s, about 30 s left")
    assert p.line(Step(2, 0.5, None, "load", 0.0, 1.0)).endswith("about 30 s left")  # a path that turns back
    resumed = twoscale.Progress(t_end=4.0, t_start=2.0)  # a restart at t = 2: half as much left to do
    resumed.clock = time.perf_counter() - 600.0
    assert resumed.line(Step(5, 3.0, None, "load", 0.0, 1.0)).endswith("(50 %), 600.0 s, about 10 min left")
    assert resumed.line(Step(6, 4.0, None, "load", 0.0, 1.0)).endswith("(100 %), 600.0 s")



def test_quiet_run_on_gmsh_files_prints_nothing(tmp_path, capfd):
    """-q is silent also where gmsh reads a file (here the macro mesh and the RVE mesh),
    which dolfinx's reader let gmsh announce on the terminal. The macro mesh is made of
    quadrilaterals; the pulled plate's reaction is the plane-strain closed form."""
    folder = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    msh = folder / "quads.msh"
    if MPI.COMM_WORLD.rank == 0:
        from fe2.core.meshing import gmsh_session

        with gmsh_session("quads") as gmsh:
            gmsh.model.occ.addRectangle(0, 0, 0, 2, 1)
            gmsh.model.occ.synchronize()
            for tag, n in ((1, 5), (2, 3), (3, 5), (4, 3)):  # bottom, right, top, left
                gmsh.model.mesh.setTransfiniteCurve(tag, n)
            gmsh.model.mesh.setTransfiniteSurface(1)
            gmsh.model.mesh.setRecombine(2, 1)
            gmsh.model.addPhysicalGroup(2, [1], 1, name="plate")
            for tag, name in ((1, "bottom"), (2, "right"), (4, "left")):
                gmsh.model.addPhysicalGroup(1, [tag], tag, name=name)
            gmsh.model.mesh.generate(2)
            gmsh.write(str(msh))
        case = SMALL_CYCLE.replace('generator = "rectangle"\nstructured = 1', f'file = "{msh}"')
        case = case.replace('material = "matrix"', 'material = "homogenized"')
        case = case.replace('[rve.generate]\nkind = "laminate"\ndim = 2\nfractions = [0.5, 0.5]\nh = 0.5',
                            f'[rve]\nmesh = "{ROOT}/meshes/laminate_2d.msh"')
        (folder / "case.toml").write_text(case.replace("E = 2.0", "E = 1.0"))  # one material in two layers
    MPI.COMM_WORLD.barrier()
    capfd.readouterr()
    code = main(["run", str(folder / "case.toml"), "-o", str(folder / "out"), "-q"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert out == "" and err == ""
    with open(folder / "out" / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    strain = float(rows[0]["displacement_right_x"]) / 2.0  # t = 1: u = 0.01 on a plate 2 long, 1 high
    assert strain == pytest.approx(0.005, rel=1e-12)
    assert float(rows[0]["reaction_right_x"]) == pytest.approx(strain / (1 - 0.3**2), rel=1e-10)


# --- fe2 homogenize --keep-mesh and the finite-strain tangent (issue 32's catalogue) ----------
def test_keep_mesh_writes_the_named_file_once_and_nothing_beside_it(tmp_path, capsys):
    """``--keep-mesh FILE`` writes FILE (whole: the report names it, homogenizing it again
    gives the same tensor) and leaves a file called ``rve.msh`` beside it alone (it used to
    be generated there and renamed, destroying one that was there); on 2 ranks rank 0
    writes it once."""
    shared = Path(MPI.COMM_WORLD.bcast(str(tmp_path)))  # (one folder for all ranks)
    rve = write(tmp_path, RVE_TOML)
    keep = shared / "out" / "kept.msh"
    bystander = shared / "out" / "rve.msh"
    if MPI.COMM_WORLD.rank == 0:
        bystander.parent.mkdir()
        bystander.write_text("not a mesh: must survive\n")
    MPI.COMM_WORLD.barrier()
    code, out, err = run_main(capsys, "homogenize", rve, "--json", "--keep-mesh", keep)
    assert code == 0, err
    assert bystander.read_text() == "not a mesh: must survive\n"
    assert sorted(p.name for p in keep.parent.iterdir()) == ["kept.msh", "rve.msh"]
    if MPI.COMM_WORLD.rank == 0:
        first = json.loads(out)
        assert first["mesh"] == str(keep)
    text = RVE_TOML.replace('[rve.generate]\nkind = "laminate"\nfractions = [0.5, 0.5]\nnormal = 1\nh = 0.1\n',
                            f'mesh = "{keep}"\n')
    code, out, err = run_main(capsys, "homogenize", write(tmp_path, text, "again.toml"), "--json")
    assert code == 0, err
    if MPI.COMM_WORLD.rank == 0:
        assert np.abs(np.array(json.loads(out)["tensor"]) - np.array(first["tensor"])).max() < 1e-12


@pytest.mark.parametrize("target, message", [
    ("folder", "is a folder; give the file to write"),
    ("mesh file", "names its RVE mesh"),
])
def test_keep_mesh_refuses_a_folder_and_a_case_without_a_generated_mesh(tmp_path, capsys, target, message):
    """A folder as the target, or an RVE read from a mesh file, is one line and writes nothing
    (a folder target used to crash and leave a stray ``rve.msh`` in it)."""
    folder = tmp_path / "dir"
    folder.mkdir()
    text = RVE_TOML
    if target == "mesh file":
        text = RVE_TOML.replace('[rve.generate]\nkind = "laminate"\nfractions = [0.5, 0.5]\nnormal = 1\nh = 0.1\n',
                                'mesh = "some.msh"\n')
    code, _, err = run_main(capsys, "homogenize", write(tmp_path, text),
                            "--keep-mesh", folder if target == "folder" else folder / "kept.msh")
    assert code == 2
    assert list(folder.iterdir()) == []
    if MPI.COMM_WORLD.rank == 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fe2: error: --keep-mesh") and message in lines[0], err


def test_homogenize_finite_strain_reports_dP_dF(tmp_path, capsys):
    """A finite-strain RVE's report is the tangent dP/dF at F = I by components of F (it was
    labelled a conductivity tensor): for one Neo-Hooke material, the isotropic tensor
    lambda d_ij d_kl + mu (d_ik d_jl + d_il d_jk) of its E and nu."""
    text = (RVE_TOML.replace('"elasticity"', '"finite_strain"').replace("tag = 1\n", 'tag = 1\nlaw = "neo_hooke"\n')
            .replace("tag = 2\nE = 10.0", 'tag = 2\nlaw = "neo_hooke"\nE = 1.0'))
    code, out, err = run_main(capsys, "homogenize", write(tmp_path, text), "--json")
    assert code == 0, err
    if MPI.COMM_WORLD.rank != 0:
        return
    rep = json.loads(out)
    assert rep["components"] == ["Fxx", "Fxy", "Fyx", "Fyy"] and "dP/dF" in rep["notation_note"]
    lam, mu = 0.3 / (1.3 * 0.4), 1.0 / 2.6
    d = np.eye(2)
    ref = (lam * np.einsum("ij,kl->ijkl", d, d) + mu * (np.einsum("ik,jl->ijkl", d, d)
                                                        + np.einsum("il,jk->ijkl", d, d))).reshape(4, 4)
    assert np.abs(np.array(rep["tensor"]) - ref).max() < 1e-10
