"""Evaluation cases: images, sequences or volumes with their reference masks.

Every loader returns a list of :class:`Case`. A case holds the array exactly as a
:class:`~SAMUSALib.frames.FrameSource` takes it, one boolean reference per object in the
same spatial layout, and the geometry, so the protocols never care where it came from.

Supported layouts (``load_cases`` picks one from what the folder holds):

- **image/mask pairs** (BUS-BRA, carotid frames): ``images/<id>.png`` + ``masks/<id>.png``,
  the mask non-zero inside the one object. Also ``.jpg``, ``.bmp``, ``.tif`` and ``.npy``.
- **multi-structure label maps** (CAMUS): ``images/<id>.png`` + ``labels/<id>.png``, one
  object per non-zero label value. :func:`camus` adds the CAMUS structure names, puts the
  arrays back apex-up (they are stored transposed) and keeps the largest connected piece
  per label (the rounded labels carry stray border pixels).
- **sequences** (carotid): a folder with ``images/`` (frames in natural order) and
  ``masks/`` (one mask per frame, same file name; a frame without a mask file is
  *unannotated* and left out of every metric), or a folder of such folders.
- **volumes** (NRRD, NIfTI, MHA): ``<id>.nrrd`` + a label volume named
  ``<id>.seg.nrrd``, ``<id>_label(s)``, ``<id>_mask(s)``, ``<id>_seg`` or ``<id>_gt``
  (any ITK extension), or ``images/<id>.*`` + ``labels/<id>.*``; each non-zero label value
  is one object. A cine stored this way (T, H, W) is a video case for the video protocol.
- **phantoms**: ``phantom`` (or ``phantom:N``): synthetic cases with exact references from
  :mod:`SAMUSALib.phantoms`, of the kind the protocol needs.

Units: picture files carry no pixel size, so their distances are in pixels
(``units="px"``); ITK files and phantoms give millimetres from their spacing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..frames import AXES, FrameSource, Geometry
from ..io import ITK_SUFFIXES, PICTURE_SUFFIXES, SEG_SUFFIX, _natural_key, _suffix, read_image, read_segmentation

__all__ = [
    "Case",
    "CAMUS_LABELS",
    "image_pairs",
    "label_maps",
    "camus",
    "sequence",
    "sequences",
    "volume_pairs",
    "phantom_cases",
    "load_cases",
    "select",
]

CAMUS_LABELS = {1: "LV endocardium", 2: "LV myocardium", 3: "left atrium"}
KINDS = ("image", "video", "volume")
LABEL_TAGS = ("label", "labels", "mask", "masks", "seg", "gt", "segmentation")
_LABEL_STEM = re.compile(r"^(?P<stem>.+?)[_-](?:%s)$" % "|".join(LABEL_TAGS), re.IGNORECASE)
FRAME_SUFFIXES = PICTURE_SUFFIXES + (".npy",)


@dataclass
class Case:
    """One evaluation case.

    array: what ``FrameSource`` reads: (1, H, W[, 3]) for an image, (T, H, W[, 3]) for a
        sequence, (K, J, I) for a volume. references: object id -> bool mask over the
        array's spatial axes. axis: the ITK axis frames are taken along. annotated: per
        frame (along ``axis``), whether the frame has a reference at all (None: every
        frame). units: "mm" or "px" for surface distances.
    """

    id: str
    kind: str
    array: np.ndarray
    references: dict[int, np.ndarray]
    geometry: Geometry = field(default_factory=Geometry)
    axis: str = "K"
    names: dict[int, str] = field(default_factory=dict)
    annotated: np.ndarray | None = None
    units: str = "mm"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"case kind must be one of {KINDS}; got {self.kind!r}")
        if self.axis not in AXES:
            raise InputError(f"axis must be one of I, J, K; got {self.axis!r}")
        spatial = self.array.shape[:3]
        for obj_id, ref in self.references.items():
            if ref.shape != spatial:
                raise InputError(
                    f"case {self.id}: reference of object {obj_id} has shape {ref.shape}, "
                    f"the image {spatial}"
                )
            self.references[obj_id] = ref.astype(bool, copy=False)
        for obj_id in self.references:
            self.names.setdefault(obj_id, f"object {obj_id}")
        if self.annotated is not None:
            self.annotated = np.asarray(self.annotated, dtype=bool)
            if self.annotated.shape != (self.num_frames,):
                raise InputError(
                    f"case {self.id}: {self.annotated.shape[0]} annotation flags for {self.num_frames} frames"
                )

    @property
    def num_frames(self) -> int:
        return int(self.array.shape[AXES[self.axis]])

    @property
    def objects(self) -> list[int]:
        return sorted(self.references)

    def frame_source(self, normalization: str = "auto") -> FrameSource:
        return FrameSource(self.array, axis=self.axis, geometry=self.geometry, normalization=normalization)

    def reference_frames(self, obj_id: int) -> np.ndarray:
        """The object's reference as (T, H, W) frames, in the order FrameSource gives them."""
        return np.moveaxis(self.references[obj_id], AXES[self.axis], 0)

    def annotated_frames(self) -> np.ndarray:
        return np.ones(self.num_frames, dtype=bool) if self.annotated is None else self.annotated

    def frame_spacing(self) -> tuple[float, float]:
        """(row, column) spacing of one frame."""
        sx, sy, sz = self.geometry.spacing
        kji = (sz, sy, sx)
        drop = AXES[self.axis]
        return tuple(s for index, s in enumerate(kji) if index != drop)  # type: ignore[return-value]

    def volume_spacing(self) -> tuple[float, float, float]:
        sx, sy, sz = self.geometry.spacing
        return (sz, sy, sx)


