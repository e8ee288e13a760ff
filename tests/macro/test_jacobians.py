"""Finite-difference checks of what the macro Newton solves with: the assembled Jacobian
(small strain J2, finite strain Neo-Hooke, the (u, e) block system of implicit-gradient
damage) and the border of the arc-length system (d residual / d load factor and
d G / d x). Each is checked at a converged, inelastic trial state, in a random direction,
by central differences of the assembled residual (or of G)."""

import numpy as np
import pytest
from mpi4py import MPI
from petsc4py import PETSc

from fe2.macro.loads import Dirichlet, Traction
from fe2.macro.mesh import BOUNDARY_TAGS, rectangle
from fe2.macro.pattern import LoadPattern
from fe2.macro.problem import MacroProblem
from fe2.materials import IsotropicDamage, J2Plasticity, MaterialPoints, NeoHooke

TAG = BOUNDARY_TAGS


def problem(kind, comm=MPI.COMM_WORLD):
    """A 2 x 1 plate pulled on the right, brought to a converged trial state past the
    elastic range (the step before is committed)."""
    mm = rectangle(comm, 2.0, 1.0, 4, 2)
    bcs = [Dirichlet(TAG["left"], 0, 0.0, "left"), Dirichlet(TAG["bottom"], 1, 0.0, "bottom")]
    length = None
    if kind == "j2":
        law, bcs, trac = J2Plasticity(1.0, 0.3, 0.01, 2, H_iso=0.2, Q=0.005, b=50.0, H_kin=0.1), bcs, \
            [Traction(TAG["top"], (0.002, 0.004), "top")]
        bcs = bcs + [Dirichlet(TAG["right"], 0, 0.04, "right")]
    elif kind == "neo_hooke":
        law, trac = NeoHooke(1.0, 0.3, 2), [Traction(TAG["top"], (0.05, 0.1), "top")]
        bcs = bcs + [Dirichlet(TAG["right"], 0, 0.4, "right")]
    else:  # gradient damage
        law, length = IsotropicDamage(1.0, 0.2, 1e-3, 2, softening="exponential", beta=100.0), 0.3
        trac = [Traction(TAG["right"], (0.0, 1e-5), "right")]  # a load pattern with tractions too
        bcs = bcs + [Dirichlet(TAG["right"], 0, 0.006, "right")]
    p = MacroProblem(mm, MaterialPoints(law), degree=2, dirichlet=bcs, traction=trac, nonlocal_length=length)
    for lam in (0.6, 1.0):
        p.set_load(lam)
        p.set_time_increment(0.4)
        rep = p.newton(rtol=1e-12, atol=1e-14, max_iterations=25)
        assert rep.converged, rep.failure
        if lam < 1.0:
            p.commit()
    return p


def free_direction(p, seed=0):
    """A random direction on the free DOFs (zero on Dirichlet DOFs), ghosts updated."""
    d = p.x.x.petsc_vec.duplicate()
    n = d.getLocalSize()
    d.array_w[:] = np.random.default_rng(seed + p.comm.rank).uniform(-1.0, 1.0, n)
    for bc in p.bcs:
        dofs, nown = bc.dof_indices()
        d.array_w[dofs[:nown][dofs[:nown] < n]] = 0.0
    d.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
    return d


def residual_at(p, h, d):
    """The assembled residual at x + h d (material evaluated there, from the committed state)."""
    p.add_to_solution(h, d)
    p.update_material()
    p.assemble_residual()
    r = p.b.copy()
    p.add_to_solution(-h, d)
    return r


def rel_error(a, b):
    diff = a.copy()
    diff.axpy(-1.0, b)
    return diff.norm() / b.norm()


@pytest.mark.parametrize("kind", ["j2", "neo_hooke", "gradient"])
def test_assembled_jacobian_matches_finite_differences(kind):
    p = problem(kind)
    if kind == "j2":
        assert p.comm.allreduce(p.material.internal_fields()["equivalent_plastic_strain"].max(), op=MPI.MAX) > 0
    if kind == "gradient":  # damage growing in this (trial) step, not only committed
        trial = p.material.law.fields(p.material.bank.trial["state"])["damage"]
        committed = p.material.internal_fields()["damage"]
        assert p.comm.allreduce((trial - committed).max(), op=MPI.MAX) > 0.01
    d = free_direction(p)
    scale = p.x.x.petsc_vec.norm() / d.norm()
    h = 1e-6 * scale
    p.update_material()
    p.assemble_jacobian()
    Jd = p.b.duplicate()
    p.A.mult(d, Jd)
    fd = residual_at(p, h, d)
    fd.axpy(-1.0, residual_at(p, -h, d))
    fd.scale(1.0 / (2 * h))
    assert rel_error(Jd, fd) < 1e-6
    p.update_material()
    p.destroy()


def test_arc_length_border_matches_finite_differences():
    p = problem("gradient")
    pattern = LoadPattern(p)
    p.update_material()
    p.assemble_jacobian()
    lam = p.time
    # d residual / d load factor at fixed x and tangent
    dR = p.b.duplicate()
    pattern.load_derivative(dR)
    h = 1e-4 * lam
    rs = []
    for s in (1.0, -1.0):
        p.set_load(lam + s * h)
        p.assemble_residual()
        rs.append(p.b.copy())
    p.set_load(lam)
    fd = rs[0]
    fd.axpy(-1.0, rs[1])
    fd.scale(1.0 / (2 * h))
    assert dR.norm() > 0 and rel_error(dR, fd) < 1e-8
    # d G / d x = K^T w - f_hat, against central differences of G in a random direction
    d = free_direction(p, seed=3)
    p.update_material()
    p.assemble_jacobian()
    dG = p.b.duplicate()
    pattern.conjugate_force_gradient(dG)
    hx = 1e-6 * p.x.x.petsc_vec.norm() / d.norm()
    G = []
    for s in (1.0, -1.0):
        p.add_to_solution(s * hx, d)
        p.update_material()
        G.append(pattern.conjugate_force())
        p.add_to_solution(-s * hx, d)
    fd_G = (G[0] - G[1]) / (2 * hx)
    assert dG.dot(d) == pytest.approx(fd_G, rel=1e-6)
    assert abs(fd_G) > 1e-3 * abs(pattern.conjugate_force()) / p.x.x.petsc_vec.norm() * d.norm()
    p.destroy()
