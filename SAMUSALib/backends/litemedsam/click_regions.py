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

__all__ = ["regions_holding", "keep_clicked", "nearer_to", "core_of", "clicked_changes", "cut_ignored", "cut_holes", "regions_near", "BOX_ADDITION_MARGIN", "POINT_REACH", "DEEP_CLICK"]

#: 8-connectivity: a region joined only at a corner is one region.
_EIGHT = np.ones((3, 3), bool)
#: After a box, what corrective clicks add stays within the box grown by this fraction of
#: its longer side (`clicked_changes`): the box says where the structure is.
BOX_ADDITION_MARGIN = 0.1
#: A negative click still inside a mask at least this deep (its distance from the border
#: over the mask's deepest point's) is on a wrong structure, not on a sliver of one, and
#: cuts it off (`cut_ignored`).
DEEP_CLICK = 0.5
#: After a box, a boundary point speaks for the changes to the box's mask that come within
#: this many model-square pixels of it (`regions_near`; about 1.5 % of the image's side).
POINT_REACH = 4
#: A hole around a negative click after a box (`cut_holes`) reaches this fraction of the
#: way from the click to the mask's border, leaving the rest as the mask's rim.
HOLE_SHARE = 0.8
#: ... and only round a click at least this many pixels from the border: in a sliver a
#: "hole" would split the mask.
MIN_HOLE_DEPTH = 2