# ----------------------------------------------------------------------- helpers
def _stem(path: Path) -> str:
    name = path.name
    suffix = _suffix(path)
    return name[: len(name) - len(suffix)] if suffix and name.lower().endswith(suffix) else path.stem


def _frame_files(folder: Path) -> list[Path]:
    files = [
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FRAME_SUFFIXES
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _read_2d(path: Path) -> np.ndarray:
    """One picture as (H, W) or (H, W, 3)."""
    if path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim not in (2, 3):
            raise InputError(f"{path} holds an array of shape {array.shape}; expected one 2D image")
        return array
    array, _ = read_image(path)
    if array.shape[0] != 1:
        raise InputError(f"{path} holds {array.shape[0]} pages; expected one image")
    return array[0]


def _read_labels(path: Path) -> np.ndarray:
    """A label picture as (H, W) integers (colour masks: any non-zero channel is 1)."""
    array = _read_2d(path)
    if array.ndim == 3:
        return (array.max(axis=-1) > 0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return np.rint(array).astype(np.int64)
    return array


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def _split_labels(
    labels: np.ndarray,
    *,
    binary: bool,
    values: Iterable[int] | None = None,
    largest_component: bool = False,
) -> dict[int, np.ndarray]:
    if binary:
        masks = {1: labels > 0}
    else:
        found = [int(v) for v in np.unique(labels) if v > 0] if values is None else [int(v) for v in values]
        masks = {v: labels == v for v in found}
    if largest_component:
        masks = {k: _largest_component(m) for k, m in masks.items()}
    return masks


def select(cases: list[Case], ids: Sequence[str] | None = None, limit: int | None = None) -> list[Case]:
    """Keep the cases named in ``ids`` (in that order), then the first ``limit``."""
    if ids:
        by_id = {c.id: c for c in cases}
        missing = [i for i in ids if i not in by_id]
        if missing:
            known = ", ".join(sorted(by_id)[:8])
            raise InputError(f"no case named {', '.join(missing)}; cases are e.g. {known}")
        cases = [by_id[i] for i in ids]
    if limit is not None:
        if limit < 1:
            raise InputError(f"limit must be at least 1; got {limit}")
        cases = cases[:limit]
    return cases


def _pairs(folder: Path, images: str, masks: str) -> list[tuple[str, Path, Path]]:
    image_dir, mask_dir = folder / images, folder / masks
    for where in (image_dir, mask_dir):
        if not where.is_dir():
            raise InputError(f"{folder} has no {where.name}/ folder; expected {images}/ and {masks}/")
    mask_by_stem = {_stem(p): p for p in _frame_files(mask_dir)}
    out, unmatched = [], []
    for image in _frame_files(image_dir):
        stem = _stem(image)
        if stem in mask_by_stem:
            out.append((stem, image, mask_by_stem[stem]))
        else:
            unmatched.append(image.name)
    if not out:
        raise InputError(f"no image in {image_dir} has a mask of the same name in {mask_dir}")
    if unmatched:  # left out without a word, "evaluated 2 cases" of 4
        logging.getLogger("samusa").warning(
            "%d image(s) in %s have no mask of the same name in %s and are left out (first: %s)",
            len(unmatched), image_dir, mask_dir, ", ".join(unmatched[:3]))
    return out


# ----------------------------------------------------------------------- loaders
def image_pairs(
    folder: str | Path,
    *,
    images: str = "images",
    masks: str = "masks",
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    name: str = "object 1",
) -> list[Case]:
    """Single images with one binary mask each (non-zero = object 1)."""
    folder = Path(folder)
    pairs = _pairs(folder, images, masks)
    if ids:
        wanted = set(ids)
        pairs = [p for p in pairs if p[0] in wanted]
    cases = []
    for stem, image_path, mask_path in pairs:
        image = _read_2d(image_path)
        labels = _read_labels(mask_path)
        if labels.shape != image.shape[:2]:
            raise InputError(f"{mask_path} is {labels.shape} but its image is {image.shape[:2]}")
        cases.append(
            Case(
                id=stem,
                kind="image",
                array=image[np.newaxis],
                references={1: (labels > 0)[np.newaxis]},
                names={1: name},
                units="px",
                meta={"image": str(image_path), "mask": str(mask_path)},
            )
        )
        if limit is not None and not ids and len(cases) >= limit:
            break
    return select(cases, ids, limit)


def label_maps(
    folder: str | Path,
    *,
    images: str = "images",
    labels: str = "labels",
    names: Mapping[int, str] | None = None,
    values: Iterable[int] | None = None,
    transpose: bool = False,
    largest_component: bool = False,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[Case]:
    """Single images with multi-structure label maps: one object per label value."""
    folder = Path(folder)
    pairs = _pairs(folder, images, labels)
    if ids:
        wanted = set(ids)
        pairs = [p for p in pairs if p[0] in wanted]
    cases = []
    for stem, image_path, label_path in pairs:
        image = _read_2d(image_path)
        label = _read_labels(label_path)
        if label.shape != image.shape[:2]:
            raise InputError(f"{label_path} is {label.shape} but its image is {image.shape[:2]}")
        if transpose:
            image = np.swapaxes(image, 0, 1)
            label = label.T
        objects = _split_labels(label, binary=False, values=values, largest_component=largest_component)
        cases.append(
            Case(
                id=stem,
                kind="image",
                array=np.ascontiguousarray(image)[np.newaxis],
                references={k: m[np.newaxis] for k, m in objects.items()},
                names={k: (names or {}).get(k, f"label {k}") for k in objects},
                units="px",
                meta={
                    "image": str(image_path),
                    "labels": str(label_path),
                    "transposed": transpose,
                    "largest_component": largest_component,
                },
            )
        )
        if limit is not None and not ids and len(cases) >= limit:
            break
    return select(cases, ids, limit)


def camus(
    folder: str | Path,
    *,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    transpose: bool = True,
    largest_component: bool = True,
) -> list[Case]:
    """CAMUS 2D echo (images/ + labels/ PNGs, labels 1-3): LV endocardium, LV myocardium
    and left atrium as three objects, apex up, stray label pixels removed."""
    return label_maps(
        folder,
        names=CAMUS_LABELS,
        values=sorted(CAMUS_LABELS),
        transpose=transpose,
        largest_component=largest_component,
        ids=ids,
        limit=limit,
    )


def camus_ed_es(folder: str | Path, *, ids: Sequence[str] | None = None, limit: int | None = None) -> list[Case]:
    """CAMUS as two-frame tracking: each patient's view (``patient0027_2CH``) as a video
    of its end-diastole then end-systole frame, the three structures as objects (the
    tracking issue's ED -> ES task: prompt ED, propagate to ES). Views without both frames,
    or with frames of different sizes, are left out."""
    frames: dict[str, dict[str, Case]] = {}
    for case in camus(folder):
        view, _, phase = case.id.rpartition("_")
        if phase.upper() in ("ED", "ES"):
            frames.setdefault(view, {})[phase.upper()] = case
    cases = []
    for view, pair in sorted(frames.items()):
        if set(pair) != {"ED", "ES"} or pair["ED"].array.shape != pair["ES"].array.shape:
            continue
        ed, es = pair["ED"], pair["ES"]
        references = {obj: np.concatenate([ed.references[obj], es.references[obj]])
                      for obj in ed.references if obj in es.references}
        cases.append(Case(view, "video", np.concatenate([ed.array, es.array]), references, geometry=ed.geometry,
                          names=dict(ed.names), units=ed.units, meta={"frames": ["ED", "ES"]}))
    return select(cases, ids, limit)


def sequence(
    folder: str | Path,
    *,
    images: str = "images",
    masks: str = "masks",
    multilabel: bool = False,
    names: Mapping[int, str] | None = None,
    case_id: str | None = None,
) -> Case:
    """An ordered sequence of frames with per-frame masks (a video case).

    Frames are the files of ``images/`` in natural order; ``masks/<same name>`` is the
    frame's reference (any non-zero value, or one object per value with ``multilabel``).
    Frames without a mask file are unannotated.
    """
    folder = Path(folder)
    image_dir, mask_dir = folder / images, folder / masks
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise InputError(f"a sequence folder needs {images}/ and {masks}/; {folder} has not both")
    files = _frame_files(image_dir)
    if not files:
        raise InputError(f"{image_dir} holds no frames")
    frames = [_read_2d(p) for p in files]
    shapes = {f.shape[:2] for f in frames}
    if len(shapes) != 1:
        raise InputError(f"frames in {image_dir} differ in size: {sorted(shapes)}")
    rgb = any(f.ndim == 3 for f in frames)
    if rgb:
        frames = [f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=-1) for f in frames]
    array = np.stack(frames)
    mask_by_stem = {_stem(p): p for p in _frame_files(mask_dir)}
    label_stack = np.zeros(array.shape[:3], dtype=np.int64)
    annotated = np.zeros(len(files), dtype=bool)
    for index, path in enumerate(files):
        mask_path = mask_by_stem.get(_stem(path))
        if mask_path is None:
            continue
        labels = _read_labels(mask_path)
        if labels.shape != array.shape[1:3]:
            raise InputError(f"{mask_path} is {labels.shape} but the frames are {array.shape[1:3]}")
        label_stack[index] = labels
        annotated[index] = True
    if not annotated.any():
        raise InputError(f"no frame in {image_dir} has a mask of the same name in {mask_dir}")
    objects = _split_labels(label_stack, binary=not multilabel)
    return Case(
        id=case_id or folder.name,
        kind="video",
        array=array,
        references=objects,
        names={k: (names or {}).get(k, f"object {k}") for k in objects},
        annotated=annotated,
        units="px",
        meta={"folder": str(folder), "frames": [p.name for p in files]},
    )


def _is_sequence_folder(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "masks").is_dir()


def sequences(folder: str | Path, *, multilabel: bool = False, ids=None, limit=None) -> list[Case]:
    """One sequence (a folder with images/ and masks/) or a folder of them."""
    folder = Path(folder)
    if _is_sequence_folder(folder):
        return select([sequence(folder, multilabel=multilabel)], ids, limit)
    subs = sorted((p for p in folder.iterdir() if p.is_dir() and _is_sequence_folder(p)), key=lambda p: _natural_key(p.name))
    if not subs:
        raise InputError(f"{folder} is neither a sequence (images/ + masks/) nor a folder of sequences")
    return select([sequence(p, multilabel=multilabel) for p in subs], ids, limit)


def _itk_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and (_suffix(p) in ITK_SUFFIXES or _suffix(p) == SEG_SUFFIX)),
        key=lambda p: _natural_key(p.name),
    )


