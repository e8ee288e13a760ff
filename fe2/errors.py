"""Exceptions whose message is meant for the user.

The command line prints ``fe2: error: <message>`` for these and exits non-zero, without a
traceback. Anything else is a bug and keeps its traceback.
"""


class Fe2Error(Exception):
    """Base class: an error caused by input or by a failed solve, not by a bug."""


class ConfigError(Fe2Error):
    """A configuration file is malformed: the message names the file, the key and what is allowed."""


class MeshError(Fe2Error):
    """A mesh is unusable (not periodic, missing phase tag, unreadable)."""


class SolverError(Fe2Error):
    """A linear or nonlinear solve failed (diverged, singular matrix)."""
