"""Small-strain isotropic damage with strain softening (vectorised over points).

Stress and energy (``C`` the isotropic elastic stiffness, ``omega`` in ``[0, 1)``)::

    sigma = (1 - omega) C eps,      psi = (1 - omega) Y,   Y = 1/2 eps . C eps

Damage is a function of the history variable ``kappa``, the largest value the *driving
strain* ``e`` has reached (never below the damage threshold ``kappa0``)::

    kappa = max(kappa_n, e),   omega = g(kappa)   (capped at ``max_damage``)

In a **local** law the driving strain is the equivalent strain of the point,
``e = eps_eq(eps)``. In the implicit gradient model (Peerlings et al. 1996) and in
gradient-regularized FE² it is a *nonlocal* value handed to the point from outside:
:meth:`IsotropicDamage.integrate_driven` takes ``e`` as an argument and returns the
derivatives the coupled tangent needs; :meth:`IsotropicDamage.integrate` is the local
law built on it (``e = eps_eq(eps)``).

Equivalent strains (3D, ``I1 = tr eps``, ``J2 = 1/2 dev eps : dev eps``):

- ``"mises"`` — modified von Mises (de Vree et al. 1995), ``k`` the ratio of compressive
  to tensile strength::

      eps_eq = (k-1)/(2k(1-2nu)) I1 + 1/(2k) sqrt(((k-1)/(1-2nu))^2 I1^2 + 12k/(1+nu)^2 J2)

- ``"mazars"`` — ``sqrt(sum <eps_i>_+^2)`` over the principal strains.

Both equal the axial strain in uniaxial tension (``sigma = s e_x``).

Softening laws ``g(kappa)`` for ``kappa >= kappa0``:

- ``"linear"`` (linear softening of the 1D stress–strain curve to zero stress at
  ``kappa_u``): ``g = kappa_u (kappa - kappa0) / (kappa (kappa_u - kappa0))``, 1 beyond ``kappa_u``;
- ``"exponential"`` (Peerlings et al. 1996):
  ``g = 1 - kappa0/kappa (1 - alpha + alpha exp(-beta (kappa - kappa0)))``.

Viscous regularization (optional, ``viscosity = eta > 0``, Duvaut–Lions type): ``kappa``
relaxes towards ``e`` with relaxation time ``eta`` in the load-factor (pseudo-)time,
backward Euler over the increment ``dt`` (:meth:`set_time_increment`)::

    kappa = max(kappa_n, (kappa_n + r e) / (1 + r)),   r = dt / eta

so the damage lags the driving strain and the local problem stays well posed for a
while after the peak. ``eta = 0`` (default) is the rate-independent law.

Dissipation: ``D = int Y d omega`` per unit volume, integrated with the trapezoidal rule
over each increment (``Y_n`` is kept in the state). With ``W`` the work of the stresses,
``W = psi + D`` holds to second order in the increment.

Everything runs in 3D Mandel notation (:mod:`fe2.core.tensors`); plane strain (``gdim == 2``)
embeds ``[xx, yy, xy]`` with ``eps_zz = eps_yz = eps_xz = 0``.
"""

from __future__ import annotations

import numpy as np

from fe2 import kernels
from fe2.core.tensors import (
    DEVIATORIC3,
    IDENTITY3,
    PLANE_STRAIN,
    embed_plane_strain,
    isotropic_stiffness,
    mandel_to_tensor,
    restrict_plane_strain,
    strain_size,
    tensor_to_mandel,
)
from fe2.kernels.damage import driven_damage, mises_equivalent
from fe2.materials.base import DrivenResult, Law, LawResult

__all__ = ["EQUIVALENT_STRAINS", "IsotropicDamage", "SOFTENING_LAWS"]

EQUIVALENT_STRAINS = ("mises", "mazars")
SOFTENING_LAWS = ("linear", "exponential")


