"""Reading images, cines and videos; writing segmentations 3D Slicer opens.

Everything comes back in numpy order as SimpleITK gives it, (K, J, I) for a volume and
(T, H, W) for a cine, with a `Geometry` in ITK/LPS convention, so masks computed on the
array go back onto exactly the physical grid of the input.

Files are written atomically: a temporary file in the target's folder is renamed onto
the target only once it is complete, so a crash or a full disk never leaves a truncated
segmentation where a good one used to be.
"""

from __future__ import annotations

import colorsys
import os
import re
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .errors import InputError
from .permissions import new_file_mode
from .frames import Geometry

ITK_FORMATS = {
    ".nrrd": "NRRD", ".nhdr": "NRRD", ".seg.nrrd": "NRRD", ".nii": "NIfTI", ".nii.gz": "NIfTI",
    ".mha": "MetaImage", ".mhd": "MetaImage",
}
ITK_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
GIF_SUFFIX = ".gif"
SEG_SUFFIX = ".seg.nrrd"
DICOM_SUFFIXES = (".dcm", ".dicom")  # and any file with the DICOM preamble (SAMUSALib.dicom)

# Same defaults as SAMUSALib.prompts (DEFAULT_COLORS, "object N"), so an object keeps its
# colour and name from prompt to overlay to Slicer; ids past the list use golden-ratio hues.
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.95, 0.35, 0.25),
    (0.25, 0.75, 0.35),
    (0.25, 0.55, 0.95),
    (0.95, 0.80, 0.20),
    (0.80, 0.35, 0.85),
    (0.20, 0.85, 0.85),
)


def default_color(obj_id: int) -> tuple[float, float, float]:
    """A distinct colour (0..1 floats) for an object id, stable across runs."""
    if 1 <= obj_id <= len(PALETTE):
        return PALETTE[obj_id - 1]
    hue = (obj_id * 0.618033988749895) % 1.0
    return tuple(round(c, 4) for c in colorsys.hsv_to_rgb(hue, 0.8, 0.95))  # type: ignore[return-value]


def default_name(obj_id: int) -> str:
    return f"object {obj_id}"


def check_color(obj_id: int, color) -> tuple[float, float, float]:
    """Validate a colour given as three floats in 0..1."""
    try:
        values = tuple(float(c) for c in color)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)) or min(values) < 0 or max(values) > 1:
        raise InputError(
            f"colour for object {obj_id} must be three numbers between 0 and 1 (red, green, "
            f"blue), got {color!r}; divide 0-255 values by 255"
        )
    return values  # type: ignore[return-value]


def check_object_id(obj_id) -> int:
    if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)) or obj_id < 1:
        raise InputError(f"object ids must be positive integers (1, 2, ...); got {obj_id!r}")
    return int(obj_id)


# --------------------------------------------------------------------------- atomic output


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    On any exception the temporary file is removed, an existing target stays as it was,
    and the exception propagates (an OSError becomes an InputError that names the file).
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: the folder {folder} does not exist; create it first")
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder; give a file name")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write into {folder}: {exc.strerror}; check write permission") from exc
    os.close(handle)
    tmp = Path(name)
    try:
        try:
            yield tmp
            with open(tmp, "rb") as written:
                os.fsync(written.fileno())
            os.chmod(tmp, new_file_mode(path))
            os.replace(tmp, path)
        except OSError as exc:
            raise InputError(
                f"could not write {path}: {exc.strerror or exc}; check free disk space and "
                "write permission"
            ) from exc
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


# --------------------------------------------------------------------------- reading images


