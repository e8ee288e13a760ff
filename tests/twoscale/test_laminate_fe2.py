"""Heterogeneous nonlinear FE² against an independent reference.

A laminate RVE of two J2 layers under a homogeneous macro strain path: the macro square has
roller supports on the left and bottom and prescribed normal displacements on the right and
top, so with an orthotropic homogenized material the macro strain is uniform and the
reactions are the homogenized stresses times the edge lengths. The exact laminate response
has piecewise-uniform fields: the strain components in the layer plane are the macro ones,
the components involving the layer normal differ per layer, with equal tractions across the
interface and the macro strain as their volume average. The small solver below finds them
with the point law alone (no mesh, no periodic constraint, no sensitivity problem), so an
error in the RVE's periodic condensation or its consistent tangent cannot cancel."""

import numpy as np
import pytest

from fe2.core.tensors import INDEX_PAIRS
from fe2.materials import J2Plasticity
from helpers import run_case

FRACTIONS = (0.4, 0.6)
LAYERS = {"soft": {"law": "j2", "tag": 1, "E": 1.0, "nu": 0.3, "sigma_y": 0.01, "H_iso": 0.2},
          "hard": {"law": "j2", "tag": 2, "E": 2.0, "nu": 0.25, "sigma_y": 0.02, "H_kin": 0.3, "Q": 0.004, "b": 40.0}}
E_END = np.array([0.03, -0.012, 0.0])  # Mandel [xx, yy, xy]; well past yield in both layers
STEPS = 4


def laws():
    return [J2Plasticity(p["E"], p["nu"], p["sigma_y"], 2, H_iso=p.get("H_iso", 0.0), Q=p.get("Q", 0.0),
                         b=p.get("b", 0.0), H_kin=p.get("H_kin", 0.0)) for p in LAYERS.values()]


def laminate_path(normal, path):
    """Homogenized stress of the exact two-layer laminate along the macro strain ``path``."""
    nidx = [k for k, (i, j) in enumerate(INDEX_PAIRS[2]) if normal in (i, j)]  # involve the normal
    f1, f2 = FRACTIONS
    (law1, law2), states = laws(), [None, None]
    states = [law1.initial_state(1), law2.initial_state(1)]
    e1 = np.zeros(3)
    out = []
    for E in path:
        e1 = e1.copy()
        for _ in range(50):  # Newton on layer 1's normal components
            e1[[k for k in range(3) if k not in nidx]] = E[[k for k in range(3) if k not in nidx]]
            e2 = E.copy()
            e2[nidx] = (E[nidx] - f1 * e1[nidx]) / f2
            s1, C1, t1 = law1.integrate(e1[None], states[0])
            s2, C2, t2 = law2.integrate(e2[None], states[1])
            r = s1[0, nidx] - s2[0, nidx]  # traction continuity
            if np.abs(r).max() < 1e-15:
                break
            J = C1[0][np.ix_(nidx, nidx)] + (f1 / f2) * C2[0][np.ix_(nidx, nidx)]
            e1[nidx] -= np.linalg.solve(J, r)
        else:
            raise AssertionError("the laminate reference did not converge")
        states = [t1, t2]
        out.append(f1 * s1[0] + f2 * s2[0])
    return np.array(out), states


@pytest.mark.parametrize("normal", [0, 1])
def test_two_j2_layers_fe2_equals_the_exact_laminate(tmp_path, normal):
    W = H = 1.0
    data = {
        "title": "laminate FE2",
        "macro": {"degree": 1, "mesh": {"generator": "rectangle", "width": W, "height": H, "structured": 2},
                  "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0},
                                {"boundary": "right", "component": "x", "value": E_END[0] * W},
                                {"boundary": "top", "component": "y", "value": E_END[1] * H}]},
        "rve": {"rtol": 1e-12, "generate": {"kind": "laminate", "fractions": list(FRACTIONS), "normal": normal,
                                            "h": 0.2},
                "phases": LAYERS},
        "loading": {"steps": STEPS},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 15},
        "output": {"format": "none"},
    }
    res = run_case(data, tmp=tmp_path)
    steps = res.summary["steps"]
    lam = np.array([s["load_factor"] for s in steps])
    Sigma, states = laminate_path(normal, [t * E_END for t in lam])
    assert np.all([st[0, 12] > 1e-3 for st in states])  # both layers plastic (p > 0.1 %)
    Fx = np.array([s["reaction_right_x"] for s in steps])
    Fy = np.array([s["reaction_top_y"] for s in steps])
    assert np.abs(Fx / H - Sigma[:, 0]).max() < 1e-8 * np.abs(Sigma[:, 0]).max()
    assert np.abs(Fy / W - Sigma[:, 1]).max() < 1e-8 * np.abs(Sigma).max()
    # the RVE's consistent tangent (periodic fluctuation + sensitivity correction) at every
    # macro point equals the derivative of the exact laminate's last step (central
    # differences of its stress from the state of the step before)
    path, h = [t * E_END for t in lam], 1e-7
    fd = np.empty((3, 3))
    for k in range(3):
        dE = h * np.eye(3)[k]
        fd[:, k] = (laminate_path(normal, path[:-1] + [path[-1] + dE])[0][-1]
                    - laminate_path(normal, path[:-1] + [path[-1] - dE])[0][-1]) / (2 * h)
    C = res.problem.tangent.x.array.reshape(-1, 3, 3)
    assert np.abs(C - fd).max() < 1e-8 * np.abs(fd).max()
    # a load-controlled step's first macro iterate asks every RVE for its committed answer
    # (no micro solve); as the macro strain is uniform, one full Newton step then lands on
    # the solution
    points = res.summary["macro"]["quadrature_points"]
    assert res.summary["rve_statistics"]["reused"] == (STEPS - 1) * points
    assert [s["newton_iterations"] for s in steps] == [1] * STEPS
