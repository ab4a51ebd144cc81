"""Targets and writes: the segmentation that receives an input's masks (one node for a volume,
a segmentation sequence in the cine's browser for a cine), reading and writing one segment
on given frames, and each segment's temporal window stored with the scene."""

from __future__ import annotations

import hashlib
import json
from typing import Iterable, Mapping

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

from ..errors import InputError, PromptError
from ..frames import AXES
from ..prompts import DEFAULT_COLORS, TemporalWindow
from .geometry import _image_array, _same_transform, _vtk_matrix
from .inputs import SlicerInput
from .segment_mirror import mirror_segments

ATTRIBUTE_WRITTEN = "SAMUSA.Written."  # + segment ID: JSON {frame: digest of the mask SAMUSA wrote}
ATTRIBUTE_WINDOW = "SAMUSA.Window."  # + segment ID: "start end" (inclusive), then a volume's axis

# --------------------------------------------------------------------------- segmentations


def _oriented_image(mask: np.ndarray, ijk_to_ras: np.ndarray):
    """A vtkOrientedImageData of a (K, J, I) mask in the given voxel geometry."""
    image = slicer.vtkOrientedImageData()
    k, j, i = mask.shape
    image.SetExtent(0, i - 1, 0, j - 1, 0, k - 1)
    image.SetImageToWorldMatrix(_vtk_matrix(ijk_to_ras))
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.asarray(mask, dtype=np.uint8).ravel()
    return image


def _labelmap_name() -> str:
    return slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()


def _zero_image(shape: tuple[int, int, int], ijk_to_ras: np.ndarray):
    """An all-zero uint8 vtkOrientedImageData on a (K, J, I) grid (allocated once, no copy)."""
    image = slicer.vtkOrientedImageData()
    k, j, i = shape
    image.SetExtent(0, i - 1, 0, j - 1, 0, k - 1)
    image.SetImageToWorldMatrix(_vtk_matrix(ijk_to_ras))
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = 0
    return image


def _read_segment(segmentation_node, segment_id: str, shape: tuple[int, int, int], ijk_to_ras: np.ndarray) -> np.ndarray:
    """A segment's voxels resampled (nearest) onto a (K, J, I) grid, as bool, whatever the
    extent and geometry of its labelmap (larger, smaller, oblique): the output has exactly
    the grid's extent."""
    labelmap = slicer.vtkOrientedImageData()
    if not segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap):
        return np.zeros(shape, dtype=bool)
    extent = labelmap.GetExtent()
    if labelmap.GetPointData().GetScalars() is None or extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4]:
        return np.zeros(shape, dtype=bool)
    reference = _oriented_image(np.zeros(shape, dtype=np.uint8), ijk_to_ras)
    resampled = slicer.vtkOrientedImageData()
    # padImage off: the output keeps the reference's extent (on, it grows to the union of
    # both extents and no longer fits the grid)
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, False
    )
    if tuple(resampled.GetDimensions()) != tuple(reversed(shape)):
        raise InputError(
            f"segment '{segment_id}' of '{segmentation_node.GetName()}' could not be resampled onto the "
            f"image's grid (got {resampled.GetDimensions()}, need {tuple(reversed(shape))})"
        )
    return _image_array(resampled).reshape(shape) > 0


def _image_to_world(image) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _internal_labelmap(segmentation_node, segment_id: str, ijk_to_ras: np.ndarray):
    """(internal labelmap, label value) of a segment when its source representation is a
    binary labelmap on the given voxel grid (same IJK-to-RAS), else None: then voxels can
    be read and written in place, slice by slice, with no copy of the whole segment."""
    segmentation = segmentation_node.GetSegmentation()
    segment = segmentation.GetSegment(segment_id)
    if segment is None or segmentation.GetSourceRepresentationName() != _labelmap_name():
        return None
    image = segment.GetRepresentation(_labelmap_name())
    if image is None or image.GetPointData().GetScalars() is None:
        return None
    if image.GetPointData().GetScalars().GetNumberOfComponents() != 1:
        return None
    if not np.allclose(_image_to_world(image), ijk_to_ras, atol=1e-6):
        return None
    return image, segment.GetLabelValue()


