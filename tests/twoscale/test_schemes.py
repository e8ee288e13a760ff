"""Monolithic FE² (one micro Newton step per macro iterate, ``[solver] scheme``) against the
nested scheme, its reference: the same converged results on plastic, minimal-boundary,
finite-strain and thermal cases, at most one factorisation per point evaluation, and a
micro failure that cuts the step back as cleanly as a run that never tried the failed step."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core.errors import SolverError
from fe2.materials.plasticity import J2Plasticity
from fe2.micro.nonlinear import NonlinearCellProblem
from helpers import NONLINEAR_CONDUCTION, plastic_plate_case, relmax, thermal_case
from helpers import run_case as run

NEO_HOOKE = {"law": "neo_hooke", "E": 1.0, "nu": 0.3}


def plastic(boundary="periodic"):
    data = plastic_plate_case("plastic composite", checkpoint_every=0)
    data["loading"]["steps"] = 3
    data["rve"]["boundary"] = boundary
    data["output"] = {"format": "none"}
    return data


def finite_strain():
    data = plastic("periodic")
    data["rve"] = {"physics": "finite_strain", "rtol": 1e-12,
                   "generate": {"kind": "laminate", "fractions": [0.5, 0.5], "h": 0.5},
                   "phases": {"soft": dict(NEO_HOOKE, tag=1), "stiff": dict(NEO_HOOKE, tag=2, E=5.0)}}
    data["macro"]["dirichlet"][2]["value"] = 0.2
    data["loading"]["steps"] = 2
    return data


def thermal():
    data = thermal_case(NONLINEAR_CONDUCTION)
    data["rve"]["rtol"] = 1e-12
    data.setdefault("solver", {}).update({"rtol": 1e-10, "atol": 1e-14})
    return data


CASES = {"plastic": plastic, "plastic_minimal": lambda: plastic("minimal"), "finite_strain": finite_strain,
         "thermal": thermal}


def with_scheme(data, scheme):
    data.setdefault("solver", {})["scheme"] = scheme
    return data


def forces(res):
    """The reactions (heat through the boundaries) of every step, ``(steps, boundaries)``."""
    steps = res.summary["steps"]
    keys = [k for k in steps[-1] if k.startswith(("reaction_", "heat_in_"))]
    return np.array([[s[k] for k in keys] for s in steps])


@pytest.mark.parametrize("case", sorted(CASES))
def test_monolithic_ends_like_nested_with_one_factorisation_per_evaluation(tmp_path, case):
    nested = run(with_scheme(CASES[case](), "nested"), tmp=tmp_path / "nested")
    mono = run(with_scheme(CASES[case](), "monolithic"), tmp=tmp_path / "mono")
    for res in (nested, mono):
        assert res.summary["status"] == "completed"
    assert [s["load_factor"] for s in mono.summary["steps"]] == [s["load_factor"] for s in nested.summary["steps"]]
    a, b = forces(nested), forces(mono)
    assert np.abs(a - b).max() <= 1e-8 * np.abs(a).max()  # relative to the largest reaction
    assert relmax(mono.problem.u.x.array, nested.problem.u.x.array) < 1e-8
    sn, sm = (MPI.COMM_WORLD.allreduce(r.summary["rve_statistics"]["factorisations"]) for r in (nested, mono))
    solves = mono.summary["rve_statistics"]["solves"]
    assert mono.summary["rve_statistics"]["factorisations"] <= solves  # the floor: one per evaluation
    assert sm < sn


def test_micro_failure_cuts_the_monolithic_step_back_cleanly(tmp_path, monkeypatch):
    # every J2 evaluation of rank 0 with a nonzero strain fails until the first revert: the
    # step to 1 fails at its first update and is halved; the run must then go on exactly as
    # one that was asked for the load factors 0.5 and 1 from the start
    armed = {"on": MPI.COMM_WORLD.rank == 0}
    integrate, revert = J2Plasticity.integrate, NonlinearCellProblem.revert

    def failing(self, grad, state):
        if armed["on"] and np.abs(grad).max() > 0:
            raise SolverError("J2 return mapping failed (test)")
        return integrate(self, grad, state)

    def disarm(self):
        armed["on"] = False
        revert(self)

    data = with_scheme(plastic(), "monolithic")
    data["loading"]["steps"] = 1
    data["loading"]["min_step"] = 0.1
    halved = with_scheme(plastic(), "monolithic")
    halved["loading"] = {"factors": [0.5, 1.0]}
    ref = run(halved, tmp=tmp_path / "ref")
    monkeypatch.setattr(J2Plasticity, "integrate", failing)
    monkeypatch.setattr(NonlinearCellProblem, "revert", disarm)
    res = run(data, tmp=tmp_path / "cut")
    assert [s["load_factor"] for s in res.summary["steps"]] == [0.5, 1.0]
    assert np.array_equal(forces(res), forces(ref))
    assert np.array_equal(res.problem.u.x.array, ref.problem.u.x.array)


def test_a_monolithic_step_that_runs_out_of_iterations_says_how_many_rves_are_unsettled(tmp_path):
    data = with_scheme(plastic(), "monolithic")
    data["loading"] = {"factors": [1.0], "min_step": 1.0}
    data["solver"]["max_iterations"] = 2  # the macro residual and the RVEs need more
    with pytest.raises(SolverError, match=r"no convergence in 2 Newton iterations \(\d+ RVE cell problems not yet "
                                          r"converged\)"):
        run(data, tmp=tmp_path)
