"""gmsh sessions: a fresh gmsh model for a block of code, leaving gmsh as it was found.

Every place fe2 meshes with gmsh (RVE generators, RVE loading, macro generators) goes
through :func:`gmsh_session`, so that gmsh is initialised and finalised in one way and a
caller's own gmsh session is never disturbed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["gmsh_session"]

_model_counter = itertools.count()


@contextmanager
def gmsh_session(
    name: str = "fe2", *, verbose: bool = False, options: Mapping[str, float] | None = None
) -> Iterator[Any]:
    """Run a block with a fresh current gmsh model, leaving gmsh as it was found.

    If gmsh is not initialised, it is initialised here (``interruptible=False``, no
    configuration files) and finalised when the block ends, also on error. If it is
    already initialised (by the caller), a new model is added and made current, the
    numeric options set here are restored afterwards, the new model is removed and the
    previously current model is made current again; gmsh is not finalised.

    Parameters
    ----------
    name : str
        Prefix of the name of the temporary gmsh model.
    verbose : bool
        Print gmsh messages (``General.Terminal = 1``); silent otherwise.
    options : mapping of str to float, optional
        Further numeric gmsh options to set for the block.

    Yields
    ------
    module
        The ``gmsh`` module, with the new model current.
    """
    import gmsh

    owner = not gmsh.isInitialized()
    if owner:
        gmsh.initialize(readConfigFiles=False, interruptible=False)
    saved: dict[str, float] = {}
    previous_model = ""
    added = False
    try:
        if not owner:
            previous_model = gmsh.model.getCurrent()
        all_options = {"General.Terminal": 1.0 if verbose else 0.0, **dict(options or {})}
        for key, value in all_options.items():
            if not owner:
                saved[key] = gmsh.option.getNumber(key)
            gmsh.option.setNumber(key, float(value))
        gmsh.model.add(f"{name}-{os.getpid()}-{next(_model_counter)}")
        added = True
        yield gmsh
    finally:
        if owner:
            gmsh.finalize()
        else:
            if added:
                gmsh.model.remove()
            if previous_model:
                try:
                    gmsh.model.setCurrent(previous_model)
                except Exception:  # the caller's model vanished meanwhile: nothing to restore
                    pass
            for key, value in saved.items():
                gmsh.option.setNumber(key, value)
