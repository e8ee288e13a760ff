"""Checks of the supports of a macro problem before anything is solved.

The Dirichlet conditions of a :class:`~fe2.macro.problem.MacroProblem` must fix the body
(:func:`free_rigid_motions`: otherwise the macro system is singular) and must not prescribe
two different values for one component of one node (:func:`conflicting_supports`: PETSc
would take the last condition's value). :func:`owned_dofs` is the set of prescribed dofs
both checks and the reactions (:mod:`fe2.macro.observables`) count, each dof once over
the ranks. The checks are collective on ``problem.comm``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from dolfinx import fem
from mpi4py import MPI

if TYPE_CHECKING:
    from fe2.macro.problem import MacroProblem

__all__ = ["conflicting_supports", "free_rigid_motions", "owned_dofs"]


def owned_dofs(bc: fem.DirichletBC) -> np.ndarray:
    """The local indices of the dofs a Dirichlet condition prescribes that this rank owns
    (each prescribed dof once over the ranks; not collective)."""
    dofs, num_owned = bc.dof_indices()
    return dofs[:num_owned]


def conflicting_supports(problem: MacroProblem) -> list[str]:
    """The pairs of Dirichlet conditions of ``problem`` that prescribe the same component of
    the same node (e.g. the corner of two edges) with different values (collective): empty
    when there are none; otherwise each pair described, e.g. ``"'left' and 'top' both
    prescribe u_x at 1 node (0 and 0.01 x amplitude 'shear')"``. Two conditions agree when
    both values are 0, or their values are equal and they follow the same amplitude (or
    both none). A node can take only one of two different values: PETSc would take
    the last condition's value and the reactions would count the node for the first."""
    def law(d):
        amp = None if d.amplitude is None else (d.amplitude.times, d.amplitude.values)
        return (0.0, None) if d.value == 0 else (d.value, amp)

    def text(d):
        return f"{d.value:g}" + ("" if d.amplitude is None or d.value == 0
                                 else f" x amplitude '{d.amplitude.name}'")

    dirichlet, bcs = problem.dirichlet, problem.bcs
    owned = [owned_dofs(bc) for bc in bcs]
    pairs = [(i, j) for i in range(len(bcs)) for j in range(i + 1, len(bcs))
             if dirichlet[i].component == dirichlet[j].component
             and law(dirichlet[i]) != law(dirichlet[j])]
    shared = np.array([np.intersect1d(owned[i], owned[j]).size for i, j in pairs], dtype=np.int64)
    problem.comm.Allreduce(MPI.IN_PLACE, shared, op=MPI.SUM)
    out = []
    for (i, j), n in zip(pairs, shared):
        if n:
            a, b = dirichlet[i], dirichlet[j]
            what = "the temperature" if a.component is None else f"u_{'xyz'[a.component]}"
            out.append(f"'{a.name or a.tag}' and '{b.name or b.tag}' both prescribe {what} at {n} "
                       f"node{'s' if n > 1 else ''} ({text(a)} and {text(b)})")
    return out


def free_rigid_motions(problem: MacroProblem) -> list[str]:
    """The rigid-body motions that the Dirichlet conditions of ``problem`` leave free
    (collective): empty when the supports fix the body; otherwise each free motion
    described, e.g. ``"translation in y"`` or ``"rotation about (0, 0)"`` (the macro system
    would be singular). A motion is free when it vanishes at every prescribed dof. For a
    scalar field (temperature) the one such motion is a uniform temperature, free when no
    temperature is prescribed anywhere."""
    comm = problem.comm
    if problem.scalar:
        prescribed = sum(bc.dof_indices()[1] for bc in problem.bcs)
        return [] if comm.allreduce(prescribed, op=MPI.SUM) else ["a uniform temperature"]
    Wu = problem.u.function_space
    mesh, gdim = problem.mesh, problem.gdim
    x = mesh.geometry.x[:, :gdim]
    lo, hi = np.full(gdim, np.inf), np.full(gdim, -np.inf)
    if x.size:
        lo, hi = x.min(axis=0), x.max(axis=0)
    comm.Allreduce(MPI.IN_PLACE, lo, op=MPI.MIN)
    comm.Allreduce(MPI.IN_PLACE, hi, op=MPI.MAX)
    centre, size = 0.5 * (lo + hi), float(np.max(hi - lo)) or 1.0
    # unit translations, then rotations about the centre scaled to unit size
    axes = [(i, j) for i, j in ((0, 1),) if gdim == 2] or [(1, 2), (2, 0), (0, 1)]
    modes = [np.eye(gdim)[k] for k in range(gdim)] + list(axes)
    fdim = mesh.topology.dim - 1
    tags = problem.macro_mesh.facet_tags
    owned = Wu.dofmap.index_map.size_local * Wu.dofmap.bs
    rows = []
    f = fem.Function(Wu)
    for d in problem.dirichlet:
        dofs = fem.locate_dofs_topological(Wu.sub(d.component), fdim, tags.indices[tags.values == d.tag])
        dofs = dofs[dofs < owned]
        cols = []
        for m in modes:
            if isinstance(m, tuple):  # rotation in the (i, j) plane: u_i = -(x_j - c_j), u_j = x_i - c_i
                i, j = m

                def rot(p, i=i, j=j):
                    u = np.zeros((gdim, p.shape[1]))
                    u[i] = -(p[j] - centre[j]) / size
                    u[j] = (p[i] - centre[i]) / size
                    return u
                f.interpolate(rot)
            else:
                f.interpolate(lambda p, m=m: np.tile(m[:, None], (1, p.shape[1])))
            cols.append(f.x.array[dofs])
        rows.append(np.stack(cols, axis=1))
    R = np.concatenate(rows) if rows else np.zeros((0, len(modes)))
    M = np.ascontiguousarray(R.T @ R)
    comm.Allreduce(MPI.IN_PLACE, M, op=MPI.SUM)
    w, vecs = np.linalg.eigh(M)
    null = vecs[:, w <= 1e-10 * max(np.trace(M), 1e-300)]
    if null.shape[1] == 0:
        return []
    names = [f"translation in {'xyz'[k]}" for k in range(gdim)]
    names += ([f"rotation about ({centre[0]:.6g}, {centre[1]:.6g})"] if gdim == 2
              else [f"rotation about the {'xyz'[k]} axis" for k in range(3)])
    found = [k for k in range(len(modes)) if np.linalg.norm(null[k]) > 1 - 1e-8]
    out = [names[k] for k in found]
    # the rest of the free motions: the null space without the named ones
    rest = null - np.eye(len(modes))[:, found] @ null[found]
    u, sv, _ = np.linalg.svd(rest, full_matrices=False)
    for v in u[:, sv > 1e-8].T:
        t, r = v[:gdim], v[gdim:]
        if np.linalg.norm(r) < 1e-8:
            out.append("translation along (" + ", ".join(f"{c:.3g}" for c in t / np.linalg.norm(t)) + ")")
        elif gdim == 2:  # a rotation about the point p where its displacement vanishes
            p = centre + size * np.array([-t[1], t[0]]) / r[0]
            p[np.abs(p) < 1e-9 * size] = 0.0  # round-off
            out.append(f"rotation about ({p[0]:.6g}, {p[1]:.6g})")
        else:
            out.append("rotation about an axis along (" + ", ".join(f"{c:.3g}" for c in r / np.linalg.norm(r))
                       + ")")
    return out
