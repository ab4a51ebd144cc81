"""Overlap and surface metrics for binary masks, and STAPLE fusion of several annotators.

Every function takes masks of any dimension (2D frames, 3D volumes) as arrays that are
cast to bool. ``spacing`` is the size of a pixel/voxel along each **numpy** axis, in
millimetres (or pixels, when the data carries no spacing): ``(row, column)`` for a 2D
frame, ``(K, J, I)`` for a volume, i.e. ``Geometry.spacing`` reversed (see
:func:`numpy_spacing`).

Empty masks are handled explicitly, never by a division that happens to give NaN:

==========================  =======  =======  ==========================
prediction / reference      Dice     IoU      HD95, ASSD
==========================  =======  =======  ==========================
both empty                  1.0      1.0      0.0 (nothing to disagree on)
exactly one empty           0.0      0.0      ``inf`` (no surface to measure to)
both non-empty              usual    usual    usual, finite
==========================  =======  =======  ==========================

Definitions:

- surface of a mask: its voxels that have at least one face neighbour (or the array
  border) outside the mask;
- directed surface distances from A to B: for every surface voxel of A, the Euclidean
  distance (in spacing units) to the nearest surface voxel of B;
- HD95: the larger of the two directed 95th percentiles (the medpy / MONAI convention);
- ASSD: the mean of both directed distance sets pooled together,
  (sum d(A->B) + sum d(B->A)) / (|surface A| + |surface B|) (Heimann et al. 2009).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "dice",
    "iou",
    "surface",
    "surface_distances",
    "hd95",
    "assd",
    "all_metrics",
    "numpy_spacing",
    "StapleResult",
    "staple",
]


def _pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    return pred, ref


def dice(pred, ref) -> float:
    """2|A∩B| / (|A|+|B|); 1.0 when both are empty, 0.0 when exactly one is."""
    pred, ref = _pair(pred, ref)
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, ref).sum()) / total


def iou(pred, ref) -> float:
    """|A∩B| / |A∪B| (Jaccard); 1.0 when both are empty, 0.0 when exactly one is."""
    pred, ref = _pair(pred, ref)
    union = int(np.logical_or(pred, ref).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(pred, ref).sum()) / union


def surface(mask) -> np.ndarray:
    """The mask's voxels with a face neighbour outside it (the array border counts as outside)."""
    mask = np.asarray(mask).astype(bool, copy=False)
    if not mask.any():
        return np.zeros_like(mask)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure, border_value=0)
    return mask & ~eroded