class IsotropicDamage(Law):
    """Isotropic damage ``sigma = (1 - omega(kappa)) C eps`` with strain softening.

    Parameters
    ----------
    E, nu : elastic constants (``E > 0``, ``-1 < nu < 0.5``)
    kappa0 : damage threshold of the equivalent strain (> 0)
    gdim : 2 (plane strain) or 3
    softening : ``"linear"`` or ``"exponential"``
    kappa_u : strain at zero stress of linear softening (> kappa0)
    alpha, beta : exponential softening (``0 <= alpha <= 1``, ``beta > 0``): residual
        stress fraction ``1 - alpha`` and softening rate
    equivalent_strain : ``"mises"`` or ``"mazars"``
    k : compressive/tensile strength ratio of the modified von Mises strain (>= 1)
    viscosity : relaxation time ``eta`` of the viscous regularization (>= 0; 0 = none)
    max_damage : cap on ``omega`` (< 1) so that a fully damaged point keeps a little
        stiffness and the micro Jacobian stays regular

    State per point (:attr:`state_layout`): ``kappa``, ``omega``, ``dissipation`` (the
    energy dissipated per unit volume so far) and ``Y`` (the energy release rate at the end
    of the step, for the trapezoidal dissipation increment).
    """

    #: the consistent tangent of a damaging point is not symmetric (LU, not Cholesky)
    symmetric_tangent = False
    driven = True
    state_size = 4
    state_layout: dict[str, slice] = {"kappa": slice(0, 1), "omega": slice(1, 2),
                                      "dissipation": slice(2, 3), "Y": slice(3, 4)}
    output_fields = {"omega": "damage", "dissipation": "dissipation"}

    def __init__(self, E: float, nu: float, kappa0: float, gdim: int, softening: str = "exponential",
                 kappa_u: float | None = None, alpha: float = 0.99, beta: float = 100.0,
                 equivalent_strain: str = "mises", k: float = 10.0, viscosity: float = 0.0,
                 max_damage: float = 0.99999) -> None:
        self.size = strain_size(gdim)
        self.gdim = gdim

        def check(name: str, val, ok: bool, what: str) -> float:
            if not (val is not None and np.isfinite(val) and ok):
                raise ValueError(f"IsotropicDamage: {name} must be {what}, got {val}")
            return float(val)

        self.E = check("E", E, E > 0, "> 0")
        self.nu = check("nu", nu, -1.0 < nu < 0.5, "in (-1, 0.5)")
        self.kappa0 = check("kappa0", kappa0, kappa0 > 0, "> 0")
        if softening not in SOFTENING_LAWS:
            raise ValueError(f"IsotropicDamage: softening must be one of {SOFTENING_LAWS}, got {softening!r}")
        if equivalent_strain not in EQUIVALENT_STRAINS:
            raise ValueError(f"IsotropicDamage: equivalent_strain must be one of {EQUIVALENT_STRAINS}, "
                             f"got {equivalent_strain!r}")
        self.softening = softening
        self.equivalent_strain = equivalent_strain
        if softening == "linear":
            self.kappa_u = check("kappa_u", kappa_u, kappa_u is not None and kappa_u > kappa0, "> kappa0")
        else:
            self.kappa_u = None
        self.alpha = check("alpha", alpha, 0.0 <= alpha <= 1.0, "in [0, 1]")
        self.beta = check("beta", beta, beta > 0, "> 0")
        self.k = check("k", k, k >= 1.0, ">= 1")
        self.viscosity = check("viscosity", viscosity, viscosity >= 0, ">= 0")
        self.max_damage = check("max_damage", max_damage, 0.0 < max_damage < 1.0, "in (0, 1)")
        self.C3 = isotropic_stiffness(self.E, self.nu, 3)
        self.dt = 1.0

    @property
    def rate_dependent(self) -> bool:
        """True with a viscous regularization (``viscosity > 0``)."""
        return self.viscosity > 0.0

    def set_time_increment(self, dt: float) -> None:
        """Pseudo-time increment of the next integration (used only if ``viscosity > 0``)."""
        self.dt = float(dt)

    def initial_state(self, N: int) -> np.ndarray:
        s = np.zeros((N, self.state_size))
        s[:, 0] = self.kappa0
        return s

    # -- scalar functions -------------------------------------------------------------
    def damage(self, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``omega(kappa)`` and ``d omega / d kappa`` (capped at ``max_damage``, slope 0 there)."""
        kappa = np.asarray(kappa, dtype=float)
        k0 = self.kappa0
        kk = np.maximum(kappa, k0)
        if self.softening == "linear":
            ku = self.kappa_u
            w = ku * (kk - k0) / (kk * (ku - k0))
            dw = ku * k0 / ((ku - k0) * kk ** 2)
            beyond = kk >= ku
            w = np.where(beyond, 1.0, w)
            dw = np.where(beyond, 0.0, dw)
        else:
            a, b = self.alpha, self.beta
            ex = np.exp(-b * (kk - k0))
            w = 1.0 - k0 / kk * (1.0 - a + a * ex)
            dw = k0 / kk ** 2 * (1.0 - a + a * ex) + k0 / kk * a * b * ex
        below = kappa <= k0
        capped = w >= self.max_damage
        w = np.where(below, 0.0, np.minimum(w, self.max_damage))
        dw = np.where(below | capped, 0.0, dw)
        return w, dw

    def equivalent(self, eps3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Equivalent strain ``(N,)`` and its gradient ``d eps_eq / d eps`` ``(N, 6)``
        (3D Mandel strains ``(N, 6)``): the modified von Mises one by the compiled kernel
        (:func:`fe2.kernels.damage.mises_equivalent`) if :func:`fe2.kernels.enabled`, else
        :meth:`equivalent_numpy`."""
        if not (kernels.enabled() and self.equivalent_strain == "mises"):
            return self.equivalent_numpy(eps3)
        eps3 = np.ascontiguousarray(np.atleast_2d(eps3), dtype=float)
        if eps3.ndim != 2 or eps3.shape[1] != 6:
            raise ValueError(f"IsotropicDamage: expected 3D Mandel strains (N, 6), got {eps3.shape}")
        e, de = np.empty(eps3.shape[0]), np.empty((eps3.shape[0], 6))
        mises_equivalent(eps3, self.k, self.nu, e, de)
        return e, de

    def equivalent_numpy(self, eps3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`equivalent` in numpy: the reference of the compiled kernel (and Mazars's
        equivalent strain, whose principal strains numpy computes)."""
        eps3 = np.atleast_2d(eps3)
        if self.equivalent_strain == "mises":
            k, nu = self.k, self.nu
            a = (k - 1.0) / (1.0 - 2.0 * nu)
            I1 = eps3[:, :3].sum(axis=1)
            dev = eps3 @ DEVIATORIC3
            J2 = 0.5 * np.einsum("ij,ij->i", dev, dev)
            root = np.sqrt(a * a * I1 ** 2 + 12.0 * k / (1.0 + nu) ** 2 * J2)
            e = a * I1 / (2.0 * k) + root / (2.0 * k)
            safe = np.where(root > 0.0, root, 1.0)
            droot = (a * a * I1)[:, None] * IDENTITY3 + (6.0 * k / (1.0 + nu) ** 2) * dev  # = d(root^2)/2
            de = (a / (2.0 * k)) * IDENTITY3 + np.where(root[:, None] > 0.0, droot / (2.0 * k * safe[:, None]), 0.0)
            return e, de
        lam, vec = np.linalg.eigh(mandel_to_tensor(eps3))
        pos = np.maximum(lam, 0.0)
        e = np.sqrt((pos ** 2).sum(axis=1))
        safe = np.where(e > 0.0, e, 1.0)
        # d e / d eps = sum_i <eps_i>_+ n_i x n_i / e
        dmat = np.einsum("ni,nai,nbi->nab", pos / safe[:, None], vec, vec)
        return e, tensor_to_mandel(dmat)

    # -- integration --------------------------------------------------------------------
    def integrate_driven_3d(self, eps3: np.ndarray, state: np.ndarray, drive: np.ndarray,
                            equivalent: tuple[np.ndarray, np.ndarray] | None = None):
        """The law with a given driving strain ``drive`` ``(N,)`` (3D Mandel).

        Returns a :class:`~fe2.materials.base.DrivenResult`: ``sigma (N, 6)``, ``dsigma/deps``
        at fixed drive ``(N, 6, 6)``, ``dsigma/ddrive (N, 6)``, ``eps_eq (N,)``,
        ``d eps_eq/deps (N, 6)``, trial state.
        ``equivalent``: ``(eps_eq, d eps_eq/deps)`` if the caller has them already (they are
        returned as given, not recomputed). The compiled kernel
        (:func:`fe2.kernels.damage.driven_damage`) if :func:`fe2.kernels.enabled`, else
        :meth:`integrate_driven_3d_numpy`.
        """
        if not kernels.enabled():
            return self.integrate_driven_3d_numpy(eps3, state, drive, equivalent)
        eps3 = np.ascontiguousarray(np.atleast_2d(eps3), dtype=float)
        state = np.ascontiguousarray(np.atleast_2d(state), dtype=float)
        drive = np.ascontiguousarray(drive, dtype=float).reshape(-1)
        N = eps3.shape[0]
        if eps3.shape != (N, 6) or state.shape != (N, self.state_size) or drive.shape != (N,):
            raise ValueError(f"IsotropicDamage: expected strain (N, 6), state (N, {self.state_size}) and "
                             f"drive (N,), got {eps3.shape}, {state.shape} and {drive.shape}")
        sigma, C, ds, trial = np.empty((N, 6)), np.empty((N, 6, 6)), np.empty((N, 6)), np.empty((N, 4))
        linear = self.softening == "linear"
        driven_damage(eps3, state, drive, self.C3, self.kappa0, linear, self.kappa_u if linear else 0.0, self.alpha,
                      self.beta, self.max_damage, self.dt / self.viscosity if self.viscosity > 0.0 else -1.0,
                      sigma, C, ds, trial)
        e, de = self.equivalent(eps3) if equivalent is None else equivalent
        return DrivenResult(sigma, C, ds, e, de, trial)

    def integrate_driven_3d_numpy(self, eps3: np.ndarray, state: np.ndarray, drive: np.ndarray,
                                  equivalent: tuple[np.ndarray, np.ndarray] | None = None):
        """:meth:`integrate_driven_3d` in numpy: the reference of the compiled kernel."""
        eps3 = np.atleast_2d(np.asarray(eps3, dtype=float))
        state = np.atleast_2d(np.asarray(state, dtype=float))
        drive = np.asarray(drive, dtype=float).reshape(-1)
        N = eps3.shape[0]
        if eps3.shape != (N, 6) or state.shape != (N, self.state_size) or drive.shape != (N,):
            raise ValueError(f"IsotropicDamage: expected strain (N, 6), state (N, {self.state_size}) and "
                             f"drive (N,), got {eps3.shape}, {state.shape} and {drive.shape}")
        kappa_n, omega_n, D_n, Y_n = state.T
        if self.viscosity > 0.0:
            r = self.dt / self.viscosity
            target = (kappa_n + r * drive) / (1.0 + r)
            slope = r / (1.0 + r)
        else:
            target, slope = drive, 1.0
        loading = target > kappa_n
        kappa = np.where(loading, target, kappa_n)
        omega, domega = self.damage(kappa)
        omega = np.maximum(omega, omega_n)  # never heals (also across a changed cap)
        s0 = eps3 @ self.C3.T  # effective (undamaged) stress
        sigma = (1.0 - omega)[:, None] * s0
        C_sec = (1.0 - omega)[:, None, None] * self.C3
        dsig_ddrive = -(np.where(loading, domega * slope, 0.0))[:, None] * s0
        e, de = self.equivalent(eps3) if equivalent is None else equivalent
        Y = 0.5 * np.einsum("ij,ij->i", eps3, s0)
        trial = np.stack([kappa, omega, D_n + 0.5 * (Y_n + Y) * (omega - omega_n), Y], axis=1)
        return DrivenResult(sigma, C_sec, dsig_ddrive, e, de, trial)

    def _embed(self, grad: np.ndarray) -> np.ndarray:
        grad = np.atleast_2d(np.asarray(grad, dtype=float))
        if grad.shape[1] != self.size:
            raise ValueError(f"IsotropicDamage: expected strain (N, {self.size}), got {grad.shape}")
        return grad if self.gdim == 3 else embed_plane_strain(grad)

    def _restrict(self, *arrays):
        return arrays if self.gdim == 3 else restrict_plane_strain(*arrays)

    def equivalent_of(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Equivalent strain ``(N,)`` and ``d eps_eq / d eps`` in the law's own notation."""
        e, de = self.equivalent(self._embed(grad))
        return e, (de if self.gdim == 3 else de[:, PLANE_STRAIN])

    def integrate_driven(self, grad: np.ndarray, state: np.ndarray, drive: np.ndarray,
                         equivalent: tuple[np.ndarray, np.ndarray] | None = None):
        """:meth:`integrate_driven_3d` in the law's own notation (plane strain: ``[xx, yy, xy]``):
        a :class:`~fe2.materials.base.DrivenResult`; ``equivalent``
        as returned by :meth:`equivalent_of` if the caller has it already."""
        if equivalent is None:
            sigma, C, ds, e, de, trial = self.integrate_driven_3d(self._embed(grad), state, drive)
            sigma, C, ds, de = self._restrict(sigma, C, ds, de)
            return DrivenResult(sigma, C, ds, e, de, trial)
        eps3 = self._embed(grad)
        sigma, C, ds, _, _, trial = self.integrate_driven_3d(eps3, state, drive, (equivalent[0], None))
        sigma, C, ds = self._restrict(sigma, C, ds)
        return DrivenResult(sigma, C, ds, equivalent[0], equivalent[1], trial)

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        """The local law (``drive = eps_eq(eps)``): stress, consistent tangent, trial state.

        Consistent tangent: ``(1 - omega) C - omega'(kappa) dkappa/de (C eps) x d eps_eq/d eps``
        while damage grows, the secant ``(1 - omega) C`` otherwise (not symmetric).
        """
        eps3 = self._embed(grad)
        e, de = self.equivalent(eps3)
        sigma, C, ds, _, _, trial = self.integrate_driven_3d(eps3, state, e, (e, de))
        C = C + ds[:, :, None] * de[:, None, :]
        sigma, C = self._restrict(sigma, C)
        return LawResult(sigma, C, trial)

    def flux(self, grad: np.ndarray, state: np.ndarray) -> np.ndarray:
        """``sigma = (1 - omega) C eps`` with the state's damage (local, driven or viscous alike)."""
        omega = np.atleast_2d(state)[:, self.state_layout["omega"]][:, 0]
        sigma = (1.0 - omega)[:, None] * (self._embed(grad) @ self.C3.T)
        return self._restrict(sigma)[0]

    def out_of_plane_stress(self, grad: np.ndarray, state: np.ndarray) -> np.ndarray | None:
        """Plane strain: ``sigma_zz = (1 - omega) [C eps]_zz`` with ``eps_zz = 0``."""
        if self.gdim != 2:
            return None
        omega = np.atleast_2d(state)[:, self.state_layout["omega"]][:, 0]
        return (1.0 - omega) * (self._embed(grad) @ self.C3[2])

    def fracture_energy_density(self) -> float:
        """Energy per unit volume dissipated in uniaxial tension to full damage (closed form;
        ignores ``max_damage``): ``1/2 E kappa0 kappa_u`` (linear) or
        ``E kappa0 (kappa0/2 + (1 - alpha) inf + alpha/beta)`` (exponential: infinite if ``alpha < 1``)."""
        if self.softening == "linear":
            return 0.5 * self.E * self.kappa0 * self.kappa_u
        if self.alpha < 1.0:
            return float("inf")
        return self.E * self.kappa0 * (0.5 * self.kappa0 + 1.0 / self.beta)
