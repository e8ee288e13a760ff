"""Macro formulations: what the macro unknowns are and what the material is asked for.

- :class:`LocalFormulation`: the displacement ``u`` alone (a local continuum); the
  material returns flux and tangent at the quadrature points.
- :class:`GradientFormulation`: the implicit gradient enhancement (Peerlings et al. 1996)
  with internal length ``l``: the mixed unknown ``(u, e)`` where the P1 field ``e`` (the
  nonlocal equivalent strain) solves ``e - l^2 div grad e = e_loc`` with natural boundary
  conditions, ``e_loc`` the material's local equivalent strain, and the material's damage
  is driven by ``e`` (:meth:`~fe2.materials.base.PointMaterial.evaluate_nonlocal`). Newton
  is monolithic in ``(u, e)`` with the complete block tangent.

A formulation builds the function space and unknown, adds its own terms to the residual
and Jacobian forms of :class:`fe2.macro.problem.MacroProblem`, and evaluates the material
at the owned quadrature points (:class:`fe2.core.quadrature.QuadraturePoints`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import basix.ufl
import numpy as np
import ufl
from dolfinx import fem

from fe2.core.quadrature import QuadraturePoints
from fe2.materials.base import PointMaterial

__all__ = ["GradientFormulation", "LocalFormulation"]


class LocalFormulation:
    """The displacement alone (see the module docstring); its methods are the interface every
    formulation provides.

    Attributes
    ----------
    V : the space of the unknown; x : the unknown; u : the displacement, or the temperature
        of a scalar (conduction) problem (``x`` itself, or a collapsed copy kept in step
        with it by :meth:`sync`)
    Vu : the displacement (sub)space, for Dirichlet conditions
    u_expr : the displacement as a UFL expression of ``x``
    v, du : displacement test and trial functions
    """

    def __init__(self, mesh: Any, degree: int, quadrature: QuadraturePoints, size: int, scalar: bool = False
                 ) -> None:
        gdim = mesh.geometry.dim
        self.quadrature, self.size = quadrature, size
        self.V = fem.functionspace(mesh, ("Lagrange", degree, () if scalar else (gdim,)))
        self.u = self.x = fem.Function(self.V, name="temperature" if scalar else "displacement")
        self.Vu, self.u_expr = self.V, self.u
        self.v, self.du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)

    def check(self, material: PointMaterial, kinematics: str) -> None:
        """Raise ValueError if ``material`` cannot serve this formulation."""

    def residual(self, G: Callable[[Any], Any]) -> Any | None:
        """The formulation's own residual terms (UFL), or None."""
        return None

    def jacobian(self, G: Callable[[Any], Any]) -> Any | None:
        """The formulation's own Jacobian terms (UFL), or None."""
        return None

    def evaluate(self, material: PointMaterial, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flux ``(N, n)`` and tangent ``(N, n, n)`` at the owned points for the macro
        gradients ``E``; formulation-specific answers are stored (not collective)."""
        return material.evaluate(E)

    def scatter(self) -> None:
        """Update the ghosts of the formulation's own quadrature fields (collective)."""

    def sync(self) -> None:
        """Bring the displacement (and other views) in step with ``x`` (not collective)."""

    def output_fields(self) -> dict[str, fem.Function]:
        """Nodal fields of the formulation worth writing to the results."""
        return {}


class GradientFormulation(LocalFormulation):
    """The implicit gradient enhancement with internal length ``length`` (module docstring).

    Extra attributes: ``e`` (the nonlocal strain, collapsed), quadrature fields
    ``dsigma_de``, ``e_local``, ``de_local_dE``, ``de_local_de``.
    """

    def __init__(self, mesh: Any, degree: int, quadrature: QuadraturePoints, size: int, length: float) -> None:
        if not length > 0:
            raise ValueError(f"nonlocal_length must be > 0, got {length}")
        gdim = mesh.geometry.dim
        cell = mesh.topology.cell_name()
        self.quadrature, self.size, self.length = quadrature, size, length
        el_u = basix.ufl.element("Lagrange", cell, degree, shape=(gdim,))
        el_e = basix.ufl.element("Lagrange", cell, 1)
        self.V = V = fem.functionspace(mesh, basix.ufl.mixed_element([el_u, el_e]))
        self.x = fem.Function(V, name="solution")
        self.Vu = V.sub(0)
        self.Vu_collapsed, self._u_dofs = self.Vu.collapse()
        self.u = fem.Function(self.Vu_collapsed, name="displacement")
        self.Ve_collapsed, self._e_dofs = V.sub(1).collapse()
        self.e = fem.Function(self.Ve_collapsed, name="nonlocal_strain")
        self.u_expr, self.e_expr = ufl.split(self.x)
        (self.v, self.q), (self.du, self.de) = ufl.TestFunctions(V), ufl.TrialFunctions(V)
        Qs, Qe = quadrature.space((size,)), quadrature.space(())
        #: dsigma/de, e_loc, de_loc/dE, de_loc/de at the quadrature points
        self.dsigma_de = fem.Function(Qs, name="dsigma_de")
        self.e_local = fem.Function(Qe, name="local_equivalent_strain")
        self.de_local_dE = fem.Function(Qs, name="de_loc_dE")
        self.de_local_de = fem.Function(Qe, name="de_loc_de")
        self._e_at_points = quadrature.expression(self.e_expr)
        self._qdofs = quadrature.dofs(Qs)
        self._qdofs_scalar = quadrature.dofs(Qe)
        self._l2 = fem.Constant(mesh, float(length) ** 2)

    def check(self, material: PointMaterial, kinematics: str) -> None:
        if kinematics != "small" or not material.nonlocal_form:
            raise ValueError("the gradient-enhanced macro problem needs a small-strain material with a "
                             "nonlocal form (a damage law or an RVE with a damage phase)")

    def residual(self, G: Callable[[Any], Any]) -> Any:
        e, q, dx = self.e_expr, self.q, self.quadrature.dx
        return (e * q + self._l2 * ufl.inner(ufl.grad(e), ufl.grad(q)) - self.e_local * q) * dx

    def jacobian(self, G: Callable[[Any], Any]) -> Any:
        de, q, dx, l2 = self.de, self.q, self.quadrature.dx, self._l2
        return (ufl.inner(self.dsigma_de * de, G(self.v)) * dx
                + (de * q + l2 * ufl.inner(ufl.grad(de), ufl.grad(q)) - self.de_local_de * de * q) * dx
                - q * ufl.inner(self.de_local_dE, G(self.du)) * dx)

    def evaluate(self, material: PointMaterial, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e_nl = self.quadrature.evaluate(self._e_at_points, 1).reshape(-1)
        r = material.evaluate_nonlocal(E, e_nl)
        n = self.size
        self.dsigma_de.x.array.reshape(-1, n)[self._qdofs] = r.dflux_de
        self.de_local_dE.x.array.reshape(-1, n)[self._qdofs] = r.de_local_dE
        self.e_local.x.array[self._qdofs_scalar] = r.e_local
        self.de_local_de.x.array[self._qdofs_scalar] = r.de_local_de
        return r.flux, r.tangent

    def scatter(self) -> None:
        for f in (self.dsigma_de, self.de_local_dE, self.e_local, self.de_local_de):
            f.x.scatter_forward()

    def sync(self) -> None:
        self.u.x.array[:] = self.x.x.array[self._u_dofs]
        self.e.x.array[:] = self.x.x.array[self._e_dofs]

    def local_strain_at_points(self) -> np.ndarray:
        """``(N_owned,)`` the material's local equivalent strain at the owned points (last evaluation)."""
        return self.e_local.x.array[self._qdofs_scalar]

    def output_fields(self) -> dict[str, fem.Function]:
        return {"nonlocal_strain": self.e}
