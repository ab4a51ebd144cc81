"""DICOM SEG out (and back in) with highdicom: segmentations PACS and Slicer can load.

One segment per object, in increasing object id: its label is the object's name, its
recommended display colour the object's colour, its tracking id "SAMUSA object N" (so
ids survive a round trip), algorithm type SEMIAUTOMATIC (a model guided by prompts).
Each frame of the SEG references the source instance and the source frame it segments
(Derivation Image / Source Image Sequence with ReferencedFrameNumber); empty frames are
left out.

Geometry: ultrasound cines have no Frame of Reference and no plane positions, and
highdicom only writes a multi-frame SEG in a frame of reference (dcmqi, which Slicer's
QuantitativeReporting uses to read SEG, needs plane positions too). For such a source
the SEG gets its own new Frame of Reference UID with planes on the grid the .seg.nrrd
uses: x/y spacing from the ultrasound region, frames 1 mm apart along K, origin 0. A
source that has a frame of reference and plane positions keeps its own.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import InputError
from ..frames import Geometry
from ..io import atomic_output, check_color, check_object_id, default_color, default_name
from .reading import DicomImage

SEG_OUTPUT_SUFFIXES = (".dcm", ".dicom")
TRACKING_PREFIX = "SAMUSA object "
SERIES_NUMBER = 9901
"""High, so the SEG series sorts after the scanner's own series in a PACS viewer."""


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("SAMUSALib")
    except PackageNotFoundError:
        return "0"


def _with_plane_geometry(source, geometry: Geometry, count: int):
    """A copy of the source header with a frame of reference and per-frame plane positions
    on `geometry`'s grid, when the source has none (see the module docstring)."""
    import highdicom as hd
    from highdicom.spatial import get_image_coordinate_system
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    view = copy.deepcopy(source)
    if get_image_coordinate_system(view) is not None:
        return view
    if "FrameOfReferenceUID" not in view:
        view.FrameOfReferenceUID = hd.UID()
    matrix = geometry.ijk_to_lps()
    direction = np.reshape(geometry.direction, (3, 3))
    if "NumberOfFrames" not in view and count == 1:
        # a single-frame image: highdicom reads its plane from the top-level attributes
        view.PixelSpacing = [float(geometry.spacing[1]), float(geometry.spacing[0])]
        view.SliceThickness = float(geometry.spacing[2])
        view.ImageOrientationPatient = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
        view.ImagePositionPatient = [float(v) for v in (matrix @ [0.0, 0.0, 0.0, 1.0])[:3]]
        return view
    measures = Dataset()
    measures.PixelSpacing = [float(geometry.spacing[1]), float(geometry.spacing[0])]  # row, column spacing
    measures.SliceThickness = float(geometry.spacing[2])
    measures.SpacingBetweenSlices = float(geometry.spacing[2])
    orientation = Dataset()
    orientation.ImageOrientationPatient = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    view.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in range(count):
        position = Dataset()
        position.ImagePositionPatient = [float(v) for v in (matrix @ [0.0, 0.0, float(k), 1.0])[:3]]
        item = Dataset()
        item.PlanePositionSequence = Sequence([position])
        frames.append(item)
    view.PerFrameFunctionalGroupsSequence = Sequence(frames)
    if "NumberOfFrames" not in view:
        view.NumberOfFrames = count
    return view


