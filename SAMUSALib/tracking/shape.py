"""Shape and size: how much a propagated mask may change, whether the image backs it, and
whether a mask looks like two structures joined (`leaks`).

A box-prompted decoder fills whatever box it is given, so a mask that grows a little on
every frame balloons. A candidate may change its area by at most a factor against its
neighbour's, unless the image supports the new border: its edge contrast (inside against
a ring around it) keeps most of that of the neighbour's mask on the neighbour's frame (an
object entering the view grows fast, and its border is real; a balloon's border is not).
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

from ..errors import InputError

__all__ = ["edge_contrast", "area_verdict", "leaks", "solidity", "LEAK_SOLIDITY", "leak_solidity_setting"]


def edge_contrast(image: np.ndarray, mask: np.ndarray, min_width: int = 2, view: np.ndarray | None = None) -> float:
    """|mean inside - mean of a ring around the mask| (ring width 15 % of the mask's size,
    at least `min_width` px; the vanish detector was tuned with 3, the tracker with 2).
    With the probe's field of view (`view`), the ring leaves out what the probe does not
    image: a border on the fan's edge is where the object leaves the picture, not an edge."""
    if not mask.any():
        return 0.0
    width = max(min_width, int(round(0.15 * np.sqrt(mask.sum()))))
    ring = ndimage.binary_dilation(mask, iterations=width) & ~mask
    if view is not None:
        ring &= view
    if not ring.any():
        return 0.0
    return abs(float(image[mask].mean()) - float(image[ring].mean()))


def area_verdict(ratio: float, max_growth: float, contrast: float, source_contrast: float, support: float = 0.75) -> str | None:
    """None if an area change by `ratio` is acceptable, else why not. The image supports
    a change beyond `max_growth` when the new border keeps `support` of the neighbour's
    edge contrast (the carotid lumen keeps at least 0.7 of it from frame to frame)."""
    if 1 / max_growth <= ratio <= max_growth:
        return None
    if source_contrast > 0 and contrast >= support * source_contrast:
        return None
    return f"area x{ratio:.2f} of the neighbour's, edge contrast {contrast:.3f} < {support} x {source_contrast:.3f}"


#: A mask less solid than this (its area over its convex hull's) looks like two structures
#: joined through a gap: a click in the left atrium whose mask runs through the open
#: mitral valve into the ventricle.
LEAK_SOLIDITY = 0.75
#: Turns that test on for region clicks' referee (`LiteMedSAMBackend._referee_region`) at
#: the threshold it gives (`LEAK_SOLIDITY` was the measured choice); unset or 0: off. Off
#: by default since negative clicks both models ignore cut the mask and a mask missing
#: every click loses: with those, CAMUS region at 1..5 clicks is 0.607 0.657 0.669 0.676
#: 0.686 without the test (rising at every click) and 0.607 0.663 0.668 0.664 0.694 with
#: it (docs/samusa_lite2.md); BUS-BRA and carotid never reached it.
LEAK_SOLIDITY_ENV = "SAMUSA_LEAK_SOLIDITY"


def leak_solidity_setting() -> float:
    """0 (off), or the number in ``SAMUSA_LEAK_SOLIDITY`` (0 to 1; a clear error else)."""
    text = os.environ.get(LEAK_SOLIDITY_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{LEAK_SOLIDITY_ENV}={text!r}: expected a number from 0 to 1 (0 or unset: off; {LEAK_SOLIDITY} was measured)")
    return value


def leaks(own: np.ndarray, other: np.ndarray, threshold: float = LEAK_SOLIDITY) -> bool:
    """Whether `own` should give way to `other` as a mask that looks like two structures
    joined through a gap: `own` is less solid than `threshold` and `other` is a mask (not
    empty) and more solid. Low solidity also flags a mask of separate pieces (clicks in two
    places) and a naturally concave one (a ring): it asks for a more solid alternative,
    not proof of a leak. `threshold` 0 turns the test off."""
    if threshold <= 0 or not other.any():
        return False
    own_solidity = solidity(own)
    return own_solidity < threshold and solidity(other) > own_solidity


def solidity(mask: np.ndarray) -> float:
    """A mask's area over its convex hull's (1 for an empty mask). The hull lies inside the
    mask's bounding box, so it is computed there."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return 1.0
    crop = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return len(rows) / max(1, int(convex_hull_image(crop).sum()))
