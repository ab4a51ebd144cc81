"""The bridge between 3D Slicer's MRML nodes and SAMUSALib: nodes in, frames and prompts
out, masks back into segments.

It runs inside the Slicer application and headless with PyPI ``slicer-core`` (the same
``slicer.vtkMRML*`` classes): it uses no Qt, no ``slicer.app``, no ``slicer.util`` and no
``slicer.mrmlScene``; every function is given the nodes it works on and reaches their
scene through them. ``torch`` is imported only when a model is loaded.

Inputs (`input_from_node`):

- a cine as a sequence browser over single-frame volumes (grayscale or RGB: how Slicer
  loads multi-frame ultrasound DICOM), given as the browser or as its proxy volume; frame
  ``t`` is item ``t`` of the volume sequence;
- a cine stored as one volume, frames along K;
- a 3D volume, sliced along a chosen axis (I, J or K).

Geometry. Arrays are in numpy order (K, J, I) as in `SAMUSALib.frames`; every position
goes through the volume's own IJK-to-RAS matrix (spacing, origin and an oblique direction)
and, when the volume is under a transform, through that transform, and masks go back
through the same matrix, so nothing is shifted or flipped. Inside a frame x is the column
(I for K-frames) and y the row.

Outputs (`target_for`): a segmentation node in the volume's geometry for a volume, or a
segmentation sequence synchronised in the cine's browser (one segmentation per frame, the
user's segmentation node as its proxy) for a sequence. Writing changes one segment, only
on the frames given; before every write the previous voxels of those frames are kept on an
`UndoStack`.

Prompts are markups fiducial nodes, one per (segment, prompt type), found by their
attributes (`prompt_node`). In a sequence every control point carries its frame in its
description ("frame 12"), as all frames share one position in space; in a volume the
frame is where the point lies.

`InteractiveSegmenter` ties it together for the Slicer module and for scripts: one engine
`Session` per (input, model, device, axis), kept while the input node's voxels are
unchanged, so a further click costs one decoder pass.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

from .errors import InputError, PromptError
from .frames import AXES, FrameSource, Geometry
from .prompts import DEFAULT_COLORS, FramePrompt, TemporalWindow

__all__ = [
    "headless_scene",
    "PROMPT_KINDS",
    "PROMPT_COLORS",
    "SlicerInput",
    "input_from_node",
    "geometry_from_ijk_to_ras",
    "volume_from_array",
    "sequence_from_array",
    "SegmentationTarget",
    "VolumeTarget",
    "SequenceTarget",
    "target_for",
    "add_segment",
    "prompt_node",
    "prompt_nodes",
    "add_prompt_point",
    "frame_prompts",
    "show_points_of_frame",
    "remove_prompts",
    "UndoStack",
    "InteractiveSegmenter",
]

PROMPT_KINDS = ("boundary", "positive", "negative", "box")
"""Prompt types, each held by its own markups node: boundary points (clicks on the border),
region points inside (+) and outside (-), and box corners (two opposite corners of a box)."""

PROMPT_LABELS = {"boundary": "boundary", "positive": "region+", "negative": "region-", "box": "box corners"}
"""Name suffix of each prompt type's markups node; "region+" / "region-" / "boundary" are
the names `SAMUSALib.markups.read_markups` understands when the nodes are saved as .mrk.json."""

PROMPT_COLORS = {
    "boundary": (1.0, 0.82, 0.1),
    "positive": (0.2, 0.9, 0.3),
    "negative": (0.95, 0.25, 0.25),
    "box": (0.3, 0.7, 1.0),
}
"""Point colour per prompt type (red, green, blue in 0..1), the same for every segment."""

ATTRIBUTE_SEGMENTATION = "SAMUSA.Segmentation"
ATTRIBUTE_SEGMENT = "SAMUSA.Segment"
ATTRIBUTE_PROMPT = "SAMUSA.Prompt"
ATTRIBUTE_WINDOW = "SAMUSA.Window."  # + segment ID: "start end", inclusive

_FRAME_IN_DESCRIPTION = re.compile(r"\bframe\s+(\d+)\b", re.I)
_FRAME_PLANE = {"K": (0, 1), "J": (0, 2), "I": (1, 2)}  # (x, y) as (i, j, k) indices
_IJK_INDEX = {"K": 2, "J": 1, "I": 0}  # frame index as an (i, j, k) index


# --------------------------------------------------------------------------- geometry


def _matrix(vtk_matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _vtk_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def ijk_to_ras_of(volume_node) -> np.ndarray:
    """4x4 matrix from (i, j, k, 1) voxel indices to the volume's local RAS millimetres."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return _matrix(matrix)


def geometry_from_ijk_to_ras(ijk_to_ras: np.ndarray) -> Geometry:
    """The ITK/LPS `Geometry` of a Slicer IJK-to-RAS matrix (spacing, origin, direction)."""
    to_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(ijk_to_ras, dtype=float)
    columns = to_lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    return Geometry(tuple(spacing), tuple(to_lps[:3, 3]), tuple((columns / spacing).ravel()))


