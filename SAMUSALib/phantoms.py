"""Synthetic ultrasound with exact ground truth, for tests and demos.

Two generators, both deterministic for a given ``seed`` and fast (well under a second for
the defaults), and both using numpy only:

``cine_phantom``
    A 2D B-mode cine loop (T, H, W) uint8 with two objects whose masks are known exactly:

    * object 1: a hypoechoic (dark) ellipse with a bright rim and posterior acoustic
      enhancement, like a vessel lumen or a cyst. It enters the field of view from the
      left, moves and deforms (its axes "breathe" and it tilts), and leaves on the right.
    * object 2: a smaller hyperechoic (bright) ellipse with an acoustic shadow beneath it,
      like a calcification, deeper than object 1, moving right to left over a different
      range of frames.

    By default each object is visible in one contiguous block of frames, ``visible[id] =
    (first, last)`` inclusive: its mask is empty in every frame outside that block and
    non-empty in every frame inside it (the generator places the objects so that this
    holds exactly). A block that starts at frame 0 or ends at the last frame means the
    object is already in view when the loop starts or is still in view when it ends.

    Leaving and re-entering the view: with ``reenter=True`` (object 1) or ``gaps={id:
    (g0, g1)}`` the object leaves the field of view in the middle of its span, its mask
    is exactly empty in frames g0..g1, and it comes back in: the probe sweeps away and
    back, so the object leaves through one side, re-enters through the same side moving
    the other way, and, as the probe was pressed/tilted differently meanwhile, at a
    somewhat shallower depth. ``visible[id]`` stays the (first, last) of the whole span,
    which then has a hole; the exact per-frame visibility is ``present[id]`` (bool per
    frame) and ``visible_runs[id]`` (the inclusive blocks of frames in which it is seen).
    Masks are clipped to the field of view: with ``sector=True`` the image is a fan
    (curvilinear probe) and everything outside the fan is black and outside every mask.

``volume_phantom``
    A 3D volume (K, J, I) uint8 with anisotropic spacing and (by default) an oblique
    direction matrix, holding a hypoechoic ellipsoid defined in physical millimetres
    (LPS), so it is round-ish in millimetres although its extent in voxels differs a lot
    between axes.

Image model: an echogenicity (backscattered power) map times Rayleigh-distributed speckle
(the magnitude of a spatially smoothed complex Gaussian field), times depth attenuation,
log-compressed to 8 bits over a fixed dynamic range. Depth is the row (numpy axis 1 of
the (T, H, W) / (K, J, I) arrays).

Arrays are in numpy order as in :mod:`SAMUSALib.frames`: a cine is (T, H, W), a volume
(K, J, I), and the :class:`~SAMUSALib.frames.Geometry` gives spacing/origin/direction for
the ITK (I, J, K) axes. Inside a frame x is the column and y the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .errors import InputError
from .frames import Geometry

__all__ = [
    "CinePhantom",
    "VolumePhantom",
    "cine_phantom",
    "volume_phantom",
    "rotation_matrix",
]

# Display mapping: grey = (20*log10(envelope) + _DB_OFFSET) / _DYNAMIC_RANGE_DB * 255.
_DYNAMIC_RANGE_DB = 55.0
_DB_OFFSET = 28.0


# ---------------------------------------------------------------------------------------
# Small numpy helpers
# ---------------------------------------------------------------------------------------


def _smooth(array: np.ndarray, sigmas) -> np.ndarray:
    """Separable Gaussian smoothing (reflecting borders), one sigma per axis in voxels."""
    out = np.asarray(array, dtype=np.float32)
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0:
            continue
        radius = max(1, int(np.ceil(3.0 * sigma)))
        if radius >= out.shape[axis]:
            radius = out.shape[axis] - 1
            if radius < 1:
                continue
        offsets = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
        kernel /= kernel.sum()
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect")
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for weight, offset in zip(kernel, range(2 * radius + 1)):
            slicer = [slice(None)] * out.ndim
            slicer[axis] = slice(offset, offset + n)
            acc += np.float32(weight) * padded[tuple(slicer)]
        out = acc
    return out


def _rayleigh_field(rng: np.random.Generator, shape, sigmas) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of a smoothed complex Gaussian field, E|z|^2 = 1."""
    real = _smooth(rng.standard_normal(shape, dtype=np.float32), sigmas)
    imag = _smooth(rng.standard_normal(shape, dtype=np.float32), sigmas)
    scale = np.float32(1.0 / np.sqrt(np.mean(real * real) + np.mean(imag * imag)))
    return real * scale, imag * scale


