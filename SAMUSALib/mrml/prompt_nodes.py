"""Prompt nodes: one markups fiducial node per (segment, point type) and one markups ROI
node per (segment, frame) for boxes, found by attributes; the frame each point or box was
placed on; prompts per frame read from them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import vtk

from ..errors import PromptError
from ..markups import roi_corners
from ..prompts import FramePrompt
from .inputs import _FRAME_PLANE, SlicerInput, current_frame_of_browser
from .targets import SegmentationTarget, target_for

PROMPT_KINDS = ("boundary", "positive", "negative", "box")
"""Prompt types: boundary points (clicks on the border) and region points inside (+) and
outside (-), each type in one markups fiducial node per segment; and boxes, each a markups
ROI node (a rectangle drawn and resized in the frame's plane), one per frame."""

POINT_KINDS = ("boundary", "positive", "negative")
BOX_CLASS = "vtkMRMLMarkupsROINode"

PROMPT_LABELS = {"boundary": "boundary", "positive": "region+", "negative": "region-", "box": "box"}
"""Name suffix of each prompt type's markups node; "region+" / "region-" / "boundary" are
the names `SAMUSALib.markups.read_markups` understands when the nodes are saved as .mrk.json."""

PROMPT_COLORS = {
    "boundary": (1.0, 0.82, 0.1),
    "positive": (0.2, 0.9, 0.3),
    "negative": (0.95, 0.25, 0.25),
    "box": (0.3, 0.7, 1.0),
}
"""Point colour per prompt type (red, green, blue in 0..1), the same for every segment."""

ATTRIBUTE_SEGMENTATION = "SAMUSA.Segmentation"  # the owner's ID, as written before REFERENCE_SEGMENTATION
REFERENCE_SEGMENTATION = "SAMUSASegmentation"
ATTRIBUTE_SEGMENT = "SAMUSA.Segment"
ATTRIBUTE_PROMPT = "SAMUSA.Prompt"

_FRAME_IN_DESCRIPTION = re.compile(r"\bframe\s+(\d+)\b", re.I)

# --------------------------------------------------------------------------- prompts as markups


def _nodes_by_class(scene, class_name: str) -> list:
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def owner_id(node) -> str | None:
    """The ID of the segmentation whose prompts a markups node holds: its node reference
    (`REFERENCE_SEGMENTATION`), which Slicer renames with the segmentation when a scene is
    imported into one holding the same ID; else, for scenes saved before, the attribute.
    With the attribute alone, an imported scene's prompts pointed at whatever node of the
    other scene had their segmentation's old ID."""
    return node.GetNodeReferenceID(REFERENCE_SEGMENTATION) or node.GetAttribute(ATTRIBUTE_SEGMENTATION)


def _owned(node, owner: str, segment_id: str, kind: str) -> bool:
    return owner_id(node) == owner and node.GetAttribute(ATTRIBUTE_SEGMENT) == segment_id and node.GetAttribute(ATTRIBUTE_PROMPT) == kind


def is_prompt_node(node, segmentation_node, segment_id: str, kind: str) -> bool:
    """Whether a markups node holds prompts of this type for this segment."""
    return node is not None and segmentation_node is not None and _owned(node, segmentation_node.GetID(), segment_id, kind)


def prompt_node(target: SegmentationTarget, segment_id: str, kind: str, create: bool = True):
    """The markups node that the next prompt of this type goes into (created on demand,
    coloured by type, named "<segment> <type>"): for points, the segment's fiducial node of
    that type; for a box, the segment's ROI node not placed yet (each placed box keeps its
    own ROI node: see `box_nodes`)."""
    if kind not in PROMPT_KINDS:
        raise PromptError(f"prompt type must be one of {', '.join(PROMPT_KINDS)}; got {kind!r}")
    scene = target.node.GetScene()
    owner = target.node.GetID()
    if kind == "box":
        waiting = [node for node in box_nodes(target, segment_id) if node.GetNumberOfControlPoints() == 0]
        if waiting or not create:
            return waiting[0] if waiting else None
    else:
        for node in _nodes_by_class(scene, "vtkMRMLMarkupsFiducialNode"):
            if _owned(node, owner, segment_id, kind):
                return node
        if not create:
            return None
    cls = BOX_CLASS if kind == "box" else "vtkMRMLMarkupsFiducialNode"
    node = scene.AddNewNodeByClass(cls, f"{target.segment_name(segment_id)} {PROMPT_LABELS[kind]}")
    node.SetNodeReferenceID(REFERENCE_SEGMENTATION, owner)
    node.SetAttribute(ATTRIBUTE_SEGMENTATION, owner)  # what older SAMUSA reads
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
    if kind == "box" and hasattr(display, "SetHandlesInteractive"):
        display.SetHandlesInteractive(True)  # resize it in the slice view by its handles


def box_nodes(target: SegmentationTarget, segment_id: str) -> list:
    """The markups ROI nodes holding a segment's boxes (placed or waiting to be placed)."""
    owner = target.node.GetID()
    return [node for node in _nodes_by_class(target.node.GetScene(), BOX_CLASS) if _owned(node, owner, segment_id, "box")]


def prompt_nodes(target: SegmentationTarget, segment_id: str, create: bool = False) -> dict[str, object]:
    """{point type: markups fiducial node} of a segment (only existing nodes unless
    `create`); its boxes are `box_nodes`."""
    out = {}
    for kind in POINT_KINDS:
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


def roi_box(input_: SlicerInput, node, frame: int | None = None):
    """(frame, (x0, y0, x1, y1)) of a box drawn as a markups ROI node, or None while it is
    not a rectangle yet (no point placed, or only its first corner).

    The frame is the ROI's stamp in a cine (or `frame`), else the slice its centre lies on;
    the box is the bounding box of the ROI's 8 corners projected onto that frame through
    the image's geometry (x the column, y the row), clipped to the image. An ROI that
    misses the image is a PromptError saying so."""
    if node.GetNumberOfDefinedControlPoints() == 0:
        return None
    matrix = np.array([[node.GetObjectToWorldMatrix().GetElement(r, c) for c in range(4)] for r in range(4)])
    center = matrix[:3, 3]
    what = f"the box '{node.GetName()}'"
    if frame is None and input_.kind == "sequence":
        frame = point_frame(node, 0)
    on, _, _ = input_.frame_xy(center, frame, what)
    ijk = np.array([input_.to_ijk(corner, on if input_.kind == "sequence" else None)
                    for corner in roi_corners(center, node.GetSize(), matrix[:3, :3])])
    x_index, y_index = _FRAME_PLANE[input_.axis]
    x0, x1, y0, y1 = ijk[:, x_index].min(), ijk[:, x_index].max(), ijk[:, y_index].min(), ijk[:, y_index].max()
    if x1 - x0 < 1e-6 or y1 - y0 < 1e-6:
        return None  # its first corner only: the rectangle is still being drawn
    height, width = input_.frames.frame_shape
    if x1 < -0.5 or y1 < -0.5 or x0 > width - 0.5 or y0 > height - 0.5:
        raise PromptError(
            f"{what} lies outside the image (columns {x0:.1f} to {x1:.1f}, rows {y0:.1f} to {y1:.1f}; the frame "
            f"is {width} x {height} pixels): draw it on the image"
        )
    clip = (max(x0, -0.5), max(y0, -0.5), min(x1, width - 0.5), min(y1, height - 0.5))
    return int(on), tuple(float(v) for v in clip)


def frame_prompts(input_: SlicerInput, nodes: Mapping[str, object], boxes: Iterable = ()) -> dict[int, FramePrompt]:
    """Prompts per frame from a segment's markups nodes: {point type: fiducial node} and its
    box ROI nodes (`box_nodes`).

    Points map through the image's geometry to frame pixels; each ROI gives its frame's
    box (`roi_box`; of two on one frame, the later). Every prompt is checked against the
    frame size.
    """
    per_frame: dict[int, dict[str, list]] = {}
    for node in boxes:
        placed = roi_box(input_, node)
        if placed is not None:
            per_frame.setdefault(placed[0], {})["box"] = placed[1]
    for kind, node in nodes.items():
        if node is None:
            continue
        if kind not in POINT_KINDS:
            raise PromptError(f"unknown point type {kind!r}; use one of {', '.join(POINT_KINDS)} (boxes are ROI nodes)")
        for index, world in _defined_points(node):
            stamp = point_frame(node, index) if input_.kind == "sequence" else None
            what = f"point {index + 1} of '{node.GetName()}'"
            frame, x, y = input_.frame_xy(world, stamp, what)
            per_frame.setdefault(frame, {}).setdefault(kind, []).append([x, y])
    prompts: dict[int, FramePrompt] = {}
    for frame, kinds in sorted(per_frame.items()):
        prompt = FramePrompt(frame, kinds.get("boundary"), kinds.get("positive"), kinds.get("negative"), kinds.get("box"))
        prompt.check(input_.num_frames, input_.frames.frame_shape)
        prompts[frame] = prompt
    return prompts


def show_points_of_frame(input_: SlicerInput | None, nodes: Iterable, frame: int) -> None:
    """In a cine, show only the points placed on `frame` (all frames share one plane).
    Touches only the points whose visibility changes (this runs on every frame change).
    `input_` None means a cine whose frames were not read (see `show_points_of_current_frame`)."""
    if input_ is not None and input_.kind != "sequence":
        return
    for node in nodes:
        if node is None:
            continue
        if node.IsA(BOX_CLASS):  # a box shows on its frame only (one control point: its centre)
            wanted = node.GetNumberOfControlPoints() == 0 or point_frame(node, 0) in (None, frame)
            if bool(node.GetDisplayVisibility()) != wanted:
                node.SetDisplayVisibility(wanted)
            continue
        changes = [(index, wanted) for index in range(node.GetNumberOfControlPoints())
                   if bool(node.GetNthControlPointVisibility(index)) != (wanted := point_frame(node, index) in (None, frame))]
        if not changes:
            continue
        was = node.StartModify()
        for index, wanted in changes:
            node.SetNthControlPointVisibility(index, wanted)
        node.EndModify(was)


def existing_prompt_nodes(segmentation_node, segment_id: str) -> list:
    """The markups nodes holding a segment's prompts, found by their attributes only (no
    input is read: cheap enough for every frame change)."""
    scene = segmentation_node.GetScene() if segmentation_node is not None else None
    if scene is None or not segment_id:
        return []
    owner = segmentation_node.GetID()
    return [node for cls in ("vtkMRMLMarkupsFiducialNode", BOX_CLASS) for node in _nodes_by_class(scene, cls)
            if owner_id(node) == owner and node.GetAttribute(ATTRIBUTE_SEGMENT) == segment_id
            and node.GetAttribute(ATTRIBUTE_PROMPT) in PROMPT_KINDS]


def show_points_of_current_frame(browser, segmentation_node, segment_id: str) -> int | None:
    """On a frame change of a cine: show only the segment's points of the frame now shown.
    Reads no voxels and no item of the cine besides the first (O(points), not O(frames));
    returns the frame, or None when the browser shows no frame."""
    frame = current_frame_of_browser(browser)
    if frame is not None:
        show_points_of_frame(None, existing_prompt_nodes(segmentation_node, segment_id), frame)
    return frame


def check_point(input_: SlicerInput, node, index: int, frame: int | None = None) -> tuple[int, float, float]:
    """(frame, x, y) of a just-placed control point, or a PromptError saying why it cannot
    be a prompt (beyond the image's frames or outside the frame; its segment's temporal
    window: `check_window`). In a cine `frame` is the frame it was placed on."""
    world = [0.0, 0.0, 0.0]
    node.GetNthControlPointPositionWorld(index, world)
    what = f"the point placed on '{node.GetName()}'"
    on, x, y = input_.frame_xy(world, frame, what)
    height, width = input_.frames.frame_shape
    if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
        raise PromptError(
            f"{what} lies outside the image (column {x:.1f}, row {y:.1f}; the frame is {width} x {height} "
            "pixels): click inside the image"
        )
    return on, x, y


def check_window(input_: SlicerInput, node, frame: int, what: str | None = None) -> None:
    """PromptError for a prompt just placed (in markups `node`) on a frame outside its
    segment's temporal window.

    Why: kept, such a point made every later action of the segment fail ("prompts outside
    its window") until the user found and deleted it; refused, it is removed at once and
    the status line says why."""
    what = what or f"the point placed on '{node.GetName()}'"
    scene = node.GetScene()
    owner_ref, segment_id = owner_id(node), node.GetAttribute(ATTRIBUTE_SEGMENT)
    owner = scene.GetNodeByID(owner_ref) if scene is not None and owner_ref else None
    if owner is None or not segment_id:
        return
    target = target_for(input_, owner, create=False)
    window = None if target is None else target.window(segment_id)
    if window is not None and frame not in window:
        raise PromptError(
            f"{what} is on frame {frame}, outside the window {window.start}-{window.end} of segment "
            f"'{target.segment_name(segment_id)}': click on a frame inside it, or move its start or end"
        )


def place_box(input_: SlicerInput, node, frame: int | None = None) -> int | None:
    """Check a box just drawn (a markups ROI node) and stamp its frame; returns the frame,
    or None while only its first corner is placed. In a cine `frame` is the frame shown.
    The segment's other box on that frame is removed (the new one replaces it). Raises a
    PromptError saying why for an ROI that misses the image or its frames, or lies outside
    the segment's temporal window (the caller removes it)."""
    placed = roi_box(input_, node, frame)
    if placed is None:
        return None
    on = placed[0]
    check_window(input_, node, on, f"the box drawn on '{node.GetName()}'")  # before it replaces anything
    stamp_frame(node, 0, on)
    scene = node.GetScene()
    owner, segment_id = owner_id(node), node.GetAttribute(ATTRIBUTE_SEGMENT)
    for other in _nodes_by_class(scene, BOX_CLASS):
        if other is node or not _owned(other, owner, segment_id, "box") or other.GetNumberOfDefinedControlPoints() == 0:
            continue
        try:
            replaced = roi_box(input_, other)
        except PromptError:
            continue
        if replaced is not None and replaced[0] == on:
            _keep_replaced(node, other)
            scene.RemoveNode(other)
    return on


#: Boxes a newly drawn box replaced, by the new box's node ID: copies kept off the scene, put
#: back when the new box is undone (`restore_replaced`). Undo removed the new box only, and
#: the frame was left with the old box's mask and no box behind it.
_REPLACED_BOXES: dict[str, list] = {}


def _box_copy(box):
    """A copy of a box's ROI node, kept off the scene until it is put back (`_add_back`)."""
    copy = box.GetScene().CreateNodeByClass(BOX_CLASS)
    copy.Copy(box)
    copy.SetName(box.GetName())
    return copy


def _add_back(scene, copy) -> None:
    scene.AddNode(copy)
    copy.CreateDefaultDisplayNodes()
    _style(copy, "box")
    owner = owner_id(copy)
    if owner:
        copy.SetNodeReferenceID(REFERENCE_SEGMENTATION, owner)


def _point_ids(node) -> list[str]:
    return [node.GetNthControlPointID(i) for i in range(node.GetNumberOfControlPoints())]


def _keep_replaced(new, old) -> None:
    _REPLACED_BOXES.setdefault(new.GetID(), []).append((_box_copy(old), old.GetID(), _point_ids(old)))


def _box_back(scene, copy, old_id: str, old_points: list[str], renamed: dict) -> None:
    """Add a kept box back; the scene gives it a new ID, so say which (`Renamed`)."""
    _add_back(scene, copy)
    for old_point, new_point in zip(old_points, _point_ids(copy)):
        renamed[(old_id, old_point)] = (copy, new_point)
    if old_id in _REPLACED_BOXES:  # boxes it had replaced, kept under its old ID
        _REPLACED_BOXES[copy.GetID()] = _REPLACED_BOXES.pop(old_id)


def restore_replaced(box) -> dict:
    """Put back into the scene the boxes `box` replaced when it was drawn (see
    `place_box`); returns what got new IDs (see `RemovedPrompts.put_back`). For undo,
    which removes `box`."""
    scene = box.GetScene()
    renamed: dict = {}
    for copy, old_id, old_points in _REPLACED_BOXES.pop(box.GetID(), []) if scene is not None else []:
        _box_back(scene, copy, old_id, old_points, renamed)
    return renamed


def forget_replaced(box_ids: Iterable[str]) -> None:
    """Drop the boxes kept for undoing these boxes (their undo steps are gone)."""
    for box_id in box_ids:
        _REPLACED_BOXES.pop(box_id, None)


@dataclass
class RemovedPrompts:
    """What `remove_prompts` took away, so that undo can put it back: each point with its
    node, index, position, label, description (its frame stamp) and ID; each box as a copy
    of its ROI node, with the scene it was in, its ID and its points' IDs."""

    points: list[tuple] = field(default_factory=list)
    boxes: list[tuple] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.points or self.boxes)

    def put_back(self) -> dict[tuple[str, str], tuple]:
        """Return the points to their nodes at their former places (nodes since deleted
        are skipped) and the boxes to their scenes. Returns {(old node ID, old point ID):
        (node, new point ID)}: a point put back gets a new ID (and a box a new node), which
        the steps still to undo must follow, or undoing the click that made it finds
        nothing to remove."""
        renamed: dict = {}
        for scene, copy, old_id, old_points in self.boxes:
            if scene is not None:
                _box_back(scene, copy, old_id, old_points, renamed)
        for node, index, world, label, description, point_id in sorted(self.points, key=lambda p: p[1]):
            if node.GetScene() is None:
                continue
            index = min(index, node.GetNumberOfControlPoints())
            node.InsertControlPointWorld(index, vtk.vtkVector3d(*map(float, world)), label)
            node.SetNthControlPointDescription(index, description)
            renamed[(node.GetID(), point_id)] = (node, node.GetNthControlPointID(index))
        self.points, self.boxes = [], []
        return renamed


