"""Dynamic load balancing of RVE evaluations over MPI ranks.

Plastic or damaging macro points cost many times more than elastic ones and gather where
the part fails, so the rank owning that region would do most of the micro work. Before
every evaluation, :class:`LoadBalancer` redistributes the points' micro solves so that
every rank gets a similar *measured* cost:

1. each rank knows what each of its points cost at its last evaluation (seconds, as
   estimated by :attr:`fe2.micro.batched.BatchedEngine.cost`; one unit before the first);
   the costs are gathered on every rank and :func:`assign` computes, identically on all
   ranks, which rank evaluates which point (a point moves only from a rank above the mean
   load, the most expensive that fits first, to the rank with the least load);
2. the points a rank gives away travel as their inputs (macro gradient, starting
   fluctuation, committed micro state, nonlocal drive) in one ``alltoall``;
3. every rank evaluates its kept and received points as one batch;
4. the answers (stress, tangent, trial fluctuation and state, dW/dE or nonlocal sensitivities,
   measured cost, failures) go back to the points' home ranks in a second ``alltoall``.

Ownership of the history never moves: the home rank of a point holds its committed and
trial state, commits and reverts it and will checkpoint it; a worker rank only computes.
A point's answer does not depend on which rank evaluated it or with which other points
(every point's micro Newton is independent), so results on 1 and 2 ranks agree to
rounding. A micro solve that fails on a worker is reported by its home rank, for its own
point, like any other failure (the exchange itself always completes).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
from mpi4py import MPI

from fe2.core.errors import point_failure

__all__ = ["LoadBalancer", "assign"]


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


def _take(items, sel):
    """``items`` (arrays, lists of arrays, or None) restricted to rows ``sel``."""
    if items is None:
        return None
    if isinstance(items, list):
        return [a[sel] for a in items]
    return items[sel]


def _join(parts):
    """Concatenate rows of the parts made by :func:`_take` (all alike)."""
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, list):
        return [np.concatenate([p[k] for p in parts]) for k in range(len(first))]
    return np.concatenate(parts)


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

    def evaluate(self, engine, E: np.ndarray, W0: np.ndarray, states: list[np.ndarray],
                 e_nl: np.ndarray | None, points: np.ndarray | None = None) -> tuple:
        """What ``engine.evaluate(E, W0, states, e_nl)`` returns for this rank's points
        (:meth:`fe2.micro.batched.BatchedEngine.evaluate`), with the work spread over the
        ranks. ``points``: the home indices of the rows (default: all home points, in order).
        Raises :class:`~fe2.core.errors.SolverError` (``point`` set: the home index) for the
        first of these points that failed, wherever it was evaluated (collective)."""
        comm, rank = self.comm, self.comm.rank
        N, n = E.shape
        if points is None:
            points = np.arange(N)
        dest = assign(comm.allgather(self.cost[points]), self.tolerance)[rank]
        inputs = (E, W0, states, e_nl)
        send = []
        for d in range(comm.size):
            sel = np.flatnonzero(dest == d)
            send.append(None if d == rank or not sel.size else (sel, *(_take(x, sel) for x in inputs)))
        received = comm.alltoall(send)
        keep = np.flatnonzero(dest == rank)
        # one batch: the kept points, then the received ones by source rank
        parts = [(rank, keep, *(_take(x, keep) for x in inputs))]
        parts += [(src, *msg) for src, msg in enumerate(received) if msg is not None]
        batch = [_join([p[k] for p in parts]) for k in range(2, 6)]
        failures: dict[int, str] = {}
        seconds = engine.seconds
        out = engine.evaluate(*batch, failures=failures)
        self.stats["seconds"] += engine.seconds - seconds
        cost = engine.cost
        # answers back home
        replies: list = [None] * comm.size
        mine = None
        start = 0
        for src, sel, *_ in parts:
            rows = slice(start, start + sel.size)
            ans = (sel, out[0][rows], out[1][rows], out[2][rows], [t[rows] for t in out[3]],
                   None if out[4] is None else [a[rows] for a in out[4]], None if out[5] is None else out[5][rows],
                   cost[rows],
                   {int(sel[b - start]): msg for b, msg in failures.items() if start <= b < start + sel.size})
            if src == rank:
                mine = ans
            else:
                replies[src] = ans
                self.stats["moved"] += sel.size
            start += sel.size
        back = comm.alltoall(replies)
        # this rank's points in home order
        sigma, tangent, W = np.empty((N, n)), np.empty((N, n, n)), np.empty_like(W0)
        trial = [np.empty_like(s) for s in states]
        nl = None if e_nl is None else [np.empty((N, n)), np.empty(N), np.empty((N, n)), np.empty(N)]
        dW = None if out[5] is None else np.empty((N, *out[5].shape[1:]))
        failed: dict[int, tuple[str, int]] = {}
        for worker, ans in [(rank, mine)] + [(w, a) for w, a in enumerate(back) if a is not None]:
            sel, s_, t_, w_, st_, nl_, dw_, c_, f_ = ans
            sigma[sel], tangent[sel], W[sel], self.cost[points[sel]] = s_, t_, w_, c_
            if dW is not None:
                dW[sel] = dw_
            for dst, val in zip(trial, st_):
                dst[sel] = val
            if nl is not None:
                for dst, val in zip(nl, nl_):
                    dst[sel] = val
            failed.update({i: (msg, worker) for i, msg in f_.items()})
        if failed:
            first = min(failed)
            msg, worker = failed[first]
            raise point_failure(int(points[first]), msg + (f" (evaluated on rank {worker})" if worker != rank else ""))
        return sigma, tangent, W, trial, nl, dW