def _upsample(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a small 2D grid to ``shape`` (corners aligned)."""
    gy, gx = grid.shape
    ys = np.linspace(0, gy - 1, shape[0])
    xs = np.linspace(0, gx - 1, shape[1])
    y0 = np.clip(np.floor(ys).astype(int), 0, gy - 2)
    x0 = np.clip(np.floor(xs).astype(int), 0, gx - 2)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fy) * (1 - fx) + g01 * (1 - fy) * fx + g10 * fy * (1 - fx) + g11 * fy * fx)


def _to_uint8(envelope: np.ndarray) -> np.ndarray:
    db = np.float32(20.0) * np.log10(np.maximum(envelope, np.float32(1e-6)))
    grey = (db + np.float32(_DB_OFFSET)) * np.float32(255.0 / _DYNAMIC_RANGE_DB)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def rotation_matrix(axis: str, degrees: float) -> np.ndarray:
    """Right-handed 3x3 rotation about the world axis "x", "y" or "z"."""
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise InputError(f"rotation axis must be 'x', 'y' or 'z'; got {axis!r}")


# ---------------------------------------------------------------------------------------
# Cine phantom
# ---------------------------------------------------------------------------------------


@dataclass
class CinePhantom:
    """A synthetic B-mode cine with exact masks.

    frames: uint8 (T, H, W).
    masks: object id -> bool (T, H, W); ids 1 (dark ellipse) and 2 (bright ellipse).
        Masks of different objects never overlap and are empty outside ``field_of_view``.
    visible: object id -> (first, last) frame, inclusive, of the span in which the object
        is seen: the mask is empty in every frame outside it. Without gaps (the default)
        the mask is non-empty in every frame of the span; with ``reenter``/``gaps`` the
        span may contain a gap (the object left the view and came back) in which the
        mask is empty: use ``present`` / ``visible_runs`` for the exact frames.
    geometry: spacing (x, y, frame) etc. for the (I, J, K) = (column, row, frame) axes.
    field_of_view: bool (H, W), the imaged region (a fan when ``sector=True``).
    centers: object id -> float (T, 2), the ellipse centre (x, y) in pixels in each frame
        (outside the image in frames where the object is not visible).
    axes: object id -> float (T, 2), the ellipse semi-axes in pixels in each frame.
    names: object id -> a short description.
    present: object id -> bool (T,), True exactly in the frames where the mask is
        non-empty.
    visible_runs: object id -> list of (first, last) inclusive blocks of consecutive
        frames with a non-empty mask, in order (one block unless the object re-enters).
    """

    frames: np.ndarray
    masks: dict[int, np.ndarray]
    visible: dict[int, tuple[int, int]]
    geometry: Geometry
    field_of_view: np.ndarray
    centers: dict[int, np.ndarray] = field(default_factory=dict)
    axes: dict[int, np.ndarray] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    present: dict[int, np.ndarray] = field(default_factory=dict)
    visible_runs: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def label_map(self) -> np.ndarray:
        """uint8 (T, H, W) with 0 for background and the object id elsewhere."""
        labels = np.zeros(self.frames.shape, dtype=np.uint8)
        for object_id, mask in sorted(self.masks.items()):
            labels[mask] = object_id
        return labels


def _fan(height: int, width: int, sector: bool):
    """Field-of-view mask and the apex / near-field radius (in pixels) of the fan."""
    if not sector:
        return np.ones((height, width), dtype=bool)
    apex_x = (width - 1) / 2.0
    apex_y = -0.35 * height
    half_angle = np.deg2rad(38.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = xs - apex_x, ys - apex_y
    radius = np.hypot(dx, dy)
    angle = np.arctan2(dx, dy)
    r_min = -apex_y + 0.02 * height
    return (radius >= r_min) & (np.abs(angle) <= half_angle)


def _ellipse_quadratic(a: float, b: float, theta: float) -> tuple[float, float, float]:
    """Coefficients of A dx^2 + 2 B dx dy + C dy^2 <= 1 for semi-axes a (along the
    direction rotated by theta from +x) and b."""
    c, s = np.cos(theta), np.sin(theta)
    ia, ib = 1.0 / (a * a), 1.0 / (b * b)
    return c * c * ia + s * s * ib, c * s * (ia - ib), s * s * ia + c * c * ib


def _entry_exit(rows: np.ndarray, left: np.ndarray, right: np.ndarray, cy: float, quad) -> tuple[float, float]:
    """Smallest and largest x-centre at which the ellipse still covers a pixel centre of
    the field of view (given per row by its leftmost/rightmost pixel columns)."""
    A, B, C = quad
    dy = rows - cy
    disc = (B * B - A * C) * dy * dy + A
    ok = disc >= 0
    if not ok.any():
        raise InputError("the object's depth lies outside the field of view")
    root = np.sqrt(disc[ok])
    dx_hi = (-B * dy[ok] + root) / A
    dx_lo = (-B * dy[ok] - root) / A
    return float(np.min(left[ok] - dx_hi)), float(np.max(right[ok] - dx_lo))


def _default_visible(num_frames: int) -> dict[int, tuple[int, int]]:
    last = num_frames - 1
    s1 = min(int(round(0.125 * num_frames)), last)
    e1 = max(s1, min(int(round(0.8 * num_frames)), last))
    e2 = max(0, min(int(round(0.5 * num_frames)) - 1, last))
    return {1: (s1, e1), 2: (0, e2)}


def _default_gap(first: int, last: int) -> tuple[int, int]:
    """A gap of about 15 % (at least 2 frames where possible) centred in first..last,
    leaving at least one visible frame on either side."""
    n = last - first + 1
    if n < 3:
        raise InputError(
            f"object 1 must be visible in at least 3 frames to leave and re-enter the view; "
            f"its span is {(first, last)}"
        )
    length = min(max(2, int(round(0.15 * n))), n - 2)
    start = first + (n - length) // 2
    return start, start + length - 1


def _normalize_gaps(object_id: int, spec, first: int, last: int) -> list[tuple[int, int]]:
    """One (g0, g1) or a sequence of them -> sorted list, validated against the span."""
    items = list(spec) if spec is not None else []
    if len(items) == 2 and all(isinstance(v, (int, np.integer)) for v in items):
        items = [tuple(items)]
    gaps = []
    for item in items:
        try:
            g0, g1 = (int(v) for v in item)
        except (TypeError, ValueError):
            raise InputError(f"gaps of object {object_id} must be (first, last) pairs; got {spec!r}") from None
        if not first < g0 <= g1 < last:
            raise InputError(
                f"gap {(g0, g1)} of object {object_id} must lie strictly inside its visible span "
                f"{(first, last)}: {first} < first <= last < {last}"
            )
        gaps.append((g0, g1))
    gaps.sort()
    for (_, prev_end), (start, _) in zip(gaps, gaps[1:]):
        if start <= prev_end + 1:
            raise InputError(f"gaps {gaps} of object {object_id} overlap or touch (no visible frame between)")
    return gaps


def cine_phantom(
    num_frames: int = 40,
    height: int = 128,
    width: int = 160,
    seed: int = 0,
    *,
    spacing: tuple[float, float, float] = (0.3, 0.3, 1.0),
    sector: bool = True,
    visible: Mapping[int, tuple[int, int]] | None = None,
    speckle_correlation: float = 0.8,
    reenter: bool = False,
    gaps: Mapping[int, tuple[int, int] | Sequence[tuple[int, int]]] | None = None,
) -> CinePhantom:
    """Synthetic B-mode cine loop with two moving objects and their exact masks.

    ``visible`` maps object ids 1 and 2 to the (first, last) frame, inclusive, in which
    each is to be visible; the default for 40 frames is ``{1: (5, 32), 2: (0, 19)}``
    (scaled with ``num_frames``). ``speckle_correlation`` in [0, 1] is how much of the
    speckle pattern persists from frame to frame (1: frozen speckle, 0: new speckle in
    every frame). ``spacing`` is (column, row, frame) in millimetres (and whatever unit
    the frame axis has).

    ``gaps`` maps an object id to one (g0, g1) inclusive gap, or a list of them, strictly
    inside its visible span: the object leaves the view before g0 and comes back after g1
    (its mask is exactly empty in g0..g1 and non-empty in every other frame of the span).
    ``reenter=True`` gives object 1 a default gap (about 15 % of its span, at least 2
    frames, in the middle) unless ``gaps`` names one. After each gap the object moves the
    other way (the probe swept away and back) and sits somewhat closer to the middle of
    the depth range. ``visible[id]`` stays the whole (first, last) span; the exact frames
    are in ``present`` and ``visible_runs``.
    """
    num_frames, height, width = int(num_frames), int(height), int(width)
    if num_frames < 1:
        raise InputError(f"num_frames must be at least 1, got {num_frames}")
    if height < 32 or width < 32:
        raise InputError(f"frames must be at least 32 x 32 pixels, got {height} x {width}")
    if not 0.0 <= speckle_correlation <= 1.0:
        raise InputError(f"speckle_correlation must be in [0, 1], got {speckle_correlation}")
    ranges = _default_visible(num_frames)
    if visible is not None:
        for object_id, span in visible.items():
            if object_id not in ranges:
                raise InputError(f"object ids are 1 and 2; got {object_id!r}")
            first, last = (int(v) for v in span)
            if not 0 <= first <= last < num_frames:
                raise InputError(
                    f"visible range {span} of object {object_id} must satisfy "
                    f"0 <= first <= last <= {num_frames - 1}"
                )
            ranges[object_id] = (first, last)
    gap_spec = dict(gaps or {})
    for object_id in gap_spec:
        if object_id not in ranges:
            raise InputError(f"object ids are 1 and 2; got {object_id!r} in gaps")
    if reenter and gap_spec.get(1) is None:
        gap_spec[1] = [_default_gap(*ranges[1])]
    runs: dict[int, list[tuple[int, int]]] = {}
    for object_id, (first, last) in ranges.items():
        holes = _normalize_gaps(object_id, gap_spec.get(object_id), first, last)
        starts = [first] + [g1 + 1 for _, g1 in holes]
        ends = [g0 - 1 for g0, _ in holes] + [last]
        runs[object_id] = list(zip(starts, ends))
    geometry = Geometry(spacing=spacing)
    rng = np.random.default_rng(seed)

    fov = _fan(height, width, sector)
    rows = np.flatnonzero(fov.any(axis=1))
    left = np.argmax(fov[rows], axis=1).astype(np.float64)
    right = (width - 1 - np.argmax(fov[rows, ::-1], axis=1)).astype(np.float64)
    rows_f = rows.astype(np.float64)

    t = np.arange(num_frames, dtype=np.float64)
    period = max(num_frames / 2.0, 8.0)
    phase = rng.uniform(0, 2 * np.pi, size=4)
    size = min(height, width * 0.8)
    # Per-object: semi-axes, tilt and depth over time; direction of travel.
    specs = {
        1: dict(
            a=0.17 * size * (1 + 0.18 * np.sin(2 * np.pi * t / period + phase[0])),
            b=0.12 * size * (1 - 0.12 * np.sin(2 * np.pi * t / period + phase[0] + 0.6)),
            theta=0.25 * np.sin(2 * np.pi * t / (1.7 * period) + phase[1]),
            cy=0.42 * height + 0.04 * height * np.sin(2 * np.pi * t / (1.3 * period) + phase[2]),
            direction=+1,
        ),
        2: dict(
            a=0.07 * size * (1 + 0.12 * np.sin(2 * np.pi * t / (0.8 * period) + phase[3])),
            b=0.05 * size * np.ones_like(t),
            theta=0.4 + 0.2 * np.sin(2 * np.pi * t / period + phase[3]),
            cy=0.78 * height + 0.02 * height * np.sin(2 * np.pi * t / period + phase[1]),
            direction=-1,
        ),
    }

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    masks: dict[int, np.ndarray] = {}
    rims = np.zeros((num_frames, height, width), dtype=bool)
    centers: dict[int, np.ndarray] = {}
    semi_axes: dict[int, np.ndarray] = {}
    for object_id, spec in specs.items():
        object_runs = runs[object_id]
        if len(object_runs) > 1:
            # Re-entries: from the middle of each gap on, the object sits closer to the
            # middle of the depth range (the probe was repositioned while it was away).
            shift = np.zeros(num_frames)
            jump = (-0.06 if object_id == 1 else 0.04) * height
            for index, ((_, end), (start, _)) in enumerate(zip(object_runs, object_runs[1:])):
                shift[(end + 1 + start) // 2 :] = jump * ((index + 1) % 2)
            spec["cy"] = spec["cy"] + shift
        quads = [_ellipse_quadratic(spec["a"][k], spec["b"][k], spec["theta"][k]) for k in range(num_frames)]
        bounds = np.array([_entry_exit(rows_f, left, right, spec["cy"][k], quads[k]) for k in range(num_frames)])
        span = float(np.mean(bounds[:, 1] - bounds[:, 0]))
        # Which run governs each frame (direction, speed): the run itself, or for frames
        # before/after/between runs the run they follow (the first run before it starts).
        governing = np.zeros(num_frames, dtype=int)
        for index, (start, _) in enumerate(object_runs[1:], start=1):
            governing[start:] = index
        for index, (_, end) in enumerate(object_runs[:-1]):
            governing[end + 1 : object_runs[index + 1][0]] = index
        cx = np.empty(num_frames)
        for k in range(num_frames):
            index = governing[k]
            start, end = object_runs[index]
            step = span / (end - start + 1)
            # Every run after the first enters through the side the previous one left by
            # (moving the other way); only the first / last may start / end in view.
            q0 = 0.3 if start == 0 else 0.0
            q1 = 0.7 if end == num_frames - 1 else 1.0
            x_in, x_out = bounds[k]
            margin = min(max(step / 2.0, 1.5), 0.25 * (x_out - x_in))
            if start <= k <= end:
                q = 0.5 * (q0 + q1) if end == start else q0 + (q1 - q0) * (k - start) / (end - start)
                offset = margin + q * (x_out - x_in - 2 * margin)
            elif k < start:
                offset = -margin - (start - 1 - k) * step
            elif index + 1 < len(object_runs):  # in a gap: out beyond the exit side and back
                back = object_runs[index + 1][0]
                offset = (x_out - x_in) + margin + min(k - end - 1, back - 1 - k) * step
            else:
                offset = (x_out - x_in) + margin + (k - end - 1) * step
            direction = spec["direction"] * (-1) ** index
            cx[k] = x_in + offset if direction > 0 else x_out - offset
        mask = np.zeros((num_frames, height, width), dtype=bool)
        grow = 0.025 * size + 1.0 if object_id == 1 else 0.0
        for k in range(num_frames):
            # Only the ellipse's bounding box (rim included) needs testing.
            reach = max(spec["a"][k], spec["b"][k]) + grow + 2.0
            y0, y1 = max(int(spec["cy"][k] - reach), 0), min(int(spec["cy"][k] + reach) + 1, height)
            x0, x1 = max(int(cx[k] - reach), 0), min(int(cx[k] + reach) + 1, width)
            if y0 >= y1 or x0 >= x1:
                continue
            box = (slice(y0, y1), slice(x0, x1))
            dx, dy = xs[box] - cx[k], ys[box] - spec["cy"][k]
            A, B, C = quads[k]
            inside = (A * dx * dx + 2 * B * dx * dy + C * dy * dy <= 1.0) & fov[box]
            mask[k][box] = inside
            if grow:
                A2, B2, C2 = _ellipse_quadratic(spec["a"][k] + grow, spec["b"][k] + grow, spec["theta"][k])
                rims[k][box] = (A2 * dx * dx + 2 * B2 * dx * dy + C2 * dy * dy <= 1.0) & fov[box] & ~inside
        masks[object_id] = mask
        centers[object_id] = np.stack([cx, spec["cy"]], axis=1)
        semi_axes[object_id] = np.stack([spec["a"], spec["b"]], axis=1)
    # Later objects are drawn on top: keep the masks disjoint (they do not meet by default).
    masks[1] &= ~masks[2]
    rims &= ~masks[2]

    # Echogenicity (backscattered power, background = 1).
    tissue = 10 ** (_upsample(rng.normal(0.0, 2.5, size=(6, 8)), (height, width)) / 10.0)
    for depth, strength, thickness in ((0.04, 6.0, 0.012), (0.2, 3.0, 0.01), (0.62, 2.0, 0.008)):
        line_y = depth * height + 0.03 * height * np.sin(xs / width * 2 * np.pi + rng.uniform(0, 6.3))
        tissue = tissue * (1 + strength * np.exp(-0.5 * ((ys - line_y) / (thickness * height + 0.6)) ** 2))
    echo = np.broadcast_to(tissue.astype(np.float32), (num_frames, height, width)).copy()
    echo[masks[1]] = 0.02
    echo[rims] = 6.0
    echo[masks[2]] = 20.0

    # Depth attenuation, posterior enhancement below the fluid, shadow below the bright
    # object (both grow with the path length through the object along the beam).
    depth_db = (-15.0 * (ys / (height - 1))).astype(np.float32)
    path1 = np.cumsum(masks[1], axis=1, dtype=np.float32)
    path2 = np.cumsum(masks[2], axis=1, dtype=np.float32)
    enhancement_db = np.minimum(path1 * (120.0 / height), 6.0) * ~masks[1]
    shadow_db = -np.minimum(path2 * (250.0 / height), 12.0) * ~masks[2]
    gain = np.float32(10.0) ** ((depth_db + enhancement_db + shadow_db) / np.float32(20.0))

    sigmas = (0.0, 0.7, 1.4)
    base_re, base_im = _rayleigh_field(rng, (1, height, width), sigmas)
    new_re, new_im = _rayleigh_field(rng, (num_frames, height, width), sigmas)
    rho = np.float32(speckle_correlation)
    mix = np.float32(np.sqrt(1.0 - speckle_correlation**2))
    speckle = np.hypot(rho * base_re + mix * new_re, rho * base_im + mix * new_im)

    envelope = np.sqrt(echo) * gain * speckle
    frames = _to_uint8(envelope)
    frames[:, ~fov] = 0

    present: dict[int, np.ndarray] = {}
    for object_id, mask in masks.items():
        expected = np.zeros(num_frames, dtype=bool)
        for start, end in runs[object_id]:
            expected[start : end + 1] = True
        seen = mask.reshape(num_frames, -1).any(axis=1)
        if not np.array_equal(seen, expected):
            raise RuntimeError(  # pragma: no cover - guarded by construction
                f"phantom object {object_id} visible in {np.flatnonzero(seen).tolist()}, "
                f"expected the runs {runs[object_id]}"
            )
        present[object_id] = expected
    return CinePhantom(
        frames=frames,
        masks=masks,
        visible=dict(ranges),
        geometry=geometry,
        field_of_view=fov,
        centers=centers,
        axes=semi_axes,
        names={1: "hypoechoic ellipse (lumen-like)", 2: "hyperechoic ellipse (calcification-like)"},
        present=present,
        visible_runs={object_id: list(object_runs) for object_id, object_runs in runs.items()},
    )


# ---------------------------------------------------------------------------------------
# Volume phantom
# ---------------------------------------------------------------------------------------


@dataclass
class VolumePhantom:
    """A synthetic 3D US volume with an ellipsoid defined in millimetres.

    volume: uint8 (K, J, I). mask: bool (K, J, I), the ellipsoid's interior.
    geometry: spacing/origin/direction for (I, J, K), LPS.
    center_lps: the ellipsoid centre in LPS millimetres; center_ijk: the same point as a
    continuous (i, j, k) index. radii_mm: its semi-axes (along L, P, S) in millimetres.
    ranges: "K", "J", "I" -> (first, last) index along that axis with a non-empty mask
    (the same axis names as :data:`SAMUSALib.frames.AXES`).
    """

    volume: np.ndarray
    mask: np.ndarray
    geometry: Geometry
    center_lps: np.ndarray
    center_ijk: np.ndarray
    radii_mm: np.ndarray
    ranges: dict[str, tuple[int, int]]

    def extent_mm(self) -> dict[str, float]:
        """Extent of the mask along each index axis, in millimetres (voxels x spacing)."""
        spacing = dict(zip("IJK", self.geometry.spacing))
        return {axis: (last - first + 1) * spacing[axis] for axis, (first, last) in self.ranges.items()}


def volume_phantom(
    shape: tuple[int, int, int] = (48, 64, 56),
    spacing: tuple[float, float, float] = (0.5, 0.4, 1.2),
    oblique: bool = True,
    seed: int = 0,
    *,
    radii_mm: tuple[float, float, float] = (7.5, 6.5, 7.0),
) -> VolumePhantom:
    """Synthetic 3D volume (K, J, I) with a hypoechoic ellipsoid and its exact mask.

    ``shape`` is the numpy (K, J, I) shape, ``spacing`` the ITK (I, J, K) spacing in mm.
    With ``oblique=True`` the direction matrix is a proper rotation (20 degrees about S,
    then 10 degrees about L); otherwise identity. The ellipsoid's semi-axes ``radii_mm``
    are along the world L, P, S axes, so in voxels it is oblique and anisotropic. Depth
    (attenuation) runs along J.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise InputError(f"shape must be three sizes of at least 8 voxels, got {shape}")
    direction = rotation_matrix("z", 20.0) @ rotation_matrix("x", 10.0) if oblique else np.eye(3)
    spacing_arr = np.asarray(spacing, dtype=float)
    matrix = direction @ np.diag(spacing_arr)
    nk, nj, ni = shape
    center_index = np.array([(ni - 1) / 2.0, (nj - 1) / 2.0, (nk - 1) / 2.0])
    origin = np.round(-matrix @ center_index, 3)
    geometry = Geometry(spacing=tuple(spacing_arr), origin=tuple(origin), direction=tuple(direction.ravel()))
    radii = np.asarray(radii_mm, dtype=float)
    half_extent = 0.5 * np.array([ni, nj, nk]) * spacing_arr
    if radii.max() + 1.5 > half_extent.min():
        raise InputError(
            f"an ellipsoid of radii {tuple(radii)} mm does not fit a volume of "
            f"{tuple(2 * half_extent)} mm; enlarge the shape or the spacing"
        )
    rng = np.random.default_rng(seed)
    center_lps = np.array([0.8, -0.6, 1.5])
    center_ijk = np.linalg.solve(matrix, center_lps - origin)

    k, j, i = np.meshgrid(
        np.arange(nk, dtype=np.float32), np.arange(nj, dtype=np.float32), np.arange(ni, dtype=np.float32), indexing="ij"
    )
    rel = [
        origin[axis] - center_lps[axis] + matrix[axis, 0] * i + matrix[axis, 1] * j + matrix[axis, 2] * k
        for axis in range(3)
    ]
    q = sum((rel[axis] / radii[axis]) ** 2 for axis in range(3))
    mask = q <= 1.0
    shell = (q > 1.0) & (q <= ((radii.mean() + 1.0) / radii.mean()) ** 2)

    variation = _smooth(rng.standard_normal(shape, dtype=np.float32), (3.0, 4.0, 4.0))
    echo = 10 ** (variation * (2.5 / (variation.std() + 1e-12)) / 10.0)
    echo[mask] = 0.03
    echo[shell] = 5.0
    depth_db = -12.0 * (j / max(nj - 1, 1))
    re, im = _rayleigh_field(rng, shape, (0.6, 0.7, 1.2))
    envelope = np.sqrt(echo) * (10 ** (depth_db / 20.0)) * np.hypot(re, im)
    volume = _to_uint8(envelope)

    ranges = {}
    for name, axis in (("K", 0), ("J", 1), ("I", 2)):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        ranges[name] = (int(present[0]), int(present[-1]))
    return VolumePhantom(
        volume=volume,
        mask=mask,
        geometry=geometry,
        center_lps=center_lps,
        center_ijk=center_ijk,
        radii_mm=radii,
        ranges=ranges,
    )
