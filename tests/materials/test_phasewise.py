"""PhaseMaterial: a law per cell tag, so that MacroProblem solves a resolved (DNS) body.

A two-phase laminate bar in uniaxial strain (J2 phase in series with an elastic phase)
matches its closed-form response through plastic loading and elastic unloading; with the
same law on every tag it reproduces MaterialPoints. Serial and ``mpirun -n 2``."""

import numpy as np
import pytest
from dolfinx import mesh as dmesh
from mpi4py import MPI

from fe2.macro.loads import Dirichlet
from fe2.macro.mesh import rectangle
from fe2.macro.observables import Observables
from fe2.macro.problem import MacroProblem
from fe2.materials import LinearElastic, MaterialPoints
from fe2.materials.phasewise import PhaseMaterial
from fe2.materials.plasticity import J2Plasticity

J2 = dict(E=1.0, nu=0.3, sigma_y=0.01, H_iso=0.1, H_kin=0.05)
ELASTIC = dict(E=10.0, nu=0.2)


def tagged(mm, tag_of):
    """Cell tags of the owned cells from ``tag_of(midpoints)``."""
    m = mm.mesh
    tdim = m.topology.dim
    cells = np.arange(m.topology.index_map(tdim).size_local, dtype=np.int32)
    mid = dmesh.compute_midpoints(m, tdim, cells)
    return dmesh.meshtags(m, tdim, cells, np.asarray(tag_of(mid.T), dtype=np.int32))


def moduli(E, nu):
    lam, G = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    return lam + 2 * G, lam + 2 * G / 3, G  # P-wave modulus M, bulk K, shear G


def laminate_stress(path, fA, width):
    """Closed-form sigma_xx of the series laminate in uniaxial strain (eps_yy = eps_zz = 0)
    along the end displacements ``path`` (monotonic loading, then elastic unloading): J2
    phase A (length fraction fA, linear isotropic + kinematic hardening), elastic phase B.

    In uniaxial strain ``e`` the deviator keeps its direction, so with ``p`` the
    accumulated plastic strain: ``sigma_A = M_A e - 2 G p``, the relative equivalent
    stress is ``2 G e - (3 G + H_kin) p`` and on monotonic loading
    ``p = c (2 G e - sigma_y)``, ``c = 1 / (3 G + H_kin + H_iso)``."""
    MA, _, G = moduli(J2["E"], J2["nu"])
    MB = moduli(**ELASTIC)[0]
    c = 1.0 / (3 * G + J2["H_iso"] + J2["H_kin"])
    Mt = MA - 4 * G**2 * c  # plastic tangent of phase A
    sig, eA, p, prev, out = 0.0, 0.0, 0.0, 0.0, []
    for d in path:
        E_tot = fA * eA + (1 - fA) * sig / MB + (d - prev) / width  # mean strain after the step
        prev = d
        # elastic predictor of the whole bar
        dsig = (E_tot - fA * eA - (1 - fA) * sig / MB) / (fA / MA + (1 - fA) / MB)
        e_try = eA + dsig / MA
        if dsig > 0 and 2 * G * e_try - (3 * G + J2["H_kin"]) * p > J2["sigma_y"] + J2["H_iso"] * p:
            # plastic branch sigma_A = Mt e + 2 G c sigma_y; series: fA e + (1 - fA) sigma_A / MB = E_tot
            eA = (E_tot - (1 - fA) * 2 * G * c * J2["sigma_y"] / MB) / (fA + (1 - fA) * Mt / MB)
            p = c * (2 * G * eA - J2["sigma_y"])
            sig = Mt * eA + 2 * G * c * J2["sigma_y"]
        else:
            sig, eA = sig + dsig, e_try
        out.append(sig)
    return np.array(out)


def bar_problem(n=8, width=2.0, height=1.0):
    mm = rectangle(MPI.COMM_WORLD, width, height, n)
    t = mm.boundaries
    dirichlet = [Dirichlet(t["left"], 0, 0.0, "left"), Dirichlet(t["right"], 0, 1.0, "right")]
    dirichlet += [Dirichlet(t[b], 1, 0.0, b) for b in ("left", "right", "top", "bottom")]
    return mm, dirichlet