def _world_to_local(node) -> Callable[[np.ndarray], np.ndarray]:
    """World RAS -> the node's local RAS (through its parent transforms, linear or not)."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return lambda point: np.asarray(point, dtype=float)
    transform = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, parent, transform)
    return lambda point: np.array(transform.TransformPoint(*map(float, point)))


def _same_transform(a, b) -> bool:
    pa, pb = a.GetParentTransformNode(), b.GetParentTransformNode()
    return (pa is None and pb is None) or (pa is not None and pb is not None and pa.GetID() == pb.GetID())


# --------------------------------------------------------------------------- a scene without Slicer


@dataclass
class HeadlessScene:
    """An MRML scene with the module logics SAMUSA relies on, for scripts and tests run
    with PyPI ``slicer-core`` (no Qt, no views). Keep it alive while the scene is used:
    the logics observe the scene (the Sequences logic updates proxy nodes)."""

    scene: object
    application_logic: object
    logics: dict[str, object]


def headless_scene() -> HeadlessScene:
    """A new scene with the Volumes, Segmentations, Markups and Sequences logics registered,
    as the Slicer application sets them up."""
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    app_logic.GetColorLogic().SetMRMLScene(scene)
    app_logic.GetColorLogic().AddDefaultColorNodes()
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())
    logics = {}
    for name, cls in (
        ("Volumes", slicer.vtkSlicerVolumesLogic),
        ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
        ("Markups", slicer.vtkSlicerMarkupsLogic),
        ("Sequences", slicer.vtkSlicerSequencesLogic),
    ):
        logic = cls()
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(name, logic)
        logics[name] = logic
    return HeadlessScene(scene, app_logic, logics)


# --------------------------------------------------------------------------- arrays <-> volumes


def _image_array(image: vtk.vtkImageData) -> np.ndarray:
    """The voxels of an image as a numpy view, (K, J, I) or (K, J, I, C)."""
    scalars = image.GetPointData().GetScalars() if image is not None else None
    if scalars is None:
        raise InputError("the volume has no voxels (its image data is empty); load or create an image first")
    dims = image.GetDimensions()
    components = scalars.GetNumberOfComponents()
    shape = tuple(reversed(dims)) + ((components,) if components > 1 else ())
    return numpy_support.vtk_to_numpy(scalars).reshape(shape)


def _new_image(array: np.ndarray) -> vtk.vtkImageData:
    array = np.ascontiguousarray(array)
    components = array.shape[3] if array.ndim == 4 else 1
    image = vtk.vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    flat = array.reshape(-1, components) if components > 1 else array.ravel()
    vtk_array = numpy_support.numpy_to_vtk(flat, deep=True)
    vtk_array.SetNumberOfComponents(components)
    image.GetPointData().SetScalars(vtk_array)
    return image


def _set_ijk_to_ras(node, ijk_to_ras: np.ndarray) -> None:
    node.SetIJKToRASMatrix(_vtk_matrix(np.asarray(ijk_to_ras, dtype=float)))


def _as_ijk_to_ras(geometry: Geometry | np.ndarray | None) -> np.ndarray:
    if geometry is None:
        return np.eye(4)
    if isinstance(geometry, Geometry):
        return geometry.ijk_to_ras()
    return np.asarray(geometry, dtype=float)


def _volume_class(array: np.ndarray) -> str:
    return "vtkMRMLVectorVolumeNode" if array.ndim == 4 else "vtkMRMLScalarVolumeNode"


def volume_from_array(scene, array: np.ndarray, geometry: Geometry | np.ndarray | None = None, name: str = "volume"):
    """A new volume node holding `array` ((K, J, I), or (K, J, I, 3) for RGB) in `geometry`
    (a `Geometry` in LPS or a 4x4 IJK-to-RAS matrix)."""
    array = np.asarray(array)
    if array.ndim not in (3, 4):
        raise InputError(f"a volume needs a (K, J, I) or (K, J, I, 3) array; got shape {array.shape}")
    node = scene.AddNewNodeByClass(_volume_class(array), name)
    node.SetAndObserveImageData(_new_image(array))
    _set_ijk_to_ras(node, _as_ijk_to_ras(geometry))
    node.CreateDefaultDisplayNodes()
    return node


def sequence_from_array(
    scene, frames: np.ndarray, geometry: Geometry | np.ndarray | None = None, name: str = "cine",
    index_name: str = "frame", index_unit: str = "",
):
    """A cine as Slicer loads multi-frame ultrasound: a sequence of single-frame volumes
    ((T, H, W) grayscale or (T, H, W, 3) RGB) and a browser showing it.

    Returns (browser, sequence, proxy volume). `geometry` is each frame's (single-slice)
    geometry. Index values are the frame numbers 0..T-1.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4):
        raise InputError(f"a cine needs a (T, H, W) or (T, H, W, 3) array; got shape {frames.shape}")
    ijk_to_ras = _as_ijk_to_ras(geometry)
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName(index_name)
    sequence.SetIndexUnit(index_unit)
    sequence.SetIndexType(sequence.NumericIndex)
    for t, frame in enumerate(frames):
        item = slicer.vtkMRMLVectorVolumeNode() if frames.ndim == 4 else slicer.vtkMRMLScalarVolumeNode()
        item.SetAndObserveImageData(_new_image(frame[None]))
        _set_ijk_to_ras(item, ijk_to_ras)
        sequence.SetDataNodeAtValue(item, str(t))
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.SetSelectedItemNumber(0)  # the Sequences logic creates the proxy volume
    proxy = browser.GetProxyNode(sequence)
    if proxy is None:
        raise InputError(
            "the sequence browser made no proxy volume: the Sequences module logic is not "
            "registered with this scene"
        )
    return browser, sequence, proxy


# --------------------------------------------------------------------------- inputs


def _is_volume(node) -> bool:
    return node is not None and node.IsA("vtkMRMLScalarVolumeNode")


