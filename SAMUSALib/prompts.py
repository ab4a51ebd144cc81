"""Prompts: boundary points, region points, boxes, masks and temporal windows.

Coordinates are pixels of the frame as `FrameSource.frame` returns it: x is the column,
y the row, (0, 0) the centre of the top-left pixel. Frames and windows are 0-based
frame indices; a window [start, end] includes both ends.

Boundary points are clicks *on* the structure's border (the SAMUSA prompt); region
points are SAM's inside (positive) / outside (negative) clicks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import PromptError

DEFAULT_COLORS = [
    (0.95, 0.35, 0.25),
    (0.25, 0.75, 0.35),
    (0.25, 0.55, 0.95),
    (0.95, 0.80, 0.20),
    (0.80, 0.35, 0.85),
    (0.20, 0.85, 0.85),
]


def _as_points(value: Any, what: str) -> np.ndarray:
    try:
        points = np.asarray(value if value is not None else [], dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptError(f"{what} must be a list of [x, y] pairs; got {value!r}") from None
    if points.size == 0:
        return np.zeros((0, 2))
    if points.ndim == 1 and points.shape[0] == 2:
        points = points[None]
    if points.ndim != 2 or points.shape[1] != 2:
        raise PromptError(f"{what} must be a list of [x, y] pairs; got shape {points.shape}")
    if not np.isfinite(points).all():
        raise PromptError(f"{what} contain NaN or infinite coordinates")
    return points


@dataclass(frozen=True)
class TemporalWindow:
    """Frames [start, end] (inclusive) in which the object is visible."""

    start: int
    end: int

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise PromptError(f"window {name} must be an integer frame index; got {value!r}")
        if self.start < 0:
            raise PromptError(f"window start {self.start} is negative; frames count from 0")
        if self.start > self.end:
            raise PromptError(
                f"window start {self.start} is after its end {self.end}; "
                "give [start, end] with start <= end"
            )

    def __contains__(self, frame: int) -> bool:
        return self.start <= frame <= self.end

    def __len__(self) -> int:
        return self.end - self.start + 1

    def check(self, num_frames: int) -> None:
        if self.end >= num_frames:
            raise PromptError(
                f"window [{self.start}, {self.end}] goes past the last frame ({num_frames - 1})"
            )


#: The largest object id a .seg.nrrd label holds (uint16).
MAX_OBJECT_ID = 65535


@dataclass
class FramePrompt:
    """Everything the user gave for one object on one frame."""

    frame: int
    boundary: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    positive: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    negative: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if isinstance(self.frame, bool) or not isinstance(self.frame, (int, np.integer)):
            raise PromptError(f"prompt frame must be an integer index; got {self.frame!r}")
        self.frame = int(self.frame)
        self.boundary = _as_points(self.boundary, "boundary points")
        self.positive = _as_points(self.positive, "positive points")
        self.negative = _as_points(self.negative, "negative points")
        if self.box is not None:
            try:
                box = tuple(float(v) for v in self.box)
            except (TypeError, ValueError):
                raise PromptError(f"box must be [x0, y0, x1, y1]; got {self.box!r}") from None
            if len(box) != 4 or not np.isfinite(box).all():
                raise PromptError(f"box must be four finite numbers [x0, y0, x1, y1]; got {self.box!r}")
            if box[2] <= box[0] or box[3] <= box[1]:
                raise PromptError(
                    f"box {list(box)} is empty or inverted; give [x0, y0, x1, y1] with x0 < x1 and y0 < y1"
                )
            self.box = box  # type: ignore[assignment]
        if self.mask is not None:
            self.mask = np.asarray(self.mask).astype(bool)

    @property
    def is_empty(self) -> bool:
        return (
            len(self.boundary) == 0
            and len(self.positive) == 0
            and len(self.negative) == 0
            and self.box is None
            and (self.mask is None or not self.mask.any())
        )

    def merged(self, other: "FramePrompt") -> "FramePrompt":
        """Add `other`'s clicks to these; a new box or mask replaces the old one."""
        return FramePrompt(
            frame=self.frame,
            boundary=np.concatenate([self.boundary, other.boundary]),
            positive=np.concatenate([self.positive, other.positive]),
            negative=np.concatenate([self.negative, other.negative]),
            box=other.box if other.box is not None else self.box,
            mask=other.mask if other.mask is not None else self.mask,
        )

    def check(self, num_frames: int, frame_shape: tuple[int, int]) -> None:
        if not 0 <= self.frame < num_frames:
            raise PromptError(f"prompt on frame {self.frame}, but frames are 0..{num_frames - 1}")
        height, width = frame_shape
        for name, points in (
            ("boundary", self.boundary),
            ("positive", self.positive),
            ("negative", self.negative),
        ):
            outside = (points[:, 0] < -0.5) | (points[:, 0] > width - 0.5) | (
                points[:, 1] < -0.5
            ) | (points[:, 1] > height - 0.5)
            if outside.any():
                x, y = points[np.argmax(outside)]
                raise PromptError(
                    f"{name} point ({x:g}, {y:g}) on frame {self.frame} lies outside the "
                    f"{width}x{height} frame (x is the column 0..{width - 1}, y the row 0..{height - 1})"
                )
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 < 0 or y1 < 0 or x0 > width - 1 or y0 > height - 1:  # holds no pixel centre
                raise PromptError(
                    f"box {list(self.box)} on frame {self.frame} lies outside the {width}x{height} frame"
                )
        if self.mask is not None and self.mask.shape != tuple(frame_shape):
            raise PromptError(
                f"mask prompt on frame {self.frame} has shape {self.mask.shape}; frames are {tuple(frame_shape)}"
            )
        if self.is_empty:
            raise PromptError(
                f"the prompt on frame {self.frame} is empty: give boundary points, "
                "positive/negative points, a box or a mask"
            )

    def to_json(self) -> dict:
        out: dict[str, Any] = {"frame": self.frame}
        for name in ("boundary", "positive", "negative"):
            points = getattr(self, name)
            if len(points):
                out[name] = [[round(float(x), 3), round(float(y), 3)] for x, y in points]
        if self.box is not None:
            out["box"] = [round(v, 3) for v in self.box]
        return out


