"""No input crashes fe2: every entry of a catalogue of bad inputs ends in one line
``fe2: error: FILE: ...`` that names the file, the key and what is allowed, exit status 2,
no traceback, printed once (by rank 0) under MPI, on every rank, and nothing written into
an existing results folder. Run in-process through :func:`fe2.cli.main` (serially and
under ``mpirun -n 2``); the cases that hung or ended one rank only are also run as
``mpirun -n 2 fe2 ...`` processes with a time limit."""

import subprocess
import sys
from pathlib import Path

import pytest
from mpi4py import MPI

from fe2.cli import main
from helpers import ROOT, serial_env

CASE = (ROOT / "fe2" / "io" / "cases" / "plate_with_hole.toml").read_text()
for a, b in (("h = 0.08", "h = 0.3"), ("h_hole = 0.025", "h_hole = 0.15"), ("h = 0.04", "h = 0.2")):
    CASE = CASE.replace(a, b)
MESH = ('generator = "plate_with_hole"   # quarter plate [0,1]x[0,1] minus a disc of radius 0.3', 'file = "FILE"')
NOGEN = ("width = 1.0\nheight = 1.0\nradius = 0.3\nh = 0.3\nh_hole = 0.15", "")
BOTTOM = '[[macro.dirichlet]]             # symmetry: u_y = 0 on y = 0\nboundary = "bottom"\ncomponent = "y"\n'


def mesh_file(name):
    return [(MESH[0], MESH[1].replace("FILE", name)), NOGEN]