def _extent_view(image) -> tuple[np.ndarray, tuple[int, ...]]:
    """The voxels of an image as a (K, J, I) numpy view, and its extent."""
    extent = image.GetExtent()
    dims = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
    if min(dims) <= 0:
        return np.zeros((0, 0, 0), np.uint8), extent
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims), extent


def _is_empty(image) -> bool:
    extent = image.GetExtent()
    scalars = image.GetPointData().GetScalars()
    return scalars is None or scalars.GetNumberOfTuples() == 0 or extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4]


def _shares_layer(segmentation_node, segment_id: str, image) -> bool:
    segmentation = segmentation_node.GetSegmentation()
    address = image.GetAddressAsString("vtkOrientedImageData")
    for index in range(segmentation.GetNumberOfSegments()):
        other_id = segmentation.GetNthSegmentID(index)
        if other_id == segment_id:
            continue
        other = segmentation.GetNthSegment(index).GetRepresentation(_labelmap_name())
        if other is not None and other.GetAddressAsString("vtkOrientedImageData") == address:
            return True
    return False


def _read_region(segmentation_node, segment_id: str, shape: tuple[int, int, int], ijk_to_ras: np.ndarray,
                 region: tuple[slice, slice, slice]) -> np.ndarray | None:
    """The segment's voxels in a (K, J, I) region of the grid, read in place; None when the
    labelmap is not on the grid (see `_internal_labelmap`)."""
    found = _internal_labelmap(segmentation_node, segment_id, ijk_to_ras)
    if found is None:
        return None
    image, label = found
    view, extent = _extent_view(image)
    starts = [r.start or 0 for r in region]
    stops = [shape[a] if r.stop is None else r.stop for a, r in enumerate(region)]
    out = np.zeros([b - a for a, b in zip(starts, stops)], dtype=bool)
    lows = (extent[4], extent[2], extent[0])  # (k, j, i) of view[0, 0, 0]
    source, target = [], []
    for axis in range(3):
        low = max(starts[axis], lows[axis])
        high = min(stops[axis], lows[axis] + view.shape[axis])
        if high <= low:
            return out
        source.append(slice(low - lows[axis], high - lows[axis]))
        target.append(slice(low - starts[axis], high - starts[axis]))
    out[tuple(target)] = view[tuple(source)] == label
    return out


