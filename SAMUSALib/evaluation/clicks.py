"""Simulated users: where a user would click next, given the reference and the current mask.

Two kinds of user, as in the SAMUSA paper (section 3.2):

- **region** (the SAM user): the first click is positive at the centre of the reference,
  its deepest interior point (largest distance to the outside, the image border counting
  as outside). Each next click goes to the centre (deepest point) of the largest error
  region, a connected component of missed pixels (reference but not prediction: a
  positive click) or of false pixels (prediction but not reference: a negative click).
  "Largest" is by area; ``criterion="depth"`` picks the region with the deepest point
  instead (the RITM convention).
- **boundary** (the SAMUSA user, sampled as in SAMUSA's training, after Dupont et al.):
  the first click is a random point of the reference contour, the second the contour
  point furthest from the first, each next one the reference contour point furthest
  from the predicted contour.

and two box users: **box** (the reference's bounding box, one interaction) and
**box+region** / **box+boundary** (the box first, then corrective clicks: after a box
the region user clicks the largest error straight away and the boundary user the
contour point furthest from the prediction).

Coordinates are pixels as everywhere in SAMUSA: x is the column, y the row, (0, 0) the
centre of the top-left pixel. Contour points lie on the 0.5 level line of the mask
(``skimage.measure.find_contours``), i.e. half-way between an inside and an outside
pixel centre, so they are exactly where the structure's border is.

Conventions that keep the simulation well defined:

- the simulation is deterministic for a given seed (only the boundary user's first
  click is random) and ties are broken the same way every time (the candidate nearest
  the region's centroid, then raster order);
- a user never clicks the same pixel twice: pixels (region) or contour points within
  one pixel (boundary) already clicked are not offered again;
- on a frame whose reference is empty (the object is absent) every user can only say
  "nothing here": a negative click at the centre of the largest false region;
- when there is nothing left to correct the user returns ``None`` (it stops clicking).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import find_contours

__all__ = [
    "PROMPT_TYPES",
    "Click",
    "SimulatedUser",
    "deepest_point",
    "contour_points",
    "region_click",
    "boundary_click",
    "box_click",
    "boundary_layout",
    "jitter_points",
    "LAYOUTS",
    "case_rng",
]

PROMPT_TYPES = ("boundary", "region", "box", "box+region", "box+boundary")


@dataclass(frozen=True)
class Click:
    """One simulated interaction: a point (positive, negative, boundary) or a box."""

    kind: str  # "positive", "negative", "boundary" or "box"
    x: float | None = None
    y: float | None = None
    box: tuple[float, float, float, float] | None = None

    def prompt_kwargs(self) -> dict:
        """Keyword arguments for ``Session.add_prompt``."""
        if self.kind == "box":
            return {"box": list(self.box)}  # type: ignore[arg-type]
        if self.kind not in ("positive", "negative", "boundary"):
            raise ValueError(f"unknown click kind {self.kind!r}")
        return {self.kind: [[float(self.x), float(self.y)]]}

    def to_json(self) -> dict:
        if self.kind == "box":
            return {"kind": "box", "box": [round(float(v), 2) for v in self.box]}  # type: ignore[union-attr]
        return {"kind": self.kind, "x": round(float(self.x), 2), "y": round(float(self.y), 2)}


def case_rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator that depends on the seed and on the keys (case id, object, prompt
    type...) but not on the order cases are run in, nor on Python's hash salt."""
    digest = zlib.crc32("\x1f".join(str(k) for k in keys).encode("utf-8"))
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, digest])


# ----------------------------------------------------------------------- geometry
def _as_mask(mask) -> np.ndarray:
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.ndim != 2:
        raise ValueError(f"clicks are simulated on 2D frames; got shape {mask.shape}")
    return mask


