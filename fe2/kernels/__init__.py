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
alone, or else a new private temporary one; ``$NUMBA_CACHE_DIR`` if set), so a warm run
loads them in a fraction of a second. ``FE2_KERNELS=numpy`` turns them off
(every law then runs its numpy version); without numba installed they are off too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["enabled", "jit", "numpy_only"]


def _private(folder: Path) -> bool:
    """Make ``folder`` (mode 0700) and tell whether it is this user's alone: owned by them,
    writable, not writable by group or others (numba's cache index is a pickle: a folder
    another user can write would let them run code in fe2)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022 and os.access(folder, os.W_OK)


def _cache_dir() -> str:
    """``$FE2_KERNEL_CACHE``, else ``~/.cache/fe2/numba``; where that cannot be written (a
    read-only home on a cluster) or is not the user's alone, a new private temporary folder."""
    base = os.environ.get("FE2_KERNEL_CACHE")
    if not base:
        home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(home) / "fe2" / "numba")
    if _private(Path(base)):
        return base
    return tempfile.mkdtemp(prefix="fe2-numba-")


if "NUMBA_CACHE_DIR" not in os.environ and os.environ.get("FE2_KERNELS", "compiled") != "numpy":
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir()

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