def _volume_file_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    for image_name, label_name in (("images", "labels"), ("images", "masks"), ("volumes", "labels")):
        if (folder / image_name).is_dir() and (folder / label_name).is_dir():
            labels = {_stem(p): p for p in _itk_files(folder / label_name)}
            return [(_stem(p), p, labels[_stem(p)]) for p in _itk_files(folder / image_name) if _stem(p) in labels]
    files = _itk_files(folder)
    label_of: dict[str, Path] = {}
    images: list[Path] = []
    for path in files:
        if _suffix(path) == SEG_SUFFIX:
            label_of[_stem(path)] = path
            continue
        match = _LABEL_STEM.match(_stem(path))
        if match:
            label_of.setdefault(match.group("stem"), path)
        else:
            images.append(path)
    return [(_stem(p), p, label_of[_stem(p)]) for p in images if _stem(p) in label_of]


def _read_label_volume(path: Path, shape: tuple[int, ...]) -> tuple[dict[int, np.ndarray], dict[int, str], Geometry | None]:
    if _suffix(path) == SEG_SUFFIX:
        masks, geometry, names = read_segmentation(path)
        return masks, names, geometry
    array, geometry = read_image(path)
    if array.ndim != 3:
        raise InputError(f"label volume {path} must hold one scalar value per voxel; got shape {array.shape}")
    objects = _split_labels(np.rint(array).astype(np.int64) if np.issubdtype(array.dtype, np.floating) else array, binary=False)
    return objects, {}, geometry


