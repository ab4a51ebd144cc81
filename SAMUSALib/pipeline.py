"""One segmentation job from start to end: frames + prompts + model -> masks per object.

The command line, the Slicer module and scripts all go through `segment`, so they
validate the same way and give the same masks for the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .engine import ProgressCallback, PropagationReport, Session
from .frames import FrameSource
from .prompts import PromptSet


@dataclass
class SegmentationResult:
    """Masks per object: `frame_masks[id]` is (T, H, W) over the frames,
    `volumes[id]` the same voxels in the input's (K, J, I) layout."""

    frames: FrameSource
    frame_masks: dict[int, np.ndarray]
    names: dict[int, str]
    colors: dict[int, tuple[float, float, float]]
    report: PropagationReport
    session: Session

    @property
    def volumes(self) -> dict[int, np.ndarray]:
        return {obj_id: self.frames.assemble(list(masks)) for obj_id, masks in self.frame_masks.items()}


def segment(
    frames: FrameSource,
    prompts: PromptSet,
    model,
    *,
    direction: str = "both",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    feature_cache_mb: int | None = None,
) -> SegmentationResult:
    """Prompt every object, propagate within the windows, and collect the masks.

    Prompts are checked against the frames before the model does any work, so bad
    input fails fast with nothing written.
    """
    prompts.check(frames.num_frames, frames.frame_shape)
    session = Session(frames, model, feature_cache_mb=feature_cache_mb)
    session.apply(prompts)
    report = session.propagate(direction, progress=progress, cancel=cancel)
    frame_masks = {obj.id: session.masks(obj.id) for obj in prompts.objects}
    return SegmentationResult(
        frames=frames,
        frame_masks=frame_masks,
        names={obj.id: obj.name for obj in prompts.objects},
        colors={obj.id: tuple(obj.color) for obj in prompts.objects},
        report=report,
        session=session,
    )