def _volume_sequence_of(browser):
    """The browser's sequence of volumes: the master if it holds volumes, else the first
    synchronised one that does."""
    master = browser.GetMasterSequenceNode()
    candidates = [master] if master is not None else []
    collection = vtk.vtkCollection()
    browser.GetSynchronizedSequenceNodes(collection, True)
    candidates += [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
    for sequence in candidates:
        if sequence is not None and sequence.GetNumberOfDataNodes() and _is_volume(sequence.GetNthDataNode(0)):
            return sequence
    raise InputError(
        f"the sequence browser '{browser.GetName()}' shows no sequence of images; "
        "choose the browser of a cine loop"
    )


def browser_of_proxy(volume_node):
    """The sequence browser whose proxy `volume_node` is (a cine shown frame by frame), or None."""
    scene = volume_node.GetScene()
    if scene is None:
        return None
    browsers = scene.GetNodesByClass("vtkMRMLSequenceBrowserNode")
    for i in range(browsers.GetNumberOfItems()):
        browser = browsers.GetItemAsObject(i)
        if browser.IsProxyNodeID(volume_node.GetID()) and browser.GetSequenceNode(volume_node) is not None:
            return browser
    return None


@dataclass
class SlicerInput:
    """A Slicer image seen as frames, with what is needed to map points and masks back.

    ``kind`` is "volume" (one volume, frames along ``frames.axis``) or "sequence" (a cine
    of single-frame volumes). ``frame_ijk_to_ras[t]`` is the local IJK-to-RAS matrix of
    frame t's voxels: the volume's matrix for every frame of a volume, each item's own
    matrix in a sequence. ``node`` is the volume shown in the views (the proxy of a
    sequence), whose parent transform maps its local RAS to the world.
    """

    frames: FrameSource
    kind: str
    node: object
    frame_ijk_to_ras: list[np.ndarray]
    fingerprint: tuple
    browser: object | None = None
    sequence: object | None = None

    @property
    def num_frames(self) -> int:
        return self.frames.num_frames

    @property
    def axis(self) -> str:
        return self.frames.axis

    def index_value(self, frame: int) -> str:
        """The sequence index value of a frame (sequences only)."""
        return self.sequence.GetNthIndexValue(int(frame))

    def current_frame(self) -> int | None:
        """The frame the sequence browser shows (None for a volume: see `frame_at`)."""
        if self.kind != "sequence":
            return None
        master = self.browser.GetMasterSequenceNode()
        selected = self.browser.GetSelectedItemNumber()
        if master is None or selected < 0:
            return None
        if master is self.sequence:
            return int(selected)
        number = self.sequence.GetItemNumberFromIndexValue(master.GetNthIndexValue(selected), False)
        return int(number) if number >= 0 else None

    def show_frame(self, frame: int) -> None:
        """Make the browser show a frame (sequences only)."""
        if self.kind != "sequence":
            return
        master = self.browser.GetMasterSequenceNode()
        number = frame if master is self.sequence else master.GetItemNumberFromIndexValue(self.index_value(frame), False)
        self.browser.SetSelectedItemNumber(int(number))

    def to_ijk(self, world, frame: int | None = None) -> np.ndarray:
        """Continuous (i, j, k) voxel index of a world RAS point, in frame `frame`'s voxels
        (a sequence) or the volume's."""
        local = _world_to_local(self.node)(world)
        matrix = self.frame_ijk_to_ras[0 if frame is None else int(frame)]
        return (np.linalg.inv(matrix) @ np.append(local, 1.0))[:3]

    def frame_at(self, world) -> int:
        """The frame a world RAS point lies in (volumes), nearest frame, clamped."""
        if self.kind == "sequence":
            frame = self.current_frame()
            return 0 if frame is None else frame
        index = self.to_ijk(world)[_IJK_INDEX[self.axis]]
        return int(np.clip(np.round(index), 0, self.num_frames - 1))

    def frame_xy(self, world, frame: int | None = None, what: str = "point") -> tuple[int, float, float]:
        """(frame, x, y) of a world RAS point: x the column, y the row of the frame.

        In a volume the frame is where the point lies (an error if outside the volume);
        in a sequence `frame` must be given (the point's stamp)."""
        x_index, y_index = _FRAME_PLANE[self.axis]
        if self.kind == "sequence":
            if frame is None:
                raise PromptError(
                    f"{what} has no frame: in a cine every point must say on which frame it was placed "
                    "(place it with the SAMUSA module, or write 'frame N' in its description)"
                )
            if not 0 <= frame < self.num_frames:
                raise PromptError(f"{what} is on frame {frame}, but the cine has frames 0..{self.num_frames - 1}")
            ijk = self.to_ijk(world, frame)
            return int(frame), float(ijk[x_index]), float(ijk[y_index])
        ijk = self.to_ijk(world)
        coordinate = ijk[_IJK_INDEX[self.axis]]
        nearest = int(np.round(coordinate))
        if not 0 <= nearest < self.num_frames:
            raise PromptError(
                f"{what} lies on slice {coordinate:.2f} along {self.axis}, outside the image's "
                f"slices 0..{self.num_frames - 1}; was it placed on this image?"
            )
        return nearest, float(ijk[x_index]), float(ijk[y_index])


def _volume_fingerprint(node) -> tuple:
    image = node.GetImageData()
    address = image.GetAddressAsString("vtkImageData") if image is not None else ""
    return (node.GetID(), address, image.GetMTime() if image is not None else 0,
            tuple(ijk_to_ras_of(node).ravel().round(9)))


def input_fingerprint(node, axis: str = "K") -> tuple:
    """Changes whenever the voxels, the frames or the geometry of an input change."""
    browser = node if node.IsA("vtkMRMLSequenceBrowserNode") else browser_of_proxy(node)
    if browser is None:
        return ("volume", axis) + _volume_fingerprint(node)
    sequence = _volume_sequence_of(browser)
    items = tuple(_volume_fingerprint(sequence.GetNthDataNode(i))[1:] for i in range(sequence.GetNumberOfDataNodes()))
    return ("sequence", sequence.GetID(), items)


def input_from_node(node, axis: str = "K") -> SlicerInput:
    """Frames of a volume node (sliced along `axis`), of a sequence browser, or of a
    volume that is the proxy of a cine's browser (then the cine is used, frame by frame)."""
    if node is None:
        raise InputError("no input image: choose a volume or a cine (sequence browser)")
    if axis not in AXES:
        raise InputError(f"axis must be one of I, J, K; got {axis!r}")
    browser = node if node.IsA("vtkMRMLSequenceBrowserNode") else browser_of_proxy(node)
    if browser is not None:
        return _sequence_input(browser)
    if not _is_volume(node):
        raise InputError(f"'{node.GetName()}' is not an image: choose a scalar or RGB volume or a cine")
    array = _image_array(node.GetImageData())
    matrix = ijk_to_ras_of(node)
    frames = FrameSource(array, axis=axis, geometry=geometry_from_ijk_to_ras(matrix))
    return SlicerInput(frames, "volume", node, [matrix] * frames.num_frames, input_fingerprint(node, axis))


def _sequence_input(browser) -> SlicerInput:
    sequence = _volume_sequence_of(browser)
    count = sequence.GetNumberOfDataNodes()
    arrays, matrices = [], []
    for t in range(count):
        item = sequence.GetNthDataNode(t)
        array = _image_array(item.GetImageData())
        if array.shape[0] != 1:
            raise InputError(
                f"frame {t} of '{sequence.GetName()}' is a volume of {array.shape[0]} slices; SAMUSA "
                "segments cines of single-frame images (2D+t). For a 3D volume, choose one volume."
            )
        if arrays and array.shape[1:] != arrays[0].shape:
            raise InputError(
                f"frame {t} of '{sequence.GetName()}' has size {array.shape[1:]}, frame 0 has "
                f"{arrays[0].shape}: all frames of a cine must have the same size"
            )
        arrays.append(array[0])
        matrices.append(ijk_to_ras_of(item))
    if not arrays:
        raise InputError(f"the cine '{sequence.GetName()}' has no frames")
    proxy = browser.GetProxyNode(sequence)
    if proxy is None:
        raise InputError(f"the cine '{sequence.GetName()}' has no proxy volume in its browser")
    frames = FrameSource(np.stack(arrays), axis="K", geometry=geometry_from_ijk_to_ras(matrices[0]))
    return SlicerInput(frames, "sequence", proxy, matrices, input_fingerprint(browser), browser, sequence)


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


def _read_segment(segmentation_node, segment_id: str, shape: tuple[int, int, int], ijk_to_ras: np.ndarray) -> np.ndarray:
    """A segment's voxels resampled (nearest) onto a (K, J, I) grid, as bool."""
    labelmap = slicer.vtkOrientedImageData()
    if not segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap):
        return np.zeros(shape, dtype=bool)
    extent = labelmap.GetExtent()
    if labelmap.GetPointData().GetScalars() is None or extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4]:
        return np.zeros(shape, dtype=bool)
    reference = _oriented_image(np.zeros(shape, dtype=np.uint8), ijk_to_ras)
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, True
    )
    return _image_array(resampled).reshape(shape) > 0


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
    def _window_holder(self):
        return self.node

    def window(self, segment_id: str) -> TemporalWindow | None:
        text = self._window_holder().GetAttribute(ATTRIBUTE_WINDOW + segment_id)
        if not text:
            return None
        start, end = (int(v) for v in text.split())
        return TemporalWindow(start, min(end, self.input.num_frames - 1))

    def set_window(self, segment_id: str, window: TemporalWindow | tuple[int, int] | None) -> None:
        holder = self._window_holder()
        if window is None:
            holder.RemoveAttribute(ATTRIBUTE_WINDOW + segment_id)
            return
        window = window if isinstance(window, TemporalWindow) else TemporalWindow(*map(int, window))
        window.check(self.input.num_frames)
        holder.SetAttribute(ATTRIBUTE_WINDOW + segment_id, f"{window.start} {window.end}")

    # ---- voxels
    def read(self, segment_id: str, frames: Iterable[int]) -> dict[int, np.ndarray]:
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
        volume = self.read_all(segment_id)
        return {int(f): volume[self._frame_slice(f)].copy() for f in frames}

    def write(self, segment_id: str, masks: Mapping[int, np.ndarray]) -> None:
        if not masks:
            return
        volume = self.read_all(segment_id)
        for frame, mask in masks.items():
            volume[self._frame_slice(frame)] = np.asarray(mask, dtype=bool)
        _write_segment(self.node, segment_id, volume, self._matrix)


