"""Undo of SAMUSA's writes: the voxels each action replaced, per frame of one segment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .prompt_nodes import RemovedPrompts, forget_replaced, move_back, restore_replaced
from .targets import SegmentationTarget, _segment_exists

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
    removed: RemovedPrompts = field(default_factory=RemovedPrompts)  # prompts the action took away
    hand_drawn: dict[int, np.ndarray] = field(default_factory=dict)  # drawings it stopped using as prompts
    moved: list[tuple] = field(default_factory=list)  # points and boxes dragged, where they were (`moved_since`)

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
        if not step.before and step.prompt_point is None and not step.removed and not step.hand_drawn and not step.moved:
            return
        self._steps.append(step)
        dropped = self._steps[: max(0, len(self._steps) - self.levels)]
        del self._steps[: len(dropped)]
        _forget(dropped)

    def peek(self) -> UndoStep | None:
        return self._steps[-1] if self._steps else None

    def undo(self) -> UndoStep | None:
        """Restore the last step; returns it (None when there is nothing to undo)."""
        if not self._steps:
            return None
        step = self._steps.pop()
        if step.target.node.GetScene() is not None and _segment_exists(step.target.node, step.segment_id):
            step.target.write(step.segment_id, step.masks())
        renamed: dict = {}
        if step.prompt_point is not None:
            node, point_id = step.prompt_point
            index = node.GetNthControlPointIndexByID(point_id) if node.GetScene() is not None else -1
            if index >= 0 and node.IsA("vtkMRMLMarkupsROINode"):
                renamed.update(restore_replaced(node))  # the box it replaced on that frame comes back
                node.GetScene().RemoveNode(node)  # a box is its whole ROI node
            elif index >= 0:
                node.RemoveNthControlPoint(index)
        renamed.update(step.removed.put_back())
        move_back(step.moved)
        _follow(self._steps, renamed)
        return step

    def clear(self) -> None:
        _forget(self._steps)
        self._steps.clear()


def _follow(steps: Iterable[UndoStep], renamed: dict) -> None:
    """Point the steps still to undo at the prompts undo put back under new IDs."""
    if not renamed:
        return
    for step in steps:
        if step.prompt_point is not None:
            node, point_id = step.prompt_point
            step.prompt_point = renamed.get((node.GetID(), point_id), step.prompt_point)
        moved = []
        for node, position, description, point_id in step.moved:
            node, point_id = renamed.get((node.GetID(), point_id), (node, point_id))
            moved.append((node, position, description, point_id))
        step.moved = moved


def _forget(steps: Iterable[UndoStep]) -> None:
    """Steps that can no longer be undone release the boxes kept for them."""
    forget_replaced(step.prompt_point[0].GetID() for step in steps
                    if step.prompt_point is not None and step.prompt_point[0].GetID())