def _full_extent_labelmap(segmentation_node, segment_id: str, shape: tuple[int, int, int], ijk_to_ras: np.ndarray):
    """The segment's internal labelmap covering the whole grid, for writing in place (grown
    to the grid's extent once, when it is not shared with other segments). None when the
    labelmap is not on the grid or is a shared layer of another extent."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    empty = segment.GetRepresentation(_labelmap_name()) if segment is not None else None
    if (empty is not None and _is_empty(empty)
            and segmentation_node.GetSegmentation().GetSourceRepresentationName() == _labelmap_name()
            and not _shares_layer(segmentation_node, segment_id, empty)):
        empty.ShallowCopy(_zero_image(shape, ijk_to_ras))  # a new segment: no voxels yet
    found = _internal_labelmap(segmentation_node, segment_id, ijk_to_ras)
    if found is None:
        return None
    image, label = found
    full = (0, shape[2] - 1, 0, shape[1] - 1, 0, shape[0] - 1)
    if tuple(image.GetExtent()) != full:
        if _shares_layer(segmentation_node, segment_id, image):
            return None
        current = _read_region(segmentation_node, segment_id, shape, ijk_to_ras, (slice(None),) * 3)
        grown = _oriented_image(current, ijk_to_ras)
        view, _ = _extent_view(grown)
        view *= np.uint8(label) if 0 < label < 256 else np.uint8(1)
        if not 0 < label < 256:
            label = 1
            segmentation_node.GetSegmentation().GetSegment(segment_id).SetLabelValue(1)
        image.DeepCopy(grown)
    return image, label


def _write_region(segmentation_node, segment_id: str, mask: np.ndarray, shape: tuple[int, int, int],
                  ijk_to_ras: np.ndarray, region: tuple) -> bool:
    """Write a region's voxels of one segment in place; False when that cannot be done
    (then the caller writes the whole segment)."""
    found = _full_extent_labelmap(segmentation_node, segment_id, shape, ijk_to_ras)
    if found is None:
        return False
    image, label = found
    view, _ = _extent_view(image)
    mask = np.asarray(mask, dtype=bool)
    current = view[region]
    if np.any((current != 0) & (current != label) & mask):
        return False  # another segment of a shared layer is there: Slicer's write keeps it
    current[mask] = label
    current[~mask & (current == label)] = 0
    image.Modified()
    segmentation_node.GetSegmentation().GetSegment(segment_id).Modified()
    return True


def _write_segment(segmentation_node, segment_id: str, mask: np.ndarray, ijk_to_ras: np.ndarray) -> None:
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(_oriented_image(mask, ijk_to_ras), segmentation_node, segment_id, logic.MODE_REPLACE):
        raise InputError(f"could not write segment '{segment_id}' of '{segmentation_node.GetName()}'")


def _segment_exists(segmentation_node, segment_id: str) -> bool:
    return bool(segment_id) and segmentation_node.GetSegmentation().GetSegment(segment_id) is not None


def add_segment(segmentation_node, name: str | None = None, color=None, segment_id: str = "") -> str:
    """Add an empty segment (name and colour chosen if not given); returns its ID."""
    segmentation = segmentation_node.GetSegmentation()
    number = segmentation.GetNumberOfSegments() + 1
    color = tuple(color) if color is not None else DEFAULT_COLORS[(number - 1) % len(DEFAULT_COLORS)]
    return segmentation.AddEmptySegment(segment_id, name or f"Segment_{number}", color)


class SegmentationTarget:
    """Where masks go: the segments of one segmentation node (volume) or of one
    segmentation per frame (sequence). Writes touch one segment on the frames given."""

    kind = "abstract"

    def __init__(self, input_: SlicerInput, segmentation_node) -> None:
        self.input = input_
        self.node = segmentation_node  # the node the user sees (a sequence's proxy)

    # ---- segments
    def segment_name(self, segment_id: str) -> str:
        segment = self.node.GetSegmentation().GetSegment(segment_id)
        return segment.GetName() if segment is not None else segment_id

    def ensure_segment(self, segment_id: str | None = None, name: str | None = None, color=None) -> str:
        """The segment with this ID, created (empty, in every frame) when missing."""
        if segment_id and _segment_exists(self.node, segment_id):
            return segment_id
        return add_segment(self.node, name, color, segment_id or "")

    # ---- windows (stored with the scene, per segment)
    def _state_holder(self):
        return self.node

    def _window_axis(self) -> str | None:
        """The frame axis a window is set along: a volume's slicing axis (None for a cine,
        whose frames are time)."""
        return self.input.axis if self.input.kind == "volume" else None

    def window(self, segment_id: str) -> TemporalWindow | None:
        """The segment's start-end window, or None. A volume's window holds along the axis
        it was set on only: read along another axis, slices 1-3 of K were sagittal slices
        1-3, and propagation overwrote slices that cut through the masks computed along K.
        (A window stored before the axis was recorded holds along any.)"""
        text = self._state_holder().GetAttribute(ATTRIBUTE_WINDOW + segment_id)
        if not text:
            return None
        start, end, *axis = text.split()
        if axis and self._window_axis() is not None and axis[0] != self._window_axis():
            return None
        return TemporalWindow(int(start), min(int(end), self.input.num_frames - 1))

    def set_window(self, segment_id: str, window: TemporalWindow | tuple[int, int] | None) -> None:
        holder = self._state_holder()
        if window is None:
            holder.RemoveAttribute(ATTRIBUTE_WINDOW + segment_id)
            return
        window = window if isinstance(window, TemporalWindow) else TemporalWindow(*map(int, window))
        window.check(self.input.num_frames)
        axis = self._window_axis()
        holder.SetAttribute(ATTRIBUTE_WINDOW + segment_id, f"{window.start} {window.end}" + (f" {axis}" if axis else ""))

    # ---- what SAMUSA wrote (stored with the scene, per segment)
    def written_record(self, segment_id: str) -> dict[int, str]:
        """{frame: digest of the mask SAMUSA last wrote there} (`mask_digest`), as saved
        with the scene; empty where none was."""
        text = self._state_holder().GetAttribute(self._written_attribute(segment_id))
        try:
            return {int(frame): str(digest) for frame, digest in json.loads(text).items()} if text else {}
        except (ValueError, AttributeError):
            return {}  # not ours to read: no frame is then known to be SAMUSA's

    def set_written_record(self, segment_id: str, record: Mapping[int, str]) -> None:
        self._state_holder().SetAttribute(self._written_attribute(segment_id),
                                          json.dumps({str(f): d for f, d in sorted(record.items())}))

    def _written_attribute(self, segment_id: str) -> str:
        """A volume read along I or J keeps its own record (frame numbers are slices along
        one axis); along K, and for a cine, the name records had before axes were told apart."""
        axis = self.input.axis if self.kind == "volume" else "K"
        return ATTRIBUTE_WRITTEN + segment_id + ("" if axis == "K" else f".{axis}")

    # ---- voxels
    def read(self, segment_id: str, frames: Iterable[int]) -> dict[int, np.ndarray]:
        raise NotImplementedError

    def stamp(self, segment_id: str, frame: int) -> tuple:
        """Changes whenever the segment's voxels on `frame` may have changed (cheap: no voxel
        is read); used to find frames edited by hand since SAMUSA wrote them."""
        raise NotImplementedError

    def write(self, segment_id: str, masks: Mapping[int, np.ndarray]) -> None:
        raise NotImplementedError


class VolumeTarget(SegmentationTarget):
    """One segmentation node in the volume's geometry; frames are slices along the axis."""

    kind = "volume"

    def __init__(self, input_: SlicerInput, segmentation_node) -> None:
        super().__init__(input_, segmentation_node)
        if not _same_transform(input_.node, segmentation_node):
            raise InputError(
                f"the segmentation '{segmentation_node.GetName()}' and the image '{input_.node.GetName()}' "
                "are under different transforms; put both under the same transform (Data module) "
                "or choose 'Create new segmentation'"
            )
        self._shape = input_.frames.array.shape[:3]
        self._matrix = input_.frame_ijk_to_ras[0]

    def _frame_slice(self, frame: int) -> tuple:
        index: list = [slice(None)] * 3
        index[AXES[self.input.axis]] = int(frame)
        return tuple(index)

    def read_all(self, segment_id: str) -> np.ndarray:
        """The segment's voxels in the volume's grid, (K, J, I) bool."""
        return _read_segment(self.node, segment_id, self._shape, self._matrix)

    def read(self, segment_id: str, frames: Iterable[int]) -> dict[int, np.ndarray]:
        """Only the slices asked for are read when the segment's labelmap is on the volume's
        grid (the usual case); otherwise the whole segment is resampled once."""
        frames = [int(f) for f in frames]
        if not frames:
            return {}
        if not _segment_exists(self.node, segment_id):
            return {f: np.zeros(self._frame_shape_of(), dtype=bool) for f in frames}
        out = {}
        for frame in frames:
            region = _read_region(self.node, segment_id, self._shape, self._matrix, self._frame_region(frame))
            if region is None:
                volume = self.read_all(segment_id)
                return {f: volume[self._frame_slice(f)].copy() for f in frames}
            out[frame] = region.reshape(self._frame_shape_of())
        return out

    def stamp(self, segment_id: str, frame: int) -> tuple:
        segment = self.node.GetSegmentation().GetSegment(segment_id)
        image = segment.GetRepresentation(_labelmap_name()) if segment is not None else None
        if image is None:
            return (None,)
        return (image.GetAddressAsString("vtkOrientedImageData"), image.GetMTime())

    def _frame_region(self, frame: int) -> tuple:
        index: list = [slice(None)] * 3
        index[AXES[self.input.axis]] = slice(int(frame), int(frame) + 1)
        return tuple(index)

    def _frame_shape_of(self) -> tuple[int, int]:
        return tuple(self.input.frames.frame_shape)

    def write(self, segment_id: str, masks: Mapping[int, np.ndarray]) -> None:
        """Writes only the slices given, in place, when the segment's labelmap is on the
        volume's grid; otherwise reads, changes and writes the whole segment."""
        if not masks:
            return
        axis = AXES[self.input.axis]
        done = True
        for frame, mask in masks.items():
            mask = np.expand_dims(np.asarray(mask, dtype=bool), axis)
            if not _write_region(self.node, segment_id, mask, self._shape, self._matrix, self._frame_region(frame)):
                done = False
                break
        if done:
            return
        volume = self.read_all(segment_id)
        for frame, mask in masks.items():
            volume[self._frame_slice(frame)] = np.asarray(mask, dtype=bool)
        _write_segment(self.node, segment_id, volume, self._matrix)