def volume_pairs(
    folder: str | Path,
    *,
    kind: str = "volume",
    axis: str = "K",
    ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[Case]:
    """NRRD/NIfTI/MHA image volumes with label volumes (see the module docstring).

    ``kind="video"`` reads (T, H, W) cines stored as volumes (frames along K).
    """
    folder = Path(folder)
    pairs = _volume_file_pairs(folder)
    if not pairs:
        raise InputError(
            f"{folder} holds no image volume with a label volume beside it; name labels "
            "<id>.seg.nrrd, <id>_label.nrrd (or _mask, _seg, _gt), or use images/ + labels/"
        )
    if ids:
        wanted = set(ids)
        pairs = [p for p in pairs if p[0] in wanted]
    cases = []
    for stem, image_path, label_path in pairs:
        array, geometry = read_image(image_path)
        masks, names, label_geometry = _read_label_volume(label_path, array.shape[:3])
        for obj_id, mask in masks.items():
            if mask.shape != array.shape[:3]:
                raise InputError(f"{label_path} has shape {mask.shape}; its image {image_path} {array.shape[:3]}")
        if label_geometry is not None and not np.allclose(label_geometry.spacing, geometry.spacing, rtol=1e-3):
            raise InputError(
                f"{label_path} has spacing {label_geometry.spacing}, its image {geometry.spacing}: "
                "resample the labels onto the image grid first"
            )
        masks = {k: m for k, m in masks.items() if m.any()}
        if not masks:
            raise InputError(f"{label_path} labels nothing")
        cases.append(
            Case(
                id=stem,
                kind=kind,
                array=array,
                references=masks,
                geometry=geometry,
                axis=axis,
                names={k: names.get(k) or f"label {k}" for k in masks},
                units="mm",
                meta={"image": str(image_path), "labels": str(label_path)},
            )
        )
    return select(cases, ids, limit)


def phantom_cases(
    kind: str,
    count: int = 3,
    seed: int = 0,
    *,
    num_frames: int = 12,
    height: int = 64,
    width: int = 80,
    volume_shape: tuple[int, int, int] = (20, 48, 44),
    volume_spacing: tuple[float, float, float] = (0.5, 0.4, 1.2),
) -> list[Case]:
    """Synthetic cases with exact references (:mod:`SAMUSALib.phantoms`).

    image: the middle visible frame of object 1 of ``count`` cines; video: ``count`` cines,
    both objects; volume: ``count`` volumes with one ellipsoid each.
    """
    from ..phantoms import cine_phantom, volume_phantom

    if kind not in KINDS:
        raise InputError(f"phantom kind must be one of {KINDS}; got {kind!r}")
    cases = []
    for index in range(count):
        case_seed = seed + index
        if kind == "volume":
            phantom = volume_phantom(shape=volume_shape, spacing=volume_spacing, seed=case_seed, radii_mm=(5.0, 4.5, 5.5))
            cases.append(
                Case(
                    id=f"phantom-volume-{case_seed}",
                    kind="volume",
                    array=phantom.volume,
                    references={1: phantom.mask},
                    geometry=phantom.geometry,
                    names={1: "hypoechoic ellipsoid"},
                    units="mm",
                    meta={"phantom": "volume", "seed": case_seed},
                )
            )
            continue
        last = num_frames - 1
        visible = {1: (min(1, last), max(min(1, last), last - 1)), 2: (0, max(0, num_frames // 2 - 1))}
        cine = cine_phantom(num_frames=num_frames, height=height, width=width, seed=case_seed, visible=visible)
        if kind == "image":
            first, end = cine.visible[1]
            frame = (first + end) // 2
            cases.append(
                Case(
                    id=f"phantom-image-{case_seed}",
                    kind="image",
                    array=cine.frames[frame : frame + 1],
                    references={1: cine.masks[1][frame : frame + 1]},
                    geometry=cine.geometry,
                    names={1: cine.names[1]},
                    units="mm",
                    meta={"phantom": "cine", "seed": case_seed, "frame": frame},
                )
            )
        else:
            cases.append(
                Case(
                    id=f"phantom-video-{case_seed}",
                    kind="video",
                    array=cine.frames,
                    references=dict(cine.masks),
                    geometry=cine.geometry,
                    names=dict(cine.names),
                    units="mm",
                    meta={"phantom": "cine", "seed": case_seed, "visible": {k: list(v) for k, v in cine.visible.items()}},
                )
            )
    return cases


#: `load_cases("pseudo-cine:[N:]FOLDER", "video")`: loops made from real images
PSEUDO_CINE = "pseudo-cine"
#: loops per folder and frames per loop of the pseudo-cine benchmark (docs/tracking.md)
PSEUDO_CINE_LOOPS, PSEUDO_CINE_FRAMES = 4, 10


def pseudo_cines(spec: str, *, ids: Sequence[str] | None = None, limit: int | None = None, seed: int = 0) -> list[Case]:
    """The pseudo-cine benchmark from one folder of images with masks (`image_pairs`):
    "[N:]FOLDER", N loops (default 4) from N images spread evenly over the folder's sorted
    list, each `PSEUDO_CINE_FRAMES` frames moved by probe-like translation and smooth
    deformation with re-synthesised speckle (`pseudocine`); loop i uses seed `seed + i`,
    so the benchmark is the same on every run. Masks move with the image: exact truth."""
    from .pseudocine import pseudo_cine

    head, _, rest = spec.partition(":")
    count, folder = (int(head), rest) if head.isdigit() and rest else (PSEUDO_CINE_LOOPS, spec)
    if count < 1:
        raise InputError(f"give {PSEUDO_CINE}:N:FOLDER with N >= 1 loops; got {spec!r}")
    if not Path(folder).is_dir():
        raise InputError(f"no such data folder: {folder} (give {PSEUDO_CINE}:[N:]FOLDER of images/ and masks/)")
    stems = [stem for stem, _, _ in _pairs(Path(folder), "images", "masks")]  # names only: read just the picked
    picks = sorted({int(round(v)) for v in np.linspace(0, len(stems) - 1, min(count, len(stems)))})
    cases = []
    for i, pair in enumerate(image_pairs(folder, ids=[stems[index] for index in picks])):
        image, mask = pair.array[0], pair.references[1][0]
        cine = pseudo_cine(image, mask, PSEUDO_CINE_FRAMES, seed + i)
        cases.append(Case(
            id=f"{pair.id}-pseudo", kind="video", array=cine.frames, references={1: cine.masks},
            names={1: pair.names.get(1, "object 1")}, units="px",
            meta={"pseudo_cine": True, "seed": seed + i, "source": pair.meta.get("image"),
                  "shifts": cine.shifts.round(2).tolist()},
        ))
    return select(cases, ids, limit)


def load_cases(
    data: str | Path,
    protocol: str,
    *,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    axis: str = "K",
    seed: int = 0,
) -> list[Case]:
    """Cases for a protocol ("image", "video" or "volume") from a path, "phantom[:N]", or
    (video) "pseudo-cine:[N:]FOLDER" (`pseudo_cines`)."""
    if protocol not in KINDS:
        raise InputError(f"protocol must be one of {', '.join(KINDS)}; got {protocol!r}")
    text = str(data)
    if text == "phantom" or text.startswith("phantom:"):
        count = 3
        if ":" in text:
            try:
                count = int(text.split(":", 1)[1])
            except ValueError:
                raise InputError(f"give phantom:N with N a number of cases; got {text!r}") from None
        cases = phantom_cases(protocol, count=count, seed=seed)
        return select(cases, ids, limit)
    if text.startswith(PSEUDO_CINE + ":"):
        if protocol != "video":
            raise InputError(f"{PSEUDO_CINE}:... gives loops, for the video protocol; got --protocol {protocol}")
        return pseudo_cines(text[len(PSEUDO_CINE) + 1:], ids=ids, limit=limit, seed=seed)
    folder = Path(data)
    if not folder.exists():
        raise InputError(f"no such data folder: {folder}")
    if folder.is_file():
        raise InputError(f"--data must be a folder (or 'phantom'); {folder} is a file")
    has = lambda name: (folder / name).is_dir()  # noqa: E731
    if protocol == "image":
        if has("images") and has("masks"):
            return image_pairs(folder, ids=ids, limit=limit)
        if has("images") and has("labels"):
            if "camus" in folder.resolve().name.lower():
                return camus(folder, ids=ids, limit=limit)
            return label_maps(folder, ids=ids, limit=limit)
        raise InputError(f"{folder}: the image protocol needs images/ with masks/ (or labels/)")
    if protocol == "video":
        if has("images") and has("labels") and "camus" in folder.resolve().name.lower():
            return camus_ed_es(folder, ids=ids, limit=limit)
        if _volume_file_pairs(folder):
            return volume_pairs(folder, kind="video", ids=ids, limit=limit)
        return sequences(folder, ids=ids, limit=limit)
    return volume_pairs(folder, kind="volume", axis=axis, ids=ids, limit=limit)
