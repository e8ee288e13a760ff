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
    values[np.searchsorted(indices[indptr[0]:indptr[1]], 0)] = -1.0  # not positive definite
    with pytest.raises(SolverError, match="factorisation of the RVE Jacobian failed"):
        ps.factor(values)


def test_rve_solver_defaults_follow_the_measurement():
    pick = lambda *a: (linalg.rve_solver_options(*a)["pc_type"], linalg.rve_solver_options(*a)[  # noqa: E731
        "pc_factor_mat_solver_type"])
    assert pick(True, True, 10**6) == ("cholesky", "cholmod")  # SPD, any size
    assert pick(True, False, 100) == ("cholesky", "mumps")  # symmetric indefinite: LDL^T
    assert pick(False, False, linalg.SMALL_LU_NNZ) == ("lu", "petsc")
    assert pick(False, False, linalg.SMALL_LU_NNZ + 1) == ("lu", "mumps")
    assert pick(True, True, 100, True) == ("cholesky", "mumps")  # distributed: MUMPS only