class SequenceTarget(SegmentationTarget):
    """A segmentation sequence in the cine's browser: item t is frame t's segmentation (in
    frame t's geometry), the user's segmentation node is its proxy, so scrolling the cine
    shows each frame's mask. Windows are stored on the sequence node (the proxy's
    attributes do not survive a change of frame). Segments are one set across the frames
    (`segment_mirror`): renamed or deleted on the shown frame, on every frame."""

    kind = "sequence"

    def __init__(self, input_: SlicerInput, segmentation_node, sequence) -> None:
        super().__init__(input_, segmentation_node)
        self.sequence = sequence
        self._frame_shape = (1, *input_.frames.frame_shape)
        mirror_segments(segmentation_node, sequence)  # a rename or delete on the shown frame reaches every frame

    def _state_holder(self):
        return self.sequence

    def item(self, frame: int, create: bool = True):
        """Frame `frame`'s segmentation node inside the sequence."""
        value = self.input.index_value(frame)
        node = self.sequence.GetDataNodeAtValue(value, True)
        if node is None and create:
            node = _empty_like(self.node, self.input.frame_ijk_to_ras[frame], self._frame_shape)
            self.sequence.SetDataNodeAtValue(node, value)
            node = self.sequence.GetDataNodeAtValue(value, True)
        return node

    def ensure_segment(self, segment_id: str | None = None, name: str | None = None, color=None) -> str:
        if segment_id and _segment_exists(self.node, segment_id):
            new_id = segment_id
        else:
            new_id = add_segment(self.node, name, color, segment_id or "")
        segment = self.node.GetSegmentation().GetSegment(new_id)
        for frame in range(self.input.num_frames):
            item = self.item(frame)
            if not _segment_exists(item, new_id):
                item.GetSegmentation().AddEmptySegment(new_id, segment.GetName(), segment.GetColor())
        return new_id

    def read(self, segment_id: str, frames: Iterable[int]) -> dict[int, np.ndarray]:
        out = {}
        for frame in frames:
            item = self.item(frame, create=False)
            if item is None or not _segment_exists(item, segment_id):
                out[int(frame)] = np.zeros(self._frame_shape[1:], dtype=bool)
            else:
                out[int(frame)] = _read_segment(item, segment_id, self._frame_shape, self.input.frame_ijk_to_ras[frame])[0]
        return out

    def stamp(self, segment_id: str, frame: int) -> tuple:
        item = self.item(frame, create=False)
        segment = item.GetSegmentation().GetSegment(segment_id) if item is not None else None
        image = segment.GetRepresentation(_labelmap_name()) if segment is not None else None
        if image is None:
            return (None,)
        return (image.GetAddressAsString("vtkOrientedImageData"), image.GetMTime())

    def write(self, segment_id: str, masks: Mapping[int, np.ndarray]) -> None:
        current = self.input.current_frame()
        segment = self.node.GetSegmentation().GetSegment(segment_id)
        if segment is None:  # deleted by the user (on every frame: `segment_mirror`), e.g. during a run
            raise PromptError(f"the segment {segment_id!r} was deleted; its masks were not written (choose a segment or add one)")
        for frame, mask in masks.items():
            item = self.item(frame)
            if not _segment_exists(item, segment_id):
                item.GetSegmentation().AddEmptySegment(segment_id, segment.GetName(), segment.GetColor())
            matrix = self.input.frame_ijk_to_ras[frame]
            _write_segment(item, segment_id, np.asarray(mask, dtype=bool)[None], matrix)
            if frame == current:
                # The browser copies items into the proxy only when the frame changes; show
                # the new mask now (with "save changes" on, this copies back the same voxels).
                _write_segment(self.node, segment_id, np.asarray(mask, dtype=bool)[None], matrix)


