"""Motion between neighbouring frames: where the object moved, and its contour moved with it.

Everything works in one square pixel grid (an image-only model's input square), on grey
images. The probe's translation dominates frame-to-frame motion in a B-mode loop, and
on sparse loops it is large (tens of pixels), so the shift is estimated twice by phase
correlation: over the whole picture (the probe slid) and over the object's neighbourhood
(the structure moved inside it). Both are offered as candidates; the tracker scores them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours
from skimage.registration import phase_cross_correlation

__all__ = ["estimate_shifts", "shift_array", "contour_samples", "box_of"]


def box_of(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) pixel-edge box of a mask, None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (cols[0] - 0.5, rows[0] - 0.5, cols[-1] + 0.5, rows[-1] + 0.5)


def _correlate(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """(dy, dx) that moves `a` onto `b`, and phase correlation's error (lower is better)."""
    if a.std() < 1e-6 or b.std() < 1e-6:
        return np.zeros(2), 1.0
    shift, error, _ = phase_cross_correlation(b, a, upsample_factor=2, normalization=None)
    return np.asarray(shift, dtype=float), float(error)


def estimate_shifts(previous: np.ndarray, current: np.ndarray, mask: np.ndarray, valid: tuple[int, int]) -> list[np.ndarray]:
    """Candidate (dy, dx) shifts of the object from `previous` to `current`: none, the
    whole picture's, and the object's neighbourhood's (its box grown by its own size on
    each side), rounded to half pixels, duplicates dropped."""
    h, w = valid
    prev, cur = previous[:h, :w].astype(np.float32), current[:h, :w].astype(np.float32)
    shifts = [np.zeros(2)]
    whole, _ = _correlate(prev, cur)
    shifts.append(whole)
    box = box_of(mask[:h, :w])
    if box is not None:
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        r0, r1 = int(max(0, y0 - bh)), int(min(h, y1 + bh + 1))
        c0, c1 = int(max(0, x0 - bw)), int(min(w, x1 + bw + 1))
        if r1 - r0 >= 16 and c1 - c0 >= 16:
            window = np.outer(np.hanning(r1 - r0), np.hanning(c1 - c0)).astype(np.float32)
            a = (prev[r0:r1, c0:c1] - prev[r0:r1, c0:c1].mean()) * window
            b = (cur[r0:r1, c0:c1] - cur[r0:r1, c0:c1].mean()) * window
            local, _ = _correlate(a, b)
            # a local shift beyond the window's half size is aliasing, not motion
            if abs(local[0]) < (r1 - r0) / 2 and abs(local[1]) < (c1 - c0) / 2:
                shifts.append(local)
    unique: list[np.ndarray] = []
    for s in shifts:
        s = np.round(s * 2) / 2
        if not any(np.abs(s - u).max() < 1.0 for u in unique):
            unique.append(s)
    return unique


def shift_array(array: np.ndarray, shift: np.ndarray, fill: float) -> np.ndarray:
    """`array` moved by (dy, dx) (linear interpolation), `fill` where nothing moved in."""
    if not np.any(shift):
        return array.copy()
    return ndimage.shift(array, shift, order=1, mode="constant", cval=fill)


def contour_samples(mask: np.ndarray, count: int) -> np.ndarray:
    """`count` (x, y) points evenly spaced by arc length along the mask's longest contour
    (the 0.5 level line, i.e. on the border); empty (0, 2) when the mask is empty."""
    if count < 1 or not mask.any():
        return np.zeros((0, 2))
    padded = np.pad(mask.astype(float), 1)
    contours = find_contours(padded, 0.5)
    if not contours:
        return np.zeros((0, 2))
    contour = max(contours, key=len) - 1.0  # (row, col), undo the pad
    steps = np.hypot(*np.diff(contour, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    if arc[-1] <= 0:
        return contour[:1, ::-1].copy()
    targets = np.arange(count) * arc[-1] / count
    rows = np.interp(targets, arc, contour[:, 0])
    cols = np.interp(targets, arc, contour[:, 1])
    return np.stack([cols, rows], axis=1)