def _natural_key(name: str) -> list:
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)]


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".nii.gz", SEG_SUFFIX):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Read a volume, a 2D image, a folder of frames or a video into (array, geometry).

    NRRD/NIfTI/MHA/MHD: (K, J, I) or (K, J, I, 3) with the file's geometry; a 2D image
    becomes (1, H, W). Picture folders and videos: (T, H, W) when every frame is gray,
    else (T, H, W, 3), with identity geometry (they carry none). DICOM (by suffix or by
    content): see SAMUSALib.dicom.reading.read_dicom, which also gives frame times and
    the ultrasound region.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    if path.is_dir():
        return _read_folder(path), Geometry()
    suffix = _suffix(path)
    from .dicom.reading import is_dicom, read_dicom

    if suffix in DICOM_SUFFIXES or (suffix not in ITK_SUFFIXES and is_dicom(path)):
        image = read_dicom(path)
        return image.array, image.geometry
    if suffix in ITK_SUFFIXES or suffix == SEG_SUFFIX:
        return _read_itk(path)
    if suffix in PICTURE_SUFFIXES:
        pages = _read_picture_pages(path)
        return _stack(pages, [f"page {i}" for i in range(len(pages))], path), Geometry()
    if suffix in VIDEO_SUFFIXES or suffix == GIF_SUFFIX:
        return _read_video(path, suffix), Geometry()
    supported = ", ".join(ITK_SUFFIXES + DICOM_SUFFIXES + PICTURE_SUFFIXES + VIDEO_SUFFIXES + (GIF_SUFFIX,))
    raise InputError(
        f"cannot read {path}: unsupported file type {suffix or '(no extension)'}; "
        f"supported are {supported}, or a folder of picture frames"
    )


def _read_itk(path: Path) -> tuple[np.ndarray, Geometry]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(
            f"could not read {path}: the file is damaged or not a valid {ITK_FORMATS[_suffix(path)]} image"
        ) from exc
    dimension = reader.GetDimension()
    components = reader.GetNumberOfComponents()
    if dimension not in (2, 3):
        raise InputError(
            f"{path} is a {dimension}D image (size {reader.GetSize()}); only 2D images and 3D "
            "volumes are supported. Export a time sequence as a video or a folder of frames, "
            "or one 3D volume per file"
            + (" (a layered .seg.nrrd is read with read_segmentation)" if _suffix(path) == SEG_SUFFIX else "")
        )
    if components not in (1, 3, 4):
        raise InputError(
            f"{path} has {components} components per voxel; only scalar (gray) and RGB images "
            "are supported"
        )
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"could not read the voxels of {path}: the file is damaged or truncated") from exc
    if "complex" in image.GetPixelIDTypeAsString():
        raise InputError(f"{path} holds complex numbers; convert it to a real-valued image")
    array = sitk.GetArrayFromImage(image)
    if components == 4:  # RGBA: the alpha channel carries no anatomy
        array = array[..., :3]
    spacing = tuple(image.GetSpacing())
    origin = tuple(image.GetOrigin())
    direction = np.reshape(image.GetDirection(), (dimension, dimension))
    if dimension == 2:
        array = array[np.newaxis]
        spacing = spacing + (1.0,)
        origin = origin + (0.0,)
        direction3 = np.eye(3)
        direction3[:2, :2] = direction
        direction = direction3
    return array, Geometry(spacing, origin, tuple(direction.ravel()))


#: EXIF orientation tag.
_EXIF_ORIENTATION = 0x0112