def _empty_like(segmentation_node, ijk_to_ras: np.ndarray, shape: tuple[int, int, int]):
    """A new segmentation with the same segments (IDs, names, colours), all empty, whose
    reference geometry is the frame's."""
    node = slicer.vtkMRMLSegmentationNode()
    segmentation = node.GetSegmentation()
    reference = _oriented_image(np.zeros(shape, dtype=np.uint8), ijk_to_ras)
    segmentation.SetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
        slicer.vtkSegmentationConverter.SerializeImageGeometry(reference),
    )
    source = segmentation_node.GetSegmentation()
    for index in range(source.GetNumberOfSegments()):
        segment = source.GetNthSegment(index)
        segmentation.AddEmptySegment(source.GetNthSegmentID(index), segment.GetName(), segment.GetColor())
    return node


def mask_digest(mask: np.ndarray) -> str:
    """A short fingerprint of a frame's mask (shape and voxels)."""
    mask = np.asarray(mask, bool)
    return hashlib.sha1(str(mask.shape).encode() + np.packbits(mask).tobytes()).hexdigest()[:20]


def _new_segmentation(input_: SlicerInput, name: str):
    scene = input_.node.GetScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    if input_.node.GetParentTransformNode() is not None:
        node.SetAndObserveTransformNodeID(input_.node.GetParentTransformNode().GetID())
    return node


