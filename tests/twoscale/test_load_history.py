"""Load histories: amplitudes in pseudo-time drive each macro load on its own, so unloading,
reloading, cycles and non-proportional paths are possible.

- A homogeneous J2 RVE in a 3D box under uniaxial stress, strained through a cycle,
  follows the closed-form 1D hysteresis loop of linear isotropic + kinematic hardening at
  every step (``E`` elastic slope, ``E H / (E + H)`` plastic slope, the reverse yield
  ``2 (sigma_y + H_iso p)`` below the turning point).
- A homogeneous damage RVE unloads secantly to the origin and reloads along the same
  secant without new dissipation; loading past the old maximum damages again.
- Tension then shear ends elsewhere than tension and shear together (J2, path dependent);
  with elastic phases both paths end at the same state.
- The pseudo-times the steps end at, and the amplitude tables themselves.
"""

import copy

import numpy as np
import pytest

from fe2.core.errors import ConfigError
from fe2.io import config
from fe2.macro.loads import Amplitude
from fe2.solvers.pathfollowing import load_factors
from helpers import run_case as run

LAMINATE = {"kind": "laminate", "dim": 3, "fractions": [0.5, 0.5], "normal": 1, "h": 0.5}
E, NU, SY, H_ISO, H_KIN = 1.0, 0.3, 0.01, 0.05, 0.02
J2 = {"law": "j2", "E": E, "nu": NU, "sigma_y": SY, "H_iso": H_ISO, "H_kin": H_KIN}


def uniaxial_box(phases, strain, amplitude, steps, material="rve"):
    """A unit cube on rollers (x = 0 on the left, y = 0 at the bottom, z = 0 at the back),
    its right face moved by ``strain * amplitude(t)``: uniaxial stress sigma_xx."""
    return {
        "title": "uniaxial cycle",
        "macro": {"degree": 1, "material": material,
                  "mesh": {"generator": "box", "width": 1.0, "height": 1.0, "depth": 1.0, "structured": 1},
                  "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0},
                                {"boundary": "back", "component": "z", "value": 0.0},
                                {"boundary": "right", "component": "x", "value": strain, "amplitude": "path"}]},
        "loading": {"steps": steps, "amplitudes": {"path": amplitude}},
        "rve": {"physics": "elasticity", "rtol": 1e-12, "generate": LAMINATE, "phases": phases},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 15},
        "output": {"format": "none", "checkpoint_every": 0},
    }


def hysteresis_1d(strains):
    """The closed-form 1D response of linear isotropic + kinematic hardening to a strain path
    through ``strains`` (each segment monotone): elastic slope E, and where
    |sigma - H_kin eps_p| reaches sigma_y + H_iso p, the plastic slope E H / (E + H) with
    H = H_iso + H_kin. Returns the stresses and the accumulated plastic strains."""
    eps_p = p = 0.0
    out, ps = [], []
    for eps in strains:
        trial = E * (eps - eps_p)
        f = abs(trial - H_KIN * eps_p) - (SY + H_ISO * p)
        if f > 0:
            dp = f / (E + H_ISO + H_KIN)
            eps_p += np.sign(trial - H_KIN * eps_p) * dp
            p += dp
        out.append(E * (eps - eps_p))
        ps.append(p)
    return np.array(out), np.array(ps)