def _pixels(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of points (N, 2) x, y, rounded and kept within `shape`."""
    cols = np.clip(np.round(points[:, 0]).astype(int), 0, shape[1] - 1)
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, shape[0] - 1)
    return rows, cols


def regions_holding(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(S, S) bool: the connected regions of `mask` (S, S) that reach the 3 x 3
    neighbourhood of a point; `points` (N, 2) x, y in the same square."""
    keep = np.zeros_like(mask, dtype=bool)
    if not mask.any() or not len(points):
        return keep
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    rows, cols = _pixels(points, mask.shape)
    hit = set()
    for row, col in zip(rows, cols):
        window = labels[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
        hit.update(int(v) for v in np.unique(window) if v)
    if hit:
        keep = np.isin(labels, sorted(hit))
    return keep


def regions_near(mask: np.ndarray, points: np.ndarray, reach: int = POINT_REACH) -> np.ndarray:
    """(S, S) bool: the connected regions of `mask` (S, S) that come within `reach` pixels
    of a point (counted along rows and columns); `points` (N, 2) x, y in the same square. A
    boundary point lies on the border, not inside a region, so it speaks for the regions
    beside it rather than the one under it (`regions_holding`)."""
    if not mask.any() or not len(points):
        return np.zeros_like(mask, dtype=bool)
    near = np.zeros_like(mask, dtype=bool)
    near[_pixels(points, mask.shape)] = True
    near = ndimage.binary_dilation(near, iterations=reach)
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    hit = np.unique(labels[near & mask])
    return np.isin(labels, hit[hit > 0])


def nearer_to(shape: tuple[int, int], points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(S, S) bool: the pixels at least as near to one of `points` as to every one of
    `others` (all of them when there are no others). A click speaks for its own side:
    a negative click does not remove what lies nearer a positive one, and the reverse."""
    if not len(others) or not len(points):
        return np.ones(shape, dtype=bool)
    rows = np.arange(shape[0], dtype=np.float32)[:, None]
    cols = np.arange(shape[1], dtype=np.float32)[None, :]

    def nearest(p: np.ndarray) -> np.ndarray:  # squared distance to the nearest point, by broadcasting
        best = np.full(shape, np.inf, dtype=np.float32)
        for x, y in np.asarray(p, dtype=np.float32).reshape(-1, 2):
            np.minimum(best, (cols - x) ** 2 + (rows - y) ** 2, out=best)
        return best

    return nearest(points) <= nearest(others)


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


def clicked_changes(inside: np.ndarray, before: np.ndarray, positive: np.ndarray, negative: np.ndarray,
                    box: np.ndarray | None = None) -> np.ndarray:
    """(S, S) bool: where a corrected mask `inside` may replace the mask it corrects,
    `before`: each connected region it added around a positive click or removed around a
    negative one, within the click's own side of the clicks of the other kind
    (`nearer_to`), and after a `box` (x0, y0, x1, y1), additions within the box grown by
    `BOX_ADDITION_MARGIN`. Clicks and box in the same square.

    Why the box: on echocardiography a second positive click in the left atrium had the
    model add the ventricle, outside the atrium's box, as a region holding the click
    (patient0052_4CH_ES 0.945 -> 0.577). CAMUS box + clicks at 1..5 clicks 0.677 0.684
    0.677 0.683 0.684 -> 0.677 0.684 0.683 0.683 0.684; BUS-BRA and carotid identical
    (margins 0.05-0.2 within 0.001 of each other; docs/samusa_lite2.md)."""
    keep = np.zeros_like(inside, dtype=bool)
    # without a positive click, the corrected mask's core (its deepest point) says where
    # the structure is, and a negative click does not remove what lies nearer that
    anchors = positive if len(positive) else core_of(before)
    added = inside & ~before
    if box is not None:
        x0, y0, x1, y1 = box
        margin = BOX_ADDITION_MARGIN * max(x1 - x0, y1 - y0)
        rows, cols = np.ogrid[0 : added.shape[0], 0 : added.shape[1]]
        added &= (cols >= x0 - margin) & (cols <= x1 + margin) & (rows >= y0 - margin) & (rows <= y1 + margin)
    for clicks, others, change in ((positive, negative, added), (negative, anchors, before & ~inside)):
        if len(clicks):  # within the clicks' own side of the others
            keep |= regions_holding(change & nearer_to(change.shape, clicks, others), clicks)
    return keep


def cut_ignored(logits: torch.Tensor, positive: np.ndarray, negative: np.ndarray, base: np.ndarray,
                floor: float) -> torch.Tensor | None:
    """(1, 1, S, S) logits with the mask cut where negative clicks are still deep inside it
    (at least `DEEP_CLICK` of its deepest point's distance from its border): each
    connected piece of the mask on such a click's side of the positive clicks
    (`nearer_to`; without any positive click, of the core of `base`, the mask the clicks
    correct, as in `clicked_changes`) that holds the click is set to `floor`. None when
    no negative click is that deep. Clicks in the same square.

    Why: a click the user sees ignored is the worst answer, and both models can ignore
    one: on echocardiography the mask of a click in the left atrium can run through the
    valve into the ventricle, and four negative clicks in the ventricle changed nothing
    (CAMUS patient0027_4CH_ED, Dice 0.40 throughout; 0.40 -> 0.78 cut). The cut follows
    the line halfway between the clicks, which the user's next click can move. A click
    near the border asks for a sliver, and there the half-plane would take good mask
    with it (BUS-BRA box + clicks at 3 clicks 0.935 -> 0.806 cutting at any depth), so
    slivers stay the models' work."""
    inside = (logits[0, 0] > 0).cpu().numpy()
    depth = ndimage.distance_transform_edt(inside)
    negative = negative[depth[_pixels(negative, inside.shape)] >= DEEP_CLICK * depth.max()]
    if not len(negative):
        return None
    anchors = positive if len(positive) else core_of(base)
    cut = regions_holding(inside & nearer_to(inside.shape, negative, anchors), negative)
    if not cut.any():
        return None
    cut = torch.from_numpy(cut).to(logits.device)
    return torch.where(cut[None, None], torch.full_like(logits, floor), logits)


def cut_holes(logits: torch.Tensor, negative: np.ndarray, positive: np.ndarray, floor: float) -> torch.Tensor | None:
    """(1, 1, S, S) logits with a hole cut around each negative click still deep inside
    the mask (at least `DEEP_CLICK` of its deepest point's distance from its border, and
    `MIN_HOLE_DEPTH` pixels): the disc round the click reaching `HOLE_SHARE` of its
    distance from the border, less what lies nearer a positive click (`nearer_to`), is
    set to `floor`. None when no negative click is that deep. Clicks in the same square;
    the square's edge counts as the mask's border.

    Why: after a box, a negative click deep in the mask says its middle is not the
    structure, and the model ignores it where the structure is a ring around what the
    box gave (LiteMedSAM given the box and the click makes no ring either): CAMUS LV
    myocardium, whose box's mask is the cavity (Dice 0.05-0.39; 15 of 16 images ignored
    every negative click, on one a click took the wrong half). Cutting off the click's
    side, as without a box (`cut_ignored`), takes the side of the ring with it (CAMUS
    box + clicks 0.684 -> 0.657 at 3 clicks); a hole keeps the mask's rim, where a ring
    around it would be, so what the box gave stays where the user can see and correct it."""
    inside = (logits[0, 0] > 0).cpu().numpy()
    depth = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
    rows, cols = _pixels(negative, inside.shape)
    deep = (depth[rows, cols] >= DEEP_CLICK * depth.max()) & (depth[rows, cols] >= MIN_HOLE_DEPTH)
    if not inside.any() or not deep.any():
        return None
    grid_rows, grid_cols = np.ogrid[0 : inside.shape[0], 0 : inside.shape[1]]
    hole = np.zeros_like(inside)
    for row, col in zip(rows[deep], cols[deep]):
        disc = (grid_rows - row) ** 2 + (grid_cols - col) ** 2 < (HOLE_SHARE * depth[row, col]) ** 2
        hole |= disc & nearer_to(inside.shape, np.array([[col, row]], dtype=float), positive)
    hole = torch.from_numpy(hole & inside).to(logits.device)
    return torch.where(hole[None, None], torch.full_like(logits, floor), logits)
