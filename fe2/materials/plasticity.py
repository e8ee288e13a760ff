"""Small-strain J2 (von Mises) plasticity with mixed isotropic/kinematic hardening.

Yield function (``s`` the deviatoric stress, ``X`` the back stress, ``p`` the accumulated
plastic strain, ``q(t) = sqrt(3/2) |t|``)::

    f = q(s - X) - (sigma_y + R(p)) <= 0,   R(p) = H_iso p + Q (1 - exp(-b p))

associative flow ``deps_p = dp sqrt(3/2) n`` with ``n = (s - X) / |s - X|`` (so that
``dp = sqrt(2/3) |deps_p|``) and linear (Prager) kinematic hardening
``dX = (2/3) H_kin deps_p``.

Return mapping (backward Euler, radial return). With the elastic trial stress
``sigma_tr = C (eps - eps_p_n)`` and the relative trial stress ``xi = dev(sigma_tr) - X_n``,
``q_tr = sqrt(3/2) |xi|``; the flow direction does not change during the step
(``n = xi / |xi|``) and ``dp`` solves the scalar equation::

    g(dp) = q_tr - (3G + H_kin) dp - sigma_y - R(p_n + dp) = 0

in closed form when ``Q == 0``, otherwise by a local Newton iteration on all plastic
points at once (``g`` is convex and decreasing because ``R`` is concave, so Newton from
``dp = 0`` increases monotonically to the root: no safeguard is needed). Then::

    eps_p = eps_p_n + sqrt(3/2) dp n,   X = X_n + sqrt(2/3) H_kin dp n,
    sigma = sigma_tr - sqrt(6) G dp n

Consistent (algorithmic) tangent, from ``d q_tr = sqrt(6) G n : d eps``,
``d dp = d q_tr / (3G + H_kin + R'(p))`` and ``d n = 2G / |xi| (I_dev - n x n) d eps``::

    C_alg = K 1 x 1 + 2G theta I_dev - 2G theta_bar n x n
    theta = 1 - 3G dp / q_tr,   theta_bar = 3G / (3G + H_kin + R'(p_n + dp)) - 3G dp / q_tr

Everything is computed in 3D Mandel notation (:mod:`fe2.core.tensors`); plane strain
(``gdim == 2``) embeds ``[xx, yy, xy]`` into 3D with ``eps_zz = eps_yz = eps_xz = 0`` and
returns rows/columns ``[0, 1, 5]``. The state always holds the full 3D plastic strain and
back stress (the out-of-plane plastic strain ``eps_p_zz`` is not zero in plane strain).
"""

from __future__ import annotations

import numpy as np

from fe2 import kernels
from fe2.core.errors import SolverError
from fe2.core.tensors import (
    DEVIATORIC3,
    PLANE_STRAIN,
    embed_plane_strain,
    isotropic_stiffness,
    lame,
    strain_size,
)
from fe2.kernels.j2 import return_mapping
from fe2.materials.base import Law, LawResult

__all__ = ["J2Plasticity"]

_SQRT32 = np.sqrt(1.5)
_SQRT23 = np.sqrt(2.0 / 3.0)


