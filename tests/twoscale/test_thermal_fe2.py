"""Thermal two-scale FE² (steady conduction): closed forms with linear and nonlinear laminate
RVEs, FE² against single scale, heat balance, quadratic macro Newton, 1 vs 2 ranks, the
written fields, and the conduction-specific input checks."""

import json

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core.errors import ConfigError
from fe2.io import config
from helpers import K_INCLUSION, gathered_field, quadratic_constants, relmax, serial_and_parallel, thermal_case
from helpers import LINEAR_CONDUCTION as LINEAR
from helpers import NONLINEAR_CONDUCTION as NONLINEAR
from helpers import run_case as run

#: layers normal to x: under a macro gradient along x each layer has a uniform gradient
LAMINATE_X = {"kind": "laminate", "fractions": [0.5, 0.5], "normal": 0, "h": 0.25}


def strip(width, height, n=4):
    return {"generator": "rectangle", "width": width, "height": height, "structured": n, "cells_y": 2}


def nodal_temperature(res):
    x, T = gathered_field(res.problem.u, res.problem.comm)
    return x, T[:, 0]


def test_linear_thermal_fe2_closed_form_and_homogenized(tmp_path):
    """A strip 2 x 1 held at T = 0 on both ends with a uniform source s, insulated top and
    bottom; laminate RVE with layers across the strip: the homogenized conductivity along
    it is the harmonic mean and T = s x (L - x) / (2 k_h), exact at the nodes of P2."""
    L, s = 2.0, 3.0
    data = thermal_case(LINEAR, mesh=strip(L, 1.0), source=s, flux=(), rve_generate=LAMINATE_X,
                        dirichlet=({"boundary": "left", "value": 0.0}, {"boundary": "right", "value": 0.0}))
    fe2 = run(data, tmp=tmp_path / "fe2")
    k_h = 1.0 / (0.5 / 1.0 + 0.5 / K_INCLUSION)
    x, T = nodal_temperature(fe2)
    assert np.abs(T - s * x[:, 0] * (L - x[:, 0]) / (2 * k_h)).max() < 1e-10 * s * L**2 / (8 * k_h)
    last = fe2.summary["steps"][-1]
    assert last["heat_source"] == pytest.approx(s * L * 1.0, rel=1e-12)
    for side in ("left", "right"):  # half the heat leaves through each end
        assert last[f"heat_in_{side}"] == pytest.approx(-0.5 * s * L, rel=1e-10)
    single = run(dict(data, macro=dict(data["macro"], material="homogenized")), tmp=tmp_path / "single")
    assert relmax(fe2.problem.u.x.array, single.problem.u.x.array) < 1e-10


def test_linear_thermal_fe2_with_flux_and_source_equals_homogenized(tmp_path):
    data = thermal_case(LINEAR, steps=1)
    fe2 = run(data, tmp=tmp_path / "fe2")
    single = run(dict(data, macro=dict(data["macro"], material="homogenized")), tmp=tmp_path / "single")
    assert relmax(fe2.problem.u.x.array, single.problem.u.x.array) < 1e-10
    a, b = fe2.summary["steps"][-1], single.summary["steps"][-1]
    for key in ("heat_in_hole", "heat_in_top", "heat_source"):
        assert a[key] == pytest.approx(b[key], rel=1e-10)
    assert a["heat_in_top"] == pytest.approx(2.0 * 1.0, rel=1e-12)  # flux 2 on the unit top edge
    assert a["heat_in_hole"] + a["heat_in_top"] + a["heat_source"] == pytest.approx(0.0, abs=1e-11)
    assert a["newton_iterations"] == 1  # linear


def test_heat_balance_with_temperatures_on_boundaries_that_meet(tmp_path):
    """T = 0 on left and bottom, which share a corner node: it counts once (for the first
    boundary listed), so the heat through both ends balances the source."""
    data = thermal_case(LINEAR, mesh=strip(1.0, 1.0), flux=(), source=2.0, steps=1, degree=1,
                        dirichlet=({"boundary": "left", "value": 0.0}, {"boundary": "bottom", "value": 0.0}))
    s = run(data, tmp=tmp_path).summary["steps"][-1]
    assert s["heat_source"] == pytest.approx(2.0, rel=1e-12)
    assert s["heat_in_left"] + s["heat_in_bottom"] == pytest.approx(-2.0, rel=1e-10)
    assert s["heat_in_left"] == pytest.approx(s["heat_in_bottom"], rel=1e-2)  # symmetric but for the mesh


