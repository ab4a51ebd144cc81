"""The cache folder: downloaded checkpoints, exported encoders, the machine's precision record."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelError

CACHE_ENV = "SAMUSA_CACHE_DIR"


def cache_dir() -> Path:
    """`$SAMUSA_CACHE_DIR`, else `~/.cache/samusa` (created on first use)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "samusa"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"Cannot create the model cache folder {path}: {exc.strerror or exc}. "
            f"Set {CACHE_ENV} to a writable folder."
        ) from None
    return path