def _reference_geometry(segmentation_node) -> tuple[tuple[int, int, int], np.ndarray] | None:
    """((I, J, K) dimensions, 4 x 4 image-to-world matrix) of the segmentation's reference
    geometry, or None where it has none."""
    text = segmentation_node.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    )
    if not text:
        return None
    image = slicer.vtkOrientedImageData()
    slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, image, False)
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    return tuple(image.GetDimensions()), np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _holds_voxels(segmentation_node) -> bool:
    """Whether any segment of the node has a voxel set."""
    segmentation = segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        image = slicer.vtkOrientedImageData()
        segmentation_node.GetBinaryLabelmapRepresentation(segmentation.GetNthSegmentID(index), image)
        if image.GetPointData().GetScalars() is not None and not _is_empty(image):
            return True
    return False


def _input_grid(input_: SlicerInput) -> tuple[tuple[int, int, int], np.ndarray]:
    """((I, J, K) dimensions, IJK-to-RAS) a segmentation of this input is made on: the
    volume's, or the shown frame's for a cine."""
    if input_.kind == "volume":
        k, j, i = input_.frames.array.shape[:3]
        return (i, j, k), input_.frame_ijk_to_ras[0]
    rows, cols = input_.frames.frame_shape
    return (cols, rows, 1), input_.frame_ijk_to_ras[input_.current_frame()]


def made_for_another_image(input_: SlicerInput, segmentation_node) -> str | None:
    """Why the segmentation belongs to another image (None where it can take this
    input's masks): it is the frames of another cine (a proxy in another sequence
    browser), or its voxels lie on another grid.

    Why: the panel kept the segmentation of the image shown before, and the next click on
    the new image rewrote the old one's masks on the new grid (and, for a cine, copied
    them into the old cine's frames). A segmentation made for another grid but still
    empty is not refused: it takes this input's grid."""
    return _another_image(input_, segmentation_node, _reference_geometry(segmentation_node))


