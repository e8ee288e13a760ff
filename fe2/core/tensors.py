"""Tensor notation, isotropic phase tensors and closed-form homogenization results.

Internally fe2 stores symmetric second-order tensors as **Mandel** vectors and
fourth-order tensors as Mandel matrices, so that ``sigma . eps`` is the double
contraction and the stiffness matrix is symmetric with the same eigenvalues as the
tensor. Component order (both notations):

- 2D: ``[xx, yy, xy]``
- 3D: ``[xx, yy, zz, yz, xz, xy]``

**Voigt** notation (engineering shear strain ``2 eps_xy``, plain shear stress) is used
for reporting because most references tabulate it. For a stiffness,
``C_voigt = D^-1 C_mandel D^-1`` with ``D = diag(1, 1, sqrt2)`` (2D) or
``diag(1, 1, 1, sqrt2, sqrt2, sqrt2)`` (3D).

Conduction tensors are plain ``gdim x gdim`` matrices; no notation is involved.

Everything here is numpy only and vectorised over leading axes where it matters.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEVIATORIC3", "IDENTITY3", "INDEX_PAIRS", "PLANE_STRAIN", "SQRT2", "STRAIN_COMPONENTS", "cauchy_stress",
    "embed_plane_strain", "equivalent_strain", "hashin_shtrikman_conduction", "hashin_shtrikman_elastic",
    "hencky_strain", "isotropic_conductivity", "isotropic_projection", "isotropic_stiffness", "lame",
    "laminate_tensor", "mandel_to_tensor", "mandel_to_voigt_stiffness", "mandel_to_voigt_strain",
    "mandel_to_voigt_stress", "plane_strain_bulk_shear", "restrict_plane_strain", "reuss_bound", "strain_size",
    "tensor_to_mandel", "transversely_isotropic_stiffness", "voigt_bound", "voigt_to_mandel_stiffness", "von_mises",
]

SQRT2 = math.sqrt(2.0)

#: Component names in the order used by fe2, per geometric dimension.
STRAIN_COMPONENTS = {2: ("xx", "yy", "xy"), 3: ("xx", "yy", "zz", "yz", "xz", "xy")}
#: (i, j) index pairs of each Mandel/Voigt component.
INDEX_PAIRS = {2: ((0, 0), (1, 1), (0, 1)), 3: ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))}
#: Rows/columns of the plane-strain components ``[xx, yy, xy]`` inside the 3D Mandel ones.
PLANE_STRAIN = np.array([0, 1, 5])
#: 3D Mandel second-order identity.
IDENTITY3 = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
#: 3D Mandel deviatoric projector ``I - 1 x 1 / 3``.
DEVIATORIC3 = np.eye(6) - np.outer(IDENTITY3, IDENTITY3) / 3.0


def strain_size(gdim: int) -> int:
    """Number of independent components of a symmetric ``gdim x gdim`` tensor."""
    if gdim not in (2, 3):
        raise ValueError(f"gdim must be 2 or 3, got {gdim}")
    return 3 if gdim == 2 else 6


def _shear_scale(gdim: int) -> np.ndarray:
    n = strain_size(gdim)
    d = np.ones(n)
    d[gdim:] = SQRT2
    return d


def mandel_to_voigt_stiffness(C: np.ndarray) -> np.ndarray:
    """Mandel stiffness ``(..., n, n)`` to Voigt stiffness (engineering shear strain)."""
    gdim = 2 if C.shape[-1] == 3 else 3
    d = 1.0 / _shear_scale(gdim)
    return C * d[:, None] * d[None, :]


def voigt_to_mandel_stiffness(C: np.ndarray) -> np.ndarray:
    """Voigt stiffness ``(..., n, n)`` (engineering shear strain) to Mandel stiffness."""
    gdim = 2 if C.shape[-1] == 3 else 3
    d = _shear_scale(gdim)
    return C * d[:, None] * d[None, :]


def mandel_to_voigt_strain(e: np.ndarray) -> np.ndarray:
    """Mandel strain ``(..., n)`` to Voigt strain with engineering shear."""
    gdim = 2 if e.shape[-1] == 3 else 3
    return e * _shear_scale(gdim)


def mandel_to_voigt_stress(s: np.ndarray) -> np.ndarray:
    """Mandel stress ``(..., n)`` to Voigt stress (plain shear components)."""
    gdim = 2 if s.shape[-1] == 3 else 3
    return s / _shear_scale(gdim)


def mandel_to_tensor(v: np.ndarray) -> np.ndarray:
    """Mandel vectors ``(..., n)`` to symmetric tensors ``(..., gdim, gdim)``."""
    n = v.shape[-1]
    gdim = 2 if n == 3 else 3
    d = _shear_scale(gdim)
    t = np.zeros(v.shape[:-1] + (gdim, gdim))
    for k, (i, j) in enumerate(INDEX_PAIRS[gdim]):
        t[..., i, j] = v[..., k] / d[k]
        t[..., j, i] = v[..., k] / d[k]
    return t


def tensor_to_mandel(t: np.ndarray) -> np.ndarray:
    """Symmetric 3D tensors ``(..., 3, 3)`` to Mandel vectors ``(..., 6)``."""
    return np.stack([t[..., 0, 0], t[..., 1, 1], t[..., 2, 2], SQRT2 * t[..., 1, 2],
                     SQRT2 * t[..., 0, 2], SQRT2 * t[..., 0, 1]], axis=-1)


def embed_plane_strain(v: np.ndarray) -> np.ndarray:
    """Plane-strain Mandel vectors ``(N, 3)`` (``[xx, yy, xy]``) as 3D ones ``(N, 6)`` with
    ``zz = yz = xz = 0``."""
    out = np.zeros((v.shape[0], 6))
    out[:, PLANE_STRAIN] = v
    return out


def restrict_plane_strain(*arrays: np.ndarray) -> list[np.ndarray]:
    """The plane-strain rows (and columns) ``[0, 1, 5]`` of 3D Mandel arrays: vectors
    ``(N, 6) -> (N, 3)``, matrices ``(N, 6, 6) -> (N, 3, 3)``; other arrays as they are."""
    out = []
    for a in arrays:
        if a.ndim == 3:
            out.append(a[:, PLANE_STRAIN][:, :, PLANE_STRAIN])
        elif a.ndim == 2:
            out.append(a[:, PLANE_STRAIN])
        else:
            out.append(a)
    return out


def lame(E: float, nu: float) -> tuple[float, float]:
    """Lamé constants ``(lambda, mu)`` from Young's modulus and Poisson's ratio."""
    lam = E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    mu = E / (2.0 * (1.0 + nu))
    return lam, mu


def isotropic_stiffness(E: float, nu: float, gdim: int) -> np.ndarray:
    """Isotropic stiffness in Mandel notation; plane strain when ``gdim == 2``.

    Returns
    -------
    C : (n, n) array, ``n = strain_size(gdim)``
    """
    lam, mu = lame(E, nu)
    n = strain_size(gdim)
    C = np.zeros((n, n))
    C[:gdim, :gdim] = lam
    C[np.arange(n), np.arange(n)] += 2.0 * mu
    return C


def isotropic_conductivity(k: float, gdim: int) -> np.ndarray:
    """``k * I`` as a ``(gdim, gdim)`` array."""
    return k * np.eye(gdim)


def _normal_split(gdim: int, normal: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the Mandel components that involve axis ``normal`` (continuous
    traction across a layer interface) and of those that do not (continuous strain)."""
    pairs = INDEX_PAIRS[gdim]
    nidx = np.array([k for k, (i, j) in enumerate(pairs) if normal in (i, j)])
    tidx = np.array([k for k, (i, j) in enumerate(pairs) if normal not in (i, j)])
    return nidx, tidx


