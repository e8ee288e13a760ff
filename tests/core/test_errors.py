"""fe2.core.errors.collective: an error on any rank is raised on every rank, the same one,
and an error that only echoes another rank's (``secondary``: a rank of a group whose RVE
point failed elsewhere) gives way to that rank's own. Serial and under ``mpirun -n 2``."""

import pytest
from mpi4py import MPI

from fe2.core.errors import ConfigError, SolverError, collective


def test_the_lowest_failing_rank_s_error_on_every_rank():
    comm = MPI.COMM_WORLD

    def fail():
        if comm.rank == comm.size - 1:
            raise ConfigError(f"bad input seen by rank {comm.rank}")
        return comm.rank

    with pytest.raises(ConfigError, match=f"^bad input seen by rank {comm.size - 1}$"):
        collective(comm, fail)
    assert collective(comm, lambda: comm.rank) == comm.rank


def test_an_echo_gives_way_to_the_error_it_echoes():
    comm = MPI.COMM_WORLD

    def fail():
        if comm.rank == comm.size - 1:  # the rank whose point failed
            raise SolverError("RVE at the macro point (0.1, 0.2): diverged")
        echo = SolverError("RVE of a macro point of another rank of this rank's group: diverged")
        echo.secondary = True
        raise echo

    with pytest.raises(SolverError, match=r"^RVE at the macro point \(0\.1, 0\.2\): diverged$"):
        collective(comm, fail)

    def only_echoes():
        echo = SolverError(f"echo of rank {comm.rank}")
        echo.secondary = True
        raise echo

    with pytest.raises(SolverError, match="^echo of rank 0$"):  # (none is primary: the lowest rank's)
        collective(comm, only_echoes)