def _another_image(input_: SlicerInput, segmentation_node, geometry) -> str | None:
    """`made_for_another_image`, given the node's `_reference_geometry`."""
    own = input_.browser if input_.kind != "volume" else None
    scene = segmentation_node.GetScene()
    for browser in scene.GetNodesByClass("vtkMRMLSequenceBrowserNode") if scene is not None else ():
        if browser is not own and browser.IsProxyNodeID(segmentation_node.GetID()):
            return f"it holds the frames of '{browser.GetName()}'"
    if own is not None and own.IsProxyNodeID(segmentation_node.GetID()):
        return None
    if geometry is None or _on_grid(geometry, input_) or not _holds_voxels(segmentation_node):
        return None
    dims, want = geometry[0], _input_grid(input_)[0]
    if dims == want:
        return "its voxels lie on a grid of the same size placed elsewhere"
    return f"its voxels lie on a {' x '.join(map(str, dims))} grid, this image's is {' x '.join(map(str, want))}"


def _on_grid(geometry: tuple[tuple[int, int, int], np.ndarray], input_: SlicerInput) -> bool:
    """Whether a reference geometry (`_reference_geometry`) is the input's grid."""
    dims, matrix = _input_grid(input_)
    return tuple(geometry[0]) == tuple(dims) and np.allclose(geometry[1], matrix, rtol=1e-5, atol=1e-4)


def target_for(input_: SlicerInput, segmentation_node=None, name: str = "SAMUSA segmentation", create: bool = True):
    """The segmentation that receives the masks of `input_`, created when None.

    For a cine the segmentation node becomes (or already is) the proxy of a segmentation
    sequence in the cine's browser, with one item per frame; for a volume it gets the
    volume as reference geometry when it has none yet (or none that fits and no voxels).
    A segmentation made for another image is refused (`made_for_another_image`): its masks
    must not be rewritten on this one. With `create` off nothing is added to the scene:
    None is returned where something would have to be created.
    """
    if segmentation_node is None:
        if not create:
            return None
        segmentation_node = _new_segmentation(input_, name)
    if not segmentation_node.IsA("vtkMRMLSegmentationNode"):
        raise InputError(f"'{segmentation_node.GetName()}' is not a segmentation")
    geometry = _reference_geometry(segmentation_node)
    elsewhere = _another_image(input_, segmentation_node, geometry)
    if elsewhere:
        raise InputError(
            f"the segmentation '{segmentation_node.GetName()}' was made for another image ({elsewhere}); "
            f"choose 'Create new segmentation' for '{input_.node.GetName()}', or show the image it was made for"
        )
    if input_.kind == "volume":
        if (geometry is None or not _on_grid(geometry, input_)) and create:  # none, or empty (checked above)
            segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(input_.node)
        return VolumeTarget(input_, segmentation_node)
    sequence = _existing_segmentation_sequence(input_, segmentation_node)
    if sequence is None:
        if not create:
            return None
        sequence = _segmentation_sequence(input_, segmentation_node)
    return SequenceTarget(input_, segmentation_node, sequence)


def _existing_segmentation_sequence(input_: SlicerInput, segmentation_node):
    browser = input_.browser
    if browser.IsProxyNodeID(segmentation_node.GetID()):
        return browser.GetSequenceNode(segmentation_node)
    return None


def _segmentation_sequence(input_: SlicerInput, segmentation_node):
    browser = input_.browser
    scene = segmentation_node.GetScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{segmentation_node.GetName()} sequence")
    sequence.SetIndexName(input_.sequence.GetIndexName())
    sequence.SetIndexUnit(input_.sequence.GetIndexUnit())
    sequence.SetIndexType(input_.sequence.GetIndexType())
    shape = (1, *input_.frames.frame_shape)
    shown = input_.current_frame()
    for frame in range(input_.num_frames):
        if frame == shown:
            # The user's node already holds voxels (on the frame it is shown with): they
            # become that frame's item, or the browser would copy an empty item over them.
            item = slicer.vtkMRMLSegmentationNode()
            item.GetSegmentation().DeepCopy(segmentation_node.GetSegmentation())
        else:
            item = _empty_like(segmentation_node, input_.frame_ijk_to_ras[frame], shape)
        sequence.SetDataNodeAtValue(item, input_.index_value(frame))
    browser.AddSynchronizedSequenceNode(sequence)
    browser.AddProxyNode(segmentation_node, sequence, False)
    browser.SetSaveChanges(sequence, True)  # edits made on the proxy (Segment Editor) are kept per frame
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(input_.node)
    return sequence