def laminate_tensor(tensors: list[np.ndarray], fractions: list[float], normal: int,
                    gdim: int, physics: str = "elasticity") -> np.ndarray:
    """Exact effective tensor of a laminate with layers normal to axis ``normal``.

    Across the layers the components "involving the normal" of the flux (traction
    ``sigma.n``, or ``q_n``) are uniform, and the other components of the gradient
    (in-plane strain, or in-plane temperature gradient) are uniform. Eliminating the
    discontinuous components gives the closed form used here; it is exact for any
    anisotropic layer tensors.

    Parameters
    ----------
    tensors : list of (n, n) arrays, Mandel stiffness or ``gdim x gdim`` conductivity
    fractions : layer volume fractions (sum 1)
    """
    if physics == "conduction":
        nidx = np.array([normal])
        tidx = np.array([a for a in range(gdim) if a != normal])
    else:
        nidx, tidx = _normal_split(gdim, normal)
    f = np.asarray(fractions, dtype=float)
    Cs = [np.asarray(C, dtype=float) for C in tensors]
    Cnn_inv = [np.linalg.inv(C[np.ix_(nidx, nidx)]) for C in Cs]
    A = sum(fi * Ci for fi, Ci in zip(f, Cnn_inv))  # <Cnn^-1>
    B = sum(fi * Ci @ C[np.ix_(nidx, tidx)] for fi, Ci, C in zip(f, Cnn_inv, Cs))  # <Cnn^-1 Cnt>
    Ainv = np.linalg.inv(A)
    n = Cs[0].shape[0]
    Ceff = np.zeros((n, n))
    # normal flux: s_n = A^-1 (<e_n> + B e_t)
    Ceff[np.ix_(nidx, nidx)] = Ainv
    Ceff[np.ix_(nidx, tidx)] = Ainv @ B
    # in-plane flux: s_t = <C_tt e_t + C_tn e_n> with e_n = Cnn^-1 (s_n - C_nt e_t)
    Ctt = sum(fi * (C[np.ix_(tidx, tidx)] - C[np.ix_(tidx, nidx)] @ Ci @ C[np.ix_(nidx, tidx)])
              for fi, Ci, C in zip(f, Cnn_inv, Cs))
    Ctn = sum(fi * C[np.ix_(tidx, nidx)] @ Ci for fi, Ci, C in zip(f, Cnn_inv, Cs))
    Ceff[np.ix_(tidx, nidx)] = Ctn @ Ainv
    Ceff[np.ix_(tidx, tidx)] = Ctt + Ctn @ Ainv @ B
    return Ceff