class J2Plasticity(Law):
    """Von Mises plasticity, isotropic (linear + Voce) and linear kinematic hardening.

    Parameters
    ----------
    E : Young's modulus (> 0)
    nu : Poisson's ratio (-1 < nu < 0.5)
    sigma_y : initial yield stress (> 0)
    gdim : 2 (plane strain) or 3
    H_iso : linear isotropic hardening modulus (>= 0)
    Q, b : Voce saturation ``Q (1 - exp(-b p))`` (both >= 0)
    H_kin : linear kinematic (Prager) hardening modulus (>= 0)

    State per point (13 values in 2D and 3D, see :attr:`state_layout`): the 3D Mandel
    plastic strain ``eps_p`` (6), the 3D Mandel back stress ``X`` (6) and the accumulated
    plastic strain ``p`` (1).
    """

    kinematics = "small"
    state_size = 13
    state_layout: dict[str, slice] = {"eps_p": slice(0, 6), "X": slice(6, 12), "p": slice(12, 13)}
    output_fields = {"p": "equivalent_plastic_strain"}

    #: Local Newton (Voce hardening): relative tolerance on ``g`` and iteration cap.
    newton_rtol = 1e-14
    newton_maxiter = 50

    def __init__(self, E: float, nu: float, sigma_y: float, gdim: int, H_iso: float = 0.0,
                 Q: float = 0.0, b: float = 0.0, H_kin: float = 0.0) -> None:
        self.size = strain_size(gdim)
        self.gdim = gdim

        def check(name: str, val: float, ok: bool, what: str) -> float:
            if not (np.isfinite(val) and ok):
                raise ValueError(f"J2Plasticity: {name} must be {what}, got {val}")
            return float(val)

        self.E = check("E", E, E > 0, "> 0")
        self.nu = check("nu", nu, -1.0 < nu < 0.5, "in (-1, 0.5)")
        self.sigma_y = check("sigma_y", sigma_y, sigma_y > 0, "> 0")
        self.H_iso = check("H_iso", H_iso, H_iso >= 0, ">= 0")
        self.Q = check("Q", Q, Q >= 0, ">= 0")
        self.b = check("b", b, b >= 0, ">= 0")
        self.H_kin = check("H_kin", H_kin, H_kin >= 0, ">= 0")
        lam, self.G = lame(self.E, self.nu)
        self.K = lam + 2.0 * self.G / 3.0
        #: 3D elastic Mandel stiffness (the elastic tangent is exactly this matrix)
        self.C3 = isotropic_stiffness(self.E, self.nu, 3)
        #: C3 and the deviatoric projector restricted to components (:meth:`integrate_3d_with`)
        self._restricted: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    # -- hardening ------------------------------------------------------------------
    def hardening(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Isotropic hardening ``R(p)`` and its slope ``R'(p)``, both shaped like ``p``."""
        p = np.asarray(p, dtype=float)
        if self.Q > 0.0 and self.b > 0.0:
            e = np.exp(-self.b * p)
            return self.H_iso * p + self.Q * (1.0 - e), self.H_iso + self.Q * self.b * e
        return self.H_iso * p, np.full_like(p, self.H_iso)

    def initial_state(self, N: int) -> np.ndarray:
        """``(N, 13)`` zeros: no plastic strain, no back stress, ``p = 0``."""
        return np.zeros((N, self.state_size))

    def equivalent_plastic_strain(self, state: np.ndarray) -> np.ndarray:
        """Accumulated plastic strain ``p``, shape ``(N,)``, from states ``(N, 13)``."""
        return np.atleast_2d(state)[:, self.state_layout["p"]][:, 0].copy()

    # -- integration ----------------------------------------------------------------
    def _solve_dp(self, f_tr: np.ndarray, q_tr: np.ndarray, p_n: np.ndarray) -> np.ndarray:
        """Plastic multiplier ``dp (M,)`` at plastic points with trial overstress ``f_tr > 0``."""
        h0 = 3.0 * self.G + self.H_kin
        if not (self.Q > 0.0 and self.b > 0.0):
            return f_tr / (h0 + self.H_iso)
        dp = np.zeros_like(f_tr)
        R_n = self.hardening(p_n)[0]
        scale = q_tr
        active = np.ones(dp.shape, dtype=bool)
        for _ in range(self.newton_maxiter):
            R, dR = self.hardening(p_n[active] + dp[active])
            g = q_tr[active] - h0 * dp[active] - self.sigma_y - R
            done = np.abs(g) <= self.newton_rtol * scale[active]
            step = g / (h0 + dR)
            # monotone convergence from below: a vanishing step also means converged
            done |= np.abs(step) <= 1e-16 * dp[active]
            idx = np.flatnonzero(active)
            dp[idx[~done]] += step[~done]
            active[idx[done]] = False
            if not active.any():
                return dp
        R, _ = self.hardening(p_n[active] + dp[active])
        res = np.abs(q_tr[active] - h0 * dp[active] - self.sigma_y - R) / scale[active]
        raise SolverError(
            f"J2 return mapping did not converge at {int(active.sum())} points in "
            f"{self.newton_maxiter} iterations (largest relative residual {res.max():.3e}, "
            f"R(p_n) up to {R_n.max():.3e})")

    def integrate_3d(self, eps: np.ndarray, state: np.ndarray, components: np.ndarray | None = None) -> LawResult:
        """Return mapping in 3D Mandel notation: the compiled kernel
        (:func:`fe2.kernels.j2.return_mapping`, :meth:`integrate_3d_with`) if
        :func:`fe2.kernels.enabled`, else :meth:`integrate_3d_numpy`."""
        if not kernels.enabled():
            return self.integrate_3d_numpy(eps, state, components)
        return self.integrate_3d_with(return_mapping, eps, state, components)

    def _inputs(self, eps: np.ndarray, state: np.ndarray, components: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Checked strains ``(N, k)`` and states ``(N, 13)`` as contiguous floats, and the
        components ``c`` ``(k,)`` (int64; default all six)."""
        state = np.ascontiguousarray(np.atleast_2d(state), dtype=float)
        N = state.shape[0]
        c = np.arange(6, dtype=np.int64) if components is None else np.asarray(components, dtype=np.int64)
        eps = np.ascontiguousarray(eps, dtype=float).reshape(N, -1)
        if eps.shape != (N, c.size) or state.shape != (N, self.state_size):
            raise ValueError(f"J2Plasticity: expected strain (N, {c.size}) and state (N, 13), "
                             f"got {eps.shape} and {state.shape}")
        return eps, state, c

    def integrate_3d_with(self, kernel, eps: np.ndarray, state: np.ndarray, components: np.ndarray | None = None
                          ) -> LawResult:
        """:meth:`integrate_3d` by a compiled point loop ``kernel`` with the arguments of
        :func:`fe2.kernels.j2.return_mapping` (``benchmarks/kernels.py`` passes others);
        where its local Newton fails, :meth:`integrate_3d_numpy` raises the error."""
        args = self.kernel_arguments(eps, state, components)
        if kernel(*args):
            return self.integrate_3d_numpy(eps, state, components)
        return LawResult(*args[-3:])

    def kernel_arguments(self, eps: np.ndarray, state: np.ndarray, components: np.ndarray | None = None) -> tuple:
        """The arguments of :func:`fe2.kernels.j2.return_mapping` for these points, with new
        output arrays (stress, tangent, trial state) last."""
        eps, state, c = self._inputs(eps, state, components)
        N, k = eps.shape
        key = tuple(c.tolist())
        if key not in self._restricted:  # the elastic stiffness and deviator in the components
            cc = np.ix_(c, c)
            self._restricted[key] = np.ascontiguousarray(self.C3[cc]), np.ascontiguousarray(DEVIATORIC3[cc])
        C, Idev = self._restricted[key]
        return (eps, state, c, C, Idev, self.K, self.G, self.sigma_y, self.H_iso, self.Q, self.b, self.H_kin,
                self.newton_rtol, self.newton_maxiter, np.empty((N, k)), np.empty((N, k, k)),
                np.empty((N, self.state_size)))

    def integrate_3d_numpy(self, eps: np.ndarray, state: np.ndarray, components: np.ndarray | None = None
                           ) -> LawResult:
        """Return mapping in 3D Mandel notation, in numpy: the reference of the compiled kernel.

        Parameters
        ----------
        eps : (N, k) total Mandel strain in the components ``c`` (the others are zero)
        state : (N, 13) committed state
        components : the Mandel components ``c`` (default all six) of the strain given and of
            the stress ``sigma[:, c]`` and tangent ``C_alg[:, c][:, :, c]`` returned (plane
            strain: ``[0, 1, 5]``); the state is always the full 3D one

        Returns
        -------
        sigma : (N, k) Mandel stress
        C_alg : (N, k, k) consistent tangent
        trial : (N, 13) new state
        """
        eps, state, c = self._inputs(eps, state, components)
        N = state.shape[0]
        G = self.G
        L = self.state_layout
        eps_p, X, p = L["eps_p"], L["X"], L["p"].start
        p_n = state[:, p]
        # elastic strain e = eps - eps_p and its deviator; isotropic elasticity: the trial
        # stress is K tr(e) 1 + 2G dev(e), the trial relative stress 2G dev(e) - X
        e = -state[:, eps_p]
        e[:, c] += eps
        tr = e[:, 0] + e[:, 1] + e[:, 2]
        xi = (2.0 * G) * e
        xi[:, :3] -= (2.0 * G / 3.0) * tr[:, None]
        sigma = xi[:, c]  # 2G dev(e) in the returned components (a copy)
        mean = self.K * tr
        sigma[:, c < 3] += mean[:, None]
        xi -= state[:, X]
        norm_xi = np.sqrt(np.einsum("ij,ij->i", xi, xi))
        q_tr = _SQRT32 * norm_xi
        f_tr = q_tr - self.sigma_y - self.hardening(p_n)[0]
        ip = np.flatnonzero(f_tr > 0.0)

        C3 = self.C3[np.ix_(c, c)]
        trial = state.copy()
        C_alg = np.empty((N, c.size, c.size))
        C_alg[:] = C3
        if ip.size:
            qp = q_tr[ip]
            pn = p_n[ip]
            dp = self._solve_dp(f_tr[ip], qp, pn)
            n = xi[ip] / norm_xi[ip][:, None]
            nc = n[:, c]
            sigma[ip] -= (np.sqrt(6.0) * G * dp)[:, None] * nc
            upd = trial[ip]
            upd[:, eps_p] += (_SQRT32 * dp)[:, None] * n
            upd[:, X] += (_SQRT23 * self.H_kin * dp)[:, None] * n
            upd[:, p] = pn + dp
            trial[ip] = upd
            dR = self.hardening(pn + dp)[1]
            a = 3.0 * G * dp / qp  # 1 - theta
            theta_bar = 3.0 * G / (3.0 * G + self.H_kin + dR) - a
            # C_alg = C - 2G (1 - theta) I_dev - 2G theta_bar n x n
            C_alg[ip] -= ((2.0 * G * a)[:, None, None] * DEVIATORIC3[np.ix_(c, c)]
                          + (2.0 * G * theta_bar)[:, None, None] * (nc[:, :, None] * nc[:, None, :]))
        return LawResult(sigma, C_alg, trial)

    def out_of_plane_stress(self, grad: np.ndarray, state: np.ndarray) -> np.ndarray | None:
        """Plane strain: ``sigma_zz = [C (eps - eps_p)]_zz`` with ``eps_zz = 0`` and the
        state's 3D plastic strain."""
        if self.gdim != 2:
            return None
        state = np.atleast_2d(state)
        eps_e = embed_plane_strain(np.atleast_2d(grad)) - state[:, self.state_layout["eps_p"]]
        return eps_e @ self.C3[2]

    def integrate(self, grad: np.ndarray, state: np.ndarray) -> LawResult:
        """Stress, consistent tangent and trial state at ``N`` points.

        Parameters
        ----------
        grad : (N, n) Mandel strain, ``n = 3`` (plane strain ``[xx, yy, xy]``) or 6
        state : (N, 13) committed state (not modified)

        Returns
        -------
        flux : (N, n) Mandel stress (in 2D without ``sigma_zz``)
        tangent : (N, n, n) consistent tangent
        trial : (N, 13) state after the step
        """
        grad = np.atleast_2d(np.asarray(grad, dtype=float))
        if grad.shape[1] != self.size:
            raise ValueError(f"J2Plasticity: expected strain (N, {self.size}), got {grad.shape}")
        if self.gdim == 3:
            return self.integrate_3d(grad, state)
        return self.integrate_3d(grad, state, PLANE_STRAIN)
