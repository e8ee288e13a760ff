"""Where fe2 may write: a folder path is checked before any work, without creating it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["unwritable"]


def unwritable(folder: str | Path) -> str | None:
    """Why files cannot be written into ``folder`` (which may not exist yet; it would be
    created), or None when they can: the nearest existing path on the way is a file or a
    device, or a folder without write permission. Writes nothing."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"'{probe}' is {'a file' if probe.is_file() else 'not a folder'}"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"no permission to write in '{probe}'"
    return None


def space_note(path: str | Path) -> str:
    """Why writing ``path`` may have failed, as far as this process can see: a file size
    limit (``ulimit -f``) or a file system nearly full; empty when neither shows."""
    import resource

    notes = []
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        notes.append(f"files are limited to {soft} bytes (ulimit -f)")
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
        free = st.f_bavail * st.f_frsize
        if free < 64 * 2**20:
            notes.append(f"{free / 2**20:.1f} MB free on its file system")
    except OSError:
        pass
    return "; ".join(notes)
