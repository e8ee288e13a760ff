"""Nonlinear FE² runs: homogeneous RVEs reproduce single-scale laws, macro Newton converges
quadratically, failed steps are cut back, and 1 and 2 ranks agree."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fe2 import twoscale
from fe2.core.errors import SolverError
from fe2.materials.base import PointMaterial
from helpers import gathered_field, quadratic_constants, relmax, serial_and_parallel
from helpers import run_case as run

J2 = {"law": "j2", "E": 1.0, "nu": 0.3, "sigma_y": 0.01, "H_iso": 0.2, "Q": 0.005, "b": 50.0, "H_kin": 0.1}


def case_data(rve_phases, physics="elasticity", material="rve", mesh=None, steps=3, ux=0.03, rve_generate=None):
    return {
        "title": "nonlinear test",
        "macro": {
            "degree": 1,
            "material": material,
            "mesh": mesh or {"generator": "plate_with_hole", "h": 0.3, "h_hole": 0.15, "radius": 0.3},
            "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                          {"boundary": "bottom", "component": "y", "value": 0.0},
                          {"boundary": "right", "component": "x", "value": ux}],
        },
        "loading": {"steps": steps},
        "rve": {"physics": physics, "rtol": 1e-12,
                "generate": rve_generate or {"kind": "laminate", "fractions": [0.5, 0.5], "h": 0.5},
                "phases": rve_phases},
        "solver": {"rtol": 1e-10, "atol": 1e-14, "max_iterations": 12},
        "output": {"format": "none"},
    }


NEO_HOOKE = {"law": "neo_hooke", "E": 1.0, "nu": 0.3}


@pytest.mark.parametrize("physics,law", [("elasticity", J2), ("finite_strain", NEO_HOOKE)])
def test_homogeneous_rve_reproduces_single_scale(tmp_path, physics, law):
    phases = {"a": dict(law, tag=1), "b": dict(law, tag=2)}
    ux = 0.03 if physics == "elasticity" else 0.25
    fe2 = run(case_data(phases, physics, "rve", ux=ux), tmp=tmp_path / "fe2")
    single = run(case_data(phases, physics, "a", ux=ux), tmp=tmp_path / "single")
    assert fe2.summary["status"] == single.summary["status"] == "completed"
    assert relmax(fe2.problem.u.x.array, single.problem.u.x.array) < 1e-8
    for a, b in zip(fe2.summary["steps"], single.summary["steps"]):
        assert a["load_factor"] == b["load_factor"]
        assert a["reaction_right_x"] == pytest.approx(b["reaction_right_x"], rel=1e-8)
    if physics == "elasticity":  # really plastic: the reaction-displacement curve bends
        r = [s["reaction_right_x"] for s in single.summary["steps"]]
        assert r[2] - r[1] < 0.8 * r[0]


#: the bound of e_{k+1} / e_k^2 of the macro residuals. The monolithic scheme's is larger: its
#: macro residual does not see the error of the micro fluctuations, which the coupled Newton
#: reduces together with the macro one (linear convergence at rate c would give c / e_k there,
#: 1e4 and more at these residuals)
QUADRATIC = {"nested": 10.0, "monolithic": 30.0}


@pytest.mark.parametrize("scheme", ["nested", "monolithic"])
def test_macro_newton_converges_quadratically_on_plastic_fe2(tmp_path, scheme):
    phases = {"matrix": dict(J2, tag=1), "inclusion": {"law": "elastic", "tag": 2, "E": 10.0, "nu": 0.2}}
    data = case_data(phases, ux=0.03, rve_generate={"kind": "circle", "radius": 0.3, "h": 0.2})
    data["solver"]["scheme"] = scheme
    res = run(data, tmp=tmp_path)
    steps = res.summary["steps"]
    assert res.summary["status"] == "completed" and steps[-1]["load_factor"] == 1.0
    constants = [c for s in steps for c in quadratic_constants(s["residuals"])]
    assert len(constants) >= 3, "too few iterations in the asymptotic range"
    assert max(constants) < QUADRATIC[scheme], constants  # e_{k+1} <= C e_k^2
    assert max(s["newton_iterations"] for s in steps) <= 6
    stats = res.summary["rve_statistics"]
    if scheme == "monolithic":  # the factorisation floor: at most one per point evaluation
        assert 0 < stats["factorisations"] <= stats["solves"]


class FailsOnLargeIncrements(PointMaterial):
    """Wraps a macro material: a strain increment (from the committed state) above
    ``limit`` at any point fails like a diverged RVE would."""

    def __init__(self, inner, limit):
        self.inner, self.limit = inner, limit
        self.size, self.kinematics = inner.size, getattr(inner, "kinematics", "small")
        self.committed = self.trial = None
        self.failures = 0

    def evaluate(self, E):
        if self.committed is None:
            self.committed = np.zeros_like(E)
        jump = np.abs(E - self.committed).max(axis=1)
        if jump.max() > self.limit:
            self.failures += 1
            err = SolverError(f"RVE at macro point {int(jump.argmax())}: increment too large (test)")
            err.point = int(jump.argmax())
            raise err
        self.trial = E.copy()
        return self.inner.evaluate(E)

    def commit(self):
        self.committed = self.trial.copy()
        self.inner.commit()

    def revert(self):
        self.inner.revert()


def test_failed_increment_is_cut_back_and_run_completes(tmp_path, monkeypatch):
    phases = {"a": {"tag": 1, "E": 1.0, "nu": 0.3}, "b": {"tag": 2, "E": 1.0, "nu": 0.3}}
    data = case_data(phases, ux=0.03, steps=1)
    ref = run(data, tmp=tmp_path / "ref")  # linear: one step to the end
    eps_max = MPI.COMM_WORLD.allreduce(np.abs(ref.problem.strains_at_points()).max(), op=MPI.MAX)
    limit = 0.3 * eps_max  # so increments of at most 0.3 in load factor converge
    wrapped = {}
    original = twoscale.choose_material

    def choose(cfg, rve, comm):
        mat, note = original(cfg, rve, comm)
        wrapped["m"] = FailsOnLargeIncrements(mat, limit)
        return wrapped["m"], note

    monkeypatch.setattr(twoscale, "choose_material", choose)
    res = run(data, tmp=tmp_path / "cut")
    lf = [0.0] + [s["load_factor"] for s in res.summary["steps"]]
    assert res.summary["status"] == "completed" and lf[-1] == 1.0
    # 1 -> 0.5 -> 0.25 before the first converged step (on the rank holding the largest strain)
    assert MPI.COMM_WORLD.allreduce(wrapped["m"].failures, op=MPI.MAX) >= 2
    assert lf[1] == 0.25
    assert max(np.diff(lf)) <= 0.3 + 1e-12 and len(lf) > 4
    # path independence of the linear problem: the same end state as one step
    assert relmax(res.problem.u.x.array, ref.problem.u.x.array) < 1e-10


def test_run_that_cannot_proceed_stops_with_message_and_keeps_steps(tmp_path):
    phases = {"matrix": dict(J2, tag=1), "inclusion": {"law": "elastic", "tag": 2, "E": 10.0, "nu": 0.2}}
    data = case_data(phases, ux=0.03, steps=2, rve_generate={"kind": "circle", "radius": 0.3, "h": 0.2})
    data["loading"]["factors"] = [0.3, 1.0]
    data["loading"]["min_step"] = 0.3  # the smallest allowed: the nominal step (0.3) may not be cut below it
    data["solver"]["max_iterations"] = 2
    data["output"] = {"format": "xdmf"}
    # two Newton iterations are too few for the first step; half of it would be below min_step
    with pytest.raises(Exception, match=r"cannot proceed beyond load factor 0: the step to 0\.3 failed .* below "
                                        r"min_step = 0\.3; 0 converged steps are saved"):
        run(data, tmp=tmp_path)
    if MPI.COMM_WORLD.rank == 0:
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["status"] == "failed"
        assert (tmp_path / "fields.xdmf").exists()


def assert_same_displacement_and_reactions(serial, parallel):
    xs, vs = gathered_field(serial.problem.u, MPI.COMM_SELF)
    xp, vp = gathered_field(parallel.problem.u, MPI.COMM_WORLD)
    assert np.array_equal(xs, xp)
    assert np.abs(vs - vp).max() < 1e-8 * np.abs(vs).max()
    for s, p in zip(serial.summary["steps"], parallel.summary["steps"], strict=True):
        assert p["reaction_right_x"] == pytest.approx(s["reaction_right_x"], rel=1e-8)


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
@pytest.mark.parametrize("boundary", ["periodic", "minimal"])
def test_plastic_fe2_one_and_two_ranks_agree(tmp_path, boundary):
    phases = {"matrix": dict(J2, tag=1), "inclusion": {"law": "elastic", "tag": 2, "E": 10.0, "nu": 0.2}}
    data = case_data(phases, ux=0.03, steps=2, rve_generate={"kind": "circle", "radius": 0.3, "h": 0.2})
    data["rve"]["boundary"] = boundary
    assert_same_displacement_and_reactions(*serial_and_parallel(data, tmp_path))


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_finite_strain_fe2_one_and_two_ranks_agree(tmp_path):
    phases = {"soft": dict(NEO_HOOKE, tag=1), "stiff": dict(NEO_HOOKE, tag=2, E=5.0)}  # a heterogeneous laminate
    data = case_data(phases, physics="finite_strain", ux=0.2, steps=2)
    assert_same_displacement_and_reactions(*serial_and_parallel(data, tmp_path))


@pytest.mark.parametrize("scheme", ["nested", "monolithic"])
def test_batched_engine_equals_the_reference_path_on_1_and_2_ranks(tmp_path, scheme):
    # a plastic composite plate: every macro point runs the batched micro Newton, or the
    # reference path (``rve.engine = "reference"``); both on one rank and on all ranks
    phases = {"matrix": dict(J2, tag=1), "inclusion": {"law": "elastic", "tag": 2, "E": 10.0, "nu": 0.2}}
    data = case_data(phases, ux=0.03, rve_generate={"kind": "circle", "radius": 0.3, "h": 0.2})
    data["solver"]["scheme"] = scheme
    ref_data = json.loads(json.dumps(data))
    ref_data["rve"]["engine"] = "reference"
    base = MPI.COMM_WORLD.bcast(str(tmp_path), root=0)
    new_s, new_p = serial_and_parallel(data, f"{base}/new")
    ref = run(ref_data, MPI.COMM_SELF, tmp=f"{base}/ref{MPI.COMM_WORLD.rank}")
    stats = new_s.summary["rve_statistics"]
    # every evaluation the macro problem asked for is a micro solve, or (a load step's first
    # iterate, at the committed strain) the point's last answer
    assert stats["solves"] + stats["reused"] == new_s.summary["rve_evaluations"] > 0
    first_iterates = (len(new_s.summary["steps"]) - 1) * new_s.summary["macro"]["quadrature_points"]
    assert 0 < stats["shortcut"] < stats["solves"]  # the first step starts elastic
    ref_stats = ref.summary["rve_statistics"]
    assert "shortcut" not in ref_stats  # the reference engine has no elastic shortcut: it factorises
    if scheme == "nested":
        assert stats["reused"] == first_iterates
        # at every micro Newton update and once more at the converged state, for the tangent
        assert ref_stats["factorisations"] == ref_stats["newton_iterations"] + ref_stats["solves"] > 0
    else:  # (and the points already settled when the others take further micro steps at an equilibrium)
        assert stats["reused"] >= first_iterates
        # once per evaluation: the tangent and the Newton correction from one factorisation
        assert ref_stats["factorisations"] == ref_stats["solves"] > 0
        assert stats["factorisations"] < stats["solves"]  # the elastic points need none
    for other in (new_s, new_p):
        assert len(other.summary["steps"]) == len(ref.summary["steps"])
        for a, b in zip(ref.summary["steps"], other.summary["steps"]):
            assert b["reaction_right_x"] == pytest.approx(a["reaction_right_x"], rel=1e-10)
            assert b["newton_iterations"] == a["newton_iterations"]
    xs, us = gathered_field(new_p.problem.u, MPI.COMM_WORLD)
    xr, ur = gathered_field(ref.problem.u, MPI.COMM_SELF)
    assert np.array_equal(xs, xr) and relmax(us, ur) < 1e-10


class FailsAtTheLargestStrain(PointMaterial):
    """Wraps a macro material: the one macro point of the largest strain (over all ranks of
    ``comm``) fails, like a diverged RVE would."""

    def __init__(self, inner, comm):
        self.inner, self.comm = inner, comm
        self.size, self.kinematics = inner.size, getattr(inner, "kinematics", "small")

    def evaluate(self, E):
        from fe2.core.errors import point_failure

        answer = self.inner.evaluate(E)  # (collective where the RVEs are balanced over the ranks)
        norms = np.linalg.norm(E, axis=1)
        top = self.comm.allreduce(float(norms.max()) if norms.size else -1.0, op=MPI.MAX)
        if top > 0 and norms.size and norms.max() == top:
            raise point_failure(int(norms.argmax()), "fails here (test)")
        return answer

    def commit(self):
        self.inner.commit()

    def revert(self):
        self.inner.revert()


def test_an_rve_failure_is_named_alike_on_any_number_of_ranks(tmp_path, monkeypatch):
    """The message of a failed RVE names its macro point by coordinates, the macro mesh's own
    cell number and the quadrature point (it named a partition-dependent cell number and the
    rank): one rank alone and all ranks together say the same."""
    from helpers import plastic_plate_case

    data = plastic_plate_case("failure message")
    data["loading"] = {"steps": 1, "min_step": 0.5}
    data["rve"]["phases"]["matrix"] = {"law": "elastic", "tag": 1, "E": 1.0, "nu": 0.3}
    original = twoscale.choose_material
    messages = []
    world = MPI.COMM_WORLD
    for comm in (MPI.COMM_SELF, world) if world.size > 1 else (world,):
        def choose(cfg, rve, c, comm=comm):
            mat, note = original(cfg, rve, c)
            return FailsAtTheLargestStrain(mat, comm), note

        monkeypatch.setattr(twoscale, "choose_material", choose)
        with pytest.raises(SolverError) as err:
            run(data, comm, tmp=Path(comm.bcast(str(tmp_path / f"n{comm.size}"), root=0)))
        messages.append(str(err.value).split("; ")[0])
    assert re.search(r"RVE at the macro point \(-?[0-9.e-]+, [0-9.e-]+\) \(cell \d+ of the macro mesh, quadrature "
                     r"point 0\): fails here \(test\)", messages[0]), messages[0]
    assert "rank" not in messages[0]
    assert len(set(messages)) == 1, messages
