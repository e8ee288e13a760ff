"""The package's shape: every module declares its public surface, and the registries of laws,
physics and controls agree with the configuration schema and with what the objects declare."""

import dataclasses
import importlib
import pkgutil

import numpy as np
import pytest

import fe2
from fe2.core.physics import PHYSICS
from fe2.io import config, factory
from fe2.materials.registry import LAWS
from fe2.micro.engines import ENGINES
from fe2.solvers.pathfollowing import CONTROLS

MODULES = sorted(m.name for m in pkgutil.walk_packages(fe2.__path__, "fe2.") if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_its_public_names(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list | tuple), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names {missing}, which it does not define"


#: a value for every phase parameter, to build each law from the registry
SAMPLE = {"E": 2.0, "nu": 0.3, "sigma_y": 0.01, "H_iso": 0.1, "Q": 0.005, "b": 50.0, "H_kin": 0.1,
          "E_L": 10.0, "E_T": 2.0, "nu_LT": 0.25, "nu_TT": 0.3, "G_LT": 1.5, "axis": (1.0, 1.0, 0.0),
          "kappa0": 1e-3, "softening": "linear", "kappa_u": 6e-3, "alpha": 0.99, "beta": 100.0,
          "equivalent_strain": "mises", "compression_ratio": 10.0, "viscosity": 0.1, "max_damage": 0.999,
          "k": 2.0, "grad_ref": 0.5}


def test_law_parameters_are_phase_keys_and_every_phase_key_is_used():
    keys = {f.name for f in dataclasses.fields(config.PhaseConfig)} - {"tag", "law"}
    named = set()
    for spec in LAWS.values():
        params = set(spec.required) | set(spec.optional)
        assert params <= keys, f"law {spec.name}: {params - keys} are not [rve.phases.<name>] keys"
        named |= params
    assert keys == named  # every phase key is some law's parameter


@pytest.mark.parametrize("name", list(LAWS))
@pytest.mark.parametrize("gdim", [2, 3])
def test_every_registered_law_builds_and_declares_what_the_registry_says(name, gdim):
    spec = LAWS[name]
    phase = config.PhaseConfig(tag=1, law=name, **{k: SAMPLE[k] for k in spec.required + spec.optional})
    law = factory.law(phase, gdim)
    assert law.kinematics == spec.kinematics and law.driven == spec.driven
    # the law really is what it declares: size, state, and a tangent that is symmetric iff declared
    size = {"finite": gdim * gdim, "scalar": gdim}.get(spec.kinematics, 3 if gdim == 2 else 6)
    assert law.size == size and law.initial_state(4).shape == (4, law.state_size)
    rng = np.random.default_rng(1)
    scale = 1.0 if spec.kinematics == "scalar" else 3e-3  # a gradient where the nonlinear laws are nonlinear
    grad = scale * rng.standard_normal((5, size)) + (np.eye(gdim).ravel() if spec.kinematics == "finite" else 0.0)
    flux, tangent, state = law.integrate(grad, law.initial_state(5))
    assert flux.shape == (5, size) and tangent.shape == (5, size, size) and state.shape == (5, law.state_size)
    asym = np.abs(tangent - tangent.transpose(0, 2, 1)).max() / np.abs(tangent).max()
    assert (asym < 1e-12) == law.symmetric_tangent, asym
    assert set(law.fields(state)) == set(law.output_fields.values())


def test_physics_and_control_registries_are_the_configuration_choices():
    def allowed(cls, key):
        check = {f.name: f for f in dataclasses.fields(cls)}[key].metadata["check"]
        return [v for v in list(PHYSICS) + list(CONTROLS) + list(ENGINES) + ["nonesuch"] if check(v) is None]

    assert allowed(config.RVEConfig, "physics") == list(PHYSICS)
    assert allowed(config.RVEConfig, "engine") == list(ENGINES)
    assert allowed(config.LoadingConfig, "control") == list(CONTROLS)
    reference = config.reference_markdown()
    for name in list(PHYSICS) + list(CONTROLS) + list(LAWS):
        assert f"``{name}``" in reference


def _fe2_imports() -> dict[str, set[str]]:
    """Every fe2 module and the fe2 modules it imports anywhere (top level, in functions and
    under ``TYPE_CHECKING`` alike), read from the source. The root package ``fe2`` (which
    every module's import runs first anyway; ``fe2 info`` reads its version) is left out."""
    import ast
    import importlib.util
    from pathlib import Path

    names = set(MODULES)
    graph: dict[str, set[str]] = {}
    for name in names:
        found = set()
        for node in ast.walk(ast.parse(Path(importlib.util.find_spec(name).origin).read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}  # `from package import module`
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def test_no_import_circle_inside_fe2():
    graph = _fe2_imports()
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            assert state.get(d) != 1, "import circle: " + " -> ".join(trail[trail.index(d):] + [d])
            if d not in state:
                visit(d, trail + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_engines_know_the_description_not_the_templates():
    """The micro engines import nothing of the template modules (they get the immutable
    :class:`fe2.micro.problem.MicroProblem`), and the parallel layer reaches the engines
    through their contract only."""
    graph = _fe2_imports()
    templates = {"fe2.micro.nonlinear", "fe2.micro.cell"}
    for m in (m for m in graph if m.startswith("fe2.micro.engines")):
        assert not graph[m] & templates, (m, graph[m] & templates)
    # (besides the core: its errors)
    assert {m for m in graph["fe2.parallel.balance"] if not m.startswith("fe2.core.")} <= {"fe2.micro.engines.base"}


def test_no_test_module_imports_another():
    """Shared test code lives in tests/helpers.py (and fixtures in conftest.py)."""
    import ast
    from pathlib import Path

    tests = Path(__file__).parent
    for path in sorted(tests.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0].startswith("test_") for n in names), (path.name, names)


def test_the_readme_layout_table_matches_the_tree():
    """Every module of fe2 is in README.md's layout table, and every file the table names exists."""
    import re
    from pathlib import Path

    root = Path(fe2.__file__).parent.parent
    text = (root / "README.md").read_text()
    table = text[text.index("## Layout"):text.index("## Configuration reference")]
    named, package = set(), None
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[1].startswith("`"):
            continue
        package = cells[0].strip("`") or package
        named |= {package + name for name in re.findall(r"`([\w./]+)`", cells[1])}
    tree = {str(p.relative_to(root)) for p in (root / "fe2").rglob("*.py")
            if p.name not in ("__init__.py", "__main__.py")}
    tree |= {str(p.relative_to(root)) + "/" for p in (root / "fe2").rglob("*") if p.is_dir()
             and p.name == "cases"}
    assert not tree - named, f"modules missing from README.md's layout table: {sorted(tree - named)}"
    assert all((root / n).exists() for n in named), [n for n in named if not (root / n).exists()]
