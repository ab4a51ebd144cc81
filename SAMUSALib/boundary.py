"""Boundary points for models that were never trained on them.

A vanilla SAM2 checkpoint reads a positive point as "inside the object", so clicks on
the border would be taken as clicks on the object (or on its surroundings). For such
models a frame's boundary points are encoded as follows:

1. the points' bounding box becomes a box prompt (with any region clicks the user also
   gave) and the model returns its candidate masks (three multimask outputs and the
   single-mask output);
2. the closed curve through the points, ordered by angle around their centroid, is
   rasterised as a further candidate (exact where the model has nothing useful to say);
3. the candidate whose contour passes closest to the points wins, and is committed to
   the memory as a mask prompt.

Models trained with boundary points (the SAMUSA recipe) take the points natively with
the point label their checkpoint declares; none of this applies to them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage
from skimage.draw import polygon as draw_polygon
from skimage.segmentation import find_boundaries


def order_by_angle(points: np.ndarray) -> np.ndarray:
    """Points sorted around their centroid: the natural closed curve through border clicks
    on a star-shaped structure, whatever order the user clicked them in."""
    points = np.asarray(points, dtype=float)
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    return points[np.argsort(angles)]


def curve_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The region enclosed by the closed curve through the points (needs 3 or more)."""
    mask = np.zeros(shape, dtype=bool)
    if len(points) < 3:
        return mask
    ordered = order_by_angle(points)
    rows, cols = draw_polygon(ordered[:, 1], ordered[:, 0], shape=shape)
    mask[rows, cols] = True
    return mask


def bounding_box(points: np.ndarray, shape: tuple[int, int], margin: float = 0.0) -> tuple[float, float, float, float]:
    """The points' extent as [x0, y0, x1, y1], at least a few pixels wide, kept inside the frame."""
    points = np.asarray(points, dtype=float)
    height, width = shape
    x0, y0 = points.min(axis=0) - margin
    x1, y1 = points.max(axis=0) + margin
    min_size = 4.0
    if x1 - x0 < min_size:
        cx = (x0 + x1) / 2
        x0, x1 = cx - min_size / 2, cx + min_size / 2
    if y1 - y0 < min_size:
        cy = (y0 + y1) / 2
        y0, y1 = cy - min_size / 2, cy + min_size / 2
    return (
        float(np.clip(x0, 0, width - 1)),
        float(np.clip(y0, 0, height - 1)),
        float(np.clip(x1, 0, width - 1)),
        float(np.clip(y1, 0, height - 1)),
    )


def contour_distance(mask: np.ndarray, points: np.ndarray) -> float:
    """Mean distance in pixels from each point to the mask's contour (inf for an empty mask)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return float("inf")
    height, width = mask.shape
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    cols = np.clip(np.round(points[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, height - 1)
    # Every contour pixel lies in the mask's box, so distances computed in a crop holding
    # that box (plus a 2-pixel margin: no mask pixel touches a cut edge) and the points are
    # the full frame's, exactly; fit encodings score many candidates per click.
    mask_rows, mask_cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    r0, r1 = max(0, min(mask_rows[0], rows.min()) - 2), min(height, max(mask_rows[-1], rows.max()) + 3)
    c0, c1 = max(0, min(mask_cols[0], cols.min()) - 2), min(width, max(mask_cols[-1], cols.max()) + 3)
    edges = find_boundaries(mask[r0:r1, c0:c1], mode="inner")
    distance = ndimage.distance_transform_edt(~edges)
    return float(distance[rows - r0, cols - c0].mean())


TIE_PX = 1.5


def choose_candidate(candidates: Sequence[np.ndarray], points: np.ndarray) -> int:
    """Index of the candidate mask whose contour fits the boundary points best.

    Ties go to the earlier candidate, so model outputs are preferred over the plain
    curve when they fit equally well. "Equally" is within TIE_PX: a mask's contour lies
    on the pixel grid, up to about a pixel from a click on the true border, while the
    polygon through the clicks passes exactly through them; with a half-pixel tie the
    polygon won against a model mask that follows the border.
    """
    scores = [contour_distance(c, points) for c in candidates]
    best = int(np.argmin(scores))
    for index, score in enumerate(scores):
        if score <= scores[best] + TIE_PX:
            return index
    return best
