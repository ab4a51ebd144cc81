"""Frames from in-memory arrays: cine loops (T,H,W[,3]) and 3D volumes sliced along an axis.

Frames are read from the caller's array one at a time and normalised on demand, so a
300-frame loop costs no more memory than the array the user already holds. The geometry
(spacing, origin, direction) rides along untouched so masks go back into exactly the
input's voxel grid.

Conventions: arrays are in numpy order as SimpleITK returns them, (K, J, I) for a
volume, (T, H, W) for a cine. ``axis`` names the ITK axis frames are taken along:
"K" (numpy axis 0, the default: frames of a cine), "J" (numpy axis 1) or "I" (numpy
axis 2). Inside a frame, x is the column and y the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from .errors import InputError

AXES = {"K": 0, "J": 1, "I": 2}


@dataclass(frozen=True)
class Geometry:
    """Voxel grid in ITK/LPS convention, for the array's (I, J, K) index order."""

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        spacing = tuple(float(s) for s in self.spacing)
        origin = tuple(float(o) for o in self.origin)
        direction = tuple(float(d) for d in np.asarray(self.direction, dtype=float).ravel())
        if len(spacing) != 3 or len(origin) != 3 or len(direction) != 9:
            raise InputError(
                "geometry needs 3 spacings, 3 origin coordinates and a 3x3 direction; "
                f"got {len(spacing)}, {len(origin)} and {len(direction)} values"
            )
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise InputError(f"spacing must be positive and finite, got {spacing}")
        if not all(np.isfinite(origin)) or not all(np.isfinite(direction)):
            raise InputError("origin and direction must be finite numbers")
        if abs(np.linalg.det(np.reshape(direction, (3, 3)))) < 1e-6:
            raise InputError(f"direction matrix is singular: {direction}")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix from (i, j, k, 1) voxel indices to LPS millimetres."""
        matrix = np.eye(4)
        matrix[:3, :3] = np.reshape(self.direction, (3, 3)) @ np.diag(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    def ijk_to_ras(self) -> np.ndarray:
        """4x4 matrix from voxel indices to RAS, Slicer's world convention."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.ijk_to_lps()

    def is_identity(self) -> bool:
        return self == Geometry()


def _check_dtype(array: np.ndarray) -> None:
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer) or np.issubdtype(
        array.dtype, np.floating
    ):
        return
    raise InputError(
        f"image data type {array.dtype} is not supported; use an integer or float image"
    )


@dataclass
class IntensityWindow:
    """Linear map of raw intensities to [0, 1], chosen once per source."""

    low: float
    high: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        scale = 1.0 / max(self.high - self.low, 1e-12)
        out = (values.astype(np.float32, copy=False) - np.float32(self.low)) * np.float32(scale)
        return np.clip(out, 0.0, 1.0, out=out)


def _eight_bit_values(sample: np.ndarray) -> bool:
    """Whether sampled values look like 8-bit display values kept in a wider type: whole
    numbers in 0..255 whose brightest reach at least 128 (an ultrasound image always has
    bright speckle or overlay text), as an 8-bit image saved as float or short has.
    Windowing those by percentiles stretched an image the model sees unstretched as 8 bits,
    and the same pixels gave another mask (BUS-BRA, four bunched boundary points: Dice
    0.954 as 8 bits, 0.307 as float32). Dimmer whole numbers (a dB map of 0..60, labels)
    keep the stretch."""
    if not sample.size or sample.min() < 0 or not 128 <= sample.max() <= 255:
        return False
    return bool(np.all(sample == np.round(sample)))


