"""Linear algebra with PETSc: the one place that owns PETSc options and prefixes.

Every PETSc object fe2 creates (KSP of the RVE template, KSP of the macro Newton
solver, ...) gets a unique options prefix and its options from a plain dict, set
through :func:`configure`. Users can override any of them on the command line or in
the case file with the same keys, e.g. ``{"pc_factor_mat_solver_type": "superlu"}``.
Direct solvers are made by :func:`direct_solver`; :func:`mat_solve` solves many
right-hand sides at once with a stored factorisation.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from fe2.core.errors import ConfigError, SolverError

__all__ = ["DIRECT_CHOLESKY", "DIRECT_LU", "MUMPS_WORKSPACE_ERRORS", "SMALL_LU_NNZ", "Border", "PatternSolver",
           "check_options", "configure", "direct_solver", "factor_matrix", "factorise", "mat_solve", "petsc_message",
           "rve_solver_options", "unique_prefix"]

#: Direct solver used by default for the RVE cell problems (symmetric positive definite
#: after the periodic condensation) and the macro Newton systems.
DIRECT_CHOLESKY: dict[str, Any] = {
    "ksp_type": "preonly",
    "pc_type": "cholesky",
    "pc_factor_mat_solver_type": "mumps",
}
DIRECT_LU: dict[str, Any] = {
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
}

#: Non-symmetric RVE Jacobians with at most this many entries are factorised by PETSc's own
#: LU, larger ones by MUMPS (benchmarks/factorisers.py: PETSc's LU is fastest for 2D P1 cells
#: of a few hundred DOFs, MUMPS from about 1,000 DOFs in 2D and 250 in 3D).
SMALL_LU_NNZ = 8000


def rve_solver_options(symmetric: bool, definite: bool, nnz: int, parallel: bool = False,
                       saddle: bool = False) -> dict[str, Any]:
    """The direct solver of an RVE matrix by measurement (``benchmarks/factorisers.py``):
    CHOLMOD for symmetric positive definite matrices (twice as fast as MUMPS at every size
    measured, 2D and 3D), MUMPS's LDL^T for symmetric indefinite ones, and for
    non-symmetric ones PETSc's own LU up to :data:`SMALL_LU_NNZ` entries, MUMPS beyond.
    A matrix distributed over several processes (``parallel``) or with zero diagonal
    entries (``saddle``: a :class:`Border` of Lagrange multipliers, which PETSc's LU
    cannot pivot) always gets MUMPS. Users override any of it with ``rve.petsc_options``."""
    if parallel or saddle:
        return dict(DIRECT_CHOLESKY if symmetric else DIRECT_LU)
    if symmetric:
        return {**DIRECT_CHOLESKY, "pc_factor_mat_solver_type": "cholmod" if definite else "mumps"}
    return {**DIRECT_LU, "pc_factor_mat_solver_type": "petsc" if nnz <= SMALL_LU_NNZ else "mumps"}


class Border:
    """``m`` linear constraints ``G x = 0`` imposed with Lagrange multipliers: the bordered
    matrix ``[[K, G^T], [G, 0]]`` of a matrix ``K``, and what goes with it (collective on
    ``comm``).

    ``G`` ``(m, nloc)`` holds the constraint rows over the locally owned columns of ``K``.
    The ``m`` multiplier rows of the bordered matrix belong to rank 0, after its own rows
    of ``K`` (PETSc's nest ordering): a vector of the bordered system is, on each process,
    its part of ``x`` followed (on rank 0) by the ``m`` multipliers (:meth:`pad`).
    """

    def __init__(self, G: np.ndarray, comm) -> None:
        self.G = G = np.asarray(G, dtype=float)
        self.comm = comm
        self.m, self.nloc = m, nloc = G.shape
        self.mloc = m if comm.rank == 0 else 0
        N = comm.allreduce(nloc)
        Gt = G.T
        rows, cols = np.nonzero(Gt)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=nloc))]).astype(PETSc.IntType)
        self.Gt = PETSc.Mat().createAIJ([(nloc, N), (self.mloc, m)], csr=(indptr, cols.astype(PETSc.IntType),
                                                                          Gt[rows, cols]), comm=comm)
        self.Gt.assemble()
        self.Gm = self.Gt.transpose(PETSc.Mat())
        # the orthogonal projection onto the constraint's null space: x - G^T (G G^T)^-1 G x
        self._gram_inv = np.linalg.inv(comm.allreduce(G @ G.T))

    def matrix(self, K: PETSc.Mat, out: PETSc.Mat | None = None) -> PETSc.Mat:
        """The bordered matrix of ``K`` (into ``out``, of an earlier call, if given)."""
        nest = PETSc.Mat().createNest([[K, self.Gt], [self.Gm, None]], comm=K.comm)
        M = nest.convert("aij", out=PETSc.Mat() if out is None else out)  # (out=None would convert in place)
        nest.destroy()
        return M

    def pad(self, X: np.ndarray) -> np.ndarray:
        """``X`` ``(nloc, k)`` with zero multiplier rows appended: a right-hand side of
        the bordered system (zero constraint values)."""
        return np.vstack([X, np.zeros((self.mloc, X.shape[1]))])

    def project(self, X: np.ndarray) -> np.ndarray:
        """``X - G^T (G G^T)^-1 G X`` for ``X`` ``(nloc,)`` or ``(nloc, k)``: a residual
        without the part the multipliers balance (its norm is the constrained residual's)."""
        GX = self.comm.allreduce(self.G @ X)
        return X - self.G.T @ (self._gram_inv @ GX)

    def destroy(self) -> None:
        self.Gt.destroy()
        self.Gm.destroy()


_counter = itertools.count()


def unique_prefix(base: str) -> str:
    """``base`` plus a process-local counter and a trailing underscore, e.g. ``fe2_rve_0_``.

    Not collective: the counter is per process, so objects created in the same order on
    all ranks get the same prefix, which is what PETSc's command-line options expect.
    """
    return f"{base}{next(_counter)}_"


def _to_option(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def configure(obj: Any, prefix: str, options: Mapping[str, Any] | None) -> None:
    """Give ``obj`` (a KSP, SNES, Mat, ...) the prefix and apply ``options``.

    The options are written into PETSc's global database under ``prefix`` and
    ``obj.setFromOptions()`` reads them (command-line options with the same prefix also
    apply, and win). They stay in the database: some are read only later, e.g. MUMPS's
    ``mat_mumps_icntl_*`` when the factor is created in ``KSPSetUp``; prefixes are
    unique (:func:`unique_prefix`), so they cannot leak into other objects.
    """
    opts = PETSc.Options()
    obj.setOptionsPrefix(prefix)
    for key, value in (options or {}).items():
        name = f"{prefix}{key}"
        if name in opts:  # command line wins
            continue
        opts[name] = _to_option(value)
    obj.setFromOptions()


def petsc_message(err: Exception) -> str:
    """The last line of a PETSc error (what PETSc says went wrong), without its rank prefix."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    last = lines[-1] if lines else repr(err)
    return last.split("] ", 1)[1] if last.startswith("[") and "] " in last else last


def check_options(options: Mapping[str, Any] | None, defaults: Mapping[str, Any], where: str,
                  comm=None) -> None:
    """Try ``options`` over ``defaults`` on an identity matrix with two rows per process of
    ``comm`` (default one process; collective on ``comm``): set them up and solve once, so
    that an unknown KSP, PC or factorisation package, one that cannot handle a matrix
    distributed like the real one, or a value PETSc cannot parse, raises
    :class:`~fe2.core.errors.ConfigError` ``"<where>: PETSc cannot use {...}: <PETSc's
    message>"`` on every process before any real work."""
    if not options:
        return
    comm = PETSc.COMM_SELF if comm is None else comm
    A = PETSc.Mat().createAIJ([(2, None), (2, None)], nnz=1, comm=comm)
    lo, hi = A.getOwnershipRange()
    for i in range(lo, hi):
        A.setValue(i, i, 1.0)
    A.assemble()
    ksp = None
    prefix, merged = unique_prefix("fe2_check_"), {**defaults, **options}
    try:
        ksp = direct_solver(A, prefix, merged)
        ksp.setUp()
        b = A.createVecLeft()
        b.set(1.0)
        x = A.createVecRight()
        ksp.solve(b, x)
    except PETSc.Error as err:
        raise ConfigError(f"{where}: PETSc cannot use {dict(options)}: {petsc_message(err)}") from None
    finally:
        if ksp is not None:
            ksp.destroy()
        A.destroy()
        db = PETSc.Options()
        for key in merged:  # a trial: leave nothing in the options database
            db.delValue(f"{prefix}{key}")


def direct_solver(A: PETSc.Mat, prefix: str, options: Mapping[str, Any] | None = None,
                  symmetric: bool = True) -> PETSc.KSP:
    """A KSP on ``A``'s communicator with ``options`` over the direct-solver defaults.

    Collective on ``A.comm``.
    """
    ksp = PETSc.KSP().create(A.comm)
    ksp.setOperators(A)
    merged = dict(DIRECT_CHOLESKY if symmetric else DIRECT_LU)
    merged.update(options or {})
    configure(ksp, prefix, merged)
    return ksp


#: MUMPS INFOG(1) codes of a factorisation whose workspace, estimated in the analysis, was
#: too small (-8, -9: the integer and real work arrays; -17, -20: the send and receive
#: buffers between processes). Numerical pivoting and, on several processes, MUMPS's
#: dynamic scheduling (which depends on timing) can exceed the estimate; MUMPS's documented
#: remedy is a larger ICNTL(14), the percentage by which the estimate is increased.
MUMPS_WORKSPACE_ERRORS = (-8, -9, -17, -20)

#: PCFailedReason values (PETSc's ``PCFailedReason``) in words
_PC_FAILURES = {1: "structurally zero pivot", 2: "zero pivot", 3: "out of memory", 4: "failed",
                5: "subsolver failed"}


def factorise(ksp: PETSc.KSP, what: str, retries: int = 4) -> None:
    """Set up (factorise) the direct solver ``ksp`` and make sure the factorisation exists
    (collective on ``ksp``'s communicator).

    PETSc does not raise when a factoriser fails: it marks the preconditioner failed and the
    next solve diverges. Here a MUMPS workspace shortfall (:data:`MUMPS_WORKSPACE_ERRORS`) is
    retried up to ``retries`` times with ICNTL(14) doubled (at least 50 %); any other
    failure raises :class:`~fe2.core.errors.SolverError` ``"<what> failed (<reason>)"``
    naming MUMPS's INFOG(1) where MUMPS factorised, on every process.
    """
    comm = ksp.getComm().tompi4py()
    for attempt in range(retries + 1):
        try:
            ksp.setUp()
        except PETSc.Error as err:
            raise SolverError(f"{what} failed ({petsc_message(err)})") from None
        pc = ksp.getPC()
        reason = int(pc.getFailedReason())
        if comm.size > 1:
            reason = comm.allreduce(reason, op=MPI.MAX)
        if reason == 0:
            return
        words = _PC_FAILURES.get(reason, f"PCFailedReason {reason}")
        if pc.getType() not in ("lu", "cholesky") or pc.getFactorSolverType() != "mumps":
            raise SolverError(f"{what} failed ({words})")
        F = pc.getFactorMatrix()
        code, workspace = F.getMumpsInfog(1), F.getMumpsIcntl(14)
        if code not in MUMPS_WORKSPACE_ERRORS or attempt == retries:
            raise SolverError(f"{what} failed ({words}; MUMPS INFOG(1) = {code}, INFOG(2) = "
                              f"{F.getMumpsInfog(2)}, ICNTL(14) = {workspace})")
        # the retry: a new factor with a larger workspace (PETSc keeps a failed one otherwise)
        PETSc.Options()[f"{ksp.getOptionsPrefix() or ''}mat_mumps_icntl_14"] = max(2 * workspace, 50)
        A, P = ksp.getOperators()
        pc.reset()
        ksp.setOperators(A, P)
        ksp.setFromOptions()


def factor_matrix(ksp: PETSc.KSP) -> PETSc.Mat:
    """The factored matrix of a direct solver (after ``ksp.setUp()``)."""
    return ksp.getPC().getFactorMatrix()


def mat_solve(F: PETSc.Mat, rhs: np.ndarray) -> np.ndarray:
    """``F^-1 rhs`` for a factored matrix ``F`` and dense right-hand sides ``rhs``
    ``(nloc, m)``, all at once (``MatMatSolve``; one process). Raises
    :class:`~fe2.core.errors.SolverError` if PETSc fails."""
    nloc, m = rhs.shape
    Bm = PETSc.Mat().createDense((nloc, m), array=np.asfortranarray(rhs), comm=PETSc.COMM_SELF)
    Xm = PETSc.Mat().createDense((nloc, m), comm=PETSc.COMM_SELF)
    Xm.setUp()
    try:
        F.matSolve(Bm, Xm)
    except PETSc.Error as err:
        raise SolverError(f"solve with a stored factorisation failed ({petsc_message(err)})") from None
    X = Xm.getDenseArray().copy()
    Bm.destroy()
    Xm.destroy()
    return X


class PatternSolver:
    """Direct solves with matrices of one sparsity pattern: the symbolic analysis happens at
    the first :meth:`factor`, every later one is a numeric factorisation only;
    :meth:`solve` uses the last one for any number of right-hand sides.

    ``indptr``/``indices`` are the CSR pattern ``(n, n)`` of a matrix on one process; it
    works on :attr:`values` in place (no copy per factorisation). :meth:`distributed` makes
    one of a matrix distributed over a communicator, given as coordinate entries. The
    solver is a :func:`direct_solver` with ``options`` over the Cholesky (``symmetric``) or
    LU defaults under ``prefix`` (solvers of the same kind may share one), so
    ``pc_factor_mat_solver_type`` etc. select the factoriser. A Cholesky factorisation that
    fails (a Jacobian that is not positive definite after all) is retried with MUMPS's LU
    with numerical pivoting (counted in :attr:`fallbacks`); if that fails too, the error
    says what both did.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, prefix: str,
                 options: Mapping[str, Any] | None = None, symmetric: bool = True) -> None:
        self.indptr = np.asarray(indptr, dtype=PETSc.IntType)
        self.indices = np.asarray(indices, dtype=PETSc.IntType)
        self.n = n = self.indptr.size - 1
        self.values = np.zeros(self.indices.size, dtype=PETSc.ScalarType)
        self.A = PETSc.Mat().createAIJWithArrays((n, n), (self.indptr, self.indices, self.values),
                                                 comm=PETSc.COMM_SELF)
        self.A.assemble()
        self.coo = False
        self._finish(prefix, options, symmetric)

    @classmethod
    def distributed(cls, comm: MPI.Comm, num_rows: int, rows: np.ndarray, cols: np.ndarray, prefix: str,
                    options: Mapping[str, Any] | None = None, symmetric: bool = True) -> PatternSolver:
        """The solver of a square matrix distributed over ``comm`` (collective), ``num_rows``
        rows on this process (consecutive by rank), whose entries this process contributes
        at global ``(rows, cols)``: :meth:`factor` takes their values in that order,
        entries at the same place (on any process) summed. :meth:`solve` takes and returns
        this process's rows.

        The entries of other processes' rows are sent to their owners (their places once
        here, their values at every :meth:`factor`), which sum them into the CSR values of
        their own rows."""
        self = cls.__new__(cls)
        self.n, self.comm = num_rows, comm
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(comm.allgather(num_rows))])
        start, total = offsets[comm.rank], offsets[-1]
        owner = np.searchsorted(offsets, rows, side="right") - 1
        #: per rank: the entries of this process that rank's rows receive
        self._to = [np.flatnonzero(owner == r) for r in range(comm.size)]
        got = comm.alltoall([(rows[idx], cols[idx]) for idx in self._to])
        every_r = np.concatenate([g[0] for g in got]) - start
        every_c = np.concatenate([g[1] for g in got])
        keys, self._pos = np.unique(every_r * total + every_c, return_inverse=True)
        r, c = np.divmod(keys, total)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=num_rows))]).astype(PETSc.IntType)
        self.indices = c.astype(PETSc.IntType)
        self.values = np.zeros(keys.size, dtype=PETSc.ScalarType)
        self.A = A = PETSc.Mat().create(comm=comm)
        A.setSizes(((num_rows, PETSc.DECIDE), (num_rows, PETSc.DECIDE)))
        A.setType(PETSc.Mat.Type.AIJ)
        A.setPreallocationCSR((self.indptr, self.indices))
        self.coo = True
        self._finish(prefix, options, symmetric)
        return self

    def _finish(self, prefix: str, options: Mapping[str, Any] | None, symmetric: bool) -> None:
        self.ksp = direct_solver(self.A, prefix, options, symmetric=symmetric)
        self._prefix = prefix
        #: the solver of the last factorisation: :attr:`ksp`, or the pivoting LU it fell back to
        self._active = self.ksp
        self._pivoting: PETSc.KSP | None = None
        self._b, self._x = self.A.createVecRight(), self.A.createVecLeft()
        self._dense: dict[int, tuple] = {}
        self.factorisations = 0
        #: factorisations that a Cholesky factoriser could not do and MUMPS's LU with pivoting did
        self.fallbacks = 0

    @property
    def solver_type(self) -> str:
        """The factoriser PETSc uses (``mumps``, ``cholmod``, ...)."""
        return self.ksp.getPC().getFactorSolverType()

    def factor_bytes(self) -> int:
        """Memory of the current factorisation as PETSc reports it (entries x 12 bytes; 0
        if the factoriser does not say)."""
        info = factor_matrix(self._active).getInfo()
        return int(12 * info.get("nz_used", 0.0))

    def factor(self, values: np.ndarray) -> None:
        """Numeric factorisation of the matrix with ``values`` (``nnz``: CSR, or the
        coordinate entries of :meth:`distributed`); raises
        :class:`~fe2.core.errors.SolverError` if it fails (collective)."""
        if self.coo:
            values = np.asarray(values, dtype=float)
            got = self.comm.alltoall([values[idx] for idx in self._to])
            self.values[:] = np.bincount(self._pos, weights=np.concatenate(got), minlength=self.values.size)
            self.A.setValuesCSR(self.indptr, self.indices, self.values)
        else:
            self.values[:] = values
        self.A.assemble()  # marks the values as changed
        self.ksp.setOperators(self.A)
        self._active = self.ksp
        self.factorisations += 1
        try:
            factorise(self.ksp, "factorisation of the RVE Jacobian")
        except SolverError as err:
            pc = self.ksp.getPC()
            if pc.getType() != "cholesky":
                raise
            pc.reset()  # (a failed factor is kept otherwise)
            self.ksp.setOperators(self.A)
            self.ksp.setFromOptions()
            self._active = self._pivoting_lu(err)
            self.fallbacks += 1

    def _pivoting_lu(self, first: SolverError) -> PETSc.KSP:
        """A Cholesky factorisation that failed (a Jacobian that is not positive definite,
        e.g. near the limit load of a perfectly plastic material, or singular in round-off)
        tried again with MUMPS's LU with numerical pivoting: that solver, factorised, or a
        :class:`~fe2.core.errors.SolverError` that says what both did (collective)."""
        if self._pivoting is None:
            self._pivoting = direct_solver(self.A, f"{self._prefix}pivoting_", DIRECT_LU, symmetric=False)
        ksp = self._pivoting
        ksp.setOperators(self.A)
        try:
            factorise(ksp, "LU")
        except SolverError as second:
            ksp.getPC().reset()
            ksp.setOperators(self.A)
            ksp.setFromOptions()
            raise SolverError(f"{first}; retried with MUMPS's LU with pivoting, which failed too "
                              f"({str(second).removeprefix('LU failed (').removesuffix(')')})") from None
        return ksp

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``A^-1 rhs`` with the last factorisation, ``rhs`` ``(n,)`` or ``(n, m)`` (this
        process's rows; collective)."""
        F = factor_matrix(self._active)
        if rhs.ndim == 1 or rhs.shape[1] == 1 or self.coo:
            b, x = self._b, self._x
            cols = rhs.reshape(self.n, -1)
            out = np.empty(cols.shape)
            for j in range(cols.shape[1]):  # (a distributed factor: one column at a time)
                b.array[:] = cols[:, j]
                try:
                    F.solve(b, x)
                except PETSc.Error as err:
                    raise SolverError(f"solve with a stored factorisation failed ({petsc_message(err)})") from None
                out[:, j] = x.array_r
            return out.reshape(rhs.shape)
        m = rhs.shape[1]
        if m not in self._dense:  # dense blocks kept per width: no PETSc objects per solve
            barr, xarr = np.zeros((self.n, m), order="F"), np.zeros((self.n, m), order="F")
            self._dense[m] = (PETSc.Mat().createDense((self.n, m), array=barr, comm=PETSc.COMM_SELF),
                              PETSc.Mat().createDense((self.n, m), array=xarr, comm=PETSc.COMM_SELF), barr, xarr)
        Bm, Xm, barr, xarr = self._dense[m]
        barr[:] = rhs
        try:
            F.matSolve(Bm, Xm)
        except PETSc.Error as err:
            raise SolverError(f"solve with a stored factorisation failed ({petsc_message(err)})") from None
        return xarr.copy()

    def destroy(self) -> None:
        for obj in (self.ksp, self._pivoting, self.A, self._b, self._x,
                    *(d[k] for d in self._dense.values() for k in (0, 1))):
            if obj is not None:
                obj.destroy()
