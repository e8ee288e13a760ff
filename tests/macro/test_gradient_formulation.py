"""The implicit-gradient macro formulation against a closed form: the nonlocal strain of a
bar with natural boundary conditions solves e - l^2 e'' = e_loc, so a cosine e_loc =
cos(pi x / L) gives e = cos(pi x / L) / (1 + (pi l / L)^2) exactly."""

import numpy as np
import pytest
import ufl
from mpi4py import MPI

from fe2.core.tensors import isotropic_stiffness
from fe2.macro.loads import Dirichlet
from fe2.macro.mesh import BOUNDARY_TAGS, rectangle
from fe2.macro.problem import MacroProblem
from fe2.materials.base import NonlocalResponse, PointMaterial

L = 1.0


class PrescribedLocalStrain(PointMaterial):
    """Elastic, with a local equivalent strain prescribed as a function of position (and no
    coupling: dsigma/de = de_loc/dE = de_loc/de = 0), so that the nonlocal equation decouples."""

    nonlocal_form = True

    def __init__(self, e_loc):
        self.C = isotropic_stiffness(1.0, 0.2, 2)
        self.size = 3
        self.e_loc = e_loc
        self.points = None  # (N, 2) coordinates of the points, set once the problem exists

    def evaluate(self, E):
        return E @ self.C.T, np.broadcast_to(self.C, (E.shape[0], 3, 3))

    def evaluate_nonlocal(self, E, e_nl):
        N = E.shape[0]
        flux, tangent = self.evaluate(E)
        return NonlocalResponse(flux, tangent, np.zeros((N, 3)), self.e_loc(self.points[:, 0]), np.zeros((N, 3)),
                                np.zeros(N))


def nonlocal_strain(length, n, comm=MPI.COMM_WORLD):
    """The nonlocal strain at the nodes and their x, after one Newton solve."""
    mm = rectangle(comm, L, L / n, n, 1)  # square cells: refinement is self-similar
    mat = PrescribedLocalStrain(lambda x: np.cos(np.pi * x / L))
    bcs = [Dirichlet(BOUNDARY_TAGS["left"], 0, 0.0, "left"), Dirichlet(BOUNDARY_TAGS["bottom"], 1, 0.0, "bottom")]
    p = MacroProblem(mm, mat, degree=1, quadrature_degree=2, dirichlet=bcs, nonlocal_length=length)
    qp = p.quadrature
    mat.points = qp.evaluate(qp.expression(ufl.SpatialCoordinate(p.mesh)), 2)
    p.set_load(1.0)
    rep = p.newton(rtol=1e-12, atol=1e-14, max_iterations=3)
    assert rep.converged and rep.iterations == 1  # linear in (u, e)
    x = p.formulation.Ve_collapsed.tabulate_dof_coordinates()[:, 0]
    return x, p.e.x.array.copy()


@pytest.mark.parametrize("length", [0.05, 0.2])
def test_nonlocal_strain_of_a_cosine_is_the_closed_form(length):
    exact = lambda x: np.cos(np.pi * x / L) / (1.0 + (np.pi * length / L) ** 2)  # noqa: E731
    errors = []
    for n in (16, 32):
        x, e = nonlocal_strain(length, n)
        errors.append(MPI.COMM_WORLD.allreduce(np.abs(e - exact(x)).max(), op=MPI.MAX))
    amplitude = 1.0 / (1.0 + (np.pi * length / L) ** 2)
    assert errors[1] < 2e-3 * amplitude
    assert 3.0 < errors[0] / errors[1] < 5.0  # second order in h