def write_dicom_seg(
    path: str | os.PathLike,
    masks: Mapping[int, np.ndarray],
    source: DicomImage,
    names: Mapping[int, str] | None = None,
    colors: Mapping[int, tuple[float, float, float]] | None = None,
    *,
    series_description: str = "SAMUSA segmentation",
) -> Path:
    """Write ``masks`` ({object id: (T, H, W) mask on the source's frames}) as a DICOM SEG
    referencing ``source`` (from read_dicom), atomically."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    path = Path(path)
    if path.suffix.lower() not in SEG_OUTPUT_SUFFIXES:
        raise InputError(f"DICOM SEG file name must end with .dcm; use for example {path.with_suffix('.dcm')}")
    if not isinstance(source, DicomImage):
        raise InputError("a DICOM SEG needs the DICOM image it segments (from read_dicom) as its source")
    if not masks:
        raise InputError("there are no masks to write; segment at least one object first")
    names, colors = dict(names or {}), dict(colors or {})
    shape = tuple(source.array.shape[:3])
    ids = sorted(check_object_id(i) for i in masks)
    stack = np.zeros(shape + (len(ids),), dtype=bool)
    descriptions = []
    version = _software_version()
    for number, obj_id in enumerate(ids, start=1):
        mask = np.asarray(masks[obj_id])
        if mask.shape != shape:
            raise InputError(
                f"mask of object {obj_id} has shape {mask.shape} but the DICOM source has {shape} (frames, rows, "
                "columns); segment the same file you write the SEG for"
            )
        stack[..., number - 1] = mask != 0
        rgb = check_color(obj_id, colors[obj_id]) if obj_id in colors else default_color(obj_id)
        label = " ".join(str(names.get(obj_id, default_name(obj_id))).split())[:64] or default_name(obj_id)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="SAMUSA", version=version, family=codes.cid7162.ArtificialIntelligence,
            ),
            tracking_id=f"{TRACKING_PREFIX}{obj_id}",
            tracking_uid=hd.UID(),
            display_color=hd.color.CIELabColor.from_rgb(*(int(round(c * 255)) for c in rgb)),
        ))
    view = _with_plane_geometry(source.dataset, source.geometry, shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom warns about the source's odd person names and the like
        try:
            seg = hd.seg.Segmentation(
                source_images=[view],
                pixel_array=stack,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=SERIES_NUMBER,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="SAMUSA",
                manufacturer_model_name="SAMUSA",
                software_versions=version,
                device_serial_number="SAMUSA",
                content_label="SAMUSA",
                content_description=series_description[:64],
                omit_empty_frames=bool(stack.any()),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"could not build a DICOM SEG for {source.path}: {exc}") from exc
    seg.SeriesDescription = series_description[:64]
    seg.ContentCreatorName = ""  # type 2: present, empty (no person made it); dcmqi warns when absent
    with atomic_output(path) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return path


def read_dicom_seg(
    path: str | os.PathLike, num_frames: int | None = None
) -> tuple[dict[int, np.ndarray], dict[int, str], dict[int, tuple[float, float, float]]]:
    """Read a DICOM SEG of one source image into ({object id: (T, H, W) bool}, names, colours).

    ``num_frames``: the source's frame count (default: the highest frame the SEG
    references). Object ids come from SAMUSA's tracking ids, else the segment numbers.
    """
    import highdicom as hd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            seg = hd.seg.segread(path)
        except Exception as exc:  # noqa: BLE001 - pydicom/highdicom raise many types
            raise InputError(f"could not read {path} as a DICOM SEG: {exc}") from exc
        items = [item for frame in seg.PerFrameFunctionalGroupsSequence
                 for derivation in frame.get("DerivationImageSequence", [])
                 for item in derivation.get("SourceImageSequence", [])]
        sources = {(item.ReferencedSOPInstanceUID, int(item.get("ReferencedFrameNumber", 1) or 1)) for item in items}
        uids = {uid for uid, _ in sources}
        if len(uids) != 1:
            raise InputError(f"{path} segments {len(uids)} source images; read_dicom_seg reads a SEG of one image or cine")
        uid = uids.pop()
        count = num_frames or max(n for _, n in sources)
        numbers = [int(s.SegmentNumber) for s in seg.SegmentSequence]
        if not any("ReferencedFrameNumber" in item for item in items):  # a single-frame source image
            pixels = seg.get_pixels_by_source_instance(
                [uid], segment_numbers=numbers, assert_missing_frames_are_empty=True, combine_segments=False,
            )
        else:
            pixels = seg.get_pixels_by_source_frame(
                uid, source_frame_numbers=list(range(1, count + 1)), segment_numbers=numbers,
                assert_missing_frames_are_empty=True, combine_segments=False,
            )
    masks, names, colors = {}, {}, {}
    for index, item in enumerate(seg.SegmentSequence):
        tracking = str(item.get("TrackingID", ""))
        obj_id = int(tracking[len(TRACKING_PREFIX):]) if tracking.startswith(TRACKING_PREFIX) and tracking[len(TRACKING_PREFIX):].isdigit() else int(item.SegmentNumber)
        masks[obj_id] = np.ascontiguousarray(pixels[..., index] != 0)
        names[obj_id] = str(item.SegmentLabel)
        if "RecommendedDisplayCIELabValue" in item:
            rgb = hd.color.CIELabColor.from_dicom_value(list(item.RecommendedDisplayCIELabValue)).to_rgb()
            colors[obj_id] = tuple(round(c / 255.0, 4) for c in rgb)
    return masks, names, colors
