"""Curved (second-order) geometry: micro quadrature weights on curved cells, curved RVEs
on both micro engines, and FE² on a curved macro mesh end to end, output included."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import ufl
from dolfinx import fem
from mpi4py import MPI

from fe2.core.quadrature import QuadraturePoints, default_degree
from fe2.geometry import generators
from fe2.geometry.rvemesh import load_rve_mesh
from fe2.macro import mesh as macromesh
from fe2.materials import LinearElastic
from fe2.materials.plasticity import J2Plasticity
from fe2.micro.cell import CellProblem
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.phases import Phase
from helpers import FIELDS, J2_TABLE, gathered_field, rel, relmax, serial_and_parallel, xdmf_stamps
from helpers import run_case as run


@pytest.fixture(scope="module")
def curved_rve(tmp_path_factory):
    path = MPI.COMM_WORLD.bcast(str(tmp_path_factory.mktemp("curved") / "c2.msh"), root=0)
    if MPI.COMM_WORLD.rank == 0:
        generators.circle_inclusion(path, radius=0.3, h=0.15, order=2)
    MPI.COMM_WORLD.barrier()
    return load_rve_mesh(path, MPI.COMM_SELF)


def test_point_volumes_integrate_with_the_rule_of_the_forms_on_curved_cells():
    mm = macromesh.plate_with_hole(MPI.COMM_WORLD, h=0.3, h_hole=0.1, order=2)
    mesh = mm.mesh
    assert mesh.geometry.cmap.degree == 2
    qp = QuadraturePoints(mesh, 4)
    x = ufl.SpatialCoordinate(mesh)
    f = 1.0 + x[0] ** 2 * x[1] + ufl.sin(3 * x[1])
    values = qp.evaluate(qp.expression(f), 1)[:, 0]
    exact = mesh.comm.allreduce(fem.assemble_scalar(fem.form(f * qp.dx)))
    assert mesh.comm.allreduce(qp.volumes @ values) == pytest.approx(exact, rel=1e-14)
    # a curved cell's points do not stand for equal shares of it (they do on a straight one)
    shares = qp.cell_shares
    assert np.allclose(shares.sum(axis=1), 1.0, rtol=1e-14)
    spread = mesh.comm.allreduce(float(np.abs(shares - qp.weights / qp.weights.sum()).max()), op=MPI.MAX)
    assert spread > 1e-4
    # the curved plate's area is far closer to the true one than the straight-sided mesh's
    area = mesh.comm.allreduce(qp.volumes.sum())
    assert area == pytest.approx(1.0 - np.pi * 0.09 / 4, rel=2e-5)
    straight = macromesh.plate_with_hole(MPI.COMM_WORLD, h=0.3, h_hole=0.1).mesh
    one = fem.Constant(straight, 1.0)
    area1 = straight.comm.allreduce(fem.assemble_scalar(fem.form(one * ufl.dx(domain=straight))))
    assert abs(area1 / (1.0 - np.pi * 0.09 / 4) - 1.0) > 1e-3


@pytest.mark.parametrize("gdim", [2, 3])
def test_point_volumes_on_straight_simplices(gdim):
    """The vertex formula for straight-sided cells integrates with the forms' rule too."""
    from dolfinx import mesh as dmesh

    comm = MPI.COMM_WORLD
    mesh = (dmesh.create_rectangle(comm, [[0.0, 0.0], [2.0, 1.0]], [3, 5]) if gdim == 2
            else dmesh.create_box(comm, [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], [2, 2, 2]))
    mesh.geometry.x[:, 0] += 0.1 * mesh.geometry.x[:, 1] ** 2  # skewed cells of different sizes
    qp = QuadraturePoints(mesh, 2)
    x = ufl.SpatialCoordinate(mesh)
    f = 1.0 + x[0] ** 2 * x[1]
    values = qp.evaluate(qp.expression(f), 1)[:, 0]
    exact = comm.allreduce(fem.assemble_scalar(fem.form(f * qp.dx)))
    assert comm.allreduce(qp.volumes @ values) == pytest.approx(exact, rel=1e-14)
    assert np.allclose(qp.cell_shares, qp.weights / qp.weights.sum(), rtol=1e-14)


def elastic_laws():
    return [Phase("matrix", 1, law=LinearElastic.isotropic(1.0, 0.3, 2)),
            Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, 2))]


