"""The direct solvers of fe2.core.linalg: a pattern solver refactorises in place with one
symbolic analysis, and the RVE solver defaults follow the factoriser measurement."""

import numpy as np
import pytest
import scipy.sparse as sp

from fe2.core import linalg
from fe2.core.errors import SolverError


def laplacian_pattern(n):
    """A 1D Laplacian-like sparse pattern (n x n), as CSR (indptr, indices)."""
    A = sp.diags([np.ones(n - 1), 2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1]).tocsr()
    A.sort_indices()
    return A.indptr, A.indices


@pytest.mark.parametrize("symmetric, solver", [(True, "cholmod"), (True, "mumps"), (False, "petsc"),
                                               (False, "mumps")])
def test_pattern_solver_refactorises_in_place_and_solves_blocks(symmetric, solver):
    n = 30
    indptr, indices = laplacian_pattern(n)
    rng = np.random.default_rng(0)
    opts = {"pc_factor_mat_solver_type": solver}
    ps = linalg.PatternSolver(indptr, indices, linalg.unique_prefix("test_pattern_"), opts, symmetric=symmetric)
    assert ps.solver_type == solver
    for k in range(3):  # new values each time, same pattern
        off = rng.uniform(-1.0, -0.5, indices.size)
        A = sp.csr_matrix((off, indices, indptr), shape=(n, n)).toarray()
        if symmetric:
            A = np.tril(A, -1) + np.tril(A, -1).T
        else:
            A = A + 0.3 * np.triu(A, 1)
        np.fill_diagonal(A, 4.0 + k)
        values = A[np.repeat(np.arange(n), np.diff(indptr)), indices]
        ps.factor(values)
        b = rng.standard_normal(n)
        assert np.abs(ps.solve(b) - np.linalg.solve(A, b)).max() < 1e-12
        B = rng.standard_normal((n, 4))
        assert np.abs(ps.solve(B) - np.linalg.solve(A, B)).max() < 1e-12
    assert ps.factorisations == 3
    assert ps.factor_bytes() > 0 or solver == "petsc"
    ps.destroy()


def test_pattern_solver_reports_a_failed_factorisation():
    n = 10
    indptr, indices = laplacian_pattern(n)
    ps = linalg.PatternSolver(indptr, indices, linalg.unique_prefix("test_pattern_"),
                              {"pc_factor_mat_solver_type": "cholmod"}, symmetric=True)
    values = np.zeros(indices.size)
    values[np.searchsorted(indices[indptr[0]:indptr[1]], 0)] = -1.0  # singular: no factoriser can
    with pytest.raises(SolverError, match=r"factorisation of the RVE Jacobian failed \(.*\); retried with "
                                          r"MUMPS's LU with pivoting, which failed too \(.*INFOG\(1\) = -10"):
        ps.factor(values)
    assert ps.fallbacks == 0
    ps.destroy()


@pytest.mark.parametrize("solver", ["cholmod", "mumps"])
def test_a_cholesky_that_fails_is_retried_with_pivoting_lu(solver):
    """A symmetric Jacobian that is not positive definite (near a limit load, or in round-off)
    can meet a zero pivot where a Cholesky factoriser does not pivot; the pivoting LU solves
    it, and the next factorisation of a definite matrix is Cholesky's again."""
    n = 12
    indptr, indices = laplacian_pattern(n)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    ps = linalg.PatternSolver(indptr, indices, linalg.unique_prefix("test_pattern_"),
                              {"pc_factor_mat_solver_type": solver}, symmetric=True)
    b = np.random.default_rng(1).standard_normal((n, 3))
    for first in (2.5, 0.0, 2.5):  # definite; a zero first pivot (indefinite, nonsingular); definite
        A = 2.5 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
        A[0, 0] = first
        ps.factor(A[rows, indices])
        assert np.abs(ps.solve(b) - np.linalg.solve(A, b)).max() < 1e-12
        assert np.abs(ps.solve(b[:, 0]) - np.linalg.solve(A, b[:, 0])).max() < 1e-12
    assert ps.factorisations == 3
    # CHOLMOD's LDL^T does not pivot; MUMPS's symmetric LDL^T does (2 x 2 pivots)
    assert ps.fallbacks == (1 if solver == "cholmod" else 0)
    assert ps.solver_type == solver
    ps.destroy()