def deepest_point(region, exclude: Iterable[Sequence[float]] = ()) -> tuple[float, float] | None:
    """(x, y) of the region's pixel furthest from its outside (image border = outside).

    Pixels listed in ``exclude`` (x, y) are taken out of the region first. Ties go to
    the candidate nearest the region's centroid, then to raster order. None if empty.
    """
    region = _as_mask(region).copy()
    height, width = region.shape
    for x, y in exclude:
        col, row = int(round(x)), int(round(y))
        if 0 <= row < height and 0 <= col < width:
            region[row, col] = False
    if not region.any():
        return None
    depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    best = depth.max()
    rows, cols = np.nonzero(depth >= best - 1e-9)
    all_rows, all_cols = np.nonzero(region)
    cy, cx = all_rows.mean(), all_cols.mean()
    index = int(np.argmin((rows - cy) ** 2 + (cols - cx) ** 2))  # argmin: first = raster order
    return float(cols[index]), float(rows[index])


def contour_points(mask) -> np.ndarray:
    """(N, 2) points (x, y) on the mask's border (its 0.5 level line), all components,
    holes included; empty (0, 2) for an empty mask."""
    mask = _as_mask(mask)
    if not mask.any():
        return np.zeros((0, 2))
    contours = find_contours(np.pad(mask, 1).astype(np.float32), 0.5)
    pieces = []
    for contour in contours:
        if len(contour) > 1 and np.allclose(contour[0], contour[-1]):
            contour = contour[:-1]
        pieces.append(contour)
    points = np.concatenate(pieces) - 1.0  # undo the padding: (row, col)
    return np.ascontiguousarray(points[:, ::-1])


# ----------------------------------------------------------------------- users
def region_click(
    reference,
    prediction=None,
    previous: Sequence[Click] = (),
    *,
    criterion: str = "area",
) -> Click | None:
    """The region user's next click (see the module docstring); None when done."""
    reference = _as_mask(reference)
    taken = [(c.x, c.y) for c in previous if c.x is not None]
    if prediction is None:
        point = deepest_point(reference, taken)
        return None if point is None else Click("positive", *point)
    prediction = _as_mask(prediction)
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction {prediction.shape} and reference {reference.shape} differ in shape")
    if criterion not in ("area", "depth"):
        raise ValueError(f"criterion must be 'area' or 'depth'; got {criterion!r}")
    height, width = reference.shape
    best = None  # (key, kind, labels, index)
    for kind, errors in (("positive", reference & ~prediction), ("negative", prediction & ~reference)):
        labels, count = ndimage.label(errors)
        if count == 0:
            continue
        # Error regions never touch each other, so one distance map serves them all.
        free = errors.copy()
        for x, y in taken:
            col, row = int(round(x)), int(round(y))
            if 0 <= row < height and 0 <= col < width:
                free[row, col] = False
        depth = ndimage.distance_transform_edt(np.pad(free, 1))[1:-1, 1:-1]
        index = np.arange(1, count + 1)
        areas = ndimage.sum_labels(errors, labels, index)
        depths = ndimage.maximum(depth, labels, index)
        for i, area, deepest in zip(index, areas, depths):
            if deepest <= 0:  # every pixel of it already clicked
                continue
            key = (int(area), float(deepest)) if criterion == "area" else (float(deepest), int(area))
            if best is None or key > best[0]:  # strict: the first of equals wins, missed regions first
                best = (key, kind, labels, int(i))
    if best is None:
        return None
    _, kind, labels, i = best
    point = deepest_point(labels == i, taken)
    return None if point is None else Click(kind, *point)


def _far_from_clicks(points: np.ndarray, previous: Sequence[Click]) -> np.ndarray:
    """Mask of contour points more than one pixel from every earlier boundary click."""
    clicked = np.array([(c.x, c.y) for c in previous if c.kind == "boundary"], dtype=float)
    if clicked.size == 0:
        return np.ones(len(points), dtype=bool)
    distance, _ = cKDTree(clicked).query(points)
    return distance > 1.0


