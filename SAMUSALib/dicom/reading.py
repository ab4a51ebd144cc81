"""Ultrasound DICOM in: pixels, calibrated spacing, frame times, the image region.

`read_dicom` reads single-frame and multi-frame images (US Image Storage, US
Multi-frame Image Storage and any other DICOM image), MONOCHROME1/2, RGB, YBR_FULL,
YBR_FULL_422 and PALETTE COLOR (colour output is RGB), uncompressed or in any transfer
syntax pydicom decodes with an installed plugin (requirements.txt installs pylibjpeg
with pylibjpeg-libjpeg and pylibjpeg-openjpeg, and pyjpegls; Pillow decodes JPEG
baseline too). An Enhanced US Volume is read as one 3D volume from its functional
groups.

Arrays come back in the cine convention of SAMUSALib.io: (T, H, W) or (T, H, W, 3), a
single frame as (1, H, W[, 3]); x is the column, y the row. The geometry's x/y spacing
is the chosen ultrasound region's PhysicalDeltaX/Y in mm (DICOM stores cm); frames are
1 mm apart along K (a cine has no third spatial axis: the time axis is
`frame_times_ms`), origin 0 and identity direction, the grid a `.seg.nrrd` is written on.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..frames import Geometry
from .regions import UNBOUNDED, UltrasoundRegion, choose_region, parse_regions

log = logging.getLogger(__name__)

DICOM_SUFFIXES = (".dcm", ".dicom")
ENHANCED_US_VOLUME = "1.2.840.10008.5.1.4.1.1.6.2"
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
DICOMDIR = "1.2.840.10008.1.3.10"
FALLBACK_SPACING_MM = 1.0

# What to install for each compressed transfer syntax (pydicom names the plugins, we name the packages).
_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
_JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
_JPEG_2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
              "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")
_VIDEO = tuple(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109))


def install_hint(transfer_syntax: str) -> str:
    """The pip command that gives pydicom a decoder for this transfer syntax."""
    if transfer_syntax in _JPEG:
        return "pip install pylibjpeg pylibjpeg-libjpeg"
    if transfer_syntax in _JPEG_LS:
        return "pip install pyjpegls (or pylibjpeg pylibjpeg-libjpeg)"
    if transfer_syntax in _JPEG_2000:
        return "pip install pylibjpeg pylibjpeg-openjpeg"
    if transfer_syntax == "1.2.840.10008.1.2.5":
        return "pip install pylibjpeg pylibjpeg-rle"
    return "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pyjpegls"


@dataclass
class DicomImage:
    """A DICOM image or cine ready to segment.

    ``array``: (T, H, W) or (T, H, W, 3) (an Enhanced US Volume: (K, J, I)).
    ``geometry``: spacing from ``region`` (mm), or 1 mm when no region is calibrated.
    ``frame_times_ms``: time of each frame from the first (FrameTime or FrameTimeVector),
    or None when the file gives none. ``dataset``: the header, pixel data removed (the
    source a DICOM SEG refers to).
    """

    path: Path
    array: np.ndarray
    geometry: Geometry
    dataset: object
    frame_times_ms: tuple[float, ...] | None = None
    regions: list[UltrasoundRegion] = field(default_factory=list)
    region: UltrasoundRegion | None = None
    is_volume: bool = False

    @property
    def num_frames(self) -> int:
        return int(self.array.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return int(self.array.shape[1]), int(self.array.shape[2])

    @property
    def intensity_mask(self) -> np.ndarray | None:
        """(H, W) bool, True inside the chosen region: burned-in text, calipers and overlay
        panels outside it are left out of intensity normalisation. None: use the whole frame."""
        if self.region is None or self.is_volume:
            return None
        return self.region.mask(*self.frame_shape)

    def for_points(self, points: Iterable[Sequence[float]]) -> "DicomImage":
        """The same image with the region (and spacing) that holds these (x, y) pixel points."""
        if self.is_volume or len(self.regions) < 2:
            return self
        region = choose_region(self.regions, *self.frame_shape, points=points)
        if region == self.region:
            return self
        log.info("prompts lie in ultrasound %s: spacing %s mm", region.describe(), region.spacing_mm)
        return replace(self, region=region, geometry=_cine_geometry(region))

    def nrrd_metadata(self) -> dict[str, str]:
        """Key/value fields for the .seg.nrrd header: the time axis and where the spacing came from."""
        fields = {"SAMUSA_SourceSOPInstanceUID": str(getattr(self.dataset, "SOPInstanceUID", ""))}
        if self.frame_times_ms is not None:
            fields["SAMUSA_TimeAxis"] = "K"
            fields["SAMUSA_TimeUnit"] = "ms"
            fields["SAMUSA_FrameTimes"] = " ".join(f"{t:.10g}" for t in self.frame_times_ms)
        if self.region is not None:
            r = self.region
            fields["SAMUSA_UltrasoundRegion"] = f"{r.index} {r.x0} {r.y0} {r.x1} {r.y1}"
        return fields


def is_dicom(path: str | os.PathLike) -> bool:
    """True for a file with the DICOM preamble ('DICM' at byte 128), whatever its name."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _sop_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return name if name and name != uid else (uid or "no SOP class")


