"""Micro boundary conditions (linear, periodic, minimal): homogeneous cells return the phase
tensor, the apparent tensors are ordered Voigt >= linear >= periodic >= minimal >= Reuss in
the Loewner sense, the gap closes as a periodic cell is tiled, Hill–Mandel and the mean
gradient hold, tangents are consistent (finite differences) on both micro engines, and a
template distributed over the ranks gives the serial answer."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core import tensors as T
from fe2.core.physics import BOUNDARY_CONDITIONS
from fe2.geometry.rvemesh import load_rve_mesh
from fe2.materials import LinearElastic
from fe2.materials.hyperelasticity import NeoHooke
from fe2.materials.plasticity import J2Plasticity
from fe2.micro.cell import CellProblem
from fe2.micro.nonlinear import NonlinearCellProblem
from fe2.micro.phases import Phase, virgin_tangent
from helpers import ROOT, inclusion_rve, rel, rve_fd_tangent, structured_rve

BCS = ("linear", "periodic", "minimal")


def test_names_are_ordered_stiffest_first():
    assert BOUNDARY_CONDITIONS == BCS


@pytest.fixture(scope="module")
def random_cell():
    return load_rve_mesh(ROOT / "meshes" / "random_2d.msh", MPI.COMM_SELF)


@pytest.fixture(scope="module")
def circle_cell():
    return load_rve_mesh(ROOT / "meshes" / "circle_2d.msh", MPI.COMM_SELF)


def elastic(E1=1.0, E2=10.0, gdim=2):
    return [Phase("matrix", 1, T.isotropic_stiffness(E1, 0.3, gdim)),
            Phase("inclusion", 2, T.isotropic_stiffness(E2, 0.25, gdim))]


def conductive(gdim=2, k2=10.0):
    return [Phase("matrix", 1, np.eye(gdim)), Phase("inclusion", 2, k2 * np.eye(gdim))]


def loewner_min(A):
    """Smallest eigenvalue of the symmetric part, relative to the largest entry."""
    return np.linalg.eigvalsh(0.5 * (A + A.T)).min()


def reuss(cp):
    return np.linalg.inv(sum(cp.volume_fractions[p.name] * np.linalg.inv(p.tensor) for p in cp.phases))


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("gdim", [2, 3])
def test_homogeneous_cell_returns_the_phase_tensor(bc, gdim):
    rm = structured_rve(gdim, 4 if gdim == 2 else 2)
    C = T.isotropic_stiffness(3.0, 0.3, gdim)
    assert rel(CellProblem(rm, [Phase("a", 1, C)], boundary=bc, degree=2).effective_tensor, C) < 1e-12
    K = np.diag(np.arange(1.0, gdim + 1))
    assert rel(CellProblem(rm, [Phase("a", 1, K)], physics="conduction", boundary=bc).effective_tensor, K) < 1e-12
    law = NeoHooke(2.0, 0.3, gdim)  # finite strain, linearised at F = I: dP/dF there (minor-symmetric only)
    cp = CellProblem(rm, [Phase("a", 1, law=law)], physics="finite_strain", boundary=bc)
    assert rel(cp.effective_tensor, virgin_tangent(law)) < 1e-12


@pytest.mark.parametrize("physics", ["elasticity", "conduction"])
def test_loewner_ordering_with_voigt_and_reuss_around(random_cell, physics):
    phases = elastic() if physics == "elasticity" else conductive()
    C = {bc: CellProblem(random_cell, phases, physics=physics, boundary=bc) for bc in BCS}
    eff = {bc: cp.effective_tensor for bc, cp in C.items()}
    scale = np.abs(eff["periodic"]).max()
    voigt, lower = C["periodic"].mean_tensor, reuss(C["periodic"])
    chain = [voigt, eff["linear"], eff["periodic"], eff["minimal"], lower]
    for upper, below in zip(chain, chain[1:]):
        # strictly ordered: each gap is positive semi-definite and not zero
        assert loewner_min(upper - below) > -1e-12 * scale
        assert np.abs(upper - below).max() > 1e-3 * scale
    for bc in BCS:  # symmetric
        assert np.abs(eff[bc] - eff[bc].T).max() < 1e-12 * scale


def tiled(k, n=8):
    """A ``k x k`` tiling of a unit cell with a centred square inclusion, structured."""
    return structured_rve(2, n * k, lambda m: np.where(np.all(np.abs(m[:, :2] % 1.0 - 0.5) < 0.25, axis=1), 2, 1),
                          box_max=[float(k), float(k)])


def test_gap_between_linear_and_minimal_closes_as_the_cell_grows():
    eff = {k: {bc: CellProblem(tiled(k), elastic(), boundary=bc).effective_tensor for bc in BCS} for k in (1, 2, 3)}
    per = eff[1]["periodic"]
    gaps = []
    for k in (1, 2, 3):
        # a periodic cell tiled k x k has the same periodic tensor ...
        assert rel(eff[k]["periodic"], per) < 1e-10
        # ... and apparent tensors that close in on it from both sides
        gaps.append(np.linalg.norm(eff[k]["linear"] - eff[k]["minimal"]) / np.linalg.norm(per))
        assert loewner_min(eff[k]["linear"] - per) > -1e-12 and loewner_min(per - eff[k]["minimal"]) > -1e-12
    for k in (2, 3):
        assert loewner_min(eff[k - 1]["linear"] - eff[k]["linear"]) > -1e-12  # linear decreases
        assert loewner_min(eff[k]["minimal"] - eff[k - 1]["minimal"]) > -1e-12  # minimal increases
    assert gaps[0] > 0.05
    assert gaps[1] < 0.7 * gaps[0] and gaps[2] < 0.8 * gaps[1]


@pytest.mark.parametrize("bc", BCS)
def test_linear_cell_hill_mandel_and_mean_gradient(random_cell, bc):
    cp = CellProblem(random_cell, elastic(), boundary=bc)
    E = np.array([0.01, -0.004, 0.006])
    sigma, _ = cp.evaluate(E[None])
    w = cp.fluctuation(E)
    flux, energy = cp.averages(w, E)
    assert np.abs(flux - sigma[0]).max() < 1e-12 * np.abs(sigma).max()
    assert energy == pytest.approx(sigma[0] @ E, rel=1e-12)  # <sigma : eps> = Sigma : E
    # the fluctuation's mean gradient is zero under every condition (the constraint for minimal)
    import ufl
    from dolfinx import fem

    mean = [fem.assemble_scalar(fem.form(ufl.grad(w)[i, j] * ufl.dx)) for i in range(2) for j in range(2)]
    assert np.abs(mean).max() < 1e-13
    # and it vanishes on the boundary under the linear condition
    if bc == "linear":
        x = w.function_space.tabulate_dof_coordinates()
        on_box = np.any(np.isclose(x[:, :2], 0.0) | np.isclose(x[:, :2], 1.0), axis=1)
        assert np.abs(w.x.array.reshape(-1, 2)[on_box]).max() == 0.0


def j2_phases(gdim=2):
    return [Phase("matrix", 1, law=J2Plasticity(1.0, 0.3, 0.01, gdim, H_iso=0.05, Q=0.01, b=30.0, H_kin=0.02)),
            Phase("inclusion", 2, law=LinearElastic.isotropic(10.0, 0.2, gdim))]


def neo_hooke_phases(gdim=2):
    return [Phase("matrix", 1, law=NeoHooke(1.0, 0.3, gdim)), Phase("inclusion", 2, law=NeoHooke(10.0, 0.2, gdim))]


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("kind", ["j2", "neo_hooke"])
def test_nonlinear_cell_consistent_tangent_hill_mandel_both_engines(circle_cell, bc, kind):
    if kind == "j2":
        physics, phases, E = "elasticity", j2_phases, np.array([0.03, -0.01, 0.02])
    else:
        physics, phases, E = "finite_strain", neo_hooke_phases, np.array([1.2, 0.1, -0.05, 0.9])
    ref = NonlinearCellProblem(circle_cell, phases(), physics=physics, engine="reference", boundary=bc, rtol=1e-12)
    bat = NonlinearCellProblem(circle_cell, phases(), physics=physics, engine="batched", boundary=bc, rtol=1e-12)
    s_ref, t_ref = ref.evaluate(E[None])
    s, t = bat.evaluate(E[None])
    assert rel(s, s_ref) < 1e-10 and rel(t, t_ref) < 1e-10
    # Hill–Mandel (<flux . g> = Sigma . E) and the mean micro gradient (= E) at the converged state
    for rve in (ref, bat):
        fields = rve.snapshot(E, 0, trial=True)  # the converged state
        g, flux = fields.gradient, fields.flux
        w = rve.micro_weights
        assert (w @ np.einsum("pi,pi->p", flux, g)) / rve.volume == pytest.approx(s[0] @ E, rel=1e-11)
        assert np.abs(w @ g / rve.volume - E).max() < 1e-11
    if kind == "j2":
        plastic = bat.phases[0].law.equivalent_plastic_strain(bat.bank.trial["state_matrix"][0])
        assert plastic.max() > 1e-3  # the tangent below is a plastic one
    fd = rve_fd_tangent(bat, E, 1e-6)
    assert rel(t[0], fd) < 1e-5


def test_conditions_differ_in_a_plastic_state(circle_cell):
    E = np.array([0.03, -0.01, 0.02])
    s = {bc: NonlinearCellProblem(circle_cell, j2_phases(), boundary=bc).evaluate(E[None])[0][0] for bc in BCS}
    # the same strain costs more stress with the stiffer condition: the energies are ordered
    assert s["linear"] @ E > s["periodic"] @ E > s["minimal"] @ E


@pytest.mark.parametrize("bc", BCS)
def test_template_over_all_ranks_equals_serial(bc):
    """Under mpirun -n 2: one RVE distributed over both ranks (the bordered system of
    'minimal' spans them) gives the one-process tensor and nonlinear answer."""
    world = MPI.COMM_WORLD
    path = ROOT / "meshes" / "random_2d.msh"
    dist, alone = load_rve_mesh(path, world), load_rve_mesh(path, MPI.COMM_SELF)
    a, b = CellProblem(dist, conductive(), physics="conduction", boundary=bc), CellProblem(
        alone, conductive(), physics="conduction", boundary=bc)
    assert rel(a.effective_tensor, b.effective_tensor) < 1e-12
    E = np.array([0.02, -0.01, 0.015])
    rd = NonlinearCellProblem(dist, j2_phases(), boundary=bc, engine="reference", rtol=1e-12)
    rs = NonlinearCellProblem(alone, j2_phases(), boundary=bc, rtol=1e-12)
    sd, td = rd.evaluate(E[None])
    ss, ts = rs.evaluate(E[None])
    assert rel(sd, ss) < 1e-10 and rel(td, ts) < 1e-9


def test_periodic_condition_on_faces_flat_only_to_round_off():
    """A node 1e-12 off the face x = 0 (gmsh meshes of large random cells have nodes 1e-13
    off their faces) gives box_min[0] = -1e-12. The images of the face x = 1 were put at
    x = box_min[0], where dolfinx_mpc, which looks for their cells with an absolute tolerance
    of 500 machine epsilons, missed them and silently dropped those slaves: the face was left
    free, and the periodic tensor fell below the minimal one. Regression: the images are
    snapped onto their partner DOFs, and a DOF left without a partner is an error."""
    exact, rough = inclusion_rve(2, 8), inclusion_rve(2, 8)
    x = rough.mesh.geometry.x
    node = np.flatnonzero(np.isclose(x[:, 0], 0.0) & np.isclose(x[:, 1], 0.5))
    x[node, 0] = -1e-12
    rough.box_min = x[:, :2].min(axis=0)  # as load_rve_mesh finds it
    assert rough.box_min[0] == -1e-12
    a, b = (CellProblem(rm, elastic(), boundary="periodic") for rm in (exact, rough))
    assert len(b.mpc.slaves) == len(a.mpc.slaves) > 0
    assert rel(b.effective_tensor, a.effective_tensor) < 1e-9
    assert loewner_min(b.effective_tensor - CellProblem(rough, elastic(), boundary="minimal").effective_tensor) > 0


def test_unknown_condition_is_refused(circle_cell):
    with pytest.raises(ValueError, match="unknown micro boundary condition 'dirichlet'; choose one of linear, "
                                         "periodic, minimal"):
        CellProblem(circle_cell, elastic(), boundary="dirichlet")