@dataclass
class ObjectPrompts:
    """One structure to segment: its prompts, optional temporal window, name and colour."""

    id: int
    name: str = ""
    prompts: list[FramePrompt] = field(default_factory=list)
    window: TemporalWindow | None = None
    color: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, (int, np.integer)) or self.id < 1:
            raise PromptError(f"object id must be a positive integer; got {self.id!r}")
        if self.id > MAX_OBJECT_ID:  # found only when the .seg.nrrd was written, after all the work
            raise PromptError(f"object id {self.id} is too large: a .seg.nrrd holds ids up to {MAX_OBJECT_ID}")
        self.id = int(self.id)
        if not self.name:
            self.name = f"object {self.id}"
        if self.color is None:
            self.color = DEFAULT_COLORS[(self.id - 1) % len(DEFAULT_COLORS)]
        else:
            try:
                color = tuple(float(c) for c in self.color)
            except (TypeError, ValueError):
                color = ()
            if len(color) != 3 or not np.isfinite(color).all() or min(color) < 0 or max(color) > 1:
                raise PromptError(
                    f"colour of object {self.id} must be three numbers between 0 and 1 (red, green, "
                    f"blue); got {self.color!r}; divide 0-255 values by 255"
                )
            self.color = color  # type: ignore[assignment]

    def check(self, num_frames: int, frame_shape: tuple[int, int]) -> None:
        if not self.prompts:
            raise PromptError(f"object {self.id} ({self.name}) has no prompts")
        if self.window is not None:
            self.window.check(num_frames)
        boxes: dict[int, int] = {}
        for prompt in self.prompts:
            prompt.check(num_frames, frame_shape)
            boxes[prompt.frame] = boxes.get(prompt.frame, 0) + (prompt.box is not None)
            if boxes[prompt.frame] > 1:  # the engine kept the last one, without a word
                raise PromptError(
                    f"object {self.id} ({self.name}) has two boxes on frame {prompt.frame}: an object takes one "
                    "box per frame; keep one, or give the other structure an object of its own"
                )
            if self.window is not None and prompt.frame not in self.window:
                raise PromptError(
                    f"object {self.id} has a prompt on frame {prompt.frame}, outside its window "
                    f"[{self.window.start}, {self.window.end}]; widen the window or move the prompt"
                )
        if not any(len(p.positive) or len(p.boundary) or p.box is not None or p.mask is not None for p in self.prompts):
            # a mask came back anyway (23,000 pixels for one negative click on a breast scan)
            raise PromptError(
                f"object {self.id} ({self.name}) has only negative clicks, which say where it is not: "
                "add a positive click, boundary points or a box"
            )