@pytest.mark.parametrize("degree", [1, 2])
def test_curved_rve_engines_and_linear_cell_agree(curved_rve, degree):
    assert curved_rve.mesh.geometry.cmap.degree == 2
    E = np.array([[0.01, -0.004, 0.003]])
    lin = CellProblem(curved_rve, elastic_laws(), degree=degree)
    assert lin.quadrature_degree == default_degree(degree, 2) == 2 * degree + 2
    answers = []
    for engine in ("batched", "reference"):
        nl = NonlinearCellProblem(curved_rve, elastic_laws(), degree=degree, engine=engine)
        answers.append(nl.evaluate(E))
        assert nl.micro_weights.sum() == pytest.approx(1.0, rel=1e-14)
    for s, t in answers:  # the nonlinear path with linear laws is the linear cell problem
        assert rel(t[0], lin.effective_tensor) < 1e-12
        assert rel(s[0], E[0] @ lin.effective_tensor.T) < 1e-12
    # the default rule is converged: two degrees more change the tensor by less than 1e-6
    finer = CellProblem(curved_rve, elastic_laws(), degree=degree, quadrature_degree=2 * degree + 4)
    assert rel(finer.effective_tensor, lin.effective_tensor) < 1e-6


def test_curved_rve_plastic_batched_equals_reference(curved_rve):
    def phases():
        return [Phase("matrix", 1, law=J2Plasticity(1.0, 0.3, 0.01, 2, H_iso=0.05, Q=0.01, b=30.0, H_kin=0.02)),
                Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, 2))]
    E = np.array([[0.03, -0.01, 0.02]])
    s_b, t_b = NonlinearCellProblem(curved_rve, phases(), rtol=1e-12).evaluate(E)
    s_r, t_r = NonlinearCellProblem(curved_rve, phases(), rtol=1e-12, engine="reference").evaluate(E)
    assert rel(s_b, s_r) < 1e-10 and rel(t_b, t_r) < 1e-10


def curved_case(material="rve", phases=None, traction=True, rve_order=2):
    return {
        "title": "curved plate",
        "macro": {"degree": 2, "material": material,
                  "mesh": {"generator": "plate_with_hole", "h": 0.3, "h_hole": 0.15, "order": 2},
                  "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0}]
                  + ([] if traction else [{"boundary": "right", "component": "x", "value": 0.03}]),
                  "traction": [{"boundary": "right", "value": [0.01, 0.002]}] if traction else []},
        "loading": {"steps": 2},
        "rve": {"rtol": 1e-12, "generate": {"kind": "circle", "radius": 0.25, "h": 0.2, "order": rve_order},
                "phases": phases or {"matrix": {"tag": 1, "E": 1.0, "nu": 0.3},
                                     "inclusion": {"tag": 2, "E": 8.0, "nu": 0.25}}},
        "solver": {"rtol": 1e-12, "atol": 1e-15},
        "output": {"format": "xdmf"},
    }


def test_fe2_on_a_curved_macro_mesh_end_to_end(tmp_path):
    fe2 = run(curved_case(), tmp=tmp_path / "fe2")
    hom = run(curved_case("homogenized"), tmp=tmp_path / "hom")
    assert fe2.problem.mesh.geometry.cmap.degree == 2
    assert relmax(fe2.problem.u.x.array, hom.problem.u.x.array) < 1e-10
    last = fe2.summary["steps"][-1]
    assert last["reaction_left_x"] + last["force_right_x"] == pytest.approx(0.0, abs=1e-12)
    assert last["force_right_x"] == pytest.approx(0.01, rel=1e-12)  # the right edge is straight, length 1
    if MPI.COMM_WORLD.rank == 0:  # the fields were written, on the curved cells
        root = ET.parse(tmp_path / "fe2" / "fields.xdmf").getroot()
        assert root.find(".//Topology").get("TopologyType") == "Triangle_6"
        assert xdmf_stamps(tmp_path / "fe2" / "fields.xdmf") == [(t, FIELDS)
                                                                  for t in (0.5, 1.0)]


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_plastic_fe2_on_curved_meshes_one_and_two_ranks_agree(tmp_path):
    phases = {"matrix": dict(J2_TABLE, tag=1), "inclusion": {"law": "elastic", "tag": 2, "E": 10.0, "nu": 0.2}}
    data = curved_case(phases=phases, traction=False)
    data["output"]["format"] = "none"
    serial, parallel = serial_and_parallel(data, tmp_path)
    xs, vs = gathered_field(serial.problem.u, MPI.COMM_SELF)
    xp, vp = gathered_field(parallel.problem.u, MPI.COMM_WORLD)
    assert np.array_equal(xs, xp) and np.abs(vs - vp).max() < 1e-10 * np.abs(vs).max()
    for s, p in zip(serial.summary["steps"], parallel.summary["steps"], strict=True):
        assert p["reaction_right_x"] == pytest.approx(s["reaction_right_x"], rel=1e-10)