def laminate_closed_form(Q, f=(0.5, 0.5)):
    """Mean gradient along x of the two-layer laminate (nonlinear layer 1, linear layer 2)
    carrying the flux Q across its layers: each layer's gradient gives that flux."""
    k, gr = NONLINEAR["k"], NONLINEAR["grad_ref"]
    roots = np.roots([k / gr**2, 0.0, k, -Q])  # k (1 + g^2/gr^2) g = Q
    g1 = float(roots[np.abs(roots.imag) < 1e-12].real[0])
    return f[0] * g1 + f[1] * Q / K_INCLUSION


def test_nonlinear_laminate_fe2_closed_form(tmp_path):
    """T = 0 on the left end of a strip, the heat flux Q into its right end: the macro
    gradient is uniform and the FE² temperature of the right end is L times the laminate's
    mean gradient at flux Q, solved layer by layer without a mesh."""
    L, H, Q = 1.0, 0.5, 3.0
    data = thermal_case(NONLINEAR, mesh=strip(L, H, 3), source=None, rve_generate=LAMINATE_X, degree=1,
                        dirichlet=({"boundary": "left", "value": 0.0},), flux=({"boundary": "right", "value": Q},))
    res = run(data, tmp=tmp_path)
    x, T = nodal_temperature(res)
    for step in res.summary["steps"]:
        assert step["heat_in_left"] == pytest.approx(-step["load_factor"] * Q * H, rel=1e-10)
    g = laminate_closed_form(Q)
    assert g < 0.5 * Q * (0.5 / 1.0 + 0.5 / K_INCLUSION)  # far from Fourier's law (k = 1) in the matrix
    assert np.abs(T - g * x[:, 0]).max() < 1e-9 * g * L


@pytest.mark.parametrize("scheme", ["nested", "monolithic"])
def test_nonlinear_thermal_fe2_quadratic_and_balanced(tmp_path, scheme):
    data = thermal_case(NONLINEAR)
    data.setdefault("solver", {})["scheme"] = scheme
    res = run(data, tmp=tmp_path)
    steps = res.summary["steps"]
    assert res.summary["status"] == "completed" and steps[-1]["load_factor"] == 1.0
    constants = [c for s in steps for c in quadratic_constants(s["residuals"])]
    assert len(constants) >= 3, "too few iterations in the asymptotic range"
    assert max(constants) < 10.0, constants
    # the monolithic scheme takes more macro iterations where its micro problems start far
    # from their solutions (a large first step), each with one factorisation per point
    assert max(s["newton_iterations"] for s in steps) <= {"nested": 7, "monolithic": 9}[scheme]
    assert min(s["newton_iterations"] for s in steps) >= 3  # really nonlinear
    for s in steps:  # the heat through the hole balances the flux and the source
        total = s["heat_in_hole"] + s["heat_in_top"] + s["heat_source"]
        assert abs(total) < 1e-9 * s["heat_source"]


def test_homogeneous_nonlinear_rve_equals_single_scale(tmp_path):
    data = thermal_case(NONLINEAR)
    data["rve"]["phases"]["inclusion"] = dict(NONLINEAR, tag=2)
    fe2 = run(data, tmp=tmp_path / "fe2")
    single = run(dict(data, macro=dict(data["macro"], material="matrix")), tmp=tmp_path / "single")
    assert relmax(fe2.problem.u.x.array, single.problem.u.x.array) < 1e-8
    assert fe2.summary["steps"][-1]["heat_in_hole"] == pytest.approx(single.summary["steps"][-1]["heat_in_hole"],
                                                                     rel=1e-8)


def test_nonlinear_thermal_fe2_one_and_two_ranks_agree(tmp_path):
    serial, parallel = serial_and_parallel(thermal_case(NONLINEAR), tmp_path)
    xs, Ts = nodal_temperature(serial)
    xp, Tp = nodal_temperature(parallel)
    np.testing.assert_array_equal(xs, xp)
    assert relmax(Tp, Ts) < 1e-10
    for a, b in zip(serial.summary["steps"], parallel.summary["steps"]):
        for key in ("heat_in_hole", "heat_in_top", "heat_source"):
            assert a[key] == pytest.approx(b[key], rel=1e-10)


