"""The permissions of files SAMUSA writes by renaming a temporary file into place."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path


def new_file_mode(path: Path) -> int:
    """The permissions a file written by renaming a temporary one over `path` should get:
    the file's own if it exists, else what the umask gives a new file (a temporary file
    from mkstemp is 0600: nobody else on a shared machine could read the result)."""
    return path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()


def _umask() -> int:
    with suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