def prompt_positions(target: SegmentationTarget, segment_id: str) -> dict[tuple[str, str], tuple]:
    """Where each of a segment's points and boxes is: {(node ID, point ID): (node, position,
    description)}, a point's position its world RAS, a box's its centre and size. Kept by
    the segmenter at each read of the prompts, so that a drag can be told and undone."""
    positions = {}
    for node in [*prompt_nodes(target, segment_id).values(), *box_nodes(target, segment_id)]:
        for index, world in _defined_points(node):
            description = node.GetNthControlPointDescription(index) or ""
            if node.IsA(BOX_CLASS):
                center = [0.0] * 3
                node.GetCenterWorld(center)
                world = np.array([*center, *node.GetSize()])
            positions[(node.GetID(), node.GetNthControlPointID(index))] = (node, tuple(map(float, world)), description)
    return positions


def moved_since(seen: Mapping[tuple[str, str], tuple], now: Mapping[tuple[str, str], tuple]) -> list[tuple]:
    """The points and boxes of `seen` that are still there but somewhere else now."""
    return [seen[key] + (key[1],) for key in seen if key in now and not np.allclose(seen[key][1], now[key][1])]


def move_back(moved: Iterable[tuple]) -> None:
    """Put points and boxes back where `moved_since` saw them (nodes since deleted skipped)."""
    for node, position, description, point_id in moved:
        index = node.GetNthControlPointIndexByID(point_id) if node.GetScene() is not None else -1
        if index < 0:
            continue
        if node.IsA(BOX_CLASS):
            node.SetCenterWorld(*position[:3])
            node.SetSize(*position[3:])
        else:
            node.SetNthControlPointPositionWorld(index, *position)
        node.SetNthControlPointDescription(index, description)