def test_laminate_bar_matches_closed_form():
    width, height, xi = 2.0, 1.0, 0.75
    mm, dirichlet = bar_problem(width=width, height=height)
    tags = tagged(mm, lambda x: np.where(x[0] < xi, 1, 2))
    laws = {1: J2Plasticity(J2["E"], J2["nu"], J2["sigma_y"], 2, H_iso=J2["H_iso"], H_kin=J2["H_kin"]),
            2: LinearElastic.isotropic(ELASTIC["E"], ELASTIC["nu"], 2)}
    mat = PhaseMaterial(tags, laws)
    problem = MacroProblem(mm, mat, degree=1, dirichlet=dirichlet)
    observables = Observables(problem)
    # loading far into the plastic range, then partial elastic unloading
    path = [0.005, 0.01, 0.02, 0.04, 0.06, 0.05, 0.045]
    forces = []
    for d in path:
        problem.set_load(d)
        rep = problem.newton(rtol=1e-12, atol=1e-14)
        assert rep.converged, rep.failure
        problem.commit()
        forces.append(observables.reactions()["reaction_right_x"])
    expected = laminate_stress(path, xi / width, width) * height
    assert np.allclose(forces, expected, rtol=1e-9, atol=0), (forces, expected.tolist())
    # the J2 phase really yielded, and only it carries plastic strain
    p = mat.committed_state(1)[:, J2Plasticity.state_layout["p"]]
    assert MPI.COMM_WORLD.allreduce(float(p.max(initial=0.0)), op=MPI.MAX) > 0.01
    assert mat.committed_state(2).shape[1] == 0
    sec = np.diff(expected[:5]) / np.diff(path[:5])
    assert sec[-1] < 0.8 * sec[0]  # the curve bends (in uniaxial strain the bulk modulus stays)
    problem.destroy()


def test_same_law_on_every_tag_reproduces_material_points():
    law = J2Plasticity(J2["E"], J2["nu"], J2["sigma_y"], 2, H_iso=J2["H_iso"], Q=0.005, b=50.0, H_kin=J2["H_kin"])
    rng = np.random.default_rng(MPI.COMM_WORLD.rank)
    results = []
    for kind in ("phases", "points"):
        mm = rectangle(MPI.COMM_WORLD, 1.0, 1.0, 6)
        t = mm.boundaries
        dirichlet = [Dirichlet(t["left"], 0, 0.0, "left"), Dirichlet(t["left"], 1, 0.0, "left"),
                     Dirichlet(t["right"], 0, 0.01, "right"), Dirichlet(t["right"], 1, 0.04, "right")]
        if kind == "phases":
            ncell = mm.mesh.topology.index_map(2).size_local
            tags = tagged(mm, lambda x: rng.integers(1, 3, x.shape[1]))
            mat = PhaseMaterial(tags, {1: law, 2: law})
        else:
            mat = MaterialPoints(law, 0)
        problem = MacroProblem(mm, mat, degree=2, dirichlet=dirichlet)
        observables = Observables(problem)
        forces = []
        for lam in (0.5, 1.0):
            problem.set_load(lam)
            rep = problem.newton(rtol=1e-12, atol=1e-14)
            assert rep.converged, rep.failure
            problem.commit()
            forces.append(observables.reactions()["reaction_right_y"])
        results.append((problem.u.x.array.copy(), np.array(forces), problem.sigma.x.array.copy()))
        if kind == "phases":
            assert mat.num_points == ncell * problem.num_points_per_cell
            assert MPI.COMM_WORLD.allreduce(min(g.size for g in mat.groups.values()), op=MPI.MIN) > 0
        problem.destroy()
    (u1, f1, s1), (u2, f2, s2) = results
    assert np.abs(u1 - u2).max() <= 1e-12 * np.abs(u2).max()
    assert np.abs(s1 - s2).max() <= 1e-12 * np.abs(s2).max()
    assert f1 == pytest.approx(f2, rel=1e-12)
    # plastic: the second half of the load adds less than the first
    assert f2[1] - f2[0] < 0.9 * f2[0]


def test_untagged_or_unknown_cells_are_refused():
    mm = rectangle(MPI.COMM_WORLD, 1.0, 1.0, 2)
    tags = tagged(mm, lambda x: np.where(x[0] < 0.5, 1, 3))
    law = LinearElastic.isotropic(1.0, 0.3, 2)
    has3 = MPI.COMM_WORLD.allreduce(int(np.any(tags.values == 3)), op=MPI.MAX)
    assert has3
    if np.any(tags.values == 3):
        with pytest.raises(ValueError, match=r"tags \[3\] have no law"):
            PhaseMaterial(tags, {1: law})
    with pytest.raises(ValueError, match="share size"):
        PhaseMaterial(tags, {1: law, 3: LinearElastic.isotropic(1.0, 0.3, 3)})
