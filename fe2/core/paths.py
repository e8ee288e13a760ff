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