def _spacing(spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    spacing = tuple(float(s) for s in np.atleast_1d(spacing))
    if len(spacing) == 1:
        spacing = spacing * ndim
    if len(spacing) != ndim:
        raise ValueError(f"spacing {spacing} does not match masks with {ndim} dimensions")
    if min(spacing) <= 0 or not all(math.isfinite(s) for s in spacing):
        raise ValueError(f"spacing must be positive and finite; got {spacing}")
    return spacing


def surface_distances(pred, ref, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (pred->ref, ref->pred) in spacing units.

    Both arrays are empty when both masks are empty; when exactly one mask is empty the
    other's surface voxels get ``inf`` (and the empty one contributes nothing).
    """
    pred, ref = _pair(pred, ref)
    spacing = _spacing(spacing, pred.ndim)
    s_pred, s_ref = surface(pred), surface(ref)
    n_pred, n_ref = int(s_pred.sum()), int(s_ref.sum())
    if n_pred == 0 or n_ref == 0:
        return np.full(n_pred, np.inf), np.full(n_ref, np.inf)
    to_ref = ndimage.distance_transform_edt(~s_ref, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~s_pred, sampling=spacing)
    return to_ref[s_pred], to_pred[s_ref]


def hd95(pred, ref, spacing=None) -> float:
    """95th-percentile Hausdorff distance: max of the two directed 95th percentiles.

    0.0 when both masks are empty, ``inf`` when exactly one is.
    """
    a, b = surface_distances(pred, ref, spacing)
    if a.size == 0 and b.size == 0:
        return 0.0
    if a.size == 0 or b.size == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    return float(max(np.percentile(a, 95), np.percentile(b, 95)))


def assd(pred, ref, spacing=None) -> float:
    """Average symmetric surface distance, both directions pooled.

    0.0 when both masks are empty, ``inf`` when exactly one is.
    """
    a, b = surface_distances(pred, ref, spacing)
    if a.size == 0 and b.size == 0:
        return 0.0
    if a.size == 0 or b.size == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    return float((a.sum() + b.sum()) / (a.size + b.size))


def all_metrics(pred, ref, spacing=None, *, distances: bool = True) -> dict[str, float]:
    """Dice, IoU and (with ``distances``) HD95 and ASSD in one pass, plus the volumes."""
    pred, ref = _pair(pred, ref)
    out = {
        "dice": dice(pred, ref),
        "iou": iou(pred, ref),
        "pred_voxels": int(pred.sum()),
        "ref_voxels": int(ref.sum()),
    }
    if distances:
        a, b = surface_distances(pred, ref, spacing)
        if a.size == 0 and b.size == 0:
            out["hd95"], out["assd"] = 0.0, 0.0
        elif a.size == 0 or b.size == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
            out["hd95"], out["assd"] = math.inf, math.inf
        else:
            out["hd95"] = float(max(np.percentile(a, 95), np.percentile(b, 95)))
            out["assd"] = float((a.sum() + b.sum()) / (a.size + b.size))
    return out


def numpy_spacing(geometry, ndim: int = 3, axis: str | None = None) -> tuple[float, ...]:
    """Spacing along numpy axes from a :class:`~SAMUSALib.frames.Geometry`.

    ``ndim=3``: (K, J, I) spacing for a whole volume. ``ndim=2``: (row, column) spacing
    of the frames taken along ``axis`` ("K" by default: a cine's frames are (J, I)).
    """
    sx, sy, sz = (float(s) for s in geometry.spacing)
    kji = (sz, sy, sx)
    if ndim == 3:
        return kji
    if ndim != 2:
        raise ValueError(f"ndim must be 2 or 3; got {ndim}")
    drop = {"K": 0, "J": 1, "I": 2}[(axis or "K").upper()]
    return tuple(s for index, s in enumerate(kji) if index != drop)


@dataclass
class StapleResult:
    """STAPLE fusion of several binary annotations.

    reference: the fused mask (probability >= threshold); probability: the per-voxel
    posterior that the voxel is foreground; sensitivity/specificity: the estimated
    performance of each annotator, in input order.
    """

    reference: np.ndarray
    probability: np.ndarray
    sensitivity: list[float] = field(default_factory=list)
    specificity: list[float] = field(default_factory=list)
    iterations: int = 0


def staple(masks: Sequence[np.ndarray], *, threshold: float = 0.5, max_iterations: int | None = None) -> StapleResult:
    """Fuse binary annotations of the same image into a reference with SimpleITK's STAPLE
    (Warfield et al. 2004), as the SAMUSA user study built its references.

    All masks must share one shape (2D or 3D). With a single annotator the reference is
    that annotation. If no annotator marks anything the reference is empty.
    """
    import SimpleITK as sitk

    arrays = [np.asarray(m).astype(bool) for m in masks]
    if not arrays:
        raise ValueError("STAPLE needs at least one annotation")
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise ValueError(f"annotations differ in shape: {[a.shape for a in arrays]}")
    if len(shape) not in (2, 3):
        raise ValueError(f"STAPLE works on 2D or 3D masks; got shape {shape}")
    if not any(a.any() for a in arrays):
        zeros = np.zeros(shape, dtype=bool)
        n = len(arrays)
        return StapleResult(zeros, np.zeros(shape), [math.nan] * n, [1.0] * n, 0)
    if len(arrays) == 1:
        only = arrays[0]
        return StapleResult(only.copy(), only.astype(float), [1.0], [1.0], 0)
    images = [sitk.GetImageFromArray(a.astype(np.uint8)) for a in arrays]
    fuse = sitk.STAPLEImageFilter()
    fuse.SetForegroundValue(1)
    if max_iterations is not None:
        fuse.SetMaximumIterations(int(max_iterations))
    probability = sitk.GetArrayFromImage(fuse.Execute(images)).astype(np.float64)
    return StapleResult(
        reference=probability >= threshold,
        probability=probability,
        sensitivity=[float(v) for v in fuse.GetSensitivity()],
        specificity=[float(v) for v in fuse.GetSpecificity()],
        iterations=int(fuse.GetElapsedIterations()),
    )