# (id, edits of the case text, text appended, what the message must say after "case.toml: ")
CATALOGUE = [
    ("traction of 3 components", [("value = [0.01, 0.0]", "value = [0.01, 0.0, 0.0]")], "",
     "key 'macro.traction[0].value' must have 2 components (x, y) for a 2D macro mesh, got [0.01, 0.0, 0.0]"),
    ("traction of 1 component", [("value = [0.01, 0.0]", "value = [0.01]")], "",
     "key 'macro.traction[0].value' must have 2 components (x, y) for a 2D macro mesh, got [0.01]"),
    ("dirichlet z in 2D", [('component = "y"', 'component = "z"')], "",
     "key 'macro.dirichlet[1].component' must be one of 'x', 'y' (or 0 to 1) for a 2D macro mesh, got 'z'"),
    ("dirichlet 2 in 2D", [('component = "y"', "component = 2")], "",
     "key 'macro.dirichlet[1].component' must be one of 'x', 'y' (or 0 to 1) for a 2D macro mesh, got 2"),
    ("3D RVE, 2D macro mesh", [('[rve.generate]\nkind = "circle"\nradius = 0.3\nh = 0.2',
                                f'mesh = "{ROOT}/meshes/sphere_3d.msh"')], "",
     f"the RVE (key 'rve.mesh' = '{ROOT}/meshes/sphere_3d.msh') is 3D but the macro mesh is 2D; the RVE must "
     "have the macro mesh's dimension"),
    ("empty macro mesh", mesh_file("empty.msh"), "",
     "key 'macro.mesh.file' = 'empty.msh': not a gmsh mesh (Could not merge file"),
    ("macro mesh not a mesh", mesh_file("words.msh"), "",
     "key 'macro.mesh.file' = 'words.msh': not a gmsh mesh ("),
    ("3D macro mesh without facet groups", mesh_file(f"{ROOT}/meshes/sphere_3d.msh"), "",
     f"key 'macro.mesh.file' = '{ROOT}/meshes/sphere_3d.msh': no physical group on its boundary surfaces, so no "
     "boundary can carry a load or a support (add a Physical Surface for each)"),
    ("2D RVE, 3D macro mesh", [(MESH[0], 'generator = "box"'), NOGEN], "",
     "the RVE (key 'rve.generate', kind 'circle') is 2D but the macro mesh is 3D; the RVE must have the macro "
     "mesh's dimension"),
    ("macro mesh without facet groups", mesh_file(f"{ROOT}/meshes/circle_2d.msh"), "",
     f"key 'macro.mesh.file' = '{ROOT}/meshes/circle_2d.msh': no physical group on its boundary curves, so no "
     "boundary can carry a load or a support (add a Physical Curve for each)"),
    ("macro mesh missing", mesh_file("nowhere.msh"), "", "key 'macro.mesh.file' = 'nowhere.msh': no such file"),
    ("macro PETSc pc_type", [], '\n[solver.petsc_options]\npc_type = "nonsense"\n',
     "key 'solver.petsc_options': PETSc cannot use {'pc_type': 'nonsense'}: Unable to find requested PC type "
     "nonsense"),
    ("macro PETSc ksp_type", [], '\n[solver.petsc_options]\nksp_type = "nonsense"\n',
     "key 'solver.petsc_options': PETSc cannot use {'ksp_type': 'nonsense'}: Unable to find requested KSP type "
     "nonsense"),
    ("RVE PETSc pc_type", [("[rve]\n", '[rve]\npetsc_options = {pc_type = "nonsense"}\n')], "",
     "key 'rve.petsc_options': PETSc cannot use {'pc_type': 'nonsense'}: Unable to find requested PC type nonsense"),
    ("RVE PETSc factoriser", [("[rve]\n", '[rve]\npetsc_options = {pc_factor_mat_solver_type = "nonsense"}\n')], "",
     "key 'rve.petsc_options': PETSc cannot use {'pc_factor_mat_solver_type': 'nonsense'}: Could not locate solver "
     "type nonsense"),
    ("factors empty", [("steps = 4", "factors = []")], "", "key 'loading.factors' must not be empty"),
    ("factors negative", [("steps = 4", "factors = [-0.5, 1.0]")], "",
     "key 'loading.factors[0]' must be > 0 (the load factors go from 0 up), got -0.5"),
    ("factors decreasing", [("steps = 4", "factors = [0.5, 1.0, 0.8]")], "",
     "key 'loading.factors[2]' must be larger than the factor before it (1.0): the load factors are pseudo-times and "
     "increase (to unload or cycle, give the loads an amplitude), got 0.8"),
    ("amplitude unknown", [("steps = 4", "steps = 4\namplitudes = {up = [[0, 0], [1, 1]]}"),
                           ('value = 0.0\n', 'value = 0.0\namplitude = "down"\n')], "",
     "key 'macro.dirichlet[0].amplitude' names amplitude 'down', which [loading.amplitudes] does not define ('up')"),
    ("amplitude times decreasing", [("steps = 4", "steps = 4\namplitudes = {up = [[0, 0], [1, 1], [0.5, 0]]}")],
     "", "key 'loading.amplitudes.up[2]' must have a time larger than the pair before it (1.0), got [0.5, 0.0]"),
    ("factors all zero", [("steps = 4", "factors = [0.0, 0.0]")], "",
     "key 'loading.factors[0]' must be > 0 (the load factors go from 0 up), got 0.0"),
    ("growth below 1", [("steps = 4", "steps = 4\ngrowth = 0.5")], "", "key 'loading.growth' must be >= 1, got 0.5"),
    ("min_step above the step", [("steps = 4", "steps = 4\nmin_step = 0.5")], "",
     "key 'loading.min_step' must not be larger than the nominal load step (0.25, end time / loading.steps = 1/4), "
     "got 0.5"),
    ("E nan", [("E = 1.0", "E = nan")], "",
     "key 'rve.phases.matrix.E' must be a finite number of magnitude at most 1e+100, got nan"),
    ("E inf", [("E = 1.0", "E = inf")], "",
     "key 'rve.phases.matrix.E' must be a finite number of magnitude at most 1e+100, got inf"),
    ("E huge", [("E = 1.0", "E = 1e300")], "",
     "key 'rve.phases.matrix.E' must be a finite number of magnitude at most 1e+100, got 1e+300"),
    ("nu nan", [("nu = 0.35", "nu = nan")], "",
     "key 'rve.phases.matrix.nu' must be a finite number of magnitude at most 1e+100, got nan"),
    ("traction huge", [("value = [0.01, 0.0]", "value = [1e300, 0.0]")], "",
     "key 'macro.traction[0].value[0]' must be a finite number of magnitude at most 1e+100, got 1e+300"),
    ("steps huge", [("steps = 4", "steps = 9223372036854775807")], "",
     "key 'loading.steps' must be an integer of magnitude at most 2147483647, got 9223372036854775807"),
    ("generator nan", [("radius = 0.3\nh = 0.2", "radius = nan\nh = 0.2")], "",
     "key 'rve.generate': parameter 'radius' of mesh kind 'circle' must be a finite number, got nan"),
    ("heat flux in a mechanical case", [], '\n[[macro.flux]]\nboundary = "top"\nvalue = 1.0\n',
     "key 'macro.flux' is a heat flux, for physics = 'conduction'; a mechanical case has [[macro.traction]]"),
    ("heat source in a mechanical case", [('material = "rve"', 'material = "rve"\nsource = 1.0')], "",
     "key 'macro.source' is a heat source, for physics = 'conduction'"),
    ("displacement without a component", [('component = "x"\n', "")], "",
     "key 'macro.dirichlet[0].component' is required for a mechanical case ('x', 'y' or 'z')"),
    ("snapshot point of 3 coordinates", [], "\n[[output.rve_snapshots]]\npoint = [0.5, 0.5, 0.5]\n",
     "key 'output.rve_snapshots[0].point' must have 2 coordinates (the macro mesh is 2D), got [0.5, 0.5, 0.5]"),
    ("snapshot point of 1 coordinate", [], "\n[[output.rve_snapshots]]\npoint = [0.5]\n",
     "key 'output.rve_snapshots[0].point' must be 2 or 3 coordinates, got [0.5]"),
    ("snapshot max of an elastic RVE", [], '\n[[output.rve_snapshots]]\nmax = "damage"\n',
     "key 'output.rve_snapshots[0].max' = 'damage' is not an internal variable of this RVE (its phases have none: "
     "they are elastic); give 'point' instead"),
    ("snapshot with point and max", [], '\n[[output.rve_snapshots]]\npoint = [0.5, 0.5]\nmax = "damage"\n',
     "key 'output.rve_snapshots[0]' needs exactly one of 'point' (macro coordinates) or 'max' (an internal "
     "variable, e.g. 'damage')"),
    ("snapshot without a point", [], '\n[[output.rve_snapshots]]\nsteps = "all"\n',
     "key 'output.rve_snapshots[0]' needs exactly one of 'point'"),
    ("snapshot steps by a name", [], '\n[[output.rve_snapshots]]\npoint = [0.5, 0.5]\nsteps = "first"\n',
     "key 'output.rve_snapshots[0].steps' must be 'last' or 'all' or a list of step numbers, got 'first'"),
    ("snapshot step 0", [], "\n[[output.rve_snapshots]]\npoint = [0.5, 0.5]\nsteps = [0, 2]\n",
     "key 'output.rve_snapshots[0].steps' must be step numbers >= 1, got [0, 2]"),
    ("snapshot name twice", [], '\n[[output.rve_snapshots]]\npoint = [0.5, 0.5]\nname = "rve2"\n'
                                "\n[[output.rve_snapshots]]\npoint = [1.0, 0.5]\n",
     "key 'output.rve_snapshots[1].name' 'rve2' is also the name of output.rve_snapshots[0]; give each snapshot its "
     "own name"),
    ("snapshot name with a slash", [], '\n[[output.rve_snapshots]]\npoint = [0.5, 0.5]\nname = "a/b"\n',
     "key 'output.rve_snapshots[0].name' must be letters, digits, '-' and '_' only, got 'a/b'"),
    ("snapshot of a single-scale run", [('material = "rve"', 'material = "homogenized"')],
     "\n[[output.rve_snapshots]]\npoint = [0.5, 0.5]\n",
     "key 'output.rve_snapshots[0]' needs macro.material = 'rve' (an RVE at every macro point); it is 'homogenized'"),
    ("ranks_per_rve not dividing the ranks", [], "\n[parallel]\nranks_per_rve = 3\n",
     "key 'parallel.ranks_per_rve' = 3 must divide the number of MPI ranks"),
    ("ranks_per_rve 0", [], "\n[parallel]\nranks_per_rve = 0\n", "key 'parallel.ranks_per_rve' must be > 0"),
    ("supports leave a translation free", [(BOTTOM + "value = 0.0\n", "")], "",
     "key 'macro.dirichlet': the supports leave the body free to move (translation in y), so the macro problem is "
     "singular; prescribe more displacement components"),
    ("two supports of one corner disagree", [],
     '\n[[macro.dirichlet]]\nboundary = "top"\ncomponent = "x"\nvalue = 0.01\n',
     "key 'macro.dirichlet': 'left' and 'top' both prescribe u_x at 1 node (0 and 0.01); a node takes one value per "
     "component, so prescribe that component on one of the two boundaries only, or the same value on both"),
    ("generator key it does not use", [("h_hole = 0.15", "h_hole = 0.15\ndepth = 0.1")], "",
     "key 'macro.mesh.depth' is not used by generator 'plate_with_hole' (its keys: width, height, thickness, "
     "order, radius, h, h_hole); for a 3D plate give 'thickness'"),
    ("generator key with a mesh file", [(MESH[0], MESH[1].replace("FILE", f"{ROOT}/meshes/circle_2d.msh"))], "",
     f"key 'macro.mesh.h' is a generator's key; a mesh file ('file' = '{ROOT}/meshes/circle_2d.msh') takes no "
     "other key"),
    ("empty results folder", [('directory = "results/plate_with_hole"', 'directory = ""')], "",
     "key 'output.directory' must not be empty (a folder path, relative to the working directory)"),
]


