"""One segmentation job from start to end: frames + prompts + model -> masks per object.

The command line, the Slicer module and scripts all go through `segment`, so they
validate the same way and give the same masks for the same inputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .engine import ProgressCallback, PropagationReport, Session
from .errors import PromptError
from .frames import FrameSource
from .prompts import PromptSet

log = logging.getLogger("samusa")


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
    _check_not_blank(frames, prompts)
    session = Session(frames, model, feature_cache_mb=feature_cache_mb)
    session.apply(prompts)
    report = session.propagate(direction, progress=progress, cancel=cancel)
    frame_masks = {obj.id: session.masks(obj.id) for obj in prompts.objects}
    _warn_blank_masks(frames, frame_masks)
    return SegmentationResult(
        frames=frames,
        frame_masks=frame_masks,
        names={obj.id: obj.name for obj in prompts.objects},
        colors={obj.id: tuple(obj.color) for obj in prompts.objects},
        report=report,
        session=session,
    )


def _check_not_blank(frames: FrameSource, prompts: PromptSet) -> None:
    """Refuse prompts on a frame where every pixel is the same (a model still returns a mask
    there, of nothing)."""
    prompted = sorted({p.frame for obj in prompts.objects for p in obj.prompts})
    blank = [f for f in prompted if frames.is_blank(f)]
    if blank:
        value = frames.raw_frame(blank[0]).flat[0]
        raise PromptError(
            f"frame(s) {', '.join(map(str, blank))} are blank (every pixel is {value}): there is nothing to "
            "segment there. Put the prompts on a frame that shows the structure, or check that the input "
            "was exported with its image"
        )


def _warn_blank_masks(frames: FrameSource, frame_masks: dict[int, np.ndarray]) -> None:
    """Name the blank frames (every pixel the same) that got a mask: it comes from the model's
    memory, not from the picture. Only those: a model that drops the object there (no window
    holding it) gives them nothing, and a warning about masks that are not there sends the
    user looking for them."""
    masked = [f for f in range(frames.num_frames)
              if any(masks[f].any() for masks in frame_masks.values()) and frames.is_blank(f)]
    if masked:
        log.warning("frame(s) %s are blank (every pixel the same): their masks come from the "
                    "model's memory of the frames around them, not from anything on them", _ranges(masked))


def _ranges(frames: list[int]) -> str:
    runs, start = [], frames[0]
    for previous, current in zip(frames, frames[1:] + [None]):
        if current is None or current != previous + 1:
            runs.append(f"{start}" if start == previous else f"{start}-{previous}")
            start = current
    return ", ".join(runs)