def _open(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        try:  # files written without the preamble and file meta (pydicom's save_as can)
            dataset = pydicom.dcmread(path, force=True)
            if "SOPClassUID" in dataset or "PixelData" in dataset:
                _note_transfer_syntax(dataset)
                return dataset
        except Exception:  # noqa: BLE001 - anything here means "not DICOM"
            pass
        raise InputError(f"could not read {path}: it is not a DICOM file or it is damaged (no DICOM header)") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise InputError(f"could not read {path}: the DICOM file is damaged or truncated ({exc})") from exc


def _note_transfer_syntax(dataset) -> None:
    """Give a dataset read without file meta the transfer syntax it was found to be in."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if getattr(dataset, "file_meta", None) is None:
        dataset.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" in dataset.file_meta:
        return
    implicit, little = getattr(dataset, "original_encoding", (True, True))
    dataset.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def _check_is_image(path: Path, dataset) -> None:
    if any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        sop = str(dataset.get("SOPClassUID", ""))
        if sop == SEGMENTATION_STORAGE:
            raise InputError(
                f"{path} is a DICOM SEG (a segmentation), not an image; give the ultrasound image or "
                "cine it was made from (read a SEG with SAMUSALib.dicom.seg.read_dicom_seg)"
            )
        return
    sop = str(dataset.get("SOPClassUID", ""))
    name = _sop_name(sop)
    if dataset.get("Modality") == "SR" or "SR" in name.split():
        raise InputError(
            f"{path} is a DICOM structured report ({name}), not an image; give the ultrasound "
            "image or cine it reports on"
        )
    if sop == DICOMDIR:
        raise InputError(f"{path} is a DICOMDIR (an index of files), not an image; give one of the image files it lists")
    raise InputError(f"{path} holds no image ({name}, no pixel data); give a DICOM image or cine")


def _decode(path: Path, dataset) -> np.ndarray:
    from pydicom.pixels import get_decoder

    meta = getattr(dataset, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    syntax = syntax or "1.2.840.10008.1.2"  # no file meta: implicit VR little endian
    name = _sop_name(syntax)
    if syntax in _VIDEO:
        raise InputError(
            f"{path} stores its frames as video ({name}), which pydicom does not decode; convert it "
            "to uncompressed or JPEG DICOM (e.g. gdcmconv --raw) or export the loop as an .mp4"
        )
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputError(
            f"{path} uses the transfer syntax {name}, which pydicom cannot decode; convert it to "
            "uncompressed DICOM (e.g. gdcmconv --raw)"
        ) from None
    if not decoder.is_available:
        raise InputError(
            f"{path} is compressed as {name} and no decoder for it is installed; "
            f"{install_hint(syntax)}"
        )
    try:
        return np.asarray(dataset.pixel_array)
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on bad data
        if isinstance(exc, RuntimeError) and "plugin" in str(exc).lower() and "install" in str(exc).lower():
            raise InputError(f"{path} is compressed as {name} and no decoder for it works here; {install_hint(syntax)}") from exc
        raise InputError(f"could not decode the pixels of {path} ({name}): the file is damaged or truncated ({exc})") from exc


def _to_display(dataset, array: np.ndarray) -> np.ndarray:
    """RGB for colour data (YBR is converted by pydicom, palettes applied), bright = high for gray."""
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        array = apply_color_lut(array, dataset)
        if array.dtype == np.uint16:  # 16-bit palette entries: 8 bits are what a display shows
            array = np.round(array / 257.0).astype(np.uint8)
    elif photometric == "MONOCHROME1" and np.issubdtype(array.dtype, np.integer):
        bits = int(dataset.get("BitsStored", array.dtype.itemsize * 8))
        if int(dataset.get("PixelRepresentation", 0)) == 0:
            array = ((1 << bits) - 1 - array.astype(np.int64)).astype(array.dtype)
        else:
            array = (-array.astype(np.int64)).astype(array.dtype)
    return array


def _frames_layout(path: Path, dataset, array: np.ndarray) -> np.ndarray:
    """(T, H, W) or (T, H, W, 3), whatever the number of frames and samples."""
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    colour = array.ndim >= 3 and array.shape[-1] in (3, 4) and (
        int(dataset.get("SamplesPerPixel", 1)) > 1 or str(dataset.get("PhotometricInterpretation", "")) == "PALETTE COLOR"
    )
    if colour:
        array = array[..., :3]
    spatial = array.ndim - (1 if colour else 0)
    if spatial == 2:
        array = array[np.newaxis]
    elif spatial != 3 or array.shape[0] != frames:
        raise InputError(f"{path}: pixel data of shape {array.shape} does not match its {frames} frame(s)")
    if colour and np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 1], array[..., 2]):
        array = np.ascontiguousarray(array[..., 0])  # gray stored as RGB, as io does for pictures
    return array


def _frame_times(dataset, count: int) -> tuple[float, ...] | None:
    vector = dataset.get("FrameTimeVector")
    if vector is not None:
        if isinstance(vector, (str, bytes)) or not hasattr(vector, "__iter__"):
            vector = [vector]
        try:
            steps = [float(v) for v in vector]
        except (TypeError, ValueError):
            steps = []
        if len(steps) == count and all(np.isfinite(steps)) and min(steps[1:], default=0.0) >= 0:
            return tuple(float(t) for t in np.cumsum([0.0] + steps[1:]))
        log.warning("FrameTimeVector has %d values for %d frames; frame times ignored", len(steps), count)
    frame_time = dataset.get("FrameTime")
    if frame_time not in (None, ""):
        try:
            step = float(frame_time)
        except (TypeError, ValueError):
            step = float("nan")
        if np.isfinite(step) and step > 0:
            return tuple(float(k * step) for k in range(count))
        log.warning("FrameTime %r is not a positive number; frame times ignored", frame_time)
    return None


def _cine_geometry(region: UltrasoundRegion | None) -> Geometry:
    if region is None:
        return Geometry((FALLBACK_SPACING_MM, FALLBACK_SPACING_MM, 1.0))
    dx, dy = region.spacing_mm
    return Geometry((dx, dy, 1.0))


def _functional(dataset, index: int, sequence: str):
    """The item of functional group `sequence` for frame `index` (per-frame first, then shared)."""
    for groups, pick in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        items = dataset.get(groups)
        value = items[pick].get(sequence) if items and len(items) > pick else None
        if value:
            return value[0]
    return None


def _volume_geometry(path: Path, dataset, count: int) -> Geometry:
    """The 3D grid of an Enhanced US Volume from its plane positions, orientation and pixel measures."""
    def unreadable(what: str) -> InputError:
        return InputError(
            f"{path} is an Enhanced US Volume whose functional groups give no {what}, so it cannot be read "
            "as a 3D volume; export it from the scanner as a US multi-frame cine or as NRRD"
        )

    measures = _functional(dataset, 0, "PixelMeasuresSequence")
    if measures is None or "PixelSpacing" not in measures:
        raise unreadable("pixel spacing (PixelMeasuresSequence)")
    row_spacing, col_spacing = (float(v) for v in measures.PixelSpacing)
    orientation = None
    for sequence, keyword in (("PlaneOrientationVolumeSequence", "ImageOrientationVolume"),
                              ("PlaneOrientationSequence", "ImageOrientationPatient")):
        item = _functional(dataset, 0, sequence)
        if item is not None and keyword in item:
            orientation = np.asarray([float(v) for v in item[keyword]])
            position_keys = {"PlaneOrientationVolumeSequence": ("PlanePositionVolumeSequence", "ImagePositionVolume"),
                             "PlaneOrientationSequence": ("PlanePositionSequence", "ImagePositionPatient")}[sequence]
            break
    if orientation is None or orientation.size != 6:
        raise unreadable("plane orientation (PlaneOrientationVolumeSequence)")
    positions = []
    for index in range(count):
        item = _functional(dataset, index, position_keys[0])
        if item is None or position_keys[1] not in item:
            raise unreadable(f"plane position for frame {index + 1} ({position_keys[0]})")
        positions.append([float(v) for v in item[position_keys[1]]])
    positions = np.asarray(positions)
    row, column = orientation[:3], orientation[3:]
    if count > 1:
        steps = np.diff(positions, axis=0)
        step = positions[-1] - positions[0]
        step = step / (count - 1)
        size = float(np.linalg.norm(step))
        if size < 1e-6 or not np.allclose(steps, step, atol=1e-3 + 1e-3 * size):
            distinct = len({tuple(np.round(p, 3)) for p in positions})
            raise InputError(
                f"{path} is an Enhanced US Volume whose {count} frames do not form one evenly spaced 3D "
                f"volume ({distinct} distinct plane positions; several volumes over time?); only a single "
                "3D volume can be read: export one time point"
            )
        normal = step / size
    else:
        size = float(measures.get("SpacingBetweenSlices") or measures.get("SliceThickness") or 1.0)
        normal = np.cross(row, column)
    direction = np.column_stack([row, column, normal])
    try:
        return Geometry((col_spacing, row_spacing, size), tuple(positions[0]), tuple(direction.ravel()))
    except InputError as exc:
        raise InputError(f"{path} is an Enhanced US Volume with an invalid grid: {exc}") from exc


def read_dicom(path: str | os.PathLike, points: Iterable[Sequence[float]] | None = None) -> DicomImage:
    """Read a DICOM image, cine or Enhanced US Volume (see the module docstring).

    ``points``: (x, y) pixels (prompts) that choose among several ultrasound regions.
    Raises InputError naming the problem for a file that is not an image (an SR, a
    DICOMDIR), a compression with no decoder installed (with the package to install),
    an unreadable enhanced volume and a damaged file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give one DICOM file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on every odd value; the checks below say what matters
        dataset = _open(path)
        _check_is_image(path, dataset)
        array = _to_display(dataset, _decode(path, dataset))
    array = _frames_layout(path, dataset, array)
    sop = str(dataset.get("SOPClassUID", ""))
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in dataset:
            del dataset[keyword]
    if sop == ENHANCED_US_VOLUME:
        if array.ndim == 4:
            array = np.ascontiguousarray(array.mean(axis=-1).round().astype(array.dtype))  # a volume is gray
        geometry = _volume_geometry(path, dataset, array.shape[0])
        return DicomImage(path, array, geometry, dataset, is_volume=True)
    regions = parse_regions(dataset)
    height, width = int(array.shape[1]), int(array.shape[2])
    region = choose_region(regions, height, width, points=points)
    if region is None:
        spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
        if spacing is not None and len(spacing) == 2 and min(float(s) for s in spacing) > 0:
            geometry = Geometry((float(spacing[1]), float(spacing[0]), 1.0))
        else:
            log.warning(
                "%s has no calibrated ultrasound region (Sequence of Ultrasound Regions in cm) and no "
                "PixelSpacing: pixel spacing falls back to %g mm", path, FALLBACK_SPACING_MM,
            )
            geometry = _cine_geometry(None)
    else:
        geometry = _cine_geometry(region)
        if UNBOUNDED not in (region.x1, region.y1) and region.clipped(height, width) != (
            region.x0, region.y0, region.x1, region.y1
        ):
            log.warning("%s: ultrasound %s reaches past the %dx%d frame; clipped to it", path, region.describe(), width, height)
    times = _frame_times(dataset, array.shape[0])
    return DicomImage(path, array, geometry, dataset, times, regions, region)