def boundary_click(
    reference,
    prediction=None,
    previous: Sequence[Click] = (),
    rng: np.random.Generator | None = None,
    *,
    tolerance: float = 0.5,
) -> Click | None:
    """The boundary user's next click (see the module docstring); None when done.

    With no earlier boundary click: a random reference contour point (``rng``). With
    exactly one: the contour point furthest from it. Otherwise (or after a box): the
    reference contour point furthest from the predicted contour, unless every point is
    within ``tolerance`` pixels of it. An empty prediction counts as infinitely far; the
    point furthest from the earlier clicks is then taken.
    """
    reference = _as_mask(reference)
    points = contour_points(reference)
    if len(points) == 0:
        return None
    boundary = [c for c in previous if c.kind == "boundary"]
    after_box = any(c.kind == "box" for c in previous)
    allowed = _far_from_clicks(points, previous)
    if not allowed.any():
        return None
    if not boundary and not after_box:
        rng = rng if rng is not None else np.random.default_rng(0)
        index = int(rng.integers(len(points)))
        return Click("boundary", *points[index])
    if len(boundary) == 1 and not after_box:
        first = np.array([boundary[0].x, boundary[0].y])
        distance = np.hypot(*(points - first).T)
        distance[~allowed] = -1.0
        return Click("boundary", *points[int(np.argmax(distance))])
    predicted = contour_points(prediction) if prediction is not None else np.zeros((0, 2))
    if len(predicted) == 0:
        if boundary:
            distance, _ = cKDTree(np.array([(c.x, c.y) for c in boundary])).query(points)
        else:  # after a box that gave nothing: start where the reference starts
            distance = np.zeros(len(points))
    else:
        distance, _ = cKDTree(predicted).query(points)
        if distance[allowed].max() <= tolerance:
            return None
    distance = np.where(allowed, distance, -1.0)
    return Click("boundary", *points[int(np.argmax(distance))])


LAYOUTS = ("even", "clustered", "furthest")
"""How a user places boundary points chosen without looking at a prediction (a prompts
file, a markups node): spread evenly along the border, bunched on one side of it, or
each furthest from the earlier ones (the paper's sampling when no prediction exists)."""


def outer_contour(mask) -> np.ndarray:
    """(N, 2) points (x, y) of the longest closed border of the mask, in order along it."""
    mask = _as_mask(mask)
    if not mask.any():
        return np.zeros((0, 2))
    contours = find_contours(np.pad(mask, 1).astype(np.float32), 0.5)
    contour = max(contours, key=len)
    if len(contour) > 1 and np.allclose(contour[0], contour[-1]):
        contour = contour[:-1]
    return np.ascontiguousarray((contour - 1.0)[:, ::-1])


