"""The inputs of one segmentation job, read exactly as ``samusa segment`` reads them.

Shared by the single-input command and the batch workers, so a case segmented in a
batch gets the same frames and prompts as the same case run alone.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def read_job(input_path: Path, prompts_path: Path, *, axis: str = "K", window: tuple[int, int] | None = None):
    """(frames, prompts, geometry) for an image/cine/volume and its prompts file
    (prompts JSON or a Slicer .mrk.json); `window` overrides every object's window.
    Prompts are checked against the frames, so bad input fails before any model work."""
    frames, prompts, geometry, _ = read_job_source(input_path, prompts_path, axis=axis, window=window)
    return frames, prompts, geometry


def read_job_source(input_path: Path, prompts_path: Path, *, axis: str = "K", window: tuple[int, int] | None = None):
    """As `read_job`, plus the DICOM source (a `SAMUSALib.dicom` DicomImage: spacing from its
    ultrasound region, frame times, the region's intensity mask), or None for other inputs.
    With several calibrated regions, the one the JSON prompts lie in is used."""
    from ..dicom.reading import DICOM_SUFFIXES, is_dicom, read_dicom
    from ..frames import FrameSource
    from ..io import read_image
    from ..markups import read_markups
    from ..prompts import TemporalWindow, load_prompts

    input_path = Path(input_path)
    _refuse_segmentation(input_path)
    dicom = input_path.is_file() and (input_path.suffix.lower() in DICOM_SUFFIXES or is_dicom(input_path))
    source = read_dicom(input_path) if dicom else None
    array, geometry = (source.array, source.geometry) if source is not None else read_image(input_path)

    def make_frames(source):
        mask = source.intensity_mask if source is not None and axis.upper() == "K" else None
        return FrameSource(array, axis=axis.upper(), geometry=geometry, intensity_mask=mask)

    frames = make_frames(source)
    if Path(prompts_path).name.endswith(".mrk.json"):
        prompts = read_markups(prompts_path, frames, window=window)
    else:
        prompts = load_prompts(prompts_path)
        if window is not None:
            for obj in prompts.objects:
                obj.window = TemporalWindow(*window)
        chosen = source.for_points(prompt_points(prompts)) if source is not None else None
        if chosen is not source:  # several ultrasound regions: the one the prompts lie in
            source, geometry = chosen, chosen.geometry
            frames = make_frames(source)
    prompts.check(frames.num_frames, frames.frame_shape)
    return frames, prompts, geometry, source


def prompt_points(prompts) -> list:
    """(x, y) of every positive, boundary and box-corner prompt: where the segmented objects are."""
    points = []
    for obj in prompts.objects:
        for prompt in obj.prompts:
            points += [tuple(p) for p in prompt.boundary] + [tuple(p) for p in prompt.positive]
            if prompt.box is not None:
                points += [prompt.box[:2], prompt.box[2:]]
    return points


def _refuse_segmentation(path: Path) -> None:
    """A .seg.nrrd given as the image was segmented as one: three layers read as an RGB
    picture, two refused as "2 components per voxel" (a DICOM SEG was already refused)."""
    if not path.is_file() or not path.name.lower().endswith(".nrrd"):
        return
    import nrrd

    try:
        header = nrrd.read_header(str(path))
    except Exception:  # noqa: BLE001 - not readable as NRRD: read_image names the problem
        return
    if path.name.lower().endswith(".seg.nrrd") or any(str(key).startswith("Segment0_") for key in header):
        raise InputError(
            f"{path} is a segmentation (a .seg.nrrd as SAMUSA or Slicer write), not an image: give the image "
            "it was made from as the input"
        )
