"""The inputs of one segmentation job, read exactly as ``samusa segment`` reads them.

Shared by the single-input command and the batch workers, so a case segmented in a
batch gets the same frames and prompts as the same case run alone.
"""

from __future__ import annotations

from pathlib import Path


def read_job(input_path: Path, prompts_path: Path, *, axis: str = "K", window: tuple[int, int] | None = None):
    """(frames, prompts, geometry) for an image/cine/volume and its prompts file
    (prompts JSON or a Slicer .mrk.json); `window` overrides every object's window.
    Prompts are checked against the frames, so bad input fails before any model work."""
    from ..frames import FrameSource
    from ..io import read_image
    from ..markups import read_markups
    from ..prompts import TemporalWindow, load_prompts

    array, geometry = read_image(input_path)
    frames = FrameSource(array, axis=axis.upper(), geometry=geometry)
    if Path(prompts_path).name.endswith(".mrk.json"):
        prompts = read_markups(prompts_path, frames, window=window)
    else:
        prompts = load_prompts(prompts_path)
        if window is not None:
            for obj in prompts.objects:
                obj.window = TemporalWindow(*window)
    prompts.check(frames.num_frames, frames.frame_shape)
    return frames, prompts, geometry