def boundary_layout(reference, count: int, layout: str = "even", rng: np.random.Generator | None = None) -> np.ndarray:
    """``count`` boundary points (x, y) on the reference's border, placed as ``layout``
    says (`LAYOUTS`), starting at a random point of the border (``rng``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    contour = outer_contour(reference)
    n = len(contour)
    if n == 0 or count < 1:
        return np.zeros((0, 2))
    rng = rng if rng is not None else np.random.default_rng(0)
    start = int(rng.integers(n))
    if layout == "even":
        index = start + np.round(np.arange(count) * n / count).astype(int)
    elif layout == "clustered":  # on an arc of 15 % to 50 % of the border
        arc = rng.uniform(0.15, 0.5) * n
        index = start + np.round(np.sort(rng.uniform(0, arc, count))).astype(int)
    else:
        chosen = [start]
        distance = np.hypot(*(contour - contour[start]).T)
        for _ in range(count - 1):
            chosen.append(int(np.argmax(distance)))
            distance = np.minimum(distance, np.hypot(*(contour - contour[chosen[-1]]).T))
        index = np.array(chosen)
    return contour[np.asarray(index) % n]


def jitter_points(points: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Each point moved by up to ``radius`` pixels in a random direction, as a user's
    click lands a little off the border it aims at."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if radius <= 0 or len(points) == 0:
        return points
    r = rng.uniform(0, radius, len(points))
    angle = rng.uniform(0, 2 * np.pi, len(points))
    return points + np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)


def box_click(reference, rng: np.random.Generator | None = None, noise: float = 0.0) -> Click | None:
    """The reference's bounding box at pixel edges, [x0 - 0.5, y0 - 0.5, x1 + 0.5, y1 + 0.5]
    (so a one-pixel-wide object still has a valid box). ``noise`` > 0 moves each side by a
    Gaussian of that fraction of the box's width/height (SAM's training used 0.1)."""
    reference = _as_mask(reference)
    rows, cols = np.nonzero(reference)
    if rows.size == 0:
        return None
    height, width = reference.shape
    x0, y0 = cols.min() - 0.5, rows.min() - 0.5
    x1, y1 = cols.max() + 0.5, rows.max() + 0.5
    if noise > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        w, h = x1 - x0, y1 - y0
        dx0, dx1 = rng.normal(0, noise * w, 2)
        dy0, dy1 = rng.normal(0, noise * h, 2)
        x0, x1 = x0 + dx0, x1 + dx1
        y0, y1 = y0 + dy0, y1 + dy1
        x0, x1 = sorted((float(np.clip(x0, -0.5, width - 0.5)), float(np.clip(x1, -0.5, width - 0.5))))
        y0, y1 = sorted((float(np.clip(y0, -0.5, height - 0.5)), float(np.clip(y1, -0.5, height - 0.5))))
        if x1 - x0 < 1.0 or y1 - y0 < 1.0:
            x0, y0 = cols.min() - 0.5, rows.min() - 0.5
            x1, y1 = cols.max() + 0.5, rows.max() + 0.5
    return Click("box", box=(float(x0), float(y0), float(x1), float(y1)))


class SimulatedUser:
    """The clicks one user gives on one frame, one at a time.

    ``user = SimulatedUser("boundary", reference, rng)``; then repeatedly
    ``click = user.next(current_mask)`` (``current_mask`` None before any prompt),
    give ``click.prompt_kwargs()`` to ``Session.add_prompt``, until ``click`` is None
    or enough clicks were given. ``user.clicks`` lists the clicks given so far.
    """

    def __init__(
        self,
        prompt_type: str,
        reference,
        rng: np.random.Generator | None = None,
        *,
        criterion: str = "area",
        box_noise: float = 0.0,
    ) -> None:
        if prompt_type not in PROMPT_TYPES:
            raise ValueError(f"prompt type must be one of {', '.join(PROMPT_TYPES)}; got {prompt_type!r}")
        self.prompt_type = prompt_type
        self.reference = _as_mask(reference)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.criterion = criterion
        self.box_noise = box_noise
        self.clicks: list[Click] = []

    @property
    def max_clicks(self) -> int | None:
        """1 for box only (one box, nothing after it), else unlimited."""
        return 1 if self.prompt_type == "box" else None

    def next(self, prediction=None) -> Click | None:
        if self.max_clicks is not None and len(self.clicks) >= self.max_clicks:
            return None
        click = self._next(prediction)
        if click is not None:
            self.clicks.append(click)
        return click

    def _next(self, prediction) -> Click | None:
        if not self.reference.any():  # object absent: only "nothing here" is possible
            if prediction is None:
                return None
            click = region_click(self.reference, prediction, self.clicks, criterion=self.criterion)
            return click if click is not None and click.kind == "negative" else None
        kind = self.prompt_type
        if kind.startswith("box") and not self.clicks:
            return box_click(self.reference, self.rng, self.box_noise)
        if kind in ("region", "box+region"):
            first = prediction if self.clicks else None
            return region_click(self.reference, first, self.clicks, criterion=self.criterion)
        return boundary_click(self.reference, prediction, self.clicks, self.rng)