def remove_prompts(input_: SlicerInput, nodes: Iterable, frame: int | None = None,
                   kept: RemovedPrompts | None = None) -> int:
    """Remove a segment's points and boxes on one frame (or all); returns how many were
    removed. Points and boxes that lie on no frame (beyond the image) go too: they belong
    to none. A box goes with its ROI node. What is removed is recorded in `kept`, for undo."""
    removed = 0
    for node in nodes:
        if node is None:
            continue
        if node.IsA(BOX_CLASS):
            try:
                placed = roi_box(input_, node)
            except PromptError:
                placed = None, None  # off the image or its frames: on no frame
            if frame is None or placed is None or placed[0] in (None, frame):
                removed += int(placed is not None)
                if kept is not None and placed is not None:
                    kept.boxes.append((node.GetScene(), _box_copy(node), node.GetID(), _point_ids(node)))
                node.GetScene().RemoveNode(node)
            continue
        doomed = []
        for index, world in _defined_points(node):
            if frame is None:
                doomed.append(index)
                continue
            stamp = point_frame(node, index) if input_.kind == "sequence" else None
            try:
                on = check_point(input_, node, index, stamp)[0]
            except PromptError:
                doomed.append(index)
                continue
            if on == frame:
                doomed.append(index)
        for index in reversed(doomed):
            if kept is not None:
                world = [0.0, 0.0, 0.0]
                node.GetNthControlPointPositionWorld(index, world)
                kept.points.append((node, index, tuple(world), node.GetNthControlPointLabel(index),
                                    node.GetNthControlPointDescription(index) or "", node.GetNthControlPointID(index)))
            node.RemoveNthControlPoint(index)
        removed += len(doomed)
    return removed