def _picture_to_array(image) -> np.ndarray:
    """One PIL frame as (H, W) gray or (H, W, 3) RGB, keeping 16-bit gray as is.

    Pixels are kept in the order stored, as ITK and Slicer read them: turned by an EXIF
    orientation tag, the .seg.nrrd came out on a grid rotated from the one Slicer shows
    the picture on. A tag other than "upright" is said once, with what it means for prompts."""
    orientation = 1
    with suppress(Exception):  # a broken EXIF block should not stop reading pixels
        orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    if orientation != 1:
        _warn_orientation(getattr(image, "filename", "") or "a picture", orientation)
    mode = image.mode
    if mode in ("L", "I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image)
        if mode.startswith("I;16"):
            array = array.astype(np.uint16)
        return array
    if mode in ("1", "LA", "La"):
        return np.asarray(image.convert("L"))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return np.asarray(image.convert("RGB"))


def _warn_orientation(name: str, orientation: int) -> None:
    import logging

    logging.getLogger("samusa").warning(
        "%s carries an EXIF orientation (%d): it is read in its stored pixel order, as Slicer and ITK "
        "read it, so a viewer that turns it shows it rotated; give prompts in the stored order", name, orientation)


def _read_picture_pages(path: Path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return [_picture_to_array(page.copy()) for page in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"could not read the picture {path}: the file is damaged or not an image ({exc})") from exc


def _read_folder(folder: Path) -> np.ndarray:
    files = [
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PICTURE_SUFFIXES
    ]
    if not files:
        raise InputError(
            f"the folder {folder} holds no picture frames; expected files ending in "
            + ", ".join(PICTURE_SUFFIXES)
        )
    files.sort(key=lambda p: _natural_key(p.name))
    frames: list[np.ndarray] = []
    for file in files:
        pages = _read_picture_pages(file)
        if len(pages) != 1:
            raise InputError(
                f"{file} holds {len(pages)} pages; a folder must hold one frame per file. "
                "Read a multi-page file on its own instead"
            )
        frames.append(pages[0])
    return _stack(frames, [f.name for f in files], folder)


def _stack(frames: list[np.ndarray], names: list[str] | None, where: Path | None = None) -> np.ndarray:
    """Stack frames as (T, H, W) when all are gray (RGB with equal channels counts), else (T, H, W, 3)."""
    names = names or [f"page {i}" for i in range(len(frames))]
    shape = frames[0].shape[:2]
    for frame, name in zip(frames, names):
        if frame.shape[:2] != shape:
            place = f" in {where}" if where else ""
            raise InputError(
                f"frame {name}{place} is {frame.shape[1]}x{frame.shape[0]} pixels but the first "
                f"frame is {shape[1]}x{shape[0]}; all frames must have the same size"
            )
    gray = all(
        f.ndim == 2 or (np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2]))
        for f in frames
    )
    if gray:
        planes = [f if f.ndim == 2 else f[..., 0] for f in frames]
        dtypes = {p.dtype for p in planes}
        if len(dtypes) > 1:
            raise InputError(
                f"frames mix pixel types {sorted(str(d) for d in dtypes)}; save all frames with "
                "the same bit depth"
            )
        return np.stack(planes)
    if any(f.dtype != np.uint8 for f in frames):
        raise InputError("frames mix colour and 16-bit/float gray pictures; save all frames as 8-bit")
    return np.stack([f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=-1) for f in frames])


def _read_video(path: Path, suffix: str) -> np.ndarray:
    import imageio.v3 as iio

    if suffix == GIF_SUFFIX:
        plugin = "pillow"
    else:
        plugin = "pyav"
        try:
            import av  # noqa: F401
        except ImportError as exc:
            raise InputError(
                f"reading {suffix} videos needs the PyAV package; install it with "
                "'pip install av', or convert the video to a folder of PNG frames"
            ) from exc
    try:
        array = iio.imread(path, index=None, plugin=plugin)
    except Exception as exc:  # decoders raise many types; all mean "cannot decode this file"
        raise InputError(f"could not decode the video {path}: the file is damaged or in an unsupported codec ({exc})") from exc
    array = np.asarray(array)
    if array.ndim == 3 and plugin == "pyav":  # a single frame of a 1-frame video
        array = array[np.newaxis]
    if array.ndim == 3:  # (T, H, W) gray GIF
        return array.astype(np.uint8, copy=False)
    if array.ndim != 4 or array.shape[-1] not in (3, 4) or array.shape[0] < 1:
        raise InputError(f"unexpected frame layout {array.shape} in {path}")
    return _stack(list(array[..., :3]), [f"{i}" for i in range(array.shape[0])], path)


# --------------------------------------------------------------------------- segmentations


