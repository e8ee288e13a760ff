"""Compiled point kernels: the per-point work of the micro engines in machine code.

The laws' return mappings and the values of the micro Jacobians are loops over many small,
independent points; numpy spends most of their time in temporaries and dispatch. Here the
same algorithms are written once more as loops and compiled with numba (measured against C
through cffi: ``benchmarks/kernels.py``), each in the module of its concept
(:mod:`fe2.kernels.j2`, ...). The numpy versions stay where they were, as the reference the
tests compare the kernels against (to 1e-12); the code that uses a kernel asks
:func:`enabled` and otherwise runs the numpy version.

Kernels are compiled on first use and cached on disk (numba's cache, in
``$FE2_KERNEL_CACHE``, default ``~/.cache/fe2/numba``, a folder that must be the user's
alone, or else a new private temporary one; ``$NUMBA_CACHE_DIR`` if set: see
:func:`fe2.core.environment.kernel_cache`, which importing :mod:`fe2` calls before dolfinx
imports numba), so a warm run loads them in a fraction of a second. ``FE2_KERNELS=numpy`` turns them off
(every law then runs its numpy version); without numba installed they are off too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from fe2.core.environment import kernel_cache

__all__ = ["enabled", "jit", "numpy_only"]


kernel_cache()  # (importing fe2 did it already, before dolfinx imported numba; here for direct use)

try:  # numba is optional: without it every kernel runs its numpy reference
    import numba
except ImportError:  # pragma: no cover - the runtime has numba
    numba = None

_ON = numba is not None and os.environ.get("FE2_KERNELS", "compiled") != "numpy"


def enabled() -> bool:
    """Whether the compiled kernels run (numba present and not turned off)."""
    return _ON


@contextlib.contextmanager
def numpy_only() -> Iterator[None]:
    """Within the block every kernel's numpy reference runs (tests compare the two)."""
    global _ON
    before, _ON = _ON, False
    try:
        yield
    finally:
        _ON = before


def jit(fn):
    """Compile ``fn`` with numba (no Python objects, cached on disk; no fast-math, so that
    the kernels round like the numpy references); ``fn`` itself without numba."""
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(cache=True, nogil=True)(fn)