def test_j2_cycle_follows_the_closed_form_hysteresis_loop(tmp_path):
    cycle = [[0, 0], [1, 1], [2, -1], [3, 0.5]]  # to +3 %, down to -3 %, back up to +1.5 %
    res = run(uniaxial_box({"a": dict(J2, tag=1), "b": dict(J2, tag=2)}, 0.03, cycle, steps=24), tmp=tmp_path)
    steps = res.summary["steps"]
    t = np.array([s["load_factor"] for s in steps])
    assert len(steps) == 24 and t[-1] == pytest.approx(3.0)
    assert {1.0, 2.0} <= {round(x, 12) for x in t}  # the turning points are steps
    eps = np.array([s["displacement_right_x"] for s in steps])
    sig = np.array([s["reaction_right_x"] for s in steps])  # unit face
    assert eps == pytest.approx(0.03 * np.array([Amplitude.from_pairs(cycle)(x) for x in t]), rel=1e-12, abs=1e-15)
    expected, p = hysteresis_1d(eps)
    assert sig == pytest.approx(expected, rel=1e-8, abs=1e-12)
    # the loop's landmarks: plastic at the turning points, Bauschinger reverse yield 2 (sigma_y + H_iso p) lower
    top, bottom = np.argmin(abs(t - 1)), np.argmin(abs(t - 2))
    assert p[top] > 0.01 and p[bottom] > p[top]
    H = H_ISO + H_KIN
    assert sig[top] == pytest.approx(SY + H * p[top], rel=1e-8)  # sigma_y + (H_iso + H_kin) eps_p on the first branch
    reverse_yield = sig[top] - 2 * (SY + H_ISO * p[top])
    assert np.all(sig[top + 1:bottom + 1] < sig[top])
    assert sig[bottom] < reverse_yield  # it did yield in reverse
    # the external work is the area under the loop (unit volume; trapezoidal in the steps, as counted), and
    # exceeds the elastic energy left at the end: the loop dissipated
    W = np.array([s["external_work"] for s in steps])
    area = np.concatenate([[0.5 * sig[0] * eps[0]], 0.5 * (sig[1:] + sig[:-1]) * np.diff(eps)]).cumsum()
    assert W == pytest.approx(area, rel=1e-9, abs=1e-15)
    assert W[-1] - sig[-1] ** 2 / (2 * E) > SY * p[-1]


def plastic_strain_1d(stresses):
    """The plastic strains of the same 1D law along a stress path (each segment monotone):
    where |sigma - H_kin eps_p| exceeds sigma_y + H_iso p, eps_p grows by the excess over
    H_iso + H_kin."""
    eps_p = p = 0.0
    out = []
    for sig in stresses:
        f = abs(sig - H_KIN * eps_p) - (SY + H_ISO * p)
        if f > 0:
            eps_p += np.sign(sig - H_KIN * eps_p) * f / (H_ISO + H_KIN)
            p += f / (H_ISO + H_KIN)
        out.append(eps_p)
    return np.array(out)


@pytest.mark.parametrize("engine", ["batched", "reference"])
def test_traction_cycle_unloads_a_homogeneous_rve_to_zero_stress(tmp_path, engine):
    """Stress control through 1.5 sigma_y, 0, -1.5 sigma_y and 0: at zero traction the RVE
    is homogeneous and stress-free at a plastic strain, so neither the macro gradient nor
    the internal forces give its residual a scale (the batched engine failed there: a
    residual of 5e-17 was above its tolerance). The strain follows sigma / E + eps_p of the
    closed-form law at every step, and is the plastic strain where the traction is 0."""
    case = uniaxial_box({"a": dict(J2, tag=1), "b": dict(J2, tag=2)}, 0.0, [[0, 0], [1, 1], [2, 0], [3, -1], [4, 0]],
                        steps=16)
    case["macro"]["dirichlet"].pop()
    case["macro"]["traction"] = [{"boundary": "right", "value": [1.5 * SY, 0.0, 0.0], "amplitude": "path"}]
    case["rve"]["engine"] = engine
    res = run(case, tmp=tmp_path)
    steps = res.summary["steps"]
    t = np.array([s["load_factor"] for s in steps])
    assert t[-1] == pytest.approx(4.0)  # (steps cut back where the macro Newton under traction needs it)
    sig = 1.5 * SY * np.array([Amplitude.from_pairs([[0, 0], [1, 1], [2, 0], [3, -1], [4, 0]])(x) for x in t])
    eps = np.array([s["displacement_right_x"] for s in steps])  # unit cube
    eps_p = plastic_strain_1d(sig)
    assert eps == pytest.approx(sig / E + eps_p, rel=1e-9, abs=1e-14)
    unloaded = np.flatnonzero(np.isclose(t, 2.0) | np.isclose(t, 4.0))
    assert eps[unloaded] == pytest.approx([0.5 * SY / (H_ISO + H_KIN), eps_p[-1]], rel=1e-9)
    assert 0 < eps[unloaded[1]] < eps[unloaded[0]] - 0.01  # the compression flowed plastically back


DAMAGE = {"law": "damage", "E": 1.0, "nu": 0.2, "kappa0": 1e-3, "softening": "exponential", "alpha": 0.99,
          "beta": 100.0}