class SequenceTarget(SegmentationTarget):
    """A segmentation sequence in the cine's browser: item t is frame t's segmentation (in
    frame t's geometry), the user's segmentation node is its proxy, so scrolling the cine
    shows each frame's mask. Windows are stored on the sequence node (the proxy's
    attributes do not survive a change of frame)."""

    kind = "sequence"

    def __init__(self, input_: SlicerInput, segmentation_node, sequence) -> None:
        super().__init__(input_, segmentation_node)
        self.sequence = sequence
        self._frame_shape = (1, *input_.frames.frame_shape)

    def _window_holder(self):
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

    def write(self, segment_id: str, masks: Mapping[int, np.ndarray]) -> None:
        current = self.input.current_frame()
        for frame, mask in masks.items():
            item = self.item(frame)
            if not _segment_exists(item, segment_id):
                segment = self.node.GetSegmentation().GetSegment(segment_id)
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


def _new_segmentation(input_: SlicerInput, name: str):
    scene = input_.node.GetScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    if input_.node.GetParentTransformNode() is not None:
        node.SetAndObserveTransformNodeID(input_.node.GetParentTransformNode().GetID())
    return node


def target_for(input_: SlicerInput, segmentation_node=None, name: str = "SAMUSA segmentation", create: bool = True):
    """The segmentation that receives the masks of `input_`, created when None.

    For a cine the segmentation node becomes (or already is) the proxy of a segmentation
    sequence in the cine's browser, with one item per frame; for a volume it gets the
    volume as reference geometry when it has none yet. With `create` off nothing is added
    to the scene: None is returned where something would have to be created.
    """
    if segmentation_node is None:
        if not create:
            return None
        segmentation_node = _new_segmentation(input_, name)
    if not segmentation_node.IsA("vtkMRMLSegmentationNode"):
        raise InputError(f"'{segmentation_node.GetName()}' is not a segmentation")
    if input_.kind == "volume":
        reference = segmentation_node.GetSegmentation().GetConversionParameter(
            slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
        )
        if not reference and create:
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
    for frame in range(input_.num_frames):
        item = _empty_like(segmentation_node, input_.frame_ijk_to_ras[frame], shape)
        sequence.SetDataNodeAtValue(item, input_.index_value(frame))
    browser.AddSynchronizedSequenceNode(sequence)
    browser.AddProxyNode(segmentation_node, sequence, False)
    browser.SetSaveChanges(sequence, True)  # edits made on the proxy (Segment Editor) are kept per frame
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(input_.node)
    return sequence