def test_3d_thermal_fe2(tmp_path):
    """A 3D bar (sphere RVE) held at T = 0 on the left, heated through its front face and
    by a source: linear phases give the homogenized solution, and with the nonlinear matrix
    the heat balances."""
    def case(matrix, material="rve"):
        return thermal_case(matrix, material=material, steps=1, degree=1,
                            mesh={"generator": "box", "width": 1.0, "height": 0.5, "depth": 0.5, "structured": 2},
                            dirichlet=({"boundary": "left", "value": 0.0},),
                            flux=({"boundary": "front", "value": 1.0},), source=2.0,
                            rve_generate={"kind": "sphere", "radius": 0.3, "h": 0.3})

    fe2 = run(case(LINEAR), tmp=tmp_path / "fe2")
    single = run(case(LINEAR, "homogenized"), tmp=tmp_path / "single")
    assert relmax(fe2.problem.u.x.array, single.problem.u.x.array) < 1e-10
    nonlinear = run(case(NONLINEAR), tmp=tmp_path / "nonlinear")
    for res in (fe2, nonlinear):
        s = res.summary["steps"][-1]
        assert s["heat_in_front"] == pytest.approx(0.5, rel=1e-12) and s["heat_source"] == pytest.approx(0.5)
        assert s["heat_in_left"] == pytest.approx(-1.0, rel=1e-9)
    assert nonlinear.summary["steps"][-1]["newton_iterations"] >= 3
    def peak(res):
        return res.problem.comm.allreduce(np.abs(res.problem.u.x.array).max(), op=MPI.MAX)

    assert peak(nonlinear) < 0.9 * peak(fe2)  # the conductivity grew


def test_thermal_fields_are_written_with_the_heat_flux_sign(tmp_path):
    """fields.xdmf holds temperature, temperature_gradient and heat_flux = -K grad T (the
    cell averages of the homogenized material, whose flux is linear in the gradient)."""
    import h5py

    res = run(thermal_case(LINEAR, material="homogenized", steps=1, output="xdmf"), tmp=tmp_path)
    out = MPI.COMM_WORLD.bcast(str(tmp_path), root=0)
    if MPI.COMM_WORLD.rank == 0:
        with h5py.File(f"{out}/fields.h5", "r") as h5:
            fn = h5["Function"]
            assert set(fn) >= {"temperature", "temperature_gradient", "heat_flux"}
            (t,) = list(fn["heat_flux"])
            q, g = fn["heat_flux"][t][:, :2], fn["temperature_gradient"][t][:, :2]
            T = fn["temperature"][t][:]
        K = np.asarray(res.summary["rve"]["effective_conductivity"])
        assert np.abs(q + g @ K.T).max() < 1e-12 * np.abs(q).max()
        assert np.abs(q).max() > 0.1 and T.max() > 0.1
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["temperature_norm"] > 0 and "displacement_norm" not in summary


def test_thermal_example_first_step(tmp_path):
    import dataclasses

    from fe2 import twoscale

    cfg = config.example_case("thermal_plate")
    cfg = dataclasses.replace(cfg, loading=dataclasses.replace(cfg.loading, factors=(0.2,)),
                              output=dataclasses.replace(cfg.output, format="none", checkpoint_every=0))
    res = twoscale.run(cfg, MPI.COMM_WORLD, output=MPI.COMM_WORLD.bcast(str(tmp_path), root=0), verbose=False)
    step = res.summary["steps"][-1]
    assert step["load_factor"] == 0.2 and 3 <= step["newton_iterations"] <= 7
    assert step["heat_in_top"] == pytest.approx(0.2 * 2.0, rel=1e-12)
    assert step["heat_in_hole"] == pytest.approx(-(step["heat_in_top"] + step["heat_source"]), rel=1e-9)


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["macro"].update(traction=[{"boundary": "top", "value": [1.0, 0.0]}]),
     "key 'macro.traction' is mechanical; with physics = 'conduction' give heat fluxes as [[macro.flux]]"),
    (lambda d: d["macro"]["dirichlet"][0].update(component="x"),
     "key 'macro.dirichlet[0].component' is not used with physics = 'conduction' (the value is a temperature); "
     "remove it"),
    (lambda d: d["rve"]["phases"]["matrix"].update(E=1.0),
     "key 'rve.phases.matrix.E' is not a parameter of law = 'nonlinear_conduction' (parameters: k, grad_ref)"),
    (lambda d: d["rve"]["phases"]["matrix"].pop("grad_ref"),
     "key 'rve.phases.matrix.grad_ref' is required for law = 'nonlinear_conduction'"),
    (lambda d: d["rve"]["phases"]["matrix"].update(law="j2"),
     "key 'rve.phases.matrix.law' 'j2' needs physics = 'elasticity'; with physics = 'conduction' the laws are "
     "'conduction', 'nonlinear_conduction'"),
    (lambda d: d["macro"]["flux"][0].update(value=[1.0]), "key 'macro.flux[0].value' must be a number, got [1.0]"),
])
def test_conduction_input_errors(edit, message):
    data = thermal_case(NONLINEAR)
    edit(data)
    with pytest.raises(ConfigError) as err:
        config.parse_case(data, "case.toml")
    assert str(err.value) == f"case.toml: {message}"


def test_conduction_phase_without_law_is_fourier():
    data = thermal_case(LINEAR)
    data["rve"]["phases"]["matrix"].pop("law")
    cfg = config.parse_case(data, "case.toml")
    assert cfg.rve.phases["matrix"].law == "conduction"