def _geometry_from_matrix(ijk_to_lps: np.ndarray) -> Geometry:
    matrix = np.asarray(ijk_to_lps, dtype=float)[:3]
    spacing = np.linalg.norm(matrix[:, :3], axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise InputError(f"the segmentation has a degenerate voxel grid (spacing {spacing})")
    direction = matrix[:, :3] / spacing
    return Geometry(tuple(spacing), tuple(matrix[:, 3]), tuple(direction.ravel()))


def _mask_bool(obj_id: int, mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise InputError(f"mask of object {obj_id} has data type {mask.dtype}; use bool or uint8")
    if np.issubdtype(mask.dtype, np.floating) and not np.isin(mask, (0.0, 1.0)).all():
        raise InputError(
            f"mask of object {obj_id} holds values other than 0 and 1 (probabilities?); "
            "threshold it first, e.g. mask > 0.5"
        )
    return mask != 0


def _clean_text(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)).strip()


_NRRD_FIELDS = {
    "type", "dimension", "space", "sizes", "kinds", "endian", "encoding", "content", "min", "max", "spacings",
    "thicknesses", "axismins", "axismaxs", "centerings", "centers", "labels", "units", "lineskip", "byteskip",
    "datafile", "number", "blocksize", "oldmin", "oldmax", "segmentation",
}


def write_segmentation(
    path: str | os.PathLike,
    masks: Mapping[int, np.ndarray],
    geometry: Geometry,
    names: Mapping[int, str] | None = None,
    colors: Mapping[int, tuple[float, float, float]] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write masks as a .seg.nrrd that 3D Slicer opens as a segmentation, atomically.

    ``metadata``: extra NRRD key/value fields (e.g. a DICOM cine's frame times, see
    DicomImage.nrrd_metadata); keys must not start with "Segment" or clash with NRRD fields.

    ``masks`` maps object id -> (K, J, I) mask on the reference image's grid; each object
    becomes one segment whose label value is its id. Overlapping objects go to separate
    layers (a 4D labelmap, as Slicer stores them), so no voxel is lost.
    """
    import slicerio

    path = Path(path)
    if not path.name.lower().endswith(SEG_SUFFIX):
        stem = path.name
        for suffix in (".nii.gz",) + ITK_SUFFIXES + (".seg",):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        raise InputError(
            f"segmentation file name must end with {SEG_SUFFIX} so Slicer loads it as a "
            f"segmentation; use for example {path.with_name((stem or 'Segmentation') + SEG_SUFFIX)}"
        )
    if not isinstance(geometry, Geometry):
        raise InputError(f"geometry must be a SAMUSALib Geometry, got {type(geometry).__name__}")
    if not masks:
        raise InputError("there are no masks to write; segment at least one object first")
    names = dict(names or {})
    colors = dict(colors or {})

    checked: dict[int, np.ndarray] = {}
    shape = None
    for raw_id, mask in masks.items():
        obj_id = check_object_id(raw_id)
        mask = _mask_bool(obj_id, mask)
        if mask.ndim != 3:
            raise InputError(
                f"mask of object {obj_id} has shape {mask.shape}; masks must be 3D (K, J, I) "
                "like the reference image (a 2D image is (1, H, W))"
            )
        if shape is None:
            shape = mask.shape
        elif mask.shape != shape:
            raise InputError(
                f"mask of object {obj_id} has shape {mask.shape} but others have {shape}; "
                "all masks must be on the reference image's grid"
            )
        checked[obj_id] = mask
    max_id = max(checked)
    if max_id > np.iinfo(np.uint16).max:
        raise InputError(f"object id {max_id} is too large; use ids up to 65535")
    dtype = np.uint8 if max_id <= np.iinfo(np.uint8).max else np.uint16

    # Greedy layering: each object goes to the first layer it does not overlap.
    layers: list[np.ndarray] = []
    segments = []
    extent = [0, shape[2] - 1, 0, shape[1] - 1, 0, shape[0] - 1]  # I, J, K
    for obj_id in sorted(checked):
        mask = checked[obj_id]
        for layer_index, layer in enumerate(layers):
            if not layer[mask].any():
                break
        else:
            layers.append(np.zeros(shape, dtype=dtype))
            layer_index = len(layers) - 1
        layers[layer_index][mask] = obj_id
        segments.append({
            "id": f"Segment_{obj_id}",
            "name": _clean_text(names.get(obj_id, default_name(obj_id))) or default_name(obj_id),
            "nameAutoGenerated": obj_id not in names,
            "color": list(check_color(obj_id, colors[obj_id]) if obj_id in colors else default_color(obj_id)),
            # Not "auto": Slicer would then recolour it from terminology, and the
            # colour should stay the one the overlay pictures use.
            "colorAutoGenerated": False,
            "labelValue": obj_id,
            "layer": layer_index,
            # Full extent: older Slicer crops a layer's segments to its first segment's extent.
            "extent": extent,
        })

    # numpy (K, J, I) -> slicerio's (I, J, K), written by pynrrd in Fortran order.
    if len(layers) == 1:
        voxels = layers[0].transpose(2, 1, 0)
    else:
        voxels = np.stack(layers).transpose(0, 3, 2, 1)
    ijk_to_lps = geometry.ijk_to_lps()
    ijk_to_ras = geometry.ijk_to_ras()
    reference = ";".join(f"{v:.17g}" for v in ijk_to_ras.ravel()) + ";" + "".join(f"{e};" for e in extent)
    segmentation = {
        "voxels": voxels,
        "ijkToLPS": ijk_to_lps,
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
        "conversionParameters": [{
            "name": "Reference image geometry",
            "value": reference,
            "description": "Image geometry description string determining the geometry of the "
            "labelmap that is created in course of conversion. Can be copied from a volume, using the button.",
        }],
        "segments": segments,
    }
    for key, value in (metadata or {}).items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", str(key)) or str(key).startswith("Segment") or (
            key in segmentation or str(key).lower() in _NRRD_FIELDS
        ):
            raise InputError(f"metadata key {key!r} is not allowed in a .seg.nrrd; use a name such as SAMUSA_Note")
        segmentation[key] = _clean_text(value)
    with atomic_output(path) as tmp:
        slicerio.write_segmentation(str(tmp), segmentation)
    return path


def read_segmentation(path: str | os.PathLike) -> tuple[dict[int, np.ndarray], Geometry, dict[int, str]]:
    """Read a .seg.nrrd into ({object id: (K, J, I) bool mask}, geometry, {object id: name}).

    The object id is the segment's label value; segments of other layers that reuse a
    label value (as Slicer files may) get the next unused id so none is lost.
    """
    import nrrd
    import slicerio

    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a .seg.nrrd file")
    try:
        segmentation = slicerio.read_segmentation(str(path))
    except (OSError, ValueError, KeyError, IndexError, nrrd.errors.NRRDError) as exc:
        raise InputError(f"could not read {path} as a segmentation: the file is damaged or not a .seg.nrrd ({exc})") from exc
    if not segmentation.get("segments") and "masterRepresentation" not in segmentation:
        raise InputError(
            f"{path} is an image, not a segmentation (it has no segment information); "
            "give a .seg.nrrd saved by 3D Slicer or by write_segmentation"
        )
    voxels = segmentation.get("voxels")
    if voxels is None or voxels.ndim not in (3, 4):
        raise InputError(f"{path} does not hold a 3D labelmap")
    geometry = _geometry_from_matrix(segmentation["ijkToLPS"])
    layers = voxels[np.newaxis] if voxels.ndim == 3 else voxels
    masks: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}
    pending = []
    for segment in segmentation.get("segments", []):
        label = int(segment.get("labelValue", 1))
        layer = int(segment.get("layer", 0))
        if not 0 <= layer < layers.shape[0]:
            raise InputError(f"segment {segment.get('name')!r} in {path} refers to missing layer {layer}")
        mask = np.ascontiguousarray((layers[layer] == label).transpose(2, 1, 0))
        name = segment.get("name", segment.get("id", ""))
        if label >= 1 and label not in masks:
            masks[label], names[label] = mask, name
        else:
            pending.append((mask, name))
    for mask, name in pending:
        obj_id = max(masks, default=0) + 1
        masks[obj_id], names[obj_id] = mask, name
    return masks, geometry, names