class FrameSource:
    """A sequence of 2D frames over an array, prepared lazily.

    ``normalization``: "auto" maps 8-bit data by its full range (US is display-ready),
    as it does 8-bit values kept in a wider type (`_eight_bit_values`), and anything else
    by its 0.5-99.5 percentiles, robust to speckle outliers and
    saturated text overlays; "minmax" uses the sampled extremes; "none" expects values
    already in [0, 1].

    ``intensity_mask``: (H, W) bool, frames along K only; the window is chosen from these
    pixels alone (an ultrasound DICOM's image region, leaving out burned-in text and
    overlay panels around it). The whole frame is still normalised and segmented.
    """

    def __init__(
        self,
        array: np.ndarray,
        *,
        axis: str = "K",
        geometry: Geometry | None = None,
        rgb: bool | None = None,
        normalization: str = "auto",
        intensity_mask: np.ndarray | None = None,
    ) -> None:
        array = np.asarray(array)
        _check_dtype(array)
        if axis not in AXES:
            raise InputError(f"axis must be one of I, J, K; got {axis!r}")
        if rgb is None:
            rgb = array.ndim == 4 and array.shape[-1] in (3, 4)
        if rgb:
            if array.ndim != 4 or array.shape[-1] not in (3, 4):
                raise InputError(
                    f"an RGB cine must have shape (T, H, W, 3); got {array.shape}"
                )
            if axis != "K":
                raise InputError("RGB data can only be sliced along K (frames of a cine)")
            array = array[..., :3]
        elif array.ndim != 3:
            raise InputError(
                f"expected a cine (T, H, W), an RGB cine (T, H, W, 3) or a 3D volume; "
                f"got an array of shape {array.shape}"
            )
        self.array = array
        self.axis = axis
        self.is_rgb = bool(rgb)
        self.geometry = geometry or Geometry()
        self._np_axis = AXES[axis]
        spatial = array.shape[:3]
        self.num_frames = int(spatial[self._np_axis])
        self.frame_shape: tuple[int, int] = tuple(  # type: ignore[assignment]
            int(s) for i, s in enumerate(spatial) if i != self._np_axis
        )
        if self.num_frames < 1 or min(self.frame_shape) < 2:
            raise InputError(self._too_small(spatial))
        self._check_finite()
        self.intensity_mask = self._check_intensity_mask(intensity_mask)
        self.window = self._choose_window(normalization)

    def _too_small(self, spatial: tuple[int, ...]) -> str:
        """Why frames along this axis cannot be segmented, and the axis that would work: a
        single 2D image sliced along I or J gave frames one pixel high."""
        names = {n: a for a, n in AXES.items()}
        thin = [names[i] for i, size in enumerate(spatial) if i != self._np_axis and size < 2]
        message = f"frames of shape {self.frame_shape} x {self.num_frames} are too small to segment"
        if len(thin) == 1 and sum(size >= 2 for size in spatial) == 2:
            flat = "a single 2D image" if thin[0] == "K" else f"one voxel thick along {thin[0]}"
            message += (f": the input is {flat}, and slicing it along {self.axis} gives frames one voxel "
                        f"wide; slice it along {thin[0]} (--axis {thin[0]})")
        return message

    def __len__(self) -> int:
        return self.num_frames

    @property
    def height(self) -> int:
        return self.frame_shape[0]

    @property
    def width(self) -> int:
        return self.frame_shape[1]

    def raw_frame(self, index: int) -> np.ndarray:
        """The frame as stored, (H, W) or (H, W, 3), without a copy where possible."""
        if not 0 <= index < self.num_frames:
            raise InputError(f"frame {index} is outside 0..{self.num_frames - 1}")
        # Basic indexing returns a view; np.take would copy the frame every time.
        slicer: list = [slice(None)] * self.array.ndim
        slicer[self._np_axis] = int(index)
        return self.array[tuple(slicer)]

    def frame(self, index: int) -> np.ndarray:
        """The frame as float32 in [0, 1], (H, W) or (H, W, 3)."""
        return self.window.apply(self.raw_frame(index))

    def is_blank(self, index: int) -> bool:
        """Whether every pixel of the frame holds the same value (a black or frozen-out
        frame): there is nothing on it for a model to follow."""
        raw = self.raw_frame(index)
        return bool(raw.size) and bool(np.all(raw == raw.flat[0]))

    def _sample_indices(self, count: int = 16) -> list[int]:
        return sorted(set(np.linspace(0, self.num_frames - 1, min(count, self.num_frames)).astype(int)))

    def _check_finite(self) -> None:
        if not np.issubdtype(self.array.dtype, np.floating):
            return
        for index in range(self.num_frames):
            if not np.isfinite(self.raw_frame(index)).all():
                raise InputError(
                    f"frame {index} contains NaN or infinite values; replace them "
                    "(for example with numpy.nan_to_num) before segmenting"
                )

    def _check_intensity_mask(self, mask) -> np.ndarray | None:
        if mask is None:
            return None
        mask = np.asarray(mask, dtype=bool)
        if self.axis != "K" or mask.shape != self.frame_shape:
            raise InputError(
                f"intensity mask of shape {mask.shape} does not fit frames of shape {self.frame_shape} "
                f"along {self.axis}; it must be one (H, W) mask for frames along K"
            )
        return mask if mask.any() else None

    def _choose_window(self, normalization: str) -> IntensityWindow:
        if normalization == "none":
            return IntensityWindow(0.0, 1.0)
        if normalization == "auto" and self.array.dtype in (np.uint8, bool):
            return IntensityWindow(0.0, 1.0 if self.array.dtype == bool else 255.0)
        pick = self.intensity_mask if self.intensity_mask is not None else slice(None)
        sample = np.concatenate([self.raw_frame(i)[pick].ravel() for i in self._sample_indices()])
        sample = sample.astype(np.float64)
        if normalization == "auto" and _eight_bit_values(sample):
            return IntensityWindow(0.0, 255.0)
        if normalization == "auto":
            low, high = np.percentile(sample, [0.5, 99.5])
        elif normalization == "minmax":
            low, high = float(sample.min()), float(sample.max())
        else:
            raise InputError(
                f"normalization must be 'auto', 'minmax' or 'none'; got {normalization!r}"
            )
        if high <= low:  # flat image: keep it flat but valid
            high = low + 1.0
        return IntensityWindow(float(low), float(high))

    def assemble(self, masks: Mapping[int, np.ndarray] | Iterable[np.ndarray], dtype=np.uint8) -> np.ndarray:
        """Put per-frame masks back into the input's voxel layout (K, J, I).

        ``masks`` maps frame index to an (H, W) array; frames not given are zero.
        """
        out = np.zeros(self.array.shape[:3], dtype=dtype)
        items = masks.items() if isinstance(masks, Mapping) else enumerate(masks)
        for index, mask in items:
            mask = np.asarray(mask)
            if mask.shape != self.frame_shape:
                raise InputError(
                    f"mask for frame {index} has shape {mask.shape}, frames are {self.frame_shape}"
                )
            slicer = [slice(None)] * 3
            slicer[self._np_axis] = index
            out[tuple(slicer)] = mask
        return out