# --------------------------------------------------------------------------- prompts as markups


def _nodes_by_class(scene, class_name: str) -> list:
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def prompt_node(target: SegmentationTarget, segment_id: str, kind: str, create: bool = True):
    """The markups fiducial node holding one prompt type of one segment (created on demand,
    coloured by type, named "<segment> <type>")."""
    if kind not in PROMPT_KINDS:
        raise PromptError(f"prompt type must be one of {', '.join(PROMPT_KINDS)}; got {kind!r}")
    scene = target.node.GetScene()
    owner = target.node.GetID()
    for node in _nodes_by_class(scene, "vtkMRMLMarkupsFiducialNode"):
        if (node.GetAttribute(ATTRIBUTE_SEGMENTATION) == owner and node.GetAttribute(ATTRIBUTE_SEGMENT) == segment_id
                and node.GetAttribute(ATTRIBUTE_PROMPT) == kind):
            return node
    if not create:
        return None
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{target.segment_name(segment_id)} {PROMPT_LABELS[kind]}")
    node.SetAttribute(ATTRIBUTE_SEGMENTATION, owner)
    node.SetAttribute(ATTRIBUTE_SEGMENT, segment_id)
    node.SetAttribute(ATTRIBUTE_PROMPT, kind)
    node.CreateDefaultDisplayNodes()
    _style(node, kind)
    if target.input.node.GetParentTransformNode() is not None:
        node.SetAndObserveTransformNodeID(target.input.node.GetParentTransformNode().GetID())
    return node


def _style(node, kind: str) -> None:
    display = node.GetDisplayNode()
    if display is None:
        return
    color = PROMPT_COLORS[kind]
    display.SetSelectedColor(*color)
    display.SetColor(*color)
    if hasattr(display, "SetActiveColor"):
        display.SetActiveColor(*color)
    if hasattr(display, "SetPointLabelsVisibility"):
        display.SetPointLabelsVisibility(False)
    glyph = {"boundary": "Circle2D", "positive": "Cross2D", "negative": "ThickCross2D", "box": "Square2D"}[kind]
    if hasattr(display, "SetGlyphTypeFromString"):
        display.SetGlyphTypeFromString(glyph)


def prompt_nodes(target: SegmentationTarget, segment_id: str, create: bool = False) -> dict[str, object]:
    """{prompt type: markups node} of a segment (only existing nodes unless `create`)."""
    out = {}
    for kind in PROMPT_KINDS:
        node = prompt_node(target, segment_id, kind, create=create)
        if node is not None:
            out[kind] = node
    return out


def stamp_frame(node, index: int, frame: int) -> None:
    """Record on which frame control point `index` was placed (its description)."""
    description = node.GetNthControlPointDescription(index) or ""
    rest = _FRAME_IN_DESCRIPTION.sub("", description).strip()
    node.SetNthControlPointDescription(index, f"frame {int(frame)}" + (f" {rest}" if rest else ""))


def point_frame(node, index: int) -> int | None:
    """The frame stamped on a control point, or None."""
    match = _FRAME_IN_DESCRIPTION.search(node.GetNthControlPointDescription(index) or "")
    return int(match.group(1)) if match else None


def add_prompt_point(node, world, frame: int | None = None) -> int:
    """Add a control point at a world RAS position, stamped with `frame` if given; returns its index."""
    index = node.AddControlPointWorld(vtk.vtkVector3d(*map(float, world)))
    if frame is not None:
        stamp_frame(node, index, frame)
    return index


def _defined_points(node) -> list[tuple[int, np.ndarray]]:
    points = []
    for index in range(node.GetNumberOfControlPoints()):
        if node.GetNthControlPointPositionStatus(index) != node.PositionDefined:
            continue
        position = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(index, position)
        points.append((index, np.array(position)))
    return points


