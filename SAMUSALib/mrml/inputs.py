"""Inputs from nodes: a volume sliced along an axis, a cine's sequence browser or its proxy
volume, as a `SlicerInput` (frames plus what maps points and masks back)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vtk

from ..errors import InputError, PromptError
from ..frames import AXES, FrameSource
from .geometry import _image_array, _world_to_local, geometry_from_ijk_to_ras, ijk_to_ras_of

_FRAME_PLANE = {"K": (0, 1), "J": (0, 2), "I": (1, 2)}  # (x, y) as (i, j, k) indices
_IJK_INDEX = {"K": 2, "J": 1, "I": 0}  # frame index as an (i, j, k) index

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


def shown_volume(node):
    """The volume node the views show for an input: a cine browser's proxy volume, else the
    node itself."""
    if node is None or not node.IsA("vtkMRMLSequenceBrowserNode"):
        return node
    return node.GetProxyNode(_volume_sequence_of(node))


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


def current_frame_of_browser(browser) -> int | None:
    """The frame (item of the cine's image sequence) a browser shows, or None; reads no voxels."""
    sequence = _volume_sequence_of(browser)
    master = browser.GetMasterSequenceNode()
    selected = browser.GetSelectedItemNumber()
    if master is None or selected < 0:
        return None
    if master is sequence:
        return int(selected)
    number = sequence.GetItemNumberFromIndexValue(master.GetNthIndexValue(selected), False)
    return int(number) if number >= 0 else None


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
        return current_frame_of_browser(self.browser)

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


def _item_fingerprint(node) -> tuple:
    """A cine item's modification stamps: the node's (its geometry: a new IJK-to-RAS matrix
    modifies it) and its image's (voxels modified, or another image: VTK's modification
    times are unique across objects). Five times cheaper than `_volume_fingerprint`
    (no matrix, no address), which matters as every click checks every item."""
    image = node.GetImageData()
    return (node.GetMTime(), image.GetMTime() if image is not None else 0)


def input_fingerprint(node, axis: str = "K") -> tuple:
    """Changes whenever the voxels, the frames or the geometry of an input change."""
    browser = node if node.IsA("vtkMRMLSequenceBrowserNode") else browser_of_proxy(node)
    if browser is None:
        return ("volume", axis) + _volume_fingerprint(node)
    sequence = _volume_sequence_of(browser)
    items = tuple(_item_fingerprint(sequence.GetNthDataNode(i)) for i in range(sequence.GetNumberOfDataNodes()))
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



def frame_shown(source: SlicerInput) -> int:
    """The frame the user looks at: the browser's item for a cine; for a volume, the slice
    through the centre of the slice view whose normal is most aligned with the frame axis
    (0 when the scene has no slice views)."""
    if source.kind == "sequence":
        frame = source.current_frame()
        return 0 if frame is None else frame
    scene = source.node.GetScene()
    direction = source.frame_ijk_to_ras[0][:3, {"I": 0, "J": 1, "K": 2}[source.axis]]
    best, best_alignment = None, -1.0
    collection = scene.GetNodesByClass("vtkMRMLSliceNode") if scene is not None else None
    for index in range(collection.GetNumberOfItems() if collection is not None else 0):
        slice_node = collection.GetItemAsObject(index)
        slice_to_ras = slice_node.GetSliceToRAS()
        normal = np.array([slice_to_ras.GetElement(r, 2) for r in range(3)])
        alignment = abs(float(np.dot(normal, direction))) / (np.linalg.norm(direction) or 1.0)
        if alignment > best_alignment:
            best, best_alignment = slice_node, alignment
    if best is None:
        return 0
    return source.frame_at([best.GetSliceToRAS().GetElement(r, 3) for r in range(3)])
