"""Exceptions whose message is meant for the user.

The command line prints ``fe2: error: <message>`` for these and exits non-zero, without a
traceback. Anything else is a bug and keeps its traceback.
"""

__all__ = ["ConfigError", "Fe2Error", "Interrupted", "MeshError", "RankFailed", "SolverError", "collective",
           "io_reason", "on_root", "point_failure"]


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


def io_reason(err: BaseException) -> str:
    """A file error's reason in a few words: ``strerror`` of an ``OSError``, the last part
    of an HDF5 (h5py, dolfinx) message (``... error message = 'File too large'``)."""
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return text.split("error message = ")[-1].strip(" ')") if "error message = " in text else text


def point_failure(point: int, reason: str) -> SolverError:
    """The error of the RVE at material point ``point`` (its index among the material's
    points): message ``RVE at macro point <point>: <reason>``, ``point`` set (the macro
    problem adds the macro cell and quadrature point)."""
    err = SolverError(f"RVE at macro point {point}: {reason}")
    err.point = point
    return err


class RankFailed(Fe2Error):
    """Raised on the other ranks when one rank hit an internal error (a bug, or a library's
    error fe2 does not expect) inside a :func:`collective` call: that rank raises its own
    exception, with its traceback; the others end with this one instead of waiting."""

    secondary = True


def collective(comm, fn, *args, **kwargs):
    """Call ``fn`` on every rank of ``comm``; if it raises an :class:`Fe2Error` on any
    rank, raise that error (the lowest failing rank's, passing over errors that only echo
    another rank's: ``secondary``) on all ranks, so that no rank is left waiting in a later
    collective call. A file-system error (``OSError``: a folder that cannot be made, a full
    disk) counts as an :class:`Fe2Error` naming the path. Any other exception (a bug) is
    raised again on its rank, with its traceback, and as :class:`RankFailed` naming that
    rank and the exception on the others. Collective on ``comm``."""
    result, err = None, None
    try:
        result = fn(*args, **kwargs)
    except Fe2Error as e:
        err = e
    except OSError as e:
        err = Fe2Error(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else f"file system error: {e}")
    except Exception as e:  # noqa: BLE001 - a bug on this rank: every rank must hear of it
        err = e
    mine = None if err is None else (type(err).__name__, str(err), getattr(err, "secondary", False),
                                     isinstance(err, Fe2Error))
    errors = comm.allgather(mine)
    failed = [(rank, item) for rank, item in enumerate(errors) if item is not None]
    if not failed:
        return result
    if err is not None and not isinstance(err, Fe2Error):
        raise err
    own = [(r, e) for r, e in failed if e[3] and not e[2]]  # errors that say what went wrong, not echoes
    bugs = [(r, e) for r, e in failed if not e[3]]
    chosen = (own or bugs or failed)[0]
    rank, (name, message, _, _) = chosen
    if isinstance(err, Fe2Error) and str(err) == message:
        raise err
    if chosen in bugs:
        raise RankFailed(f"rank {rank} of {comm.size} failed with an internal error ({name}: {message}); see its "
                         "traceback")
    cls = {c.__name__: c for c in (Fe2Error, ConfigError, MeshError, SolverError, Interrupted, RankFailed)}[name]
    raise cls(message)


def on_root(comm, fn, *args, **kwargs):
    """``fn`` called on rank 0 of ``comm`` only (e.g. to make a folder or write a file), its
    result given to every rank; its error (as :func:`collective`) raised on every rank.
    Collective on ``comm``."""
    result = collective(comm, lambda: fn(*args, **kwargs) if comm.rank == 0 else None)
    return comm.bcast(result, root=0) if comm.size > 1 else result
