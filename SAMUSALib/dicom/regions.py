"""The Sequence of Ultrasound Regions (0018,6011): where the calibrated image is.

An ultrasound DICOM stores its pixel spacing only per region: a rectangle of the
frame with its own physical units (`PhysicalUnitsXDirection`, 3 = cm) and deltas
(`PhysicalDeltaX/Y`, physical units per pixel). A frame may hold several regions: a 2D
B-mode image, a Doppler spectrum, an M-mode strip, each with different units. The
spacing of a segmentation comes from the 2D tissue region that holds what is segmented.

Coordinates are pixels: x the column, y the row; region corners are inclusive, as in
the standard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

SPATIAL_FORMAT_2D = 1
"""RegionSpatialFormat 1: a 2D image (B-mode); 2 M-mode, 3 spectral, 4 waveform, 5 graphics."""
DATA_TYPE_TISSUE = 1
"""RegionDataType 1: tissue; 2 colour flow, 3 PW spectral Doppler, ..."""
UNITS_CM = 3
"""PhysicalUnitsX/YDirection 3: centimetres (0 none, 1 percent, 2 dB, 4 seconds, ...)."""
CM_TO_MM = 10.0
UNBOUNDED = 2**31 - 1


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of the Sequence of Ultrasound Regions, in pixels and its own units."""

    index: int
    x0: int
    y0: int
    x1: int
    y1: int
    spatial_format: int
    data_type: int
    units_x: int
    units_y: int
    delta_x: float
    delta_y: float

    @property
    def is_calibrated_2d(self) -> bool:
        """A 2D region whose both axes are in centimetres with positive deltas."""
        return (
            self.spatial_format in (SPATIAL_FORMAT_2D, 0)  # 0: the (type 1) attribute is missing
            and self.units_x == UNITS_CM
            and self.units_y == UNITS_CM
            and self.delta_x != 0
            and self.delta_y != 0
            and bool(np.isfinite([self.delta_x, self.delta_y]).all())
        )

    @property
    def spacing_mm(self) -> tuple[float, float]:
        """(x, y) pixel spacing in millimetres (a negative delta only flips the axis's sense)."""
        return abs(self.delta_x) * CM_TO_MM, abs(self.delta_y) * CM_TO_MM

    def clipped(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) inside a height x width frame, or None if the region misses it."""
        x0, y0 = max(self.x0, 0), max(self.y0, 0)
        x1, y1 = min(self.x1, width - 1), min(self.y1, height - 1)
        if x1 < x0 or y1 < y0:
            return None
        return x0, y0, x1, y1

    def area(self, height: int, width: int) -> int:
        box = self.clipped(height, width)
        return 0 if box is None else (box[2] - box[0] + 1) * (box[3] - box[1] + 1)

    def contains(self, x: float, y: float) -> bool:
        return self.x0 - 0.5 <= x <= self.x1 + 0.5 and self.y0 - 0.5 <= y <= self.y1 + 0.5

    def mask(self, height: int, width: int) -> np.ndarray:
        """(H, W) bool: True inside the region."""
        out = np.zeros((height, width), dtype=bool)
        box = self.clipped(height, width)
        if box is not None:
            out[box[1]: box[3] + 1, box[0]: box[2] + 1] = True
        return out

    def describe(self) -> str:
        return f"region {self.index} (x {self.x0}..{self.x1}, y {self.y0}..{self.y1})"


def _check_one_spacing(chosen: UltrasoundRegion, candidates: Sequence[UltrasoundRegion], points) -> None:
    """Refuse prompts spread over regions of different spacing: the output has one grid, so
    objects in the other region came out at the wrong size (half, for 0.1 against 0.2 mm),
    while the warning said their points lay outside every region."""
    for region in candidates:
        inside = [p for p in points if region.contains(*p) and not chosen.contains(*p)]
        if inside and not np.allclose(region.spacing_mm, chosen.spacing_mm, rtol=1e-3):
            raise InputError(
                f"the prompts lie in two calibrated ultrasound regions of different pixel spacing: "
                f"{chosen.describe()} at {_mm(chosen)} and {region.describe()} at {_mm(region)} "
                f"(first point there: {inside[0]}); a segmentation has one grid, so segment the objects "
                "of each region in a run of their own"
            )


def _mm(region: UltrasoundRegion) -> str:
    x, y = region.spacing_mm
    return f"{x:g} x {y:g} mm"


def _number(item, keyword: str, default=0):
    value = item.get(keyword)
    if value is None or value == "":
        return default
    try:
        return type(default)(value)
    except (TypeError, ValueError):
        return default


def parse_regions(dataset) -> list[UltrasoundRegion]:
    """Every item of the dataset's Sequence of Ultrasound Regions (empty list if none)."""
    regions = []
    for index, item in enumerate(dataset.get("SequenceOfUltrasoundRegions") or []):
        regions.append(UltrasoundRegion(
            index=index,
            x0=_number(item, "RegionLocationMinX0"),
            y0=_number(item, "RegionLocationMinY0"),
            x1=_number(item, "RegionLocationMaxX1", UNBOUNDED),  # missing: to the frame's edge
            y1=_number(item, "RegionLocationMaxY1", UNBOUNDED),
            spatial_format=_number(item, "RegionSpatialFormat"),
            data_type=_number(item, "RegionDataType"),
            units_x=_number(item, "PhysicalUnitsXDirection"),
            units_y=_number(item, "PhysicalUnitsYDirection"),
            delta_x=_number(item, "PhysicalDeltaX", 0.0),
            delta_y=_number(item, "PhysicalDeltaY", 0.0),
        ))
    return regions


def choose_region(
    regions: Sequence[UltrasoundRegion],
    height: int,
    width: int,
    points: Iterable[Sequence[float]] | None = None,
) -> UltrasoundRegion | None:
    """The calibrated 2D region that holds the image, or None when there is none.

    With ``points`` ((x, y) pixels, e.g. every prompt), the largest calibrated region
    containing all of them; if none contains them all, the one containing the most
    (a warning names the points left outside). Without points: the largest tissue
    region, else the largest calibrated 2D region of any data type.
    """
    candidates = [r for r in regions if r.is_calibrated_2d and r.area(height, width) > 0]
    if not candidates:
        return None
    points = [tuple(map(float, p)) for p in (points or [])]
    if points:
        counts = {r.index: sum(r.contains(x, y) for x, y in points) for r in candidates}
        best = max(counts.values())
        holding = [r for r in candidates if counts[r.index] == best]
        chosen = max(holding, key=lambda r: (r.data_type == DATA_TYPE_TISSUE, r.area(height, width)))
        if best < len(points):
            _check_one_spacing(chosen, candidates, points)
            outside = [p for p in points if not any(r.contains(*p) for r in candidates)]
            if outside:
                log.warning(
                    "%d prompt point(s) lie outside every calibrated ultrasound region (first: %s); "
                    "the spacing comes from %s", len(outside), outside[0], chosen.describe(),
                )
        return chosen
    return max(candidates, key=lambda r: (r.data_type == DATA_TYPE_TISSUE, r.area(height, width)))
