"""How SAMUSA's prompts reach a model that only learned boxes.

LiteMedSAM was trained with bounding boxes alone. Measured on the project's ultrasound
data (docs/litemedsam_results.md): a box gives it Dice about 0.9, while clicks given as
SAM point prompts give nearly empty masks, and clicks added to a box make it worse.
So every prompt is turned into boxes here, and the clicks are used to *choose* among the
masks those boxes give:

Boundary points (clicks on the structure's border) have these encodings
(`BOUNDARY_ENCODINGS`; the default is `DEFAULT_BOUNDARY_ENCODING`):

- ``extent-box``: the points' bounding box is the box prompt (two points: the square
  whose side is their distance, centred between them: the second boundary click is the
  contour point furthest from the first, so the two span the structure). One decoder call.
- ``curve-mask``: the closed curve through the points (ordered by angle around their
  centroid) rasterised and given as the mask prompt, with the extent box.
- ``curve``: the closed curve itself, no model (a yardstick for the others).
- ``fit``: candidate boxes, decoded in one batch: squares on the points' longest chord
  (side 0.7 to 1.15 times the chord, joined with the extent) and, from three points on,
  the extent grown by 0, 8 and 20 %. The masks whose contour passes closest to the
  points (mean distance, `boundary.contour_distance`, within a tolerance of 5 % of the
  chord that shrinks as points are added) are kept, and of those the one with the
  highest predicted IoU wins. A last decoder call with the winner's own extent joined
  with the points' replaces it if it fits the points better.
- ``fit+curve``: as ``fit`` with the closed curve as one more candidate.

One boundary point says nothing about the size, so every encoding treats it alike:
boxes of several sizes with the point on the middle of one side, the candidate with the
highest predicted IoU among those whose contour passes near the point.

Region clicks (`REGION_ENCODINGS`):

- ``points``: SAM's point prompt (label 1 inside, 0 outside), with the box if there is one;
  the untrained way, kept to measure it.
- ``search``: boxes centred on the positive clicks at several sizes, plus boxes around
  the user's box or the frame's previous mask (when that mask holds a positive click),
  decoded in one batch; the mask that puts the most positive clicks inside and negative
  clicks outside wins, ties to the higher predicted IoU.

All coordinates here are frame pixels (x column, y row); `Letterbox` converts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import numpy as np
import torch

from ... import boundary as boundary_geometry
from .network import LiteMedSAM, Letterbox

BOUNDARY_ENCODINGS = ("extent-box", "curve-mask", "curve", "fit", "fit+curve")
DEFAULT_BOUNDARY_ENCODING = "fit"
REGION_ENCODINGS = ("points", "search")
DEFAULT_REGION_ENCODING = "search"

#: Logit magnitude used for masks that did not come from the decoder (curves, prompts).
HARD_LOGIT = 8.0


@dataclass
class Decoded:
    """The chosen result for one prompt: logits (1, 1, 256, 256) in the model square."""

    logits: torch.Tensor
    iou: float
    how: str


class FrameDecoder:
    """Decodes prompts on one frame's embedding; takes and gives frame pixels."""

    def __init__(
        self,
        net: LiteMedSAM,
        embedding: torch.Tensor,
        letterbox: Letterbox,
        autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    ) -> None:
        self.net = net
        self.embedding = embedding
        self.letterbox = letterbox
        self.autocast = autocast
        self.device = embedding.device
        self.calls = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.letterbox.frame_shape

    def decode(
        self,
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        mask_logits: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> tuple[torch.Tensor, np.ndarray]:
        """K boxes (K, 4) and/or points (P, 2) with labels (P,), shared by all K -> logits
        (K * M, 256, 256) and predicted IoU (K * M,), M = 3 with `multimask`."""
        lb = self.letterbox
        count = 1 if boxes is None else len(boxes)
        box_t = None
        if boxes is not None:
            model_boxes = np.stack([lb.box(b) for b in np.asarray(boxes, dtype=float)])
            box_t = torch.as_tensor(model_boxes, dtype=torch.float32, device=self.device)
        point_t = None
        if points is not None and len(points):
            coords = torch.as_tensor(lb.points(points), dtype=torch.float32, device=self.device)
            lab = torch.as_tensor(np.asarray(labels), dtype=torch.int32, device=self.device)
            point_t = (coords[None].expand(count, -1, -1), lab[None].expand(count, -1))
        masks_t = None
        if mask_logits is not None:
            masks_t = mask_logits.to(self.device).float().expand(count, -1, -1, -1)
        with torch.inference_mode(), self.autocast():
            logits, iou = self.net.decode(self.embedding, boxes=box_t, points=point_t, masks=masks_t, multimask=multimask)
        self.calls += 1
        return logits.float().flatten(0, 1), iou.float().flatten().cpu().numpy()

    def masks(self, logits: torch.Tensor) -> np.ndarray:
        """(N, 256, 256) logits -> (N, H, W) bool frame masks."""
        with torch.inference_mode():
            return (self.letterbox.to_frame(logits) > 0).cpu().numpy()

    def hard_logits(self, mask: np.ndarray) -> torch.Tensor:
        """A frame mask as (1, 1, 256, 256) logits of +/- HARD_LOGIT."""
        return self.letterbox.mask(mask, self.device, logits=HARD_LOGIT)


# ----------------------------------------------------------------------------- boxes
def clip_boxes(boxes: np.ndarray, shape: tuple[int, int], min_size: float = 4.0) -> np.ndarray:
    """Boxes (K, 4) kept inside the frame and at least `min_size` pixels wide and high."""
    height, width = shape
    boxes = np.array(boxes, dtype=float).reshape(-1, 4)
    for lo, hi, limit in ((0, 2, width), (1, 3, height)):
        small = boxes[:, hi] - boxes[:, lo] < min_size
        centre = (boxes[:, lo] + boxes[:, hi]) / 2
        boxes[small, lo] = centre[small] - min_size / 2
        boxes[small, hi] = centre[small] + min_size / 2
        boxes[:, lo] = np.clip(boxes[:, lo], -0.5, limit - 0.5)
        boxes[:, hi] = np.clip(boxes[:, hi], -0.5, limit - 0.5)
    return boxes


def grown(box, fractions_x, fractions_y=None) -> np.ndarray:
    """The box grown on each side by fraction * its width (x) / height (y)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    fractions_y = fractions_x if fractions_y is None else fractions_y
    return np.array([[x0 - fx * w, y0 - fy * h, x1 + fx * w, y1 + fy * h] for fx, fy in zip(fractions_x, fractions_y)])


def extent_box(points: np.ndarray) -> np.ndarray:
    """Bounding box of the points; two points give the square on their segment."""
    points = np.asarray(points, dtype=float)
    if len(points) == 2:
        return chord_square(points, 1.0)
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def longest_chord(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The two points furthest apart, and their distance."""
    points = np.asarray(points, dtype=float)
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    i, j = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return points[i], points[j], float(distance[i, j])


#: Squares on the longest chord, side = ratio * chord (the chord seen as a diameter).
CHORD_RATIOS = (0.7, 0.85, 1.0, 1.15)
#: The points' extent grown by these fractions of its size on every side.
EXTENT_GROWTH = (0.0, 0.08, 0.2)
#: Candidates whose contour passes within this fraction of the chord of the best one
#: count as fitting equally well; the highest predicted IoU among them wins.
FIT_TOLERANCE = 0.05
TOLERANCE_DECAY = 1.0
#: Decode once more with the winner's extent joined with the points' (kept if it fits better).
REFINE = True


def chord_square(points: np.ndarray, ratio: float) -> np.ndarray:
    """The points' extent joined with the square of side ratio * chord centred on the chord."""
    a, b, length = longest_chord(points)
    centre = (a + b) / 2
    half = ratio * length / 2
    lo, hi = np.min(points, axis=0), np.max(points, axis=0)
    return np.array([min(lo[0], centre[0] - half), min(lo[1], centre[1] - half),
                     max(hi[0], centre[0] + half), max(hi[1], centre[1] + half)])


def fit_tolerance(points: np.ndarray) -> float:
    """Pixels within which two candidates fit the points equally well: FIT_TOLERANCE of
    the longest chord for two or three points, less as points add evidence."""
    return FIT_TOLERANCE * longest_chord(points)[2] * 3.0 / max(3, len(points)) ** TOLERANCE_DECAY


def fit_boxes(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Candidate boxes for two or more boundary points: squares on their longest chord
    (the second boundary click is the contour point furthest from the first, so the
    chord spans the structure) and, from three points on, their grown extent."""
    points = np.asarray(points, dtype=float)
    boxes = [chord_square(points, r) for r in CHORD_RATIOS]
    if len(points) >= 3:
        lo, hi = points.min(axis=0), points.max(axis=0)
        boxes += list(grown([*lo, *hi], EXTENT_GROWTH))
    return clip_boxes(np.array(boxes), shape)


def single_point_boxes(point: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boxes of several sizes with the point on the middle of one of their sides."""
    x, y = (float(v) for v in point)
    short = min(shape)
    boxes = []
    for fraction in (0.12, 0.22, 0.35):
        s = fraction * short
        boxes += [
            [x - s / 2, y, x + s / 2, y + s],      # point on the top side
            [x - s / 2, y - s, x + s / 2, y],      # bottom
            [x, y - s / 2, x + s, y + s / 2],      # left
            [x - s, y - s / 2, x, y + s / 2],      # right
        ]
    return clip_boxes(np.array(boxes), shape)


# ----------------------------------------------------------------------- selection
def contour_distances(masks: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean distance (pixels) from the points to each mask's contour: how well a candidate
    follows boundary points (also the backend's arbitration referee)."""
    return np.array([boundary_geometry.contour_distance(m, points) for m in masks])


def _pick(scores: np.ndarray, iou: np.ndarray, tolerance: float) -> int:
    """Lowest score; among those within `tolerance` of it, the highest predicted IoU."""
    best = float(np.min(scores))
    if not np.isfinite(best):
        return int(np.argmax(iou))
    near = np.flatnonzero(scores <= best + tolerance)
    return int(near[np.argmax(iou[near])])


def encode_single_point(decoder: FrameDecoder, point: np.ndarray, *, near: float = 3.0) -> Decoded:
    boxes = single_point_boxes(point, decoder.shape)
    logits, iou = decoder.decode(boxes)
    masks = decoder.masks(logits)
    distance = contour_distances(masks, np.asarray(point, dtype=float)[None])
    ok = distance <= max(near, 0.02 * min(decoder.shape))
    scores = np.where(ok, 0.0, distance)
    index = _pick(scores, iou, 0.0)
    return Decoded(logits[index : index + 1][None], float(iou[index]), "single-point")


def encode_boundary(
    decoder: FrameDecoder,
    points: np.ndarray,
    encoding: str = DEFAULT_BOUNDARY_ENCODING,
    *,
    box=None,
    positive: np.ndarray | None = None,
    negative: np.ndarray | None = None,
) -> Decoded:
    """Boundary points (N, 2) -> the frame's logits, by `encoding` (module docstring).

    A user box, if given, replaces the points' extent as the base box. Region clicks
    given with boundary points count against candidates that disagree with them
    (``fit`` encodings only).
    """
    if encoding not in BOUNDARY_ENCODINGS:
        raise ValueError(f"boundary encoding must be one of {', '.join(BOUNDARY_ENCODINGS)}; got {encoding!r}")
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    shape = decoder.shape
    if len(points) == 1 and box is None:
        return encode_single_point(decoder, points[0])
    base = np.asarray(box, dtype=float) if box is not None else extent_box(points)
    base = clip_boxes(base[None], shape)
    curve = boundary_geometry.curve_mask(points, shape) if len(points) >= 3 else None
    if curve is not None and not curve.any():
        curve = None

    if encoding == "extent-box" or (encoding in ("curve", "curve-mask") and curve is None):
        logits, iou = decoder.decode(base)
        return Decoded(logits[:1][None], float(iou[0]), "extent-box")
    if encoding == "curve":
        return Decoded(decoder.hard_logits(curve), 1.0, "curve")
    if encoding == "curve-mask":
        logits, iou = decoder.decode(base, mask_logits=decoder.hard_logits(curve))
        return Decoded(logits[:1][None], float(iou[0]), "curve-mask")

    boxes = fit_boxes(points, shape) if box is None else np.concatenate([base, clip_boxes(grown(base[0], (0.05, 0.12)), shape)])
    logits, iou = decoder.decode(boxes)
    masks = decoder.masks(logits)
    scores = contour_distances(masks, points) + contradicted(masks, positive, negative) * 1e3
    how = [f"fit box {i}" for i in range(len(boxes))]
    if encoding == "fit+curve" and curve is not None:
        logits = torch.cat([logits, decoder.hard_logits(curve)[0]])
        penalty = contradicted(curve[None], positive, negative)[0] * 1e3
        scores = np.append(scores, boundary_geometry.contour_distance(curve, points) + penalty)
        iou = np.append(iou, float(np.max(iou)))
        how.append("curve")
    index = _pick(scores, iou, fit_tolerance(points))
    if REFINE and how[index] != "curve" and masks[index].any():
        # one more box: the chosen mask's own extent joined with the points' (the points
        # lie on the true border, so the true box holds them all)
        rows, cols = np.nonzero(masks[index])
        lo = np.minimum([cols.min() - 0.5, rows.min() - 0.5], points.min(axis=0))
        hi = np.maximum([cols.max() + 0.5, rows.max() + 0.5], points.max(axis=0))
        logits2, iou2 = decoder.decode(clip_boxes(np.array([[*lo, *hi]]), shape))
        mask2 = decoder.masks(logits2)[0]
        score2 = boundary_geometry.contour_distance(mask2, points) + contradicted(mask2[None], positive, negative)[0] * 1e3
        if score2 <= scores[index]:
            return Decoded(logits2[:1][None], float(iou2[0]), "fit refined")
    return Decoded(logits[index : index + 1][None], float(iou[index]), how[index])


#: Sizes (fraction of the frame's short side) of the boxes centred on the positive clicks.
SEARCH_SIZES = (0.1, 0.18, 0.28, 0.4, 0.55)


def search_boxes(positive: np.ndarray, shape: tuple[int, int], base=None) -> np.ndarray:
    """Candidate boxes for region clicks: around a base box (the user's box or the previous
    mask's) when there is one, and centred on the positive clicks at several sizes."""
    boxes = []
    if base is not None:
        base = np.asarray(base, dtype=float)
        if len(positive):  # the base must hold every positive click
            base = np.concatenate([np.minimum(base[:2], positive.min(axis=0) - 2), np.maximum(base[2:], positive.max(axis=0) + 2)])
        boxes += [base] + list(grown(base, (-0.1, 0.08, 0.2)))
    if len(positive):
        centre = positive.mean(axis=0)
        lo, hi = positive.min(axis=0), positive.max(axis=0)
        short = min(shape)
        sizes = SEARCH_SIZES if base is None else SEARCH_SIZES[1:3]
        for fraction in sizes:
            half = fraction * short / 2
            boxes.append([min(lo[0] - 2, centre[0] - half), min(lo[1] - 2, centre[1] - half),
                          max(hi[0] + 2, centre[0] + half), max(hi[1] + 2, centre[1] + half)])
    return clip_boxes(np.array(boxes), shape)


def _inside(masks: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(K, P) whether each point lies inside each mask."""
    if len(points) == 0:
        return np.zeros((len(masks), 0), dtype=bool)
    height, width = masks.shape[1:]
    cols = np.clip(np.round(points[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, height - 1)
    return masks[:, rows, cols]


def contradicted(masks: np.ndarray, positive, negative) -> np.ndarray:
    """(K,) how many region clicks each mask contradicts (positive outside, negative inside)."""
    positive = np.zeros((0, 2)) if positive is None else np.asarray(positive, dtype=float).reshape(-1, 2)
    negative = np.zeros((0, 2)) if negative is None else np.asarray(negative, dtype=float).reshape(-1, 2)
    return (~_inside(masks, positive)).sum(axis=1) + _inside(masks, negative).sum(axis=1)


def encode_region(
    decoder: FrameDecoder,
    positive: np.ndarray,
    negative: np.ndarray,
    encoding: str = DEFAULT_REGION_ENCODING,
    *,
    box=None,
    previous: np.ndarray | None = None,
) -> Decoded:
    """Region clicks (with an optional user box, or the frame's previous mask) -> logits."""
    if encoding not in REGION_ENCODINGS:
        raise ValueError(f"region encoding must be one of {', '.join(REGION_ENCODINGS)}; got {encoding!r}")
    positive = np.asarray(positive, dtype=float).reshape(-1, 2)
    negative = np.asarray(negative, dtype=float).reshape(-1, 2)
    shape = decoder.shape
    if encoding == "points" or (not len(positive) and box is None and (previous is None or not previous.any())):
        points = np.concatenate([positive, negative])
        labels = np.array([1] * len(positive) + [0] * len(negative))
        boxes = None if box is None else clip_boxes(np.asarray(box, dtype=float)[None], shape)
        logits, iou = decoder.decode(boxes, points=points if len(points) else None, labels=labels)
        return Decoded(logits[:1][None], float(iou[0]), "points")
    base = box
    if base is None and previous is not None and previous.any() and (
        not len(positive) or _inside(previous[None], positive).any()
    ):
        # the frame's previous mask is a starting box unless it misses every positive click
        rows, cols = np.nonzero(previous)
        base = [cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5]
    boxes = search_boxes(positive, shape, base)
    logits, iou = decoder.decode(boxes)
    masks = decoder.masks(logits)
    scores = contradicted(masks, positive, negative).astype(float)
    index = _pick(scores, iou, 0.0)
    return Decoded(logits[index : index + 1][None], float(iou[index]), f"search box {index}")
