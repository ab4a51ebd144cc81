"""Which connected regions of a mask the user's clicks are in (model square, 256 x 256).

A click is a statement about the structure under it, so the regions of a mask that hold
a click are the ones the click speaks for: corrective clicks keep the model's change only
in those (`LiteMedSAMBackend._local_to_clicks`), and positive clicks drop the pieces of
a mask none of them is in (`keep_clicked`). A click counts for a region when the region
reaches its pixel's 3 x 3 neighbourhood: after rounding to the model square, a click on
the edge of a thin region can land a pixel beside it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

__all__ = ["regions_holding", "keep_clicked", "nearer_to", "core_of"]

#: 8-connectivity: a region joined only at a corner is one region.
_EIGHT = np.ones((3, 3), bool)


def regions_holding(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(S, S) bool: the connected regions of `mask` (S, S) that reach the 3 x 3
    neighbourhood of a point; `points` (N, 2) x, y in the same square."""
    keep = np.zeros_like(mask, dtype=bool)
    if not mask.any() or not len(points):
        return keep
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    size_y, size_x = mask.shape
    cols = np.clip(np.round(points[:, 0]).astype(int), 0, size_x - 1)
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, size_y - 1)
    hit = set()
    for row, col in zip(rows, cols):
        window = labels[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
        hit.update(int(v) for v in np.unique(window) if v)
    if hit:
        keep = np.isin(labels, sorted(hit))
    return keep


def nearer_to(shape: tuple[int, int], points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(S, S) bool: the pixels at least as near to one of `points` as to every one of
    `others` (all of them when there are no others). A click speaks for its own side:
    a negative click does not remove what lies nearer a positive one, and the reverse."""
    if not len(others) or not len(points):
        return np.ones(shape, dtype=bool)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    pixels = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float32)

    def nearest(p: np.ndarray) -> np.ndarray:
        return np.min([((pixels - q) ** 2).sum(axis=1) for q in np.asarray(p, dtype=np.float32)], axis=0)

    return (nearest(points) <= nearest(others)).reshape(shape)


def core_of(mask: np.ndarray) -> np.ndarray:
    """(1, 2) x, y of the mask's deepest pixel (farthest from its border), or (0, 2) for
    an empty mask: where a mask corrected without any positive click has its structure."""
    if not mask.any():
        return np.zeros((0, 2))
    depth = ndimage.distance_transform_edt(mask)
    row, col = np.unravel_index(depth.argmax(), depth.shape)
    return np.array([[float(col), float(row)]])


def keep_clicked(logits: torch.Tensor, points: np.ndarray, floor: float) -> torch.Tensor:
    """(1, 1, S, S) logits with the mask's regions that hold no point set to `floor`
    (a negative logit). Unchanged when no region holds a point: a mask that misses every
    click is the model's answer to judge, not something to empty."""
    inside = (logits[0, 0] > 0).cpu().numpy()
    keep = regions_holding(inside, points)
    if not keep.any():
        return logits
    drop = torch.from_numpy(inside & ~keep).to(logits.device)
    return torch.where(drop[None, None], torch.full_like(logits, floor), logits)
