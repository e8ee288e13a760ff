"""Periodic cell problems against closed forms, bounds and identities."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core import tensors as T
from fe2.core.errors import MeshError
from fe2.geometry import generators
from fe2.geometry.rvemesh import load_rve_mesh
from fe2.micro.cell import CellProblem, effective_tensor_from_fields
from fe2.micro.phases import Phase
from helpers import structured_rve

E1, E2, NU = 1.0, 10.0, 0.3


def layers(normal, f=0.5):
    return lambda mid: np.where(mid[:, normal] < f, 1, 2)


def elastic_phases(gdim, E=(E1, E2), nu=(NU, NU)):
    return [Phase("a", 1, T.isotropic_stiffness(E[0], nu[0], gdim)),
            Phase("b", 2, T.isotropic_stiffness(E[1], nu[1], gdim))]


def rel(A, B):
    return np.abs(A - B).max() / np.abs(B).max()


@pytest.mark.parametrize("gdim,n,normal,degree", [(2, 8, 1, 1), (2, 4, 0, 2), (3, 4, 2, 1), (3, 2, 1, 2)])
def test_elastic_laminate_is_exact_structured(gdim, n, normal, degree):
    cp = CellProblem(structured_rve(gdim, n, layers(normal)), elastic_phases(gdim), degree=degree)
    ref = T.laminate_tensor([p.tensor for p in cp.phases], [0.5, 0.5], normal, gdim)
    assert rel(cp.effective_tensor, ref) < 1e-10
    if gdim == 2 and normal == 1:
        V = T.mandel_to_voigt_stiffness(cp.effective_tensor)
        assert np.allclose(V[[0, 0, 1, 2], [0, 1, 1, 2]], [6.493506, 1.048951, 2.447552, 0.699301], atol=5e-7)
        assert abs(V[0, 2]) < 1e-12 and abs(V[1, 2]) < 1e-12


@pytest.mark.parametrize("gdim,degree", [(2, 1), (2, 2), (3, 1)])
def test_laminate_gmsh_mesh_is_exact(tmp_path, gdim, degree):
    # unstructured gmsh laminate (layers normal to y), interfaces on element edges/faces
    h = 0.1 if gdim == 2 else 0.25
    info = generators.laminate(tmp_path / "lam.msh", dim=gdim, fractions=(0.4, 0.6), normal=1, h=h)
    rm = load_rve_mesh(info.path, MPI.COMM_SELF)
    cp = CellProblem(rm, elastic_phases(gdim), degree=degree)
    ref = T.laminate_tensor([p.tensor for p in cp.phases], [0.4, 0.6], 1, gdim)
    assert rel(cp.effective_tensor, ref) < 1e-10
    K = CellProblem(rm, [Phase("a", 1, np.eye(gdim)), Phase("b", 2, 10 * np.eye(gdim))],
                    physics="conduction", degree=degree).effective_tensor
    assert K[0, 0] == pytest.approx(0.4 + 6.0, rel=1e-10)
    assert K[1, 1] == pytest.approx(1 / (0.4 + 0.06), rel=1e-10)
    assert abs(K[0, 1]) < 1e-12


@pytest.mark.parametrize("gdim", [2, 3])
def test_conduction_laminate_structured(gdim):
    cp = CellProblem(structured_rve(gdim, 4, layers(gdim - 1)),
                     [Phase("a", 1, np.eye(gdim)), Phase("b", 2, 10 * np.eye(gdim))], physics="conduction")
    K = cp.effective_tensor
    assert np.allclose(np.diag(K)[:-1], 5.5, rtol=1e-12)
    assert K[-1, -1] == pytest.approx(2 / 1.1, rel=1e-12)


def test_homogeneous_unstructured_rve_returns_phase_tensor(tmp_path):
    info = generators.circle_inclusion(tmp_path / "c.msh", radius=0.3, h=0.08)
    rm = load_rve_mesh(info.path, MPI.COMM_SELF)
    C = T.isotropic_stiffness(3.0, 0.27, 2)
    for degree in (1, 2):
        cp = CellProblem(rm, [Phase("m", 1, C), Phase("i", 2, C)], degree=degree)
        assert rel(cp.effective_tensor, C) < 1e-12
        K = CellProblem(rm, [Phase("m", 1, 2 * np.eye(2)), Phase("i", 2, 2 * np.eye(2))],
                        physics="conduction", degree=degree).effective_tensor
        assert rel(K, 2 * np.eye(2)) < 1e-12


@pytest.fixture(scope="module")
def circle_rve(tmp_path_factory):
    info = generators.circle_inclusion(tmp_path_factory.mktemp("circ") / "c.msh", radius=0.3, h=0.06)
    return load_rve_mesh(info.path, MPI.COMM_SELF)


def test_symmetric_positive_definite_and_hill_mandel(circle_rve):
    cp = CellProblem(circle_rve, elastic_phases(2, nu=(0.35, 0.2)), degree=2)
    C = cp.effective_tensor
    assert np.abs(C - C.T).max() < 1e-12 * np.abs(C).max()
    assert np.linalg.eigvalsh(C).min() > 0
    # the fast sensitivity formula equals direct averaging of the flux fields
    assert rel(effective_tensor_from_fields(cp), C) < 1e-12
    rng = np.random.default_rng(3)
    for _ in range(3):
        E = rng.normal(size=3)
        w = cp.fluctuation(E)
        flux, energy = cp.averages(w, E)
        sigma, tangent = cp.evaluate(E[None])
        assert np.abs(flux - sigma[0]).max() < 1e-12 * np.abs(flux).max()
        # Hill-Mandel: <sigma : eps> = Sigma : E
        assert energy == pytest.approx(flux @ E, rel=1e-12)
        # the tangent (sensitivity path) maps E to the flux averaged from the fields
        assert np.abs(tangent[0] @ E - flux).max() < 1e-12 * np.abs(flux).max()


def test_evaluate_batch_equals_the_fields_of_each_point(circle_rve):
    # the batch goes through one multi-right-hand-side solve; each point's fluctuation field
    # through its own solve, averaged by assembling the flux over the cell
    cp = CellProblem(circle_rve, elastic_phases(2))
    E = np.random.default_rng(0).normal(size=(5, 3))
    sigma, _ = cp.evaluate(E)
    for Ei, si in zip(E, sigma):
        flux, _ = cp.averages(cp.fluctuation(Ei), Ei)
        assert np.abs(si - flux).max() < 1e-12 * np.abs(flux).max()


def test_random_inclusions_within_hashin_shtrikman_bounds(tmp_path):
    info = generators.random_inclusions(tmp_path / "r.msh", volume_fraction=0.3, n=6, seed=4, h=0.04)
    rm = load_rve_mesh(info.path, MPI.COMM_SELF)
    (Em, num), (Ei, nui) = (1.0, 0.35), (20.0, 0.2)
    cp = CellProblem(rm, elastic_phases(2, E=(Em, Ei), nu=(num, nui)), degree=2)
    f = [cp.volume_fractions["a"], cp.volume_fractions["b"]]
    assert f[1] == pytest.approx(0.3, abs=1e-2)
    km, mm = T.plane_strain_bulk_shear(Em, num)
    ki, mi = T.plane_strain_bulk_shear(Ei, nui)
    (kl, ku), (ml, mu) = T.hashin_shtrikman_elastic([km, ki], [mm, mi], f, 2)
    k, m = T.isotropic_projection(cp.effective_tensor, 2)
    assert kl <= k <= ku, (kl, k, ku)
    assert ml <= m <= mu, (ml, m, mu)
    # Voigt and Reuss bounds hold in the tensor (Loewner) sense for any microstructure
    C = cp.effective_tensor
    tensors = [p.tensor for p in cp.phases]
    assert np.linalg.eigvalsh(T.voigt_bound(tensors, f) - C).min() > 0
    assert np.linalg.eigvalsh(C - T.reuss_bound(tensors, f)).min() > 0
    kc = CellProblem(rm, [Phase("a", 1, np.eye(2)), Phase("b", 2, 20 * np.eye(2))],
                     physics="conduction", degree=2).effective_tensor
    lo, hi = T.hashin_shtrikman_conduction([1.0, 20.0], f, 2)
    assert lo <= np.trace(kc) / 2 <= hi


def test_effective_tensor_converges_under_refinement(tmp_path):
    results = []
    for h in (0.1, 0.05, 0.025):
        info = generators.circle_inclusion(tmp_path / f"c{h}.msh", radius=0.3, h=h)
        cp = CellProblem(load_rve_mesh(info.path, MPI.COMM_SELF), elastic_phases(2))
        results.append(cp.effective_tensor)
    d1 = np.abs(results[1] - results[0]).max()
    d2 = np.abs(results[2] - results[1]).max()
    assert d2 < 0.6 * d1, (d1, d2)  # contracting differences: convergence


def test_missing_and_unknown_phase_tags_are_reported(circle_rve):
    with pytest.raises(MeshError, match=r"cells with tag\(s\) \[2\] but no phase"):
        CellProblem(circle_rve, [Phase("matrix", 1, T.isotropic_stiffness(1, 0.3, 2))], source="x.toml")
    with pytest.raises(MeshError, match="phase 'fibre' has tag 7, which no cell"):
        CellProblem(circle_rve, elastic_phases(2) + [Phase("fibre", 7, T.isotropic_stiffness(1, 0.3, 2))])


def test_petsc_options_reach_the_factorisation(circle_rve):
    # MUMPS options are read when the factor is created (KSPSetUp), after setFromOptions
    mumps = {"pc_factor_mat_solver_type": "mumps"}
    cp = CellProblem(circle_rve, elastic_phases(2), petsc_options={**mumps, "mat_mumps_icntl_14": 55})
    from fe2.core.linalg import factor_matrix

    assert factor_matrix(cp.ksp).getMumpsIcntl(14) == 55
    cp2 = CellProblem(circle_rve, elastic_phases(2), petsc_options=mumps)
    assert factor_matrix(cp2.ksp).getMumpsIcntl(14) != 55  # unique prefixes: no leak
    assert rel(cp.effective_tensor, cp2.effective_tensor) < 1e-12
    # the default on one process, by measurement (benchmarks/factorisers.py): CHOLMOD
    cp3 = CellProblem(circle_rve, elastic_phases(2))
    assert cp3.ksp.getPC().getFactorSolverType() == "cholmod"
    assert rel(cp3.effective_tensor, cp2.effective_tensor) < 1e-12