def test_damage_unloads_secantly_and_reloads_without_new_dissipation(tmp_path):
    path = [[0, 0], [1, 1], [2, 0], [3, 1], [4, 1.5]]  # load, unload to 0, reload to the maximum, go past it
    res = run(uniaxial_box({"a": dict(DAMAGE, tag=1), "b": dict(DAMAGE, tag=2)}, 2e-3, path, steps=16),
              tmp=tmp_path)
    steps = res.summary["steps"]
    t = np.array([s["load_factor"] for s in steps])
    u = np.array([s["displacement_right_x"] for s in steps])
    f = np.array([s["reaction_right_x"] for s in steps])
    D = np.array([s["dissipated_energy"] for s in steps])
    top = np.argmin(abs(t - 1))
    secant = f[top] / u[top]
    assert secant < 0.9 * 1.0  # damaged: the secant is well below the intact stiffness (E_x ~ E for a cube)
    between = (t > 1 + 1e-9) & (t < 3 + 1e-9)  # unloading and reloading up to the old maximum
    assert between.sum() >= 6
    assert f[between] == pytest.approx(secant * u[between], rel=1e-9, abs=1e-14)  # along the secant
    assert f[np.argmin(abs(t - 2))] == pytest.approx(0.0, abs=1e-14)  # back at the origin
    assert D[between] == pytest.approx(D[top], rel=1e-12, abs=1e-16)  # no new dissipation
    assert D[-1] > D[top] * 1.01  # past the old maximum it damages again
    assert f[-1] / u[-1] < secant


def shear_box(phases, amplitudes, steps=12):
    """A unit square (plane strain) on rollers below, its top moved by ux (shear, amplitude
    ``shear``) and uy (tension, amplitude ``tension``)."""
    return {
        "title": "non-proportional",
        "macro": {"degree": 1, "material": "rve",
                  "mesh": {"generator": "rectangle", "width": 1.0, "height": 1.0, "structured": 1},
                  "dirichlet": [{"boundary": "bottom", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0},
                                {"boundary": "top", "component": "x", "value": 0.03, "amplitude": "shear"},
                                {"boundary": "top", "component": "y", "value": 0.03, "amplitude": "tension"}]},
        "loading": {"steps": steps, "amplitudes": amplitudes},
        "rve": {"physics": "elasticity", "rtol": 1e-12, "generate": {"kind": "circle", "radius": 0.3, "h": 0.15},
                "phases": phases},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 15},
        "output": {"format": "none", "checkpoint_every": 0},
    }


SEQUENTIAL = {"tension": [[0, 0], [1, 1], [2, 1]], "shear": [[0, 0], [1, 0], [2, 1]]}
PROPORTIONAL = {"tension": [[0, 0], [2, 1]], "shear": [[0, 0], [2, 1]]}


@pytest.mark.parametrize("plastic", [True, False])
def test_non_proportional_path_differs_from_the_proportional_one(tmp_path, plastic):
    phases = {"matrix": dict(J2, tag=1) if plastic else {"tag": 1, "E": 1.0, "nu": 0.3},
              "inclusion": {"tag": 2, "E": 10.0, "nu": 0.2}}
    seq = run(shear_box(phases, SEQUENTIAL), tmp=tmp_path / "seq")
    prop = run(shear_box(phases, PROPORTIONAL), tmp=tmp_path / "prop")
    a, b = seq.summary["steps"][-1], prop.summary["steps"][-1]
    for r in (a, b):  # the same end point
        assert r["displacement_top_x"] == pytest.approx(0.03, rel=1e-12)
        assert r["displacement_top_y"] == pytest.approx(0.03, rel=1e-12)
    # halfway, the sequential path is in pure tension
    mid = next(s for s in seq.summary["steps"] if abs(s["load_factor"] - 1) < 1e-12)
    assert mid["displacement_top_x"] == pytest.approx(0.0, abs=1e-15)
    # (no shear force but for the mesh's departure from the cell's square symmetry)
    assert abs(mid["reaction_top_x"]) < 1e-4 * abs(mid["reaction_top_y"])
    rel = max(abs(a[k] - b[k]) / abs(b[k]) for k in ("reaction_top_x", "reaction_top_y"))
    if plastic:
        assert rel > 0.02  # path dependence
    else:
        assert rel < 1e-9  # elastic: the end state does not depend on the path


def test_step_times_include_the_amplitude_corners():
    loading = config.LoadingConfig(steps=4, amplitudes={"a": ((0, 0), (1.3, 1), (2, -1))})
    assert load_factors(loading) == pytest.approx([0.5, 1.0, 1.3, 1.5, 2.0])
    assert load_factors(config.LoadingConfig(steps=3, end_time=6.0)) == pytest.approx([2, 4, 6])
    assert load_factors(config.LoadingConfig(steps=4)) == pytest.approx([0.25, 0.5, 0.75, 1.0])
    with_factors = config.LoadingConfig(factors=(0.5, 3.0), amplitudes={"a": ((0, 0), (1, 1), (3.0 + 1e-12, 2))})
    assert load_factors(with_factors) == [0.5, 1.0, 3.0]  # a corner within 1e-9 of a step is that step


