"""Propagation for image-only models (no memory of their own): family-agnostic parts.

- `motion`: frame-to-frame shifts (phase correlation), moving masks, contour samples;
- `appearance`: PerSAM-style feature prototypes of the object and their scores;
- `tracker`: `ImageOnlyTracker`, candidates from motion + shape prompts, scored and
  bounded; `DESIGNS` names the measured designs (docs/tracking.md); a backend serves it
  through a `tracker.SquareModel` of its own (LiteMedSAM's: `backends/litemedsam/square.py`).

A backend uses it through `make_tracker(name)` (None: the backend's legacy tracker).
"""

from __future__ import annotations

from .tracker import DESIGNS, ImageOnlyTracker, TrackerConfig

__all__ = ["DESIGNS", "DEFAULT_DESIGN", "ImageOnlyTracker", "TrackerConfig", "make_tracker"]

#: The design propagation uses unless SAMUSA_TRACKER names another (docs/tracking.md).
DEFAULT_DESIGN = "motion"


def make_tracker(name: str | None = None) -> ImageOnlyTracker | None:
    """The tracker of a named design; None for "legacy" (the backend's own grown-box tracker)."""
    name = (name or DEFAULT_DESIGN).strip().lower()
    if name == "legacy":
        return None
    if name not in DESIGNS:
        raise ValueError(f"tracker design must be 'legacy' or one of {', '.join(DESIGNS)}; got {name!r}")
    return ImageOnlyTracker(DESIGNS[name])