def test_rve_solver_defaults_follow_the_measurement():
    pick = lambda *a: (linalg.rve_solver_options(*a)["pc_type"], linalg.rve_solver_options(*a)[  # noqa: E731
        "pc_factor_mat_solver_type"])
    assert pick(True, True, 10**6) == ("cholesky", "cholmod")  # SPD, any size
    assert pick(True, False, 100) == ("cholesky", "mumps")  # symmetric indefinite: LDL^T
    assert pick(False, False, linalg.SMALL_LU_NNZ) == ("lu", "petsc")
    assert pick(False, False, linalg.SMALL_LU_NNZ + 1) == ("lu", "mumps")
    assert pick(True, True, 100, True) == ("cholesky", "mumps")  # distributed: MUMPS only
    # a Lagrange-multiplier border has zero diagonal entries: MUMPS, whatever the size
    assert pick(False, False, 100, False, True) == ("lu", "mumps")
    assert pick(True, True, 100, False, True) == ("cholesky", "mumps")


def test_border_solves_the_constrained_minimum_on_any_number_of_ranks():
    """min 1/2 x.Kx - b.x subject to G x = 0 (K the 1D Laplacian, G two dense rows): the
    bordered solve equals the null-space solution Z (Z^T K Z)^-1 Z^T b, and project()
    removes exactly the range of G^T."""
    from mpi4py import MPI
    from petsc4py import PETSc

    comm = MPI.COMM_WORLD
    N, m = 12, 2
    K_full = 2 * np.eye(N) - np.eye(N, k=1) - np.eye(N, k=-1)
    G_full = np.vstack([np.ones(N), np.linspace(0.0, 1.0, N) ** 2])
    b_full = np.sin(np.arange(N) + 1.0)
    K = PETSc.Mat().createAIJ([(None, N), (None, N)], nnz=3, comm=comm)
    lo, hi = K.getOwnershipRange()
    for i in range(lo, hi):
        K.setValues(i, [j for j in (i - 1, i, i + 1) if 0 <= j < N], [K_full[i, j] for j in (i - 1, i, i + 1)
                                                                      if 0 <= j < N])
    K.assemble()
    border = linalg.Border(G_full[:, lo:hi], comm)
    M = border.matrix(K)
    assert M.getSize() == (N + m, N + m)
    ksp = linalg.direct_solver(M, linalg.unique_prefix("fe2_test_border_"), linalg.rve_solver_options(
        True, False, 0, comm.size > 1, saddle=True))
    ksp.setUp()
    rhs = border.pad(b_full[lo:hi, None])
    bv, xv = M.createVecRight(), M.createVecLeft()
    bv.array[:] = rhs[:, 0]
    ksp.solve(bv, xv)
    x = np.concatenate(comm.allgather(xv.array_r[: hi - lo]))
    Q, _ = np.linalg.qr(G_full.T, mode="complete")
    Z = Q[:, m:]  # null space of G
    ref = Z @ np.linalg.solve(Z.T @ K_full @ Z, Z.T @ b_full)
    assert np.abs(x - ref).max() < 1e-12 * np.abs(ref).max()
    assert np.abs(G_full @ x).max() < 1e-12
    r = np.concatenate(comm.allgather(border.project(b_full[lo:hi])))
    assert np.abs(G_full @ r).max() < 1e-12  # projected: no part in the range of G^T
    assert np.abs(Z.T @ (r - b_full)).max() < 1e-12  # and nothing else changed
    # a second matrix into the first one's storage
    K.scale(2.0)
    border.matrix(K, M)
    ksp.setOperators(M)
    ksp.setUp()
    ksp.solve(bv, xv)
    x2 = np.concatenate(comm.allgather(xv.array_r[: hi - lo]))
    assert np.abs(x2 - ref / 2).max() < 1e-12 * np.abs(ref).max()
    for obj in (ksp, M, K, bv, xv):
        obj.destroy()
    border.destroy()


