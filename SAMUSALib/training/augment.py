"""Ultrasound augmentations for training: imaging physics, geometry and time.

Generic photometric jitter teaches little about ultrasound; these follow how the images
are made: multiplicative speckle correlated by the point-spread function, attenuation
with depth and the time-gain compensation (TGC) that undoes it, acoustic shadows cast
along the beam, the sector (fan) of phased and curved probes, lateral resolution worse
than axial, and the gain/gamma knobs of the scanner's display. Geometric augmentations
move masks and points with the image; temporal ones resample cines with their masks.

Conventions: an image is (H, W) or (H, W, C), rows = depth from the probe at the top;
points are (N, 2) as (x, y) = (column, row) in pixels, pixel centres at integers. Each
augmentation is a callable ``aug(sample, rng) -> sample`` that draws its parameters from
the given `numpy.random.Generator` (same seed, same result) and returns a new sample,
never changing the input. There is no vertical flip: depth has a direction in
ultrasound (probe at the top, attenuation downwards).

Intensities keep their dtype and range: integer images stay within their dtype, float
images within [0, 1] stay within [0, 1], other float images within their own min..max
(apply these before any standardisation: the physics is multiplicative on non-negative
echo amplitudes).

To see them: ``python -m SAMUSALib.training.augment_gallery --gallery OUT.png [--image PATH
--mask PATH]`` draws each one on a real image (`augment_gallery`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence, Union

import numpy as np
from scipy import ndimage

Range = Union[float, tuple[float, float]]
Masks = Union[np.ndarray, Mapping, Sequence]


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One training image with its masks and prompt points.

    image: (H, W) or (H, W, C), any numeric dtype.
    masks: bool (H, W) or (K, H, W), or a dict/list of bool (H, W) masks (kept as given).
    points: (N, 2) float (x, y); valid: (N,) bool, False once a point has left the image
        (or the fan). Flagged points keep their transformed coordinates; the caller drops
        or keeps them (``sample.points[sample.valid]``).

    Augmented samples may share arrays an augmentation left unchanged with their input
    (the masks after a photometric one): copy before editing them in place.
    """

    image: np.ndarray
    masks: Masks
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    valid: np.ndarray | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim not in (2, 3):
            raise ValueError(f"image must be (H, W) or (H, W, C); got shape {image.shape}")
        points = np.asarray(self.points, dtype=np.float32).reshape(-1, 2)
        valid = np.ones(len(points), bool) if self.valid is None else np.asarray(self.valid, bool)
        if valid.shape != (len(points),):
            raise ValueError(f"valid must have one flag per point ({len(points)}); got shape {valid.shape}")
        for mask in _mask_list(self.masks):
            if np.shape(mask)[-2:] != image.shape[:2]:
                raise ValueError(f"masks must match the image's (H, W) = {image.shape[:2]}; got {np.shape(mask)}")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "valid", valid)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def replace(self, **changes) -> Sample:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class VideoSample:
    """A cine with per-frame masks, as the video trainer reads it.

    frames: (T, H, W) or (T, H, W, C). masks: (T, H, W), (T, K, H, W), or a dict/list of
    (T, H, W). annotated: (T,) bool, the frames whose masks are reference annotations.
    source: (T,) int, each frame's index in the original cine, so prompts given on
    original frames can be found after resampling.
    """

    frames: np.ndarray
    masks: Masks
    annotated: np.ndarray | None = None
    source: np.ndarray | None = None

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames)
        n = len(frames)
        annotated = np.ones(n, bool) if self.annotated is None else np.asarray(self.annotated, bool)
        source = np.arange(n) if self.source is None else np.asarray(self.source, int)
        if annotated.shape != (n,) or source.shape != (n,):
            raise ValueError(f"annotated and source need one entry per frame ({n})")
        for mask in _mask_list(self.masks):
            if len(mask) != n or np.shape(mask)[-2:] != frames.shape[1:3]:
                raise ValueError(f"masks must be per frame, (T, ..., H, W) with T, H, W = {frames.shape[:3]}; got {np.shape(mask)}")
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "annotated", annotated)
        object.__setattr__(self, "source", source)

    def select(self, index: np.ndarray) -> VideoSample:
        """Frames, masks and flags at `index` (any order, repeats allowed), kept aligned."""
        index = np.asarray(index, int)
        return VideoSample(self.frames[index], _map_masks(self.masks, lambda m: m[index]),
                           self.annotated[index], self.source[index])


