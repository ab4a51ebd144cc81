"""Pseudo-cines from real images: exact ground truth for tracking benchmarks.

A real B-mode frame and its mask become a loop: each frame t samples the original at
p + u_t(p), where u_t is a probe-like translation (a random walk with momentum, mostly
lateral) plus a smooth random deformation (a coarse grid of displacements, evolving
smoothly in time, upsampled bilinearly). The mask is moved by the very same map
(linear interpolation, kept where >= 0.5), so it follows the image exactly. Speckle is
then re-synthesised: the image's local mean (its tissue) moves, its speckle is partly
replaced by fresh, spatially correlated Rayleigh speckle each frame (real speckle
decorrelates as tissue moves), so a tracker cannot lock onto a frozen grain.

The map is always from frame t to the original (never composed frame to frame), so
nothing drifts, and each frame's ground truth is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = ["PseudoCine", "pseudo_cine", "displacements"]


@dataclass
class PseudoCine:
    frames: np.ndarray  # (T, H, W) uint8
    masks: np.ndarray  # (T, H, W) bool
    shifts: np.ndarray  # (T, 2) probe translation (dy, dx) in pixels
    seed: int


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2:
        raise InputError(f"a pseudo-cine needs one 2D frame (H, W) or (H, W, 3); got shape {image.shape}")
    return image.astype(np.float32)


def displacements(
    shape: tuple[int, int],
    num_frames: int,
    rng: np.random.Generator,
    *,
    step: float = 0.02,
    max_travel: float = 0.15,
    deform: float = 0.02,
    grid: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2, H, W) sampling offsets (dy, dx) and (T, 2) translations. `step`: probe speed
    per frame, `max_travel`: largest travel from the start, `deform`: deformation
    amplitude, all as fractions of the frame's width (lateral) / height (axial)."""
    h, w = shape
    scale = np.array([h, w], dtype=np.float64)
    velocity = np.zeros(2)
    position = np.zeros(2)
    coarse = np.zeros((2, grid, grid))
    fields = np.zeros((num_frames, 2, h, w), dtype=np.float32)
    shifts = np.zeros((num_frames, 2))
    ys = np.linspace(0, grid - 1, h)
    xs = np.linspace(0, grid - 1, w)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    for t in range(num_frames):
        if t > 0:
            velocity = 0.7 * velocity + rng.normal(0.0, 1.0, 2) * np.array([0.3, 1.0]) * step
            position = np.clip(position + velocity, -max_travel, max_travel)
            coarse = 0.8 * coarse + 0.6 * rng.normal(0.0, deform, coarse.shape)
        shifts[t] = position * scale
        for axis in range(2):
            smooth = ndimage.map_coordinates(coarse[axis] * scale[axis], [yy, xx], order=1)
            fields[t, axis] = smooth - shifts[t, axis]
    return fields, shifts


def _speckle(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    re = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    im = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    env = np.hypot(re, im)
    return env / max(float(env.mean()), 1e-6)


def pseudo_cine(
    image: np.ndarray,
    mask: np.ndarray,
    num_frames: int = 12,
    seed: int = 0,
    *,
    step: float = 0.02,
    max_travel: float = 0.15,
    deform: float = 0.02,
    speckle: float = 0.5,
    speckle_sigma: float = 1.0,
) -> PseudoCine:
    """A loop of `num_frames` frames moved from one real frame (see the module docstring).
    `speckle` in [0, 1]: the fraction of speckle replaced by fresh speckle in each frame
    (0: the original speckle just moves with the tissue)."""
    grey = _grey(image)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != grey.shape:
        raise InputError(f"mask {mask.shape} and image {grey.shape} differ in size")
    if num_frames < 1:
        raise InputError(f"num_frames must be at least 1; got {num_frames}")
    if not 0.0 <= speckle <= 1.0:
        raise InputError(f"speckle must be in [0, 1]; got {speckle}")
    rng = np.random.default_rng(seed)
    h, w = grey.shape
    fields, shifts = displacements((h, w), num_frames, rng, step=step, max_travel=max_travel, deform=deform)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    local_mean = ndimage.gaussian_filter(grey, 2.0)
    ratio = grey / np.maximum(local_mean, 1.0)
    frames = np.zeros((num_frames, h, w), dtype=np.uint8)
    masks = np.zeros((num_frames, h, w), dtype=bool)
    for t in range(num_frames):
        coords = [rows + fields[t, 0], cols + fields[t, 1]]
        masks[t] = ndimage.map_coordinates(mask.astype(np.float32), coords, order=1, mode="constant", cval=0.0) >= 0.5
        if speckle > 0:
            tissue = ndimage.map_coordinates(local_mean, coords, order=1, mode="constant", cval=0.0)
            grain = ndimage.map_coordinates(ratio, coords, order=1, mode="constant", cval=1.0)
            moved = tissue * ((1.0 - speckle) * grain + speckle * _speckle(rng, (h, w), speckle_sigma))
        else:
            moved = ndimage.map_coordinates(grey, coords, order=1, mode="constant", cval=0.0)
        frames[t] = np.clip(np.rint(moved), 0, 255).astype(np.uint8)
    return PseudoCine(frames, masks, shifts, seed)