def frame_prompts(input_: SlicerInput, nodes: Mapping[str, object]) -> dict[int, FramePrompt]:
    """Prompts per frame from a segment's markups nodes ({prompt type: node}).

    Points map through the image's geometry to frame pixels; box corners pair up in the
    order they were placed, per frame, and the last complete pair is the frame's box.
    Every prompt is checked against the frame size.
    """
    per_frame: dict[int, dict[str, list]] = {}
    for kind, node in nodes.items():
        if node is None:
            continue
        if kind not in PROMPT_KINDS:
            raise PromptError(f"unknown prompt type {kind!r}; use one of {', '.join(PROMPT_KINDS)}")
        for index, world in _defined_points(node):
            stamp = point_frame(node, index) if input_.kind == "sequence" else None
            what = f"point {index + 1} of '{node.GetName()}'"
            frame, x, y = input_.frame_xy(world, stamp, what)
            per_frame.setdefault(frame, {}).setdefault(kind, []).append([x, y])
    prompts: dict[int, FramePrompt] = {}
    for frame, kinds in sorted(per_frame.items()):
        corners = kinds.get("box", [])
        box = None
        if len(corners) >= 2:
            pairs = len(corners) // 2
            (x0, y0), (x1, y1) = corners[2 * pairs - 2], corners[2 * pairs - 1]
            if x0 != x1 and y0 != y1:
                box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        prompt = FramePrompt(frame, kinds.get("boundary"), kinds.get("positive"), kinds.get("negative"), box)
        if prompt.is_empty:
            continue  # a lone box corner waits for its partner
        prompt.check(input_.num_frames, input_.frames.frame_shape)
        prompts[frame] = prompt
    return prompts


def show_points_of_frame(input_: SlicerInput, nodes: Iterable, frame: int) -> None:
    """In a cine, show only the points placed on `frame` (all frames share one plane)."""
    if input_.kind != "sequence":
        return
    for node in nodes:
        if node is None:
            continue
        was = node.StartModify()
        for index in range(node.GetNumberOfControlPoints()):
            node.SetNthControlPointVisibility(index, point_frame(node, index) in (None, frame))
        node.EndModify(was)


def remove_prompts(input_: SlicerInput, nodes: Iterable, frame: int | None = None) -> int:
    """Remove a segment's points on one frame (or all); returns how many were removed."""
    removed = 0
    for node in nodes:
        if node is None:
            continue
        doomed = []
        for index, world in _defined_points(node):
            if frame is None:
                doomed.append(index)
                continue
            stamp = point_frame(node, index) if input_.kind == "sequence" else None
            try:
                on = input_.frame_xy(world, stamp)[0]
            except PromptError:
                continue
            if on == frame:
                doomed.append(index)
        for index in reversed(doomed):
            node.RemoveNthControlPoint(index)
        removed += len(doomed)
    return removed


# --------------------------------------------------------------------------- undo


@dataclass
class UndoStep:
    """The voxels one action replaced: per frame of one segment, packed bits."""

    description: str
    target: SegmentationTarget
    segment_id: str
    frame_shape: tuple[int, int]
    before: dict[int, np.ndarray] = field(default_factory=dict)
    prompt_point: tuple[object, str] | None = None  # (markups node, control point ID) the action added

    def keep(self, frames: Iterable[int]) -> None:
        """Save the current voxels of frames not saved yet in this step."""
        missing = [f for f in frames if f not in self.before]
        if missing:
            for frame, mask in self.target.read(self.segment_id, missing).items():
                self.before[frame] = np.packbits(mask.ravel())

    def masks(self) -> dict[int, np.ndarray]:
        size = self.frame_shape[0] * self.frame_shape[1]
        return {f: np.unpackbits(bits, count=size).reshape(self.frame_shape).astype(bool) for f, bits in self.before.items()}


class UndoStack:
    """Undo for SAMUSA's writes: before a write, the previous voxels of the written frames
    of the one segment written; undo puts them back (and removes the click that caused
    the write, if any).

    Why not MRML scene undo: it was tried (headless, slicer-core 5.13) and restores
    segmentations and sequences correctly, but (1) it snapshots whole nodes, so every
    click would deep-copy a segmentation sequence of hundreds of frames, and (2) with the
    scene's undo switched on, Slicer's slice-view interaction saves the state of every
    undo-enabled node on each pan/zoom (vtkMRMLSliceIntersectionWidget calls
    SaveStateForUndo), filling the stack with copies Ctrl+Z would step through first.
    """

    def __init__(self, levels: int = 20) -> None:
        self.levels = max(1, int(levels))
        self._steps: list[UndoStep] = []

    def __len__(self) -> int:
        return len(self._steps)

    def begin(self, target: SegmentationTarget, segment_id: str, description: str) -> UndoStep:
        return UndoStep(description, target, segment_id, target.input.frames.frame_shape)

    def push(self, step: UndoStep) -> None:
        if not step.before and step.prompt_point is None:
            return
        self._steps.append(step)
        del self._steps[: max(0, len(self._steps) - self.levels)]

    def peek(self) -> UndoStep | None:
        return self._steps[-1] if self._steps else None

    def undo(self) -> UndoStep | None:
        """Restore the last step; returns it (None when there is nothing to undo)."""
        if not self._steps:
            return None
        step = self._steps.pop()
        if step.target.node.GetScene() is not None and _segment_exists(step.target.node, step.segment_id):
            step.target.write(step.segment_id, step.masks())
        if step.prompt_point is not None:
            node, point_id = step.prompt_point
            index = node.GetNthControlPointIndexByID(point_id) if node.GetScene() is not None else -1
            if index >= 0:
                node.RemoveNthControlPoint(index)
        return step

    def clear(self) -> None:
        self._steps.clear()


# --------------------------------------------------------------------------- the interactive segmenter


@dataclass
class ActionResult:
    """What one segmenter action did."""

    segment_id: str
    frames_written: list[int] = field(default_factory=list)
    frames_computed: list[int] = field(default_factory=list)
    prompted_frames: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False
    target: SegmentationTarget | None = None

    @property
    def fps(self) -> float:
        return len(self.frames_computed) / self.seconds if self.seconds > 0 else 0.0