def _mask_list(masks: Masks) -> list:
    if isinstance(masks, Mapping):
        return list(masks.values())
    if isinstance(masks, (list, tuple)):
        return list(masks)
    return [masks]


def _map_masks(masks: Masks, fn: Callable[[np.ndarray], np.ndarray]) -> Masks:
    """Apply `fn` to each mask, keeping the container (array, dict or list)."""
    if isinstance(masks, Mapping):
        return {key: fn(np.asarray(value)) for key, value in masks.items()}
    if isinstance(masks, (list, tuple)):
        return type(masks)(fn(np.asarray(value)) for value in masks)
    return fn(np.asarray(masks))


def _each_plane(array: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], channels_last: bool) -> np.ndarray:
    """`fn` on every (H, W) plane of (H, W), (H, W, C) [channels_last] or (K, H, W)."""
    if array.ndim == 2:
        return fn(array)
    if channels_last:
        return np.stack([fn(array[..., c]) for c in range(array.shape[-1])], axis=-1)
    return np.stack([fn(plane) for plane in array]) if len(array) else array.copy()


def _draw(rng: np.random.Generator, value: Range) -> float:
    """A fixed number, or uniform in (low, high)."""
    if isinstance(value, (tuple, list)):
        return float(rng.uniform(value[0], value[1]))
    return float(value)


# --------------------------------------------------------------------------- intensities


def _limits(image: np.ndarray) -> tuple[float, float]:
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return float(info.min), float(info.max)
    if image.size == 0:
        return 0.0, 1.0
    low, high = float(np.nanmin(image)), float(np.nanmax(image))
    return (0.0, 1.0) if low >= 0.0 and high <= 1.0 else (low, high)


