"""Exceptions whose message is meant for the user.

The command line prints ``fe2: error: <message>`` for these and exits non-zero, without a
traceback. Anything else is a bug and keeps its traceback.
"""

__all__ = ["ConfigError", "Fe2Error", "Interrupted", "MeshError", "SolverError", "collective", "point_failure"]


class Fe2Error(Exception):
    """Base class: an error caused by input or by a failed solve, not by a bug."""


class ConfigError(Fe2Error):
    """A configuration file is malformed: the message names the file, the key and what is allowed."""


class MeshError(Fe2Error):
    """A mesh is unusable (not periodic, missing phase tag, unreadable)."""


class SolverError(Fe2Error):
    """A linear or nonlinear solve failed (diverged, singular matrix).

    ``point``: the index of the material point that failed, when one did (set by the
    material; the macro problem turns it into the macro cell and quadrature point)."""

    point: int | None = None


class Interrupted(Fe2Error):
    """A run was asked to stop (a signal, or its wall-clock limit; see
    :mod:`fe2.core.stopping`) and stopped cleanly: the message is the reason. Raised on
    every rank at once."""


def point_failure(point: int, reason: str) -> SolverError:
    """The error of the RVE at material point ``point`` (its index among the material's
    points): message ``RVE at macro point <point>: <reason>``, ``point`` set (the macro
    problem adds the macro cell and quadrature point)."""
    err = SolverError(f"RVE at macro point {point}: {reason}")
    err.point = point
    return err


def collective(comm, fn, *args, **kwargs):
    """Call ``fn`` on every rank of ``comm``; if it raises an :class:`Fe2Error` on any
    rank, raise that error (the lowest failing rank's) on all ranks, so that no rank is
    left waiting in a later collective call. Collective on ``comm``."""
    result, err = None, None
    try:
        result = fn(*args, **kwargs)
    except Fe2Error as e:
        err = e
    errors = comm.allgather(None if err is None else (type(err).__name__, str(err)))
    for item in errors:
        if item is not None:
            if err is not None:
                raise err
            cls = {c.__name__: c for c in (Fe2Error, ConfigError, MeshError, SolverError, Interrupted)}[item[0]]
            raise cls(item[1])
    return result