@dataclass
class PromptSet:
    """All objects of one segmentation job, as read from JSON or markups."""

    objects: list[ObjectPrompts]

    def check(self, num_frames: int, frame_shape: tuple[int, int]) -> None:
        if not self.objects:
            raise PromptError("no objects to segment: the prompts list no objects")
        ids = [obj.id for obj in self.objects]
        if len(set(ids)) != len(ids):
            raise PromptError(f"object ids must be unique; got {ids}")
        for obj in self.objects:
            obj.check(num_frames, frame_shape)

    @classmethod
    def from_dict(cls, data: Any) -> "PromptSet":
        if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
            raise PromptError('prompts must be a JSON object with an "objects" list')
        unknown = sorted(k for k in data if k != "objects" and not str(k).startswith(("_", "$")))
        if unknown:  # ignored, a top-level "window" left every frame segmented without a word
            hint = ' (a window belongs to each object, objects[i].window, or to all of them: --window)' if "window" in unknown else ""
            raise PromptError(f'prompts have unknown top-level keys {unknown}: the file holds "objects" only{hint}; '
                              'keys starting with "_" are comments')
        objects = []
        for index, item in enumerate(data["objects"]):
            where = f"objects[{index}]"
            if not isinstance(item, dict):
                raise PromptError(f"{where} must be a JSON object")
            unknown = set(item) - {"id", "name", "window", "prompts", "color"}
            if unknown:
                raise PromptError(f"{where} has unknown keys {sorted(unknown)}")
            window = item.get("window")
            if window is not None:
                if not isinstance(window, (list, tuple)) or len(window) != 2:
                    raise PromptError(f"{where}.window must be [start, end]; got {window!r}")
                window = TemporalWindow(*window)
            prompts = []
            for p_index, prompt in enumerate(item.get("prompts") or []):
                if not isinstance(prompt, dict) or "frame" not in prompt:
                    raise PromptError(f"{where}.prompts[{p_index}] needs a \"frame\"")
                unknown = set(prompt) - {"frame", "boundary", "positive", "negative", "box"}
                if unknown:
                    raise PromptError(
                        f"{where}.prompts[{p_index}] has unknown keys {sorted(unknown)}; "
                        "use boundary, positive, negative or box"
                    )
                prompts.append(FramePrompt(**prompt))
            color = item.get("color")
            objects.append(
                ObjectPrompts(
                    id=item.get("id", index + 1),
                    name=str(item.get("name", "")),
                    prompts=prompts,
                    window=window,
                    color=color,
                )
            )
        return cls(objects)

    def to_dict(self) -> dict:
        out = []
        for obj in self.objects:
            item: dict[str, Any] = {"id": obj.id, "name": obj.name}
            if obj.window is not None:
                item["window"] = [obj.window.start, obj.window.end]
            item["color"] = [round(c, 4) for c in obj.color]
            item["prompts"] = [p.to_json() for p in obj.prompts]
            out.append(item)
        return {"objects": out}


def load_prompts(path: str | Path) -> PromptSet:
    """Read prompts from SAMUSA JSON. Slicer markups (.mrk.json) need frame geometry:
    use `SAMUSALib.markups.read_markups`."""
    path = Path(path)
    if not path.exists():
        raise PromptError(f"prompts file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # Notepad saves a BOM
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PromptError(f"prompts file {path} is not valid JSON: {error}") from None
    return PromptSet.from_dict(data)


def save_prompts(prompts: PromptSet, path: str | Path) -> None:
    Path(path).write_text(json.dumps(prompts.to_dict(), indent=2))
