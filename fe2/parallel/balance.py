"""Dynamic load balancing of RVE evaluations over MPI ranks.

Plastic or damaging macro points cost many times more than elastic ones and gather where
the part fails, so the rank owning that region would do most of the micro work. Before
every evaluation, :class:`LoadBalancer` redistributes the points' micro solves so that
every rank gets a similar *measured* cost:

1. each rank knows what each of its points cost at its last evaluation (seconds, as
   the engine estimated them, :attr:`fe2.micro.engines.base.EngineAnswer.cost`; one unit
   before the first);
   the costs are gathered on every rank and :func:`assign` computes, identically on all
   ranks, which rank evaluates which point (a point moves only from a rank above the mean
   load, the most expensive that fits first, to the rank with the least load);
2. the points a rank gives away travel as their inputs (the engine contract's
   :class:`~fe2.micro.engines.base.PointBatch`: macro gradient, starting fluctuation,
   committed micro state, nonlocal drive) in one ``alltoall``;
3. every rank evaluates its kept and received points as one batch;
4. the answers (stress, tangent, trial fluctuation and state, dW/dE or nonlocal sensitivities,
   measured cost, failures) go back to the points' home ranks in a second ``alltoall``.

Ownership of the history never moves: the home rank of a point holds its committed and
trial state, commits and reverts it and will checkpoint it; a worker rank only computes.
A point's answer does not depend on which rank evaluated it or with which other points
(every point's micro Newton is independent), so results on 1 and 2 ranks agree to
rounding. A micro solve that fails on a worker is reported by its home rank, for its own
point, like any other failure (the exchange itself always completes); any other exception
in an evaluation (a bug) is raised on its rank after the exchange, and the other ranks raise
:class:`~fe2.core.errors.RankFailed` naming it, so that none is left waiting. The balancer serves
any engine through the contract of :mod:`fe2.micro.engines.base`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from mpi4py import MPI

if TYPE_CHECKING:
    from fe2.micro.engines.base import EngineAnswer, MicroEngine, PointBatch

__all__ = ["LoadBalancer", "assign"]


class _Failed(NamedTuple):
    """What a rank sends in the answers' exchange instead of answers when its evaluation
    raised (the exchange still completes, so no rank is left waiting in it)."""

    name: str
    message: str


def assign(costs: Sequence[np.ndarray], tolerance: float = 0.02) -> list[np.ndarray]:
    """Which rank evaluates each point: for per-rank point costs ``costs[r]`` ``(N_r,)``,
    ``dest[r]`` ``(N_r,)`` (deterministic, the same on every rank).

    Ranks whose load exceeds the mean by more than ``tolerance`` (relative) give away
    points, most expensive first, as long as a point is cheaper than twice their excess
    (so that giving it away brings them closer to the mean); the given points, most
    expensive first, go to the least loaded rank at that moment (ties: lowest rank)."""
    size = len(costs)
    counts = np.array([len(c) for c in costs], dtype=np.int64)
    flat = np.concatenate([np.asarray(c, dtype=float) for c in costs]) if size else np.zeros(0)
    starts = np.concatenate([[0], np.cumsum(counts)])
    dest = np.repeat(np.arange(size, dtype=np.int64), counts)  # every point at home
    loads = np.bincount(dest, weights=flat, minlength=size)
    if size >= 2 and loads.sum() > 0.0:
        mean = loads.sum() / size
        pool: list[tuple[float, int, int]] = []  # (cost, home rank, flat index)
        for r in np.flatnonzero(loads > mean * (1.0 + tolerance)).tolist():
            c = flat[starts[r]:starts[r + 1]]
            order = np.argsort(-c, kind="stable")
            load = float(loads[r])
            for ci, i in zip(c[order].tolist(), (order + starts[r]).tolist()):  # sequential
                if 0.0 < ci < 2.0 * (load - mean):
                    load -= ci
                    pool.append((ci, r, i))
            loads[r] = load
        pool.sort(key=lambda t: (-t[0], t[1], t[2]))
        heap = [(load, r) for r, load in enumerate(loads.tolist())]
        heapq.heapify(heap)
        for cost, _, i in pool:
            load, d = heapq.heappop(heap)
            dest[i] = d
            heapq.heappush(heap, (load + cost, d))
    return np.split(dest, starts[1:-1])


class LoadBalancer:
    """Distributes the evaluations of an engine's points over the ranks of ``comm``
    by measured cost (collective on ``comm``; see the module docstring).

    :attr:`stats`: ``moved`` (evaluations done on a rank other than the point's home) and
    ``seconds`` (this rank's time in its engine's evaluations, the balanced quantity).
    """

    def __init__(self, comm: MPI.Comm, tolerance: float = 0.02) -> None:
        self.comm = comm
        self.tolerance = tolerance
        self.cost = np.zeros(0)
        self.stats = {"moved": 0, "seconds": 0.0}

    def resize(self, N: int) -> None:
        """Serve ``N`` home points, each priced one unit until it is evaluated."""
        self.cost = np.ones(N)

    def evaluate(self, engine: MicroEngine, batch: PointBatch, points: np.ndarray | None = None) -> EngineAnswer:
        """What ``engine.evaluate(batch)`` answers for this rank's points
        (:meth:`fe2.micro.engines.base.MicroEngine.evaluate`), with the work spread over the
        ranks. ``points``: the home indices of the rows (default: all home points, in
        order). The failures are the rows of this rank's points that failed, wherever they
        were evaluated (a rank other than this one is named in the reason); the counters
        are those of the work this rank did (collective)."""
        comm, rank = self.comm, self.comm.rank
        N = batch.size
        if points is None:
            points = np.arange(N)
        dest = assign(comm.allgather(self.cost[points]), self.tolerance)[rank]
        send = []
        for d in range(comm.size):
            sel = np.flatnonzero(dest == d)
            send.append(None if d == rank or not sel.size else (sel, batch.take(sel)))
        received = comm.alltoall(send)
        keep = np.flatnonzero(dest == rank)
        # one batch: the kept points, then the received ones by source rank
        parts = [(rank, keep, batch.take(keep))]
        parts += [(src, *msg) for src, msg in enumerate(received) if msg is not None]
        replies: list = [None] * comm.size
        mine, error = None, None
        try:
            out = engine.evaluate(type(batch).join([p[2] for p in parts]))
            self.stats["seconds"] += out.counters.get("seconds", 0.0)
            start = 0
            for src, sel, _ in parts:  # answers back home
                ans = (sel, out.take(slice(start, start + sel.size)))
                if src == rank:
                    mine = ans
                else:
                    replies[src] = ans
                    self.stats["moved"] += sel.size
                start += sel.size
        except Exception as err:  # noqa: BLE001 - the exchange must complete: the others wait in it
            error = err  # (every rank learns of it in the exchange it takes part in anyway)
            replies = [_Failed(type(err).__name__, str(err))] * comm.size
        back = comm.alltoall(replies)
        if error is not None:
            raise error
        failed = next(((w, a) for w, a in enumerate(back) if isinstance(a, _Failed)), None)
        if failed is not None:
            from fe2.core.errors import RankFailed

            worker, what = failed
            raise RankFailed(f"rank {worker} of {comm.size} failed while evaluating RVEs, some of them this "
                             f"rank's ({what.name}: {what.message})")
        # this rank's points in home order
        home = type(out).empty(batch, out.flux.shape[1])
        home.counters = out.counters
        for worker, (sel, part) in [(rank, mine)] + [(w, a) for w, a in enumerate(back) if a is not None]:
            if worker != rank:
                part.failures = {i: f"{msg} (evaluated on rank {worker})" for i, msg in part.failures.items()}
            home.put(sel, part)
        self.cost[points] = home.cost
        return home