def _restore(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Back to `like`'s dtype and range (rounded for integers)."""
    low, high = _limits(like)
    values = np.clip(values, low, high)
    if np.issubdtype(like.dtype, np.integer):
        values = np.rint(values)
    return values.astype(like.dtype)


def _scaled(sample: Sample, gain: np.ndarray) -> Sample:
    """The image times an (H, W) gain field (the same on every channel)."""
    image = sample.image
    field_ = gain[..., None] if image.ndim == 3 else gain
    return sample.replace(image=_restore(image.astype(np.float32) * field_, image))


@dataclass
class Speckle:
    """Multiplicative speckle: fully developed speckle has Rayleigh amplitude (gamma for
    partially developed), spatially correlated over the point-spread function, so the
    noise is blurred, more laterally than axially, before it multiplies the image.

    std: standard deviation of the unit-mean noise field; correlation: its blur in pixels
    (axial; lateral is `lateral_ratio` times that); distribution: "rayleigh" or "gamma".
    """

    std: Range = (0.05, 0.25)
    correlation: Range = (0.5, 1.5)
    lateral_ratio: float = 1.5
    distribution: str = "rayleigh"
    gamma_shape: float = 2.0

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        std, sigma = _draw(rng, self.std), _draw(rng, self.correlation)
        shape = sample.shape
        if self.distribution == "rayleigh":
            noise = rng.rayleigh(1.0, shape)
        elif self.distribution == "gamma":
            noise = rng.gamma(self.gamma_shape, 1.0, shape)
        else:
            raise ValueError(f"distribution must be 'rayleigh' or 'gamma'; got {self.distribution!r}")
        noise = ndimage.gaussian_filter(noise, (sigma, sigma * self.lateral_ratio))
        noise = (noise - noise.mean()) / max(noise.std(), 1e-8)
        return _scaled(sample, np.maximum(1.0 + std * noise, 0.0).astype(np.float32))


def _depth(height: int) -> np.ndarray:
    """Normalised depth of each row, 0 at the probe (top) to 1 at the bottom."""
    return np.linspace(0.0, 1.0, height, dtype=np.float32) if height > 1 else np.zeros(1, np.float32)


@dataclass
class DepthAttenuation:
    """Tissue attenuation not fully compensated: gain exp(-alpha * depth), depth from the
    top row (0) to the bottom (1), so intensity falls monotonically with depth when
    alpha > 0 (alpha < 0 models over-compensation)."""

    alpha: Range = (0.2, 1.2)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        alpha = _draw(rng, self.alpha)
        gain = np.exp(-alpha * _depth(sample.shape[0]))
        return _scaled(sample, np.repeat(gain[:, None], sample.shape[1], axis=1))


@dataclass
class TimeGainCompensation:
    """The scanner's TGC sliders: a gain in dB at `knots` evenly spaced depths from the
    top, joined by a monotone cubic (PCHIP: smooth, no overshoot), so two knots give a
    gain that changes monotonically with depth."""

    gain_db: Range = (-6.0, 6.0)
    knots: int = 5

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        from scipy.interpolate import PchipInterpolator

        if self.knots < 2:
            raise ValueError(f"knots must be at least 2; got {self.knots}")
        db = np.array([_draw(rng, self.gain_db) for _ in range(self.knots)])
        curve = PchipInterpolator(np.linspace(0.0, 1.0, self.knots), db)(_depth(sample.shape[0]))
        gain = (10.0 ** (curve / 20.0)).astype(np.float32)
        return _scaled(sample, np.repeat(gain[:, None], sample.shape[1], axis=1))


@dataclass
class AcousticShadow:
    """A dark band below a strong reflector (bone, calcification, gas), along the beam:
    vertical for a linear probe, or along the ray from the apex `apex_height` * H above
    the top centre for a sector probe. Nothing above the reflector changes.

    width: band width as a fraction of the image width; strength: 1 = black; depth and
    lateral: the reflector's row and column as fractions of the height and width;
    softness: edge ramp in pixels.
    """

    width: Range = (0.05, 0.2)
    strength: Range = (0.3, 0.8)
    depth: Range = (0.1, 0.7)
    lateral: Range = (0.0, 1.0)
    softness: float = 3.0
    apex_height: float | None = None

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.shape
        half = 0.5 * _draw(rng, self.width) * width
        strength = _draw(rng, self.strength)
        x0 = _draw(rng, self.lateral) * (width - 1)
        y0 = _draw(rng, self.depth) * (height - 1)
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
        if self.apex_height is None:
            lateral, along = cols - x0, rows - y0
        else:  # polar about the apex: arc length at the reflector's radius, radial distance
            ax, ay = (width - 1) / 2.0, -self.apex_height * height
            r0, t0 = np.hypot(x0 - ax, y0 - ay), np.arctan2(x0 - ax, y0 - ay)
            lateral = (np.arctan2(cols - ax, rows - ay) - t0) * r0
            along = np.hypot(cols - ax, rows - ay) - r0
        soft = max(self.softness, 1e-3)
        across = np.clip((half - np.abs(lateral)) / soft, 0.0, 1.0)
        below = np.clip(along / soft, 0.0, 1.0)
        return _scaled(sample, 1.0 - strength * across * below)


def sector_mask(shape: tuple[int, int], half_angle_deg: float, apex_height: float) -> np.ndarray:
    """Bool (H, W), True inside a fan with its apex `apex_height` * H above the top
    centre, opening `half_angle_deg` either side of vertical, down to the bottom centre."""
    height, width = shape
    ax, ay = (width - 1) / 2.0, -apex_height * height
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = np.degrees(np.abs(np.arctan2(cols - ax, rows - ay)))
    return (angle <= half_angle_deg) & (np.hypot(cols - ax, rows - ay) <= (height - 1) - ay)


@dataclass
class SectorMask:
    """The field of view of a phased or curved probe: the image is zeroed outside a fan.
    With `clip_masks` (default) the masks are cut to the fan and points outside it are
    flagged invalid, since no annotator labels what the scanner does not show."""

    half_angle: Range = (30.0, 45.0)
    apex_height: Range = (0.05, 0.3)
    clip_masks: bool = True

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        fan = sector_mask(sample.shape, _draw(rng, self.half_angle), _draw(rng, self.apex_height))
        keep = fan[..., None] if sample.image.ndim == 3 else fan
        out = sample.replace(image=np.where(keep, sample.image, 0).astype(sample.image.dtype))
        if not self.clip_masks:
            return out
        height, width = sample.shape
        x = np.clip(np.rint(sample.points[:, 0]).astype(int), 0, width - 1)
        y = np.clip(np.rint(sample.points[:, 1]).astype(int), 0, height - 1)
        inside = fan[y, x] if len(x) else np.zeros(0, bool)
        return out.replace(masks=_map_masks(sample.masks, lambda m: m.astype(bool) & fan), valid=sample.valid & inside)


@dataclass
class ResolutionBlur:
    """Limited resolution: an anisotropic Gaussian, lateral (across the beam, along rows)
    stronger than axial, as the beam is wider than the pulse is long."""

    lateral_sigma: Range = (0.5, 2.0)
    axial_fraction: Range = (0.25, 0.6)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        lateral = _draw(rng, self.lateral_sigma)
        axial = lateral * _draw(rng, self.axial_fraction)
        image = sample.image
        blurred = _each_plane(image.astype(np.float32), lambda p: ndimage.gaussian_filter(p, (axial, lateral)), True)
        return sample.replace(image=_restore(blurred, image))


@dataclass
class GainContrast:
    """Display settings: gamma (on the image's range), overall gain, brightness offset
    (a fraction of the range); saturates at the range like a scanner's display."""

    gamma: Range = (0.7, 1.4)
    gain: Range = (0.8, 1.25)
    brightness: Range = (-0.05, 0.05)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        gamma, gain, shift = _draw(rng, self.gamma), _draw(rng, self.gain), _draw(rng, self.brightness)
        image = sample.image
        low, high = _limits(image)
        span = max(high - low, 1e-8)
        unit = np.clip((image.astype(np.float32) - low) / span, 0.0, 1.0)
        unit = gain * unit**gamma + shift
        return sample.replace(image=_restore(low + span * unit, image))


# --------------------------------------------------------------------------- geometry


def _warp(sample: Sample, forward: np.ndarray) -> Sample:
    """Apply a 3x3 affine `forward` mapping input (x, y) to output (x, y): images with
    linear interpolation, masks nearest-neighbour, points exactly; zero outside."""
    inverse = np.linalg.inv(forward)
    swap = np.array([[0, 1], [1, 0]])
    matrix, offset = swap @ inverse[:2, :2] @ swap, swap @ inverse[:2, 2]
    shape = sample.shape

    def warp(plane: np.ndarray, order: int) -> np.ndarray:
        return ndimage.affine_transform(plane, matrix, offset, output_shape=shape, order=order, cval=0.0)

    image = sample.image
    moved = _each_plane(image.astype(np.float32), lambda p: warp(p, 1), True)
    masks = _map_masks(sample.masks, lambda m: _each_plane(m.astype(np.uint8), lambda p: warp(p, 0), False) > 0)
    points = sample.points @ forward[:2, :2].T + forward[:2, 2]
    height, width = shape
    inside = (points[:, 0] >= -0.5) & (points[:, 0] < width - 0.5) & (points[:, 1] >= -0.5) & (points[:, 1] < height - 0.5)
    return Sample(_restore(moved, image), masks, points.astype(np.float32), sample.valid & inside)


def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _centre(sample: Sample) -> tuple[float, float]:
    height, width = sample.shape
    return (width - 1) / 2.0, (height - 1) / 2.0


@dataclass
class HorizontalFlip:
    """Mirror left-right (probe orientation markers differ between users); exact, no
    interpolation: x -> W - 1 - x."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        width = sample.shape[1]
        points = sample.points.copy()
        points[:, 0] = width - 1 - points[:, 0]
        masks = _map_masks(sample.masks, lambda m: m[..., ::-1].copy())
        return Sample(sample.image[:, ::-1].copy(), masks, points, sample.valid.copy())


@dataclass
class Zoom:
    """Scale about a random centre: > 1 zooms in (a crop, the window stays inside the
    image), < 1 zooms out (the whole image stays in view, black around), as depth and
    zoom settings change the pixel size."""

    scale: Range = (0.8, 1.25)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        scale = _draw(rng, self.scale)
        ox, oy = _centre(sample)
        height, width = sample.shape
        # The input point shown at the output centre: any, as long as the crop stays inside
        # the image (zoom in) or the image inside the output (zoom out).
        cx = rng.uniform(*sorted((ox / scale, width - 1 - ox / scale)))
        cy = rng.uniform(*sorted((oy / scale, height - 1 - oy / scale)))
        forward = _translation(ox, oy) @ np.diag([scale, scale, 1.0]) @ _translation(-cx, -cy)
        return _warp(sample, forward)


@dataclass
class Rotate:
    """A small rotation about the image centre (probe tilt), in degrees."""

    degrees: Range = (-10.0, 10.0)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        theta = np.radians(_draw(rng, self.degrees))
        c, s = np.cos(theta), np.sin(theta)
        ox, oy = _centre(sample)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return _warp(sample, _translation(ox, oy) @ rotation @ _translation(-ox, -oy))


@dataclass
class Translate:
    """A shift of up to `fraction` of the width and height (probe position)."""

    fraction: tuple[float, float] = (0.1, 0.1)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.shape
        dx = rng.uniform(-1.0, 1.0) * self.fraction[0] * width
        dy = rng.uniform(-1.0, 1.0) * self.fraction[1] * height
        return _warp(sample, _translation(dx, dy))


# --------------------------------------------------------------------------- time


@dataclass
class FrameSkip:
    """Keep every k-th frame from a random start in [0, k): a lower frame rate."""

    k: tuple[int, int] = (1, 3)

    def __call__(self, video: VideoSample, rng: np.random.Generator) -> VideoSample:
        k = int(rng.integers(self.k[0], self.k[1] + 1))
        return video.select(np.arange(int(rng.integers(0, k)), len(video.frames), k))


@dataclass
class Reverse:
    """Play the cine backwards (a tracker must not rely on the direction of motion)."""

    def __call__(self, video: VideoSample, rng: np.random.Generator) -> VideoSample:
        return video.select(np.arange(len(video.frames))[::-1])


@dataclass
class SpeedChange:
    """Resample time by `factor` (> 1 faster: fewer frames; < 1 slower: repeated frames),
    nearest frame, so masks and flags stay exact."""

    factor: Range = (0.5, 2.0)

    def __call__(self, video: VideoSample, rng: np.random.Generator) -> VideoSample:
        factor = _draw(rng, self.factor)
        n = len(video.frames)
        count = max(1, int(round(n / factor)))
        return video.select(np.clip(np.rint(np.arange(count) * factor), 0, n - 1).astype(int))


@dataclass
class TemporalCrop:
    """A random run of `length` consecutive frames (clipped to the cine); with
    `require_annotated` the run holds at least one annotated frame when the cine has one."""

    length: tuple[int, int] = (8, 16)
    require_annotated: bool = True

    def __call__(self, video: VideoSample, rng: np.random.Generator) -> VideoSample:
        n = len(video.frames)
        length = min(n, int(rng.integers(self.length[0], self.length[1] + 1)))
        starts = np.arange(n - length + 1)
        if self.require_annotated and video.annotated.any():
            marked = np.flatnonzero(video.annotated)
            starts = starts[[bool(((marked >= s) & (marked < s + length)).any()) for s in starts]]
        start = int(rng.choice(starts))
        return video.select(np.arange(start, start + length))


@dataclass
class ApplyToFrames:
    """An image augmentation on every frame of a cine; with `shared` each frame gets the
    same random parameters (one probe movement for the whole cine), else its own."""

    augmentation: Callable[[Sample, np.random.Generator], Sample]
    shared: bool = True

    def __call__(self, video: VideoSample, rng: np.random.Generator) -> VideoSample:
        seed = int(rng.integers(2**63 - 1))
        frames, masks = [], []
        for t in range(len(video.frames)):
            frame_rng = np.random.default_rng(seed) if self.shared else rng
            out = self.augmentation(Sample(video.frames[t], _map_masks(video.masks, lambda m: m[t])), frame_rng)
            frames.append(out.image)
            masks.append(out.masks)
        if isinstance(video.masks, Mapping):
            stacked = {key: np.stack([m[key] for m in masks]) for key in video.masks}
        elif isinstance(video.masks, (list, tuple)):
            stacked = type(video.masks)(np.stack([m[i] for m in masks]) for i in range(len(video.masks)))
        else:
            stacked = np.stack(masks)
        return VideoSample(np.stack(frames), stacked, video.annotated.copy(), video.source.copy())


# --------------------------------------------------------------------------- pipelines


@dataclass
class Compose:
    """Apply each augmentation in turn with its probability `p` (one for all, or one per
    augmentation). Works on `Sample` and `VideoSample` alike."""

    augmentations: Sequence[Callable]
    p: float | Sequence[float] = 1.0

    def __post_init__(self) -> None:
        probs = [self.p] * len(self.augmentations) if np.isscalar(self.p) else list(self.p)
        if len(probs) != len(self.augmentations):
            raise ValueError(f"p needs one probability per augmentation ({len(self.augmentations)}); got {len(probs)}")
        self.probabilities = [float(p) for p in probs]

    def __call__(self, sample, rng: np.random.Generator):
        for augmentation, p in zip(self.augmentations, self.probabilities):
            if rng.random() < p:  # drawn even when p is 1, so seeds give the same stream
                sample = augmentation(sample, rng)
        return sample


STRENGTHS = {"none": 0.0, "light": 0.5, "default": 1.0, "strong": 1.6}


def ultrasound_augmentations(strength: str = "default") -> Compose:
    """The training pipeline: geometry, then physics in the order the signal meets it
    (shadow and attenuation in the tissue, TGC, speckle, blur, display, fan last since
    the scan converter blanks outside it). `strength` is "none", "light", "default" or
    "strong"; "none" returns an empty pipeline."""
    if strength not in STRENGTHS:
        raise ValueError(f"strength must be one of {sorted(STRENGTHS)}; got {strength!r}")
    k = STRENGTHS[strength]
    if k == 0:
        return Compose([])
    steps = [
        (HorizontalFlip(), 0.5),
        (Zoom((1 - 0.2 * k, 1 + 0.25 * k)), 0.5),
        (Rotate((-10 * k, 10 * k)), 0.3),
        (Translate((0.08 * k, 0.08 * k)), 0.3),
        (AcousticShadow(strength=(0.3 * k, min(0.9, 0.8 * k))), 0.2),
        (DepthAttenuation((0.2 * k, 1.2 * k)), 0.3),
        (TimeGainCompensation((-6 * k, 6 * k)), 0.3),
        (Speckle((0.05 * k, 0.25 * k)), 0.5),
        (ResolutionBlur((0.5 * k, 2.0 * k)), 0.3),
        (GainContrast((1 - 0.3 * k, 1 + 0.4 * k), (1 - 0.2 * k, 1 + 0.25 * k), (-0.05 * k, 0.05 * k)), 0.5),
        (SectorMask(), 0.1 * k),
    ]
    return Compose([aug for aug, _ in steps], p=[min(1.0, p) for _, p in steps])


def temporal_augmentations(strength: str = "default") -> Compose:
    """Cine resampling for the video trainer: crop, frame skipping, speed, reversal."""
    if strength not in STRENGTHS:
        raise ValueError(f"strength must be one of {sorted(STRENGTHS)}; got {strength!r}")
    k = STRENGTHS[strength]
    if k == 0:
        return Compose([])
    return Compose(
        [SpeedChange((1 / (1 + k), 1 + k)), FrameSkip((1, 1 + round(k))), TemporalCrop(), Reverse()],
        p=[0.3, 0.3, 1.0, 0.5],
    )


# --------------------------------------------------------------------------- command line
