"""Prompt nodes: one markups fiducial node per (segment, prompt type), found by attributes;
the frame each point was placed on; prompts per frame read from them."""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import numpy as np
import vtk

from ..errors import PromptError
from ..prompts import FramePrompt
from .inputs import SlicerInput, current_frame_of_browser
from .targets import SegmentationTarget

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

_FRAME_IN_DESCRIPTION = re.compile(r"\bframe\s+(\d+)\b", re.I)

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


def show_points_of_frame(input_: SlicerInput | None, nodes: Iterable, frame: int) -> None:
    """In a cine, show only the points placed on `frame` (all frames share one plane).
    Touches only the points whose visibility changes (this runs on every frame change).
    `input_` None means a cine whose frames were not read (see `show_points_of_current_frame`)."""
    if input_ is not None and input_.kind != "sequence":
        return
    for node in nodes:
        if node is None:
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
    return [node for node in _nodes_by_class(scene, "vtkMRMLMarkupsFiducialNode")
            if node.GetAttribute(ATTRIBUTE_SEGMENTATION) == owner and node.GetAttribute(ATTRIBUTE_SEGMENT) == segment_id
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
    be a prompt (beyond the image's frames or outside the frame). In a cine `frame` is
    the frame it was placed on."""
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


def remove_prompts(input_: SlicerInput, nodes: Iterable, frame: int | None = None) -> int:
    """Remove a segment's points on one frame (or all); returns how many were removed.
    Points that lie on no frame (beyond the image) go too: they belong to none."""
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
                on = check_point(input_, node, index, stamp)[0]
            except PromptError:
                doomed.append(index)
                continue
            if on == frame:
                doomed.append(index)
        for index in reversed(doomed):
            node.RemoveNthControlPoint(index)
        removed += len(doomed)
    return removed
