"""Clean stops: a run asked to stop (by a signal, or by its own wall-clock limit) ends the
step it is working on, keeps every converged step and exits so that it can be continued.

:class:`StopRequest` is what the path following asks, at the start of every load step and
before every macro Newton update, whether to go on. The answer is agreed by all ranks (one
``allreduce`` of a small integer), so that every rank leaves the step at the same point: a
scheduler signals the ranks of a job one by one, and each rank measures the wall clock by
itself.

Reasons to stop:

- a signal: SIGTERM (SLURM's ``--signal``, PBS at its walltime, ``kill``), SIGINT (Ctrl-C)
  or SIGUSR1. The handler only records the signal; the run stops at the next check. A
  second signal while stopping ends the process at once, as the signal would without fe2.
  Under ``mpirun`` (Open MPI), a SIGTERM or SIGINT sent to ``mpirun`` itself is passed on to
  the ranks, which are then killed within about a second, so send SIGUSR1 there:
  ``mpirun`` passes it on and waits.
- ``max_wall``: the run's wall clock, from the start of the run (``start``), would pass
  ``max_wall`` seconds: at the start of a step when the last step's duration would take it
  past the limit, before a Newton update when it is past already.
"""

from __future__ import annotations

import os
import signal
import time
from types import FrameType

from mpi4py import MPI

from fe2.core.errors import Interrupted

__all__ = ["SIGNALS", "StopRequest"]

#: the signals that ask a run to stop cleanly
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)

_REASONS = {1: "the wall-clock limit (--max-wall)", 2: "a signal"}


class StopRequest:
    """Whether a run should stop (collective on ``comm`` when called).

    Use as a context manager to catch :data:`SIGNALS` while the run is inside it (only in
    the main thread; elsewhere signals are left alone and only ``max_wall`` applies).
    Calling it returns nothing and raises :class:`~fe2.core.errors.Interrupted` on every
    rank when any rank has a reason to stop."""

    def __init__(self, comm, max_wall: float | None = None, start: float | None = None) -> None:
        if max_wall is not None and not max_wall > 0:
            raise ValueError(f"max_wall must be positive, not {max_wall!r}")
        self.comm = comm
        self.max_wall = max_wall
        self.start = time.perf_counter() if start is None else start
        self.signal: int | None = None  #: the first signal received
        self._previous: dict[int, object] = {}

    # --- signals ------------------------------------------------------------------------
    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # a second signal: stop now, as without fe2
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signal = signum

    def __enter__(self) -> StopRequest:
        try:
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: no signal handling
            self._previous.clear()
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    # --- the check ------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, upcoming: float = 0.0) -> None:
        """Raise :class:`Interrupted` on every rank if a signal arrived on any rank, or if
        the wall clock plus ``upcoming`` seconds (the expected duration of the work about to
        start) passes ``max_wall`` on any rank (collective)."""
        code = 2 if self.signal is not None else 0
        if not code and self.max_wall is not None and self.elapsed() + upcoming > self.max_wall:
            code = 1
        code = self.comm.allreduce(code, op=MPI.MAX)
        if code:
            signals = self.comm.allgather(self.signal)
            name = next((signal.Signals(s).name for s in signals if s is not None), None)
            reason = name if code == 2 and name else _REASONS[code]
            if code == 1:
                reason += f" of {self.max_wall:g} s"
            raise Interrupted(reason)
