"""Exceptions whose message is meant for the user.

The command line prints ``fe2: error: <message>`` for these and exits non-zero, without a
traceback. Anything else is a bug and keeps its traceback.
"""

__all__ = ["ConfigError", "Fe2Error", "Interrupted", "MeshError", "SolverError", "collective", "on_root",
           "point_failure"]


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
    #: this rank only learned of the failure from another rank, whose own error says more
    #: (:func:`collective` raises that one on all ranks)
    secondary: bool = False


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
    rank, raise that error (the lowest failing rank's, passing over errors that only echo
    another rank's: ``secondary``) on all ranks, so that no rank is left waiting in a later
    collective call. A file-system error (``OSError``: a folder that
    cannot be made, a full disk) counts as an :class:`Fe2Error` naming the path. Collective
    on ``comm``."""
    result, err = None, None
    try:
        result = fn(*args, **kwargs)
    except Fe2Error as e:
        err = e
    except OSError as e:
        err = Fe2Error(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else f"file system error: {e}")
    errors = comm.allgather(None if err is None else (type(err).__name__, str(err), getattr(err, "secondary", False)))
    failed = [item for item in errors if item is not None]
    if failed:
        first = next((item for item in failed if not item[2]), failed[0])  # (a rank's own error before an echo)
        if err is not None and str(err) == first[1]:
            raise err
        cls = {c.__name__: c for c in (Fe2Error, ConfigError, MeshError, SolverError, Interrupted)}[first[0]]
        raise cls(first[1])
    return result


def on_root(comm, fn, *args, **kwargs):
    """``fn`` called on rank 0 of ``comm`` only (e.g. to make a folder or write a file), its
    result given to every rank; its error (as :func:`collective`) raised on every rank.
    Collective on ``comm``."""
    result = collective(comm, lambda: fn(*args, **kwargs) if comm.rank == 0 else None)
    return comm.bcast(result, root=0) if comm.size > 1 else result