def voigt_bound(tensors: list[np.ndarray], fractions: list[float]) -> np.ndarray:
    """Arithmetic mean of the phase tensors (upper bound in the Loewner order)."""
    return sum(f * np.asarray(C) for f, C in zip(fractions, tensors))


def reuss_bound(tensors: list[np.ndarray], fractions: list[float]) -> np.ndarray:
    """Harmonic mean of the phase tensors (lower bound in the Loewner order)."""
    return np.linalg.inv(sum(f * np.linalg.inv(C) for f, C in zip(fractions, tensors)))


def plane_strain_bulk_shear(E: float, nu: float) -> tuple[float, float]:
    """2D (plane-strain) bulk modulus ``kappa = lambda + mu`` and shear modulus ``mu``."""
    lam, mu = lame(E, nu)
    return lam + mu, mu


def hashin_shtrikman_elastic(kappas: list[float], mus: list[float], fractions: list[float],
                             gdim: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Hashin–Shtrikman bounds for a two-phase isotropic composite.

    In 2D the moduli are the plane-strain (transverse) bulk modulus ``kappa = lambda+mu``
    and ``mu`` (Hashin 1965); in 3D the usual bulk and shear moduli. Valid when one
    phase is both stiffer in bulk and in shear (well-ordered phases).

    Returns
    -------
    ((kappa_lower, kappa_upper), (mu_lower, mu_upper))
    """
    (k1, k2), (m1, m2), (f1, f2) = kappas, mus, fractions

    def bound(ka, ma, fa, kb, mb, fb):  # reference phase a
        if gdim == 2:
            k = ka + fb / (1.0 / (kb - ka) + fa / (ka + ma)) if kb != ka else ka
            m = ma + fb / (1.0 / (mb - ma) + fa * (ka + 2 * ma) / (2 * ma * (ka + ma))) if mb != ma else ma
        else:
            k = ka + fb / (1.0 / (kb - ka) + 3 * fa / (3 * ka + 4 * ma)) if kb != ka else ka
            m = ma + fb / (1.0 / (mb - ma) + 6 * fa * (ka + 2 * ma) / (5 * ma * (3 * ka + 4 * ma))) if mb != ma else ma
        return k, m

    b1 = bound(k1, m1, f1, k2, m2, f2)
    b2 = bound(k2, m2, f2, k1, m1, f1)
    return (min(b1[0], b2[0]), max(b1[0], b2[0])), (min(b1[1], b2[1]), max(b1[1], b2[1]))


def hashin_shtrikman_conduction(ks: list[float], fractions: list[float], gdim: int) -> tuple[float, float]:
    """Hashin–Shtrikman bounds on the effective conductivity of a two-phase composite."""
    (k1, k2), (f1, f2) = ks, fractions

    def bound(ka, fa, kb, fb):
        return ka + fb / (1.0 / (kb - ka) + fa / (gdim * ka)) if kb != ka else ka

    a, b = bound(k1, f1, k2, f2), bound(k2, f2, k1, f1)
    return min(a, b), max(a, b)


def isotropic_projection(C: np.ndarray, gdim: int) -> tuple[float, float]:
    """Bulk and shear moduli of the isotropic tensor closest to Mandel stiffness ``C``.

    Uses the projections ``kappa = J :: C / (gdim * tr J)`` style: with the volumetric
    projector ``J = (1/gdim) I x I`` and deviatoric ``K = Id - J``,
    ``kappa = (J::C) / gdim`` and ``mu = (K::C) / (2 * (n - 1))`` where ``n`` is the
    Mandel size. In 2D kappa is the plane-strain bulk modulus ``lambda + mu``.
    """
    n = strain_size(gdim)
    i = np.zeros(n)
    i[:gdim] = 1.0
    J = np.outer(i, i) / gdim
    K = np.eye(n) - J
    kappa = np.tensordot(J, C) / gdim
    mu = np.tensordot(K, C) / (2.0 * (n - 1))
    return float(kappa), float(mu)


def transversely_isotropic_stiffness(E_L: float, E_T: float, nu_LT: float, nu_TT: float,
                                     G_LT: float, axis=(1.0, 0.0, 0.0), gdim: int = 3) -> np.ndarray:
    """Mandel stiffness of a transversely isotropic material with fibres along ``axis``.

    The compliance is built in the material frame (direction 1 = fibre ``L``, 2 and 3 =
    transverse ``T``), inverted, and rotated to the global frame with the 6x6 Mandel
    rotation ``Q`` (``m(R A R^T) = Q m(A)``, ``Q`` orthogonal), ``C = Q C_mat Q^T``.
    Material-frame compliance (engineering constants)::

        eps_L = s_L / E_L - nu_LT / E_L (s_T1 + s_T2)
        eps_T1 = -nu_LT / E_L s_L + s_T1 / E_T - nu_TT / E_T s_T2
        shear: G_LT (L-T planes), G_TT = E_T / (2 (1 + nu_TT)) (transverse plane)

    Parameters
    ----------
    E_L, E_T : axial and transverse Young's moduli (> 0)
    nu_LT : major Poisson ratio (transverse contraction under axial load)
    nu_TT : Poisson ratio in the transverse plane
    G_LT : axial shear modulus (> 0)
    axis : (3,) or, when ``gdim == 2``, (2,) fibre direction (normalised here); in 2D it
        must lie in the xy-plane
    gdim : 3, or 2 for plane strain: the rows/columns ``[xx, yy, xy]`` (``[0, 1, 5]``) of
        the 3D stiffness

    Returns
    -------
    C : (n, n) array, ``n = strain_size(gdim)``, symmetric positive definite

    Raises
    ------
    ValueError
        non-positive moduli, a zero or out-of-plane axis, or constants that do not give a
        positive definite stiffness.
    """
    strain_size(gdim)
    for name, val in (("E_L", E_L), ("E_T", E_T), ("G_LT", G_LT)):
        if not (np.isfinite(val) and val > 0):
            raise ValueError(f"transversely isotropic stiffness: {name} must be > 0, got {val}")
    if not (np.isfinite(nu_LT) and np.isfinite(nu_TT)):
        raise ValueError(f"transversely isotropic stiffness: nu_LT, nu_TT must be finite, got {nu_LT}, {nu_TT}")
    if not nu_TT > -1.0:
        raise ValueError(f"transversely isotropic stiffness: nu_TT must be > -1, got {nu_TT}")
    a = np.asarray(axis, dtype=float).ravel()
    if a.shape == (2,) and gdim == 2:
        a = np.append(a, 0.0)
    if a.shape != (3,) or not np.all(np.isfinite(a)) or np.linalg.norm(a) == 0.0:
        raise ValueError(f"transversely isotropic stiffness: axis must be a non-zero 3-vector, got {axis}")
    a = a / np.linalg.norm(a)
    if gdim == 2 and abs(a[2]) > 1e-12:
        raise ValueError(f"transversely isotropic stiffness: in 2D the axis must lie in the xy-plane, got {axis}")

    # material-frame Mandel compliance (shear compliance 1 / (2 G) in Mandel notation)
    G_TT = E_T / (2.0 * (1.0 + nu_TT))
    S = np.zeros((6, 6))
    S[0, 0] = 1.0 / E_L
    S[1, 1] = S[2, 2] = 1.0 / E_T
    S[0, 1] = S[1, 0] = S[0, 2] = S[2, 0] = -nu_LT / E_L
    S[1, 2] = S[2, 1] = -nu_TT / E_T
    S[3, 3] = 1.0 / (2.0 * G_TT)  # yz: transverse plane
    S[4, 4] = S[5, 5] = 1.0 / (2.0 * G_LT)  # xz, xy: planes containing the fibre
    # positive definiteness of S (normal block: the antisymmetric transverse mode needs
    # nu_TT > -1, the symmetric 2x2 block 1 - nu_TT - 2 nu_LT^2 E_T / E_L > 0; shear: G > 0)
    if not 1.0 - nu_TT - 2.0 * nu_LT**2 * E_T / E_L > 0.0:
        raise ValueError(
            "transversely isotropic stiffness: the constants do not give a positive definite "
            f"stiffness (E_L={E_L}, E_T={E_T}, nu_LT={nu_LT}, nu_TT={nu_TT}, G_LT={G_LT}; "
            "need -1 < nu_TT < 1 - 2 nu_LT^2 E_T / E_L)")
    C_mat = np.linalg.inv(S)
    C_mat = 0.5 * (C_mat + C_mat.T)

    # orthonormal frame: columns of R are the material axes in global coordinates
    helper = np.eye(3)[np.argmin(np.abs(a))]
    t1 = np.cross(a, helper)
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(a, t1)
    R = np.column_stack([a, t1, t2])

    # Mandel rotation: column k is m(R B_k R^T) for the k-th Mandel basis tensor B_k
    pairs = INDEX_PAIRS[3]
    scale = _shear_scale(3)
    Q = np.zeros((6, 6))
    for k, (i, j) in enumerate(pairs):
        B = np.zeros((3, 3))
        B[i, j] = B[j, i] = 1.0 / scale[k]
        RB = R @ B @ R.T
        Q[:, k] = [RB[p, q] * scale[m] for m, (p, q) in enumerate(pairs)]
    C = Q @ C_mat @ Q.T
    C = 0.5 * (C + C.T)
    if gdim == 2:
        idx = np.array([0, 1, 5])
        C = C[np.ix_(idx, idx)].copy()
    return C


def _deviator(T: np.ndarray) -> np.ndarray:
    return T - np.trace(T, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) / 3.0


def von_mises(sigma: np.ndarray) -> np.ndarray:
    """Von Mises equivalent stress ``sqrt(3/2 s : s)`` (``s`` the deviator) of 3x3 stresses
    ``(..., 3, 3)``."""
    s = _deviator(np.asarray(sigma, dtype=float))
    return np.sqrt(1.5 * np.einsum("...ij,...ij->...", s, s))


def equivalent_strain(eps: np.ndarray) -> np.ndarray:
    """Von Mises equivalent strain ``sqrt(2/3 e : e)`` (``e`` the deviator; the strain that
    equals the axial strain of an incompressible uniaxial stretch) of 3x3 strains ``(..., 3, 3)``."""
    e = _deviator(np.asarray(eps, dtype=float))
    return np.sqrt(2.0 / 3.0 * np.einsum("...ij,...ij->...", e, e))


def cauchy_stress(P: np.ndarray, F: np.ndarray) -> np.ndarray:
    """The Cauchy stress ``P F^T / det F`` of first Piola-Kirchhoff stresses and deformation
    gradients ``(..., 3, 3)``."""
    return np.einsum("...ik,...jk->...ij", P, F) / np.linalg.det(F)[..., None, None]


def hencky_strain(F: np.ndarray) -> np.ndarray:
    """The logarithmic (Hencky) strain ``log(F^T F) / 2`` of deformation gradients ``(..., 3, 3)``."""
    C = np.einsum("...ki,...kj->...ij", F, F)
    w, v = np.linalg.eigh(C)
    return np.einsum("...ik,...k,...jk->...ij", v, 0.5 * np.log(w), v)
