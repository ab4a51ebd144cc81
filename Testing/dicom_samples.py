"""Synthetic ultrasound DICOM written by the tests (nothing bundled, nothing to licence).

`write_us` writes what a scanner exports: US Multi-frame Image Storage (or US Image
Storage for one frame), RGB or MONOCHROME2, the spacing only in the Sequence of
Ultrasound Regions (cm), FrameTime or FrameTimeVector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
ENHANCED_US_VOLUME = "1.2.840.10008.5.1.4.1.1.6.2"


def region(x0, y0, x1, y1, delta_x_cm, delta_y_cm, *, spatial_format=1, data_type=1, units=3):
    """One Sequence of Ultrasound Regions item (corners inclusive, deltas in cm per pixel)."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RegionSpatialFormat = spatial_format
    item.RegionDataType = data_type
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    item.PhysicalUnitsXDirection = units
    item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX = float(delta_x_cm)
    item.PhysicalDeltaY = float(delta_y_cm)
    return item


def base_dataset(sop_class: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.PatientName = "Phantom^Test"
    ds.PatientID = "SAMUSA-TEST"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = "20261202"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "SAMUSA tests"
    return ds


def write_us(
    path: Path,
    frames: np.ndarray,
    *,
    regions: Sequence = (),
    frame_time: float | None = None,
    frame_time_vector: Sequence[float] | None = None,
    photometric: str | None = None,
) -> Path:
    """Write (T, H, W) gray or (T, H, W, 3) RGB frames as an ultrasound DICOM."""
    from pydicom.sequence import Sequence as DicomSequence

    frames = np.asarray(frames)
    rgb = frames.ndim == 4
    ds = base_dataset(US_MULTIFRAME if frames.shape[0] > 1 else US_IMAGE)
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if rgb else "MONOCHROME2")
    if rgb:
        ds.PlanarConfiguration = 0
    bits = frames.dtype.itemsize * 8
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if frames.shape[0] > 1:
        ds.NumberOfFrames = frames.shape[0]
        if frame_time_vector is not None:
            ds.FrameTimeVector = [float(v) for v in frame_time_vector]
            ds.FrameIncrementPointer = 0x00181065
        elif frame_time is not None:
            ds.FrameTime = float(frame_time)
            ds.FrameIncrementPointer = 0x00181063
    if regions:
        ds.SequenceOfUltrasoundRegions = DicomSequence(list(regions))
    ds.PixelData = np.ascontiguousarray(frames if frames.shape[0] > 1 else frames[0]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_enhanced_volume(
    path: Path,
    volume: np.ndarray,
    *,
    spacing=(0.4, 0.5, 0.7),
    origin=(10.0, -5.0, 3.0),
    direction=np.eye(3),
    positions: np.ndarray | None = None,
    with_positions: bool = True,
) -> Path:
    """An Enhanced US Volume: (K, J, I) uint8, geometry only in its functional groups
    (Plane Position/Orientation (Volume), Pixel Measures), as 3D probes export them."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    direction = np.asarray(direction, dtype=float)
    ds = base_dataset(ENHANCED_US_VOLUME)
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    ds.NumberOfFrames = volume.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    measures = Dataset()
    measures.PixelSpacing = [spacing[1], spacing[0]]  # row spacing (J), column spacing (I)
    measures.SliceThickness = spacing[2]
    orientation = Dataset()
    orientation.ImageOrientationVolume = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationVolumeSequence = DicomSequence([orientation])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    if positions is None:
        positions = [np.asarray(origin) + k * spacing[2] * direction[:, 2] for k in range(volume.shape[0])]
    frames = []
    for position in positions:
        item = Dataset()
        if with_positions:
            plane = Dataset()
            plane.ImagePositionVolume = [float(v) for v in position]
            item.PlanePositionVolumeSequence = DicomSequence([plane])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = np.ascontiguousarray(volume.astype(np.uint8)).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