def _default_model_factory(model: str, device: str):
    from .models import load_model  # torch is imported here, never at module import

    return load_model(model, device=device)


class _Writer:
    """Writes finished frames into the target, batching writes that cost a whole-volume
    read/write (volume targets) to at most one per `interval` seconds; keeps undo state."""

    def __init__(self, target: SegmentationTarget, segment_id: str, step: UndoStep, interval: float) -> None:
        self.target, self.segment_id, self.step = target, segment_id, step
        self.interval = 0.0 if target.kind == "sequence" else interval
        self.pending: dict[int, np.ndarray] = {}
        self.written: list[int] = []
        self._last = time.perf_counter()

    def add(self, frame: int, mask: np.ndarray) -> None:
        self.pending[int(frame)] = mask
        if time.perf_counter() - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.step.keep(self.pending)
        self.target.write(self.segment_id, self.pending)
        self.written += sorted(self.pending)
        self.pending = {}
        self._last = time.perf_counter()


class InteractiveSegmenter:
    """Slicer nodes in, segments out, through one cached engine `Session`.

    Each call names the input node, the segmentation node (None creates one) and the
    segment; prompts are read from the segment's markups nodes (`prompt_node`) and the
    temporal window from the target (`SegmentationTarget.window`), so the scene is the
    only source of truth and is saved with it. The session (cached image features,
    results) is kept while the input's voxels, the model, the device and the slicing axis
    are unchanged; a change of any of them starts a new one.

    ``model_factory(model, device)`` loads a model (default: `SAMUSALib.models.load_model`).
    """

    def __init__(self, model_factory: Callable[[str, str], object] | None = None, undo_levels: int = 20,
                 write_interval: float = 1.0) -> None:
        self.model_factory = model_factory or _default_model_factory
        self.undo_stack = UndoStack(undo_levels)
        self.write_interval = write_interval
        self._models: dict[tuple[str, str], object] = {}
        self._session = None
        self._session_key: tuple | None = None
        self._input: SlicerInput | None = None
        self._objects: dict[tuple[str, str], int] = {}
        self._cancel = False

    # ---- session
    def model(self, model: str, device: str):
        key = (str(model), str(device))
        if key not in self._models:
            self._models.clear()  # one model in memory at a time
            self._models[key] = self.model_factory(*key)
        return self._models[key]

    def input(self, input_node, axis: str = "K") -> SlicerInput:
        """The input's frames; the cached ones while the node's voxels are unchanged."""
        if self._input is None or not self._input_is(input_node, axis):
            self._input = input_from_node(input_node, axis)
        return self._input

    def _input_is(self, input_node, axis: str) -> bool:
        cached = self._input
        ids = {cached.node.GetID(), cached.browser.GetID() if cached.browser is not None else None}
        node_ok = input_node is not None and input_node.GetID() in ids
        if cached.kind == "volume" and cached.axis != axis:
            return False
        return node_ok and input_fingerprint(cached.browser or cached.node, axis) == cached.fingerprint

    def session(self, input_node, *, model: str, device: str = "auto", axis: str = "K"):
        """(SlicerInput, engine Session), reused while input, model, device and axis are unchanged."""
        from .engine import Session

        input_ = self.input(input_node, axis)
        key = (input_.fingerprint, input_.axis, str(model), str(device))
        if self._session is None or key != self._session_key:
            self._session = Session(input_.frames, self.model(model, device))
            self._session_key = key
            self._objects.clear()
        return input_, self._session

    def drop_session(self) -> None:
        """Forget the session and its cached features (e.g. when the scene closes)."""
        self._session = self._session_key = self._input = None
        self._objects.clear()
        self.undo_stack.clear()

    @property
    def has_session(self) -> bool:
        return self._session is not None

    def target(self, input_node, segmentation_node=None, *, axis: str = "K", create: bool = True):
        """The target for these nodes (see `target_for`); None when `create` is off and it
        would have to be created."""
        return target_for(self.input(input_node, axis), segmentation_node, create=create)

    def _object_id(self, target: SegmentationTarget, segment_id: str) -> int:
        key = (target.node.GetID(), segment_id)
        if key not in self._objects:
            self._objects[key] = max(self._objects.values(), default=0) + 1
        return self._objects[key]

    # ---- prompts
    def _sync(self, session, input_, target, segment_id: str) -> tuple[int, list[int]]:
        """Bring the session's prompts and window for the segment in line with the scene.
        Returns (object id, frames whose prompts changed)."""
        obj_id = self._object_id(target, segment_id)
        wanted = frame_prompts(input_, prompt_nodes(target, segment_id))
        window = target.window(segment_id)
        name = target.segment_name(segment_id)
        if obj_id not in session.objects:
            session.add_object(obj_id, name)
        obj = session.objects[obj_id]
        changed = []
        for frame in sorted(set(obj.prompts) - set(wanted)):
            session.clear_prompts(obj_id, frame)
            changed.append(frame)
        outside = [f for f in wanted if window is not None and f not in window]
        if outside:
            raise PromptError(
                f"segment '{name}' has prompts on frame(s) {', '.join(map(str, outside))}, outside its "
                f"window {window.start}-{window.end}: clear them or widen the window"
            )
        if window != obj.window:
            session.set_window(obj_id, window)
        for frame, prompt in wanted.items():
            if not _same_prompt(obj.prompts.get(frame), prompt):
                session.add_prompt(obj_id, frame, boundary=prompt.boundary, positive=prompt.positive,
                                   negative=prompt.negative, box=prompt.box, replace=True)
                changed.append(frame)
        return obj_id, sorted(set(changed))

    def set_window(self, input_node, segmentation_node, segment_id: str, start: int | None, end: int | None,
                   *, axis: str = "K") -> TemporalWindow | None:
        """Set (or with both None, clear) a segment's temporal window, after checking that
        no prompt of the segment lies outside it. A missing end is the last frame, a missing
        start frame 0."""
        input_ = self.input(input_node, axis)
        target = target_for(input_, segmentation_node)
        if start is None and end is None:
            target.set_window(segment_id, None)
            return None
        window = TemporalWindow(0 if start is None else int(start), input_.num_frames - 1 if end is None else int(end))
        window.check(input_.num_frames)
        outside = [f for f in frame_prompts(input_, prompt_nodes(target, segment_id)) if f not in window]
        if outside:
            raise PromptError(
                f"segment '{target.segment_name(segment_id)}' has prompts on frame(s) "
                f"{', '.join(map(str, outside))}, outside {window.start}-{window.end}: clear them first"
            )
        target.set_window(segment_id, window)
        return window

    # ---- actions
    def segment_frame(self, input_node, segmentation_node, segment_id: str, frame: int | None = None, *,
                      model: str, device: str = "auto", axis: str = "K", prompt_point=None) -> ActionResult:
        """Segment the frames whose prompts changed (and `frame`), and write them.

        `prompt_point` (markups node, control point ID) is the click that triggered this,
        so that undo removes it with the mask it made.
        """
        started = time.perf_counter()
        input_, session = self.session(input_node, model=model, device=device, axis=axis)
        target = target_for(input_, segmentation_node)
        obj_id, changed = self._sync(session, input_, target, segment_id)
        frames = set(changed)
        if frame is not None and int(frame) in session.computed_frames(obj_id):
            frames.add(int(frame))  # rewrite its mask (e.g. after a manual edit); never blank a frame
        window = target.window(segment_id)
        frames = sorted(f for f in frames if window is None or f in window)
        step = self.undo_stack.begin(target, segment_id, "segment frame")
        step.prompt_point = prompt_point
        writer = _Writer(target, segment_id, step, 0.0)
        for f in frames:
            writer.add(f, session.mask(obj_id, f))
        writer.flush()
        self.undo_stack.push(step)
        return ActionResult(segment_id, writer.written, [], changed, time.perf_counter() - started, target=target)

    def propagate(self, input_node, segmentation_node, segment_id: str, *, direction: str = "both",
                  model: str, device: str = "auto", axis: str = "K",
                  progress: Callable[[int, int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> ActionResult:
        """Segment the prompted frames and carry the masks through the segment's window.

        Finished frames are written as they finish (inside the window only; other
        segments and frames are never touched), so a cancelled or failed run keeps them
        and leaves the rest as it was; one undo step covers the whole run.
        ``progress(done, total, frame)``; ``cancel()`` is polled between frames.
        """
        started = time.perf_counter()
        self._cancel = False
        input_, session = self.session(input_node, model=model, device=device, axis=axis)
        target = target_for(input_, segmentation_node)
        obj_id, changed = self._sync(session, input_, target, segment_id)
        if not session.prompted_frames(obj_id):
            raise PromptError(
                f"segment '{target.segment_name(segment_id)}' has no prompts yet: place boundary or "
                "region points (or a box) on a frame first"
            )
        window = target.window(segment_id)
        step = self.undo_stack.begin(target, segment_id, "propagate")
        writer = _Writer(target, segment_id, step, self.write_interval)
        computed: list[int] = []
        for f in changed:
            if window is None or f in window:
                writer.add(f, session.mask(obj_id, f))

        def on_frame(done: int, total: int, frame: int, _obj: int) -> None:
            computed.append(frame)
            writer.add(frame, session.mask(obj_id, frame))
            if progress is not None:
                progress(done, total, frame)

        def should_stop() -> bool:
            return self._cancel or (cancel is not None and bool(cancel()))

        report = None
        try:
            report = session.propagate(direction, objects=[obj_id], progress=on_frame, cancel=should_stop)
        finally:
            writer.flush()
            self.undo_stack.push(step)
        return ActionResult(segment_id, writer.written, computed, changed, time.perf_counter() - started,
                            cancelled=bool(report and report.cancelled), target=target)

    def cancel(self) -> None:
        """Ask a running propagate() to stop after the current frame."""
        self._cancel = True

    def clear_prompts(self, input_node, segmentation_node, segment_id: str, frame: int | None = None, *,
                      axis: str = "K") -> int:
        """Remove a segment's prompts on one frame (or all). Masks change at the next
        `segment_frame` / `propagate`: a frame left without prompts then loses the mask
        its prompts made (propagation refills it from its neighbours)."""
        input_ = self.input(input_node, axis)
        target = target_for(input_, segmentation_node)
        return remove_prompts(input_, prompt_nodes(target, segment_id).values(), frame)

    def undo(self) -> UndoStep | None:
        """Undo the last write; the session forgets the segment's propagated frames so the
        next propagate recomputes them from the (restored) prompts."""
        step = self.undo_stack.undo()
        if step is not None and self._session is not None:
            obj_id = self._objects.get((step.target.node.GetID(), step.segment_id))
            if obj_id is not None and obj_id in self._session.objects:
                self._session.objects[obj_id].forget_results()
        return step


def _same_prompt(a: FramePrompt | None, b: FramePrompt) -> bool:
    if a is None:
        return False
    return (
        np.array_equal(a.boundary, b.boundary)
        and np.array_equal(a.positive, b.positive)
        and np.array_equal(a.negative, b.negative)
        and a.box == b.box
        and a.mask is None
    )

