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
user's segmentation node as its proxy; its segments one set across the frames,
`segment_mirror`) for a sequence. Writing changes one segment, only
on the frames given; before every write the previous voxels of those frames are kept on an
`UndoStack`.

Prompts are markups fiducial nodes, one per (segment, point type), and markups ROI nodes,
one per (segment, frame) for boxes, found by their attributes (`prompt_node`,
`box_nodes`). In a sequence every control point (an ROI's: its centre) carries its frame
in its description ("frame 12"), as all frames share one position in space; in a volume
the frame is where the point or the ROI's centre lies.

`InteractiveSegmenter` ties it together for the Slicer module and for scripts: one engine
`Session` per (input, model, device, axis), kept while the input node's voxels are
unchanged, so a further click costs one decoder pass.

Modules, one responsibility each: `geometry` (matrices, arrays <-> volumes, a headless
scene), `inputs` (nodes in), `targets` (where masks go, reads and writes, windows),
`prompt_nodes` (markups prompts), `undo`, `segmenter` (`InteractiveSegmenter`). This
package re-exports their public names, so ``from SAMUSALib.mrml import ...`` is unchanged.
"""

from .geometry import (
    HeadlessScene,
    geometry_from_ijk_to_ras,
    headless_scene,
    ijk_to_ras_of,
    sequence_from_array,
    volume_from_array,
)
from .inputs import (
    SlicerInput,
    browser_of_proxy,
    current_frame_of_browser,
    frame_shown,
    input_fingerprint,
    input_from_node,
    shown_volume,
)
from .prompt_nodes import (
    ATTRIBUTE_PROMPT,
    ATTRIBUTE_SEGMENT,
    ATTRIBUTE_SEGMENTATION,
    BOX_CLASS,
    POINT_KINDS,
    PROMPT_COLORS,
    PROMPT_KINDS,
    PROMPT_LABELS,
    REFERENCE_SEGMENTATION,
    add_prompt_point,
    box_nodes,
    check_point,
    check_window,
    existing_prompt_nodes,
    frame_prompts,
    is_prompt_node,
    owner_id,
    place_box,
    point_frame,
    prompt_node,
    prompt_nodes,
    remove_prompts,
    roi_box,
    show_points_of_current_frame,
    show_points_of_frame,
    stamp_frame,
)
from .segmenter import ActionResult, InteractiveSegmenter
from .segment_mirror import SegmentMirror, mirror_scene, mirror_segments
from .targets import ATTRIBUTE_WINDOW, SegmentationTarget, SequenceTarget, VolumeTarget, add_segment, made_for_another_image, target_for
from .undo import UndoStack, UndoStep

__all__ = [
    "headless_scene",
    "HeadlessScene",
    "PROMPT_KINDS",
    "POINT_KINDS",
    "BOX_CLASS",
    "PROMPT_COLORS",
    "PROMPT_LABELS",
    "ATTRIBUTE_SEGMENTATION",
    "ATTRIBUTE_SEGMENT",
    "REFERENCE_SEGMENTATION",
    "is_prompt_node",
    "owner_id",
    "ATTRIBUTE_PROMPT",
    "ATTRIBUTE_WINDOW",
    "SlicerInput",
    "input_from_node",
    "input_fingerprint",
    "browser_of_proxy",
    "shown_volume",
    "geometry_from_ijk_to_ras",
    "ijk_to_ras_of",
    "volume_from_array",
    "sequence_from_array",
    "SegmentationTarget",
    "VolumeTarget",
    "SegmentMirror",
    "mirror_segments",
    "mirror_scene",
    "SequenceTarget",
    "target_for",
    "made_for_another_image",
    "add_segment",
    "prompt_node",
    "prompt_nodes",
    "box_nodes",
    "roi_box",
    "place_box",
    "add_prompt_point",
    "stamp_frame",
    "point_frame",
    "frame_prompts",
    "show_points_of_frame",
    "show_points_of_current_frame",
    "existing_prompt_nodes",
    "check_point",
    "check_window",
    "current_frame_of_browser",
    "frame_shown",
    "remove_prompts",
    "UndoStep",
    "UndoStack",
    "ActionResult",
    "InteractiveSegmenter",
]
