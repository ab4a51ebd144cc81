"""The probe's field of view: where in the frame the loop images the body.

A curved or phased probe draws a fan; the corners outside it are black in every frame.
Black and constant, they look to an image-only model like a very dark lumen with a crisp
edge, so an object that leaves the view through the fan's side gets tracked onto the
corner (measured on the phantom's leave-and-re-enter loop: a 600-pixel mask with 1 pixel
inside the fan, kept to the end of the loop). Masks from propagation are therefore kept
inside the field of view.

The field of view is read from the loop itself: pixels whose value changes over a few
frames spread over the loop (speckle never holds still), closed, hole-filled (a frozen
pixel inside the image stays in), and the large connected parts kept (an overlay that
changes, such as a frame counter or an ECG trace, is small). When the loop cannot say
(one frame, a frozen loop, or every pixel changes) the answer is None: no restriction.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["field_of_view", "sample_frames", "SAMPLES"]

#: frames read to find the field of view, spread evenly over the loop
SAMPLES = 12
#: a pixel changes when its range over the samples exceeds this share of the images' range
CHANGE = 0.004
#: parts of the changing region smaller than this share of the largest part are overlays
MIN_PART = 0.25
#: a field of view covering more than this share of the frame is the whole frame
WHOLE = 0.995
#: ... and one covering less than this share is not believed (a nearly frozen loop)
TOO_SMALL = 0.1


def field_of_view(frames: Sequence[np.ndarray]) -> np.ndarray | None:
    """(H, W) bool: the pixels the probe images, from a few (H, W) or (H, W, C) frames of
    one loop; None when that is the whole frame or the frames cannot tell."""
    if len(frames) < 2:
        return None
    stack = np.stack([np.asarray(f, dtype=np.float32) for f in frames])
    if stack.ndim == 4:
        stack = stack.mean(axis=-1)
    span = float(stack.max() - stack.min())
    if span <= 0:
        return None
    changing = (stack.max(axis=0) - stack.min(axis=0)) > CHANGE * span
    padded = np.pad(changing, 2, mode="edge")  # the image's edge is not a border of the view
    changing = ndimage.binary_closing(padded, structure=np.ones((5, 5), bool))[2:-2, 2:-2]
    labels, count = ndimage.label(changing)
    if count == 0:
        return None
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
    keep = np.flatnonzero(sizes >= MIN_PART * sizes.max()) + 1
    view = ndimage.binary_fill_holes(np.isin(labels, keep))
    share = float(view.mean())
    if share > WHOLE or share < TOO_SMALL:
        return None
    return view


def sample_frames(num_frames: int, count: int = SAMPLES) -> list[int]:
    """Indices of `count` frames spread evenly over a loop of `num_frames` (all if fewer)."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({int(round(v)) for v in np.linspace(0, num_frames - 1, count)})