def folder(tmp_path) -> Path:
    return Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    return code, err


def assert_one_line(err: str, code: int, start: str, expected: str) -> None:
    """Exit status 2; rank 0 printed exactly ``start + expected...``; the others nothing."""
    assert code == 2, err
    assert "Traceback" not in err
    if MPI.COMM_WORLD.rank == 0:
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(start + expected), f"\n{lines[0]}\n{start + expected}"
    else:
        assert err == ""  # printed once


@pytest.mark.parametrize("name,edits,extra,expected", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_case_is_one_line_and_writes_nothing(tmp_path, capsys, name, edits, extra, expected):
    tmp = folder(tmp_path)
    text = CASE
    for a, b in edits:
        assert a in text, a
        text = text.replace(a, b)
    out = tmp / "results"
    if MPI.COMM_WORLD.rank == 0:
        (tmp / "case.toml").write_text(text + extra)
        (tmp / "empty.msh").write_text("")
        (tmp / "words.msh").write_text("hello\nworld\n")
        out.mkdir()
        (out / "summary.json").write_text('{"title": "the run before", "status": "completed", "steps": [{}]}\n')
        (out / "history.csv").write_text("step,load_factor\n1,1.0\n")
    MPI.COMM_WORLD.barrier()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # --overwrite: the folder's old results would go, but only once the input is good
    code, err = run_main(capsys, "run", tmp / "case.toml", "-q", "-o", out, "--overwrite")
    assert_one_line(err, code, f"fe2: error: {tmp / 'case.toml'}: ", expected)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("target,problem", [
    ("afile/sub", "'{tmp}/afile' is a file"),
    ("/dev/null", "'/dev/null' is not a folder"),
    ("/dev/null/sub", "'/dev/null' is not a folder"),
])
def test_results_folder_that_cannot_be(tmp_path, capsys, target, problem):
    tmp = folder(tmp_path)
    if MPI.COMM_WORLD.rank == 0:
        (tmp / "case.toml").write_text(CASE)
        (tmp / "afile").write_text("a file")
    MPI.COMM_WORLD.barrier()
    target = target if target.startswith("/") else f"{tmp}/{target}"
    code, err = run_main(capsys, "run", tmp / "case.toml", "-q", "-o", target)
    assert_one_line(err, code, f"fe2: error: {tmp / 'case.toml'}: ",
                    f"results folder '{target}' ([output] directory or -o): {problem.format(tmp=tmp)}; give a "
                    "folder path where fe2 may write")


def test_results_of_another_run_are_not_replaced(tmp_path, capsys):
    tmp = folder(tmp_path)
    out = tmp / "results"
    if MPI.COMM_WORLD.rank == 0:
        (tmp / "case.toml").write_text(CASE)
        out.mkdir()
        (out / "summary.json").write_text('{"title": "the run before", "status": "completed", "steps": [{}, {}]}\n')
    MPI.COMM_WORLD.barrier()
    code, err = run_main(capsys, "run", tmp / "case.toml", "-q", "-o", out)
    assert_one_line(err, code, f"fe2: error: {tmp / 'case.toml'}: ",
                    f"results folder '{out}' ([output] directory or -o) holds the results of another run 'the run "
                    "before' (status completed, 2 converged steps): continue it with --restart, replace it with "
                    "--overwrite, or give another folder with -o")
    code, err = run_main(capsys, "run", tmp / "case.toml", "-q", "-o", out, "--overwrite", "--restart")
    assert_one_line(err, code, "fe2: error: ", "give either --restart (continue the run in the results folder) or "
                                               "--overwrite (replace it), not both")


@pytest.mark.parametrize("path,problem", [
    ("{tmp}", "is a folder, not a case file (give a .toml file)"),
    (sys.executable, "not a text file (a case file is TOML text)"),
    ("{tmp}/none.toml", "no such file"),
])
def test_case_path_that_is_not_a_case(tmp_path, capsys, path, problem):
    path = path.format(tmp=folder(tmp_path))
    code, err = run_main(capsys, "run", path, "-q", "-o", folder(tmp_path) / "out")
    assert_one_line(err, code, f"fe2: error: {path}: ", problem)


@pytest.mark.parametrize("target,problem", [
    ("/dev/null/x.msh", "cannot write the mesh there: '/dev/null' is not a folder"),
    ("{tmp}/afile/x.msh", "cannot write the mesh there: '{tmp}/afile' is a file"),
])
def test_mesh_into_an_impossible_path(tmp_path, capsys, target, problem):
    tmp = folder(tmp_path)
    if MPI.COMM_WORLD.rank == 0:
        (tmp / "afile").write_text("a file")
    MPI.COMM_WORLD.barrier()
    target = target.format(tmp=tmp)
    code, err = run_main(capsys, "mesh", "circle", target)
    assert_one_line(err, code, f"fe2: error: {target}: ", problem.format(tmp=tmp))
    code, err = run_main(capsys, "mesh", "circle", tmp / "ok.msh", "--radius", "nan")
    assert_one_line(err, code, "fe2: error: ", "parameter 'radius' of mesh kind 'circle' must be a finite number, "
                                               "got nan")


ONE_RANK_ONLY = """
import sys
from fe2 import cli, twoscale
from fe2.core.errors import ConfigError

def run(cfg, comm, **kw):
    if comm.rank == 1:
        raise ConfigError("injected on rank 1 only")
    comm.barrier()  # rank 0 waits here for a rank that will never come

cli.AGREE_SECONDS = 2.0
twoscale.run = run
sys.exit(cli.main(["run", "--example", "plastic_plate", "-q"]))
"""


def mpirun(*args, cwd, script=None):
    env = serial_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", script] if script else [sys.executable, "-m", "fe2", *args]
    return subprocess.run(["mpirun", "-n", "2", *cmd], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns mpirun itself; serial run only")
def test_results_under_a_file_on_two_ranks_ends_without_hanging(tmp_path):
    (tmp_path / "case.toml").write_text(CASE)
    (tmp_path / "afile").write_text("a file")
    p = mpirun("run", "case.toml", "-o", "afile/sub", "-q", cwd=tmp_path)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("fe2:")]
    assert lines == ["fe2: error: case.toml: results folder 'afile/sub' ([output] directory or -o): 'afile' is a "
                     "file; give a folder path where fe2 may write"]
    assert "Traceback" not in p.stderr


@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns mpirun itself; serial run only")
def test_an_error_on_one_rank_only_ends_every_rank(tmp_path):
    p = mpirun(cwd=tmp_path, script=ONE_RANK_ONLY)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("fe2:")]
    assert lines == ["fe2: error: [rank 1] injected on rank 1 only"]
    assert "Traceback" not in p.stderr
