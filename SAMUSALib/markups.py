"""Prompts as 3D Slicer markups (.mrk.json), through the image's geometry.

Slicer stores points in world coordinates (RAS or LPS, millimetres). A point becomes a
prompt by going through the inverse of the image's IJK-to-world matrix: the index
along the frame axis picks the frame, the other two give x (column) and y (row).

Which prompt a markups node holds is read from its name, so a user can make the files
by hand in Slicer: a name containing "negative", "outside" or "region-" gives negative
points, "positive", "inside" or "region+" positive points, and anything else
(including "boundary") boundary points. The rest of the name is the object's name:
"lesion boundary" and "lesion negative" are two prompt types of the object "lesion".
An ROI node becomes a box on the frame its centre lies in; the word "box" in its name is
not part of the object's name ("lesion box" is the box of "lesion").
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

import numpy as np

from .errors import PromptError
from .frames import AXES, FrameSource
from .prompts import FramePrompt, ObjectPrompts, PromptSet, TemporalWindow

_KINDS = [
    ("negative", re.compile(r"\b(negative|outside)\b|region\s*-", re.I)),
    ("positive", re.compile(r"\b(positive|inside)\b|region\s*\+", re.I)),
    ("boundary", re.compile(r"\bboundary\b", re.I)),
]
_BOX_WORD = re.compile(r"\bbox\b", re.I)
_FRAME_PLANE = {"K": (0, 1), "J": (0, 2), "I": (1, 2)}  # (x, y) as (i, j, k) indices


_TYPE_WORDS = {"negative": "negative", "outside": "negative", "positive": "positive", "inside": "positive",
               "boundary": "boundary"}


def _kind_and_object(name: str) -> tuple[str, str]:
    for kind, pattern in _KINDS:
        if pattern.search(name):
            rest = pattern.sub(" ", name)
            return kind, _checked_object(name, kind, " ".join(rest.replace(":", " ").split()) or "object")
    return "boundary", _checked_object(name, "boundary", " ".join(name.split()) or "object")


def _checked_object(name: str, kind: str, object_name: str) -> str:
    """Refuse an object name holding a misspelt type word. Read as written, "lesion negtive"
    was the boundary points of a second object named "lesion negtive": the lesion lost its
    corrections, and the other object got a mask of its own. Words of five letters or more
    within difflib's 0.8 of a type word, and starting with its first two letters, count as
    misspelt."""
    for word in re.findall(r"[A-Za-z]+", object_name):
        if len(word) < 5 or word.lower() in _TYPE_WORDS:
            continue
        close = [w for w in difflib.get_close_matches(word.lower(), list(_TYPE_WORDS), n=1, cutoff=0.8)
                 if w[:2] == word[:2].lower()]  # "native artery", "onside" are names, not misspellings
        if close:
            meant = close[0]
            raise PromptError(
                f"markups node '{name}': '{word}' looks like the prompt type word '{meant}' misspelt; as written "
                f"it would hold {kind} points of an object named '{object_name}'. Rename the node, e.g. "
                f"'{name.replace(word, meant)}' for {_TYPE_WORDS[meant]} points"
            )
    return object_name


def _world_to_ijk(frames: FrameSource, coordinate_system: str) -> np.ndarray:
    matrix = frames.geometry.ijk_to_ras() if coordinate_system.upper() == "RAS" else frames.geometry.ijk_to_lps()
    return np.linalg.inv(matrix)


def _frame_of(frames: FrameSource, ijk: np.ndarray, what: str) -> int:
    frame_coord = ijk[2 - AXES[frames.axis]]  # numpy axis 0 is K = ijk index 2
    frame = int(np.round(frame_coord))
    if not 0 <= frame < frames.num_frames:
        raise PromptError(
            f"{what} lies on frame {frame_coord:.2f}, outside the image's frames 0..{frames.num_frames - 1}; "
            "was it placed on this image?"
        )
    return frame


def _to_frame_xy(frames: FrameSource, ijk: np.ndarray, what: str) -> tuple[int, float, float]:
    frame = _frame_of(frames, ijk, what)
    x_index, y_index = _FRAME_PLANE[frames.axis]
    return frame, float(ijk[x_index]), float(ijk[y_index])


def _vector(value, size: int, what: str) -> np.ndarray:
    try:
        vector = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        vector = np.zeros(0)
    if vector.shape != (size,) or not np.isfinite(vector).all():
        raise PromptError(f"{what} must be {size} finite numbers; got {value!r}")
    return vector


def roi_corners(center, size, axes) -> np.ndarray:
    """The 8 corners (8, 3) of a Slicer ROI box: its centre (3,), its full size along each of
    its own axes (3,), and those axes as the columns of a 3x3 matrix (the ROI's orientation).
    A box prompt is the bounding box of the corners on a frame (here and in SAMUSALib.mrml)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    return np.asarray(center, float) + (signs * np.abs(np.asarray(size, float)) / 2) @ np.asarray(axes, float).T


def _roi_box(frames: FrameSource, node: dict, to_ijk: np.ndarray, name: str) -> FramePrompt:
    """The ROI's frame (where its centre lies) and the bounding box of its 8 corners in that frame."""
    what = f"ROI '{name}'"
    center = node.get("center")
    points = node.get("controlPoints")
    if center is None and isinstance(points, list) and points and isinstance(points[0], dict):
        center = points[0].get("position")  # files that keep the centre only as the control point
    center = _vector(center, 3, f"{what}: its center")
    size = np.abs(_vector(node.get("size"), 3, f"{what}: its size"))
    axes = _vector(node.get("orientation", np.eye(3).ravel()), 9, f"{what}: its orientation").reshape(3, 3)
    frame = _frame_of(frames, to_ijk @ np.append(center, 1.0), what)
    x_index, y_index = _FRAME_PLANE[frames.axis]
    corners = roi_corners(center, size, axes)  # orientation columns are the ROI's axes
    ijk = (to_ijk[:3, :3] @ corners.T).T + to_ijk[:3, 3]
    xs, ys = ijk[:, x_index], ijk[:, y_index]
    return FramePrompt(frame, box=(xs.min(), ys.min(), xs.max(), ys.max()))


def read_markups(path: str | Path, frames: FrameSource, window: tuple[int, int] | None = None) -> PromptSet:
    """Prompts from a Slicer .mrk.json file, mapped onto `frames` by its geometry.

    The prompts are checked against `frames` (and `window`, if given) before they are returned.
    """
    path = Path(path)
    if not path.exists():
        raise PromptError(f"markups file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # Notepad saves a BOM
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PromptError(f"markups file {path} is not valid JSON: {error}") from None
    nodes = data.get("markups") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not nodes:
        raise PromptError(f"{path} holds no markups; expected Slicer's .mrk.json with a 'markups' list")
    objects: dict[str, ObjectPrompts] = {}
    per_frame: dict[tuple[str, int], FramePrompt] = {}
    for node_index, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise PromptError(f"markups[{node_index}] in {path} must be a JSON object (a markups node)")
        name = str(node.get("name", ""))
        system = str(node.get("coordinateSystem", "LPS"))
        if system.upper() not in ("LPS", "RAS"):
            raise PromptError(
                f"markups node '{name}' uses the coordinate system {system!r}; Slicer files use LPS or RAS"
            )
        to_ijk = _world_to_ijk(frames, system)
        kind, object_name = _kind_and_object(name)
        if node.get("type") == "ROI":  # "lesion box" (as the SAMUSA module names it) is a box of "lesion"
            object_name = " ".join(_BOX_WORD.sub(" ", name).replace(":", " ").split()) or "object"
        obj = objects.setdefault(object_name, ObjectPrompts(id=len(objects) + 1, name=object_name))
        if node.get("type") == "ROI":
            prompt = _roi_box(frames, node, to_ijk, name)
            key = (object_name, prompt.frame)
            if key in per_frame and per_frame[key].box is not None:  # one would replace the other
                raise PromptError(
                    f"markups node '{name}' is a second box of '{object_name}' on frame {prompt.frame}: an object "
                    "takes one box per frame; delete one, or name the other ROI after another object"
                )
            per_frame[key] = per_frame[key].merged(prompt) if key in per_frame else prompt
            continue
        control_points = node.get("controlPoints") or []
        if not isinstance(control_points, list):
            raise PromptError(f"controlPoints of '{name}' must be a list; got {control_points!r}")
        for index, point in enumerate(control_points):
            if not isinstance(point, dict):
                raise PromptError(f"control point {index} of '{name}' must be a JSON object")
            if point.get("positionStatus", "defined") != "defined":
                continue
            position = _vector(point.get("position"), 3, f"control point {index} of '{name}': its position")
            ijk = to_ijk @ np.append(position, 1.0)
            frame, x, y = _to_frame_xy(frames, ijk[:3], f"point {index + 1} of '{name}'")
            prompt = FramePrompt(frame, **{kind: [[x, y]]})
            key = (object_name, frame)
            per_frame[key] = per_frame[key].merged(prompt) if key in per_frame else prompt
    for (object_name, _), prompt in sorted(per_frame.items(), key=lambda item: item[0][1]):
        objects[object_name].prompts.append(prompt)
    result = PromptSet([o for o in objects.values() if o.prompts])
    if not result.objects:
        raise PromptError(f"{path} has no defined control points")
    if window is not None:
        for obj in result.objects:
            obj.window = TemporalWindow(*window)
    result.check(frames.num_frames, frames.frame_shape)
    return result


def write_markups(prompts: PromptSet, path: str | Path, frames: FrameSource) -> None:
    """Write point prompts as a Slicer .mrk.json (LPS), one node per object and prompt type."""
    matrix = frames.geometry.ijk_to_lps()
    x_index, y_index = _FRAME_PLANE[frames.axis]
    frame_index = 2 - AXES[frames.axis]
    nodes = []
    for obj in prompts.objects:
        for kind in ("boundary", "positive", "negative"):
            points = []
            for prompt in obj.prompts:
                for x, y in getattr(prompt, kind):
                    ijk = np.zeros(4)
                    ijk[[x_index, y_index, frame_index]] = (x, y, prompt.frame)
                    ijk[3] = 1.0
                    lps = matrix @ ijk
                    points.append(
                        {
                            "id": str(len(points) + 1),
                            "label": f"{obj.name}-{len(points) + 1}",
                            "position": [float(v) for v in lps[:3]],
                            "positionStatus": "defined",
                        }
                    )
            if points:
                nodes.append(
                    {
                        "type": "Fiducial",
                        "coordinateSystem": "LPS",
                        "coordinateUnits": "mm",
                        "name": f"{obj.name} {kind}",
                        "controlPoints": points,
                    }
                )
    document = {
        "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#",
        "markups": nodes,
    }
    Path(path).write_text(json.dumps(document, indent=2))