def kkt_needing_delayed_pivots(n=2500, m=400, seed=0):
    """A symmetric indefinite saddle matrix [[K, B^T], [B, 0]] (K a 2D Laplacian, B random
    sparse rows), its rows and columns permuted at random: LU with AMD ordering
    (ICNTL(7) = 0) delays pivots beyond MUMPS's estimate, so with no extra workspace
    (ICNTL(14) = 0) MUMPS fails with INFOG(1) = -9."""
    rng = np.random.default_rng(seed)
    k = int(np.sqrt(n))
    K = sp.diags([4.0 * np.ones(n), -np.ones(n - 1), -np.ones(n - 1), -np.ones(n - k), -np.ones(n - k)],
                 [0, 1, -1, k, -k])
    cols = rng.integers(0, n, 4 * m)
    B = sp.coo_matrix((rng.standard_normal(4 * m), (np.repeat(np.arange(m), 4), cols)), shape=(m, n))
    perm = rng.permutation(n + m)
    M = sp.bmat([[K, B.T], [B, None]]).tocsr()[perm][:, perm].tocsr()
    M.sort_indices()
    return M


def test_factorise_retries_a_mumps_workspace_shortfall_with_a_larger_icntl14():
    """One process: the first factorisation fails with INFOG(1) = -9 (checked without
    retries: one line naming MUMPS's code); factorise() retries with ICNTL(14) = 50 and the
    solution is right."""
    from petsc4py import PETSc

    M = kkt_needing_delayed_pivots()
    A = PETSc.Mat().createAIJWithArrays(M.shape, (M.indptr.astype(PETSc.IntType), M.indices.astype(PETSc.IntType),
                                                  M.data), comm=PETSc.COMM_SELF)
    opts = {"pc_type": "lu", "pc_factor_mat_solver_type": "mumps", "mat_mumps_icntl_14": 0,
            "mat_mumps_icntl_7": 0}
    tight = linalg.direct_solver(A, linalg.unique_prefix("fe2_test_mumps_"), opts, symmetric=False)
    with pytest.raises(SolverError, match=r"^trial failed \(out of memory; MUMPS INFOG\(1\) = -9, .*ICNTL\(14\) = 0\)"):
        linalg.factorise(tight, "trial", retries=0)
    ksp = linalg.direct_solver(A, linalg.unique_prefix("fe2_test_mumps_"), opts, symmetric=False)
    linalg.factorise(ksp, "trial")
    F = linalg.factor_matrix(ksp)
    assert F.getMumpsInfog(1) == 0 and F.getMumpsIcntl(14) == 50
    b, x = A.createVecLeft(), A.createVecRight()
    rhs = np.cos(np.arange(M.shape[0]))
    b.array[:] = rhs
    ksp.solve(b, x)
    assert np.abs(M @ x.array_r - rhs).max() < 1e-10 * np.abs(rhs).max()
    for obj in (tight, ksp, A, b, x):
        obj.destroy()


def test_factorise_raises_on_every_rank_naming_the_mumps_error():
    """Any number of ranks: a working-memory limit MUMPS cannot meet (ICNTL(23) = 1 MB) is
    not a workspace estimate to retry: SolverError with INFOG(1) = -19 on every process."""
    from mpi4py import MPI
    from petsc4py import PETSc

    comm = MPI.COMM_WORLD
    n = 20000
    k = int(np.sqrt(n))
    A = PETSc.Mat().createAIJ([(None, n), (None, n)], nnz=5, comm=comm)
    lo, hi = A.getOwnershipRange()
    for i in range(lo, hi):
        cols = [j for j in (i - k, i - 1, i, i + 1, i + k) if 0 <= j < n]
        A.setValues(i, cols, [4.0 if j == i else -1.0 for j in cols])
    A.assemble()
    ksp = linalg.direct_solver(A, linalg.unique_prefix("fe2_test_mumps_"), {"mat_mumps_icntl_23": 1})
    with pytest.raises(SolverError, match=r"^trial failed \(.*MUMPS INFOG\(1\) = -19, "):
        linalg.factorise(ksp, "trial")
    ksp.destroy()
    A.destroy()
