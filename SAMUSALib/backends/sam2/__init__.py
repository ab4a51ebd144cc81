"""The SAM2 family: SAM 2.1, MedSAM2 and SAMUSA-trained SAM2 checkpoints.

- `backend`: `SAM2Backend`, prompt -> mask and memory tracking through SAM2's blocks;
- `loader`: build from a packaged config, load verified weights, infer a bare
  checkpoint's variant and input size.

Registers its backend and its loader (the fallback for any checkpoint file) on import.
"""

from __future__ import annotations

from ...models.registry import Family, register_family
from ..registry import register_backend
from . import loader
from .backend import SAM2Backend

register_backend("sam2", SAM2Backend)
register_family(Family("sam2", loader.load, loader.load_file, describe=loader.describe, fallback=True))

__all__ = ["SAM2Backend", "loader"]