def test_amplitude_interpolates_and_holds():
    a = Amplitude.from_pairs([[1, 2], [2, -1], [4, 0]])
    assert [a(t) for t in (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 9.0)] == pytest.approx([2, 2, 0.5, -1, -0.5, 0, 0])
    with pytest.raises(ValueError):
        Amplitude((0.0, 0.0), (1.0, 2.0))


def _case_with(loading=None, **dirichlet):
    case = copy.deepcopy(uniaxial_box({"a": dict(J2, tag=1)}, 0.01, [[0, 0], [1, 1]], steps=2))
    case["macro"]["dirichlet"][-1].update(dirichlet)
    case["loading"].update(loading or {})
    return case


@pytest.mark.parametrize("change,message", [
    ({"amplitude": "nope"}, "key 'macro.dirichlet[3].amplitude' names amplitude 'nope', which [loading.amplitudes] "
                            "does not define ('path')"),
    ({"loading": {"amplitudes": {"path": [[0, 0], [1, 1], [1, 2]]}}},
     "key 'loading.amplitudes.path[2]' must have a time larger than the pair before it (1.0), got [1.0, 2.0]"),
    ({"loading": {"amplitudes": {"path": [[0, 0, 1]]}}}, "key 'loading.amplitudes.path[0]' must be a [time, value] "
                                                          "pair, got [0.0, 0.0, 1.0]"),
    ({"loading": {"amplitudes": {"path": [[-1, 0]]}}}, "key 'loading.amplitudes.path[0]' must have a time >= 0"),
    ({"loading": {"amplitudes": {"path": []}}}, "key 'loading.amplitudes.path' must have at least one"),
    ({"loading": {"amplitudes": {"path": "up"}}}, "key 'loading.amplitudes.path' must be a list of lists of numbers"),
    ({"loading": {"factors": [1.0], "end_time": 2.0}}, "key 'loading.end_time' is not used with 'factors'"),
    ({"loading": {"control": "dissipation"}}, "key 'loading.control' = 'dissipation' needs"),
])
def test_bad_amplitudes_are_named(change, message):
    loading = change.pop("loading", None)
    with pytest.raises(ConfigError) as err:
        config.parse_case(_case_with(loading, **change), "case.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_dissipation_control_refuses_amplitudes():
    case = _case_with({"control": "dissipation"})
    case["rve"]["phases"] = {"a": dict(DAMAGE, tag=1)}
    with pytest.raises(ConfigError, match="needs proportional loads .* 'macro.dirichlet\\[3\\].amplitude' "
                                          "names an amplitude; use 'load'"):
        config.parse_case(case, "case.toml")


@pytest.mark.parametrize("material", ["rve", "a"])
def test_a_traction_cycle_turns_without_a_cut_back(tmp_path, material):
    """Stress control through 1.5 sigma_y, 0, -1.5 sigma_y and 0, FE² and single scale: where
    the load turns, the first update takes the unloading tangent (the plastic consistent
    one sent it past the other side, the iterates then jumped to and fro, and the step was
    cut back twice), so every planned step converges as planned, in at most 6 iterations,
    to the closed form."""
    path = [[0, 0], [1, 1], [2, 0], [3, -1], [4, 0]]
    case = uniaxial_box({"a": dict(J2, tag=1), "b": dict(J2, tag=2)}, 0.0, path, steps=16, material=material)
    case["macro"]["dirichlet"].pop()
    case["macro"]["traction"] = [{"boundary": "right", "value": [1.5 * SY, 0.0, 0.0], "amplitude": "path"}]
    steps = run(case, tmp=tmp_path).summary["steps"]
    planned = load_factors(config.parse_case(copy.deepcopy(case), "case").loading)
    assert [s["load_factor"] for s in steps] == pytest.approx(planned)  # no step cut back
    assert max(s["newton_iterations"] for s in steps) <= 6
    sig = 1.5 * SY * np.array([Amplitude.from_pairs(path)(x) for x in planned])
    eps = np.array([s["displacement_right_x"] for s in steps])
    assert eps == pytest.approx(sig / E + plastic_strain_1d(sig), rel=1e-9, abs=1e-14)
