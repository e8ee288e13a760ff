"""The state bank: per-point history arrays by name, committed and trial.

Every stateful material keeps its history here (the law points of
:class:`~fe2.materials.points.MaterialPoints`, the phases of
:class:`~fe2.materials.phasewise.PhaseMaterial`, the fluctuations and micro internal
variables of :class:`~fe2.micro.nonlinear.NonlinearCellProblem`). An evaluation reads
:attr:`StateBank.committed` and writes :attr:`StateBank.trial`; a converged load step
calls :meth:`StateBank.commit`, a failed one :meth:`StateBank.revert`.
:meth:`StateBank.get_state` / :meth:`StateBank.set_state` give and take the committed
state as plain named arrays (what a checkpoint stores).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["StateBank"]


class StateBank:
    """Named arrays ``(count, ...)`` with a committed and a trial copy (not collective)."""

    def __init__(self) -> None:
        self.committed: dict[str, np.ndarray] = {}
        self.trial: dict[str, np.ndarray] = {}

    def allocate(self, name: str, virgin: np.ndarray, count: int) -> None:
        """(Re)create array ``name`` for ``count`` items, each in the ``virgin`` state
        (an array of any shape); committed and trial alike."""
        virgin = np.asarray(virgin, dtype=float)
        self.committed[name] = np.broadcast_to(virgin, (count,) + virgin.shape).copy()
        self.trial[name] = self.committed[name].copy()

    def commit(self) -> None:
        """The trial state becomes the committed one."""
        self.committed = {k: v.copy() for k, v in self.trial.items()}

    def revert(self) -> None:
        """The trial state goes back to the committed one."""
        self.trial = {k: v.copy() for k, v in self.committed.items()}

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of the committed arrays by name."""
        return {k: v.copy() for k, v in self.committed.items()}

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the committed state by ``state`` (the names of :meth:`get_state`; the
        leading count may differ, the per-item shape may not); trial = committed."""
        missing = sorted(set(self.committed) - set(state))
        extra = sorted(set(state) - set(self.committed))
        if missing or extra:
            raise ValueError(f"state names differ: missing {missing}, unknown {extra}")
        new = {}
        for k, old in self.committed.items():
            arr = np.array(state[k], dtype=float)
            if arr.shape[1:] != old.shape[1:]:
                raise ValueError(f"state '{k}' has item shape {arr.shape[1:]}, expected {old.shape[1:]}")
            new[k] = arr
        self.committed = new
        self.revert()
