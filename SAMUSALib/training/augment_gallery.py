"""The augmentation gallery: each ultrasound augmentation applied to one real image,
drawn with its mask contour and boundary points, to check by eye that the physics looks
right and that masks and points follow the image (``python -m SAMUSALib.training.augment_gallery
--gallery OUT.png``)."""

from __future__ import annotations

import argparse
import sys

from pathlib import Path
from typing import Callable

import numpy as np

from .augment import (
    AcousticShadow, DepthAttenuation, FrameSkip, GainContrast, HorizontalFlip, ResolutionBlur, Reverse, Rotate,
    Sample, SectorMask, Speckle, SpeedChange, TemporalCrop, TimeGainCompensation, Translate, VideoSample, Zoom,
    _mask_list, ultrasound_augmentations,
)

SAMPLES = Path(__file__).resolve().parents[2] / "Resources" / "Samples"


def load_example(image_path: str | None, mask_path: str | None, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """A float [0, 1] image and bool mask: given files, else the bundled carotid frame."""
    from ..io import read_image

    image_path = image_path or str(SAMPLES / "carotid_cine.nrrd")
    mask_path = mask_path or str(SAMPLES / "carotid_cine_masks.nrrd")
    image, _ = read_image(image_path)
    mask, _ = read_image(mask_path)
    image, mask = image[min(frame, len(image) - 1)], mask[min(frame, len(mask) - 1)]
    mask = (mask.max(axis=-1) if mask.ndim == 3 else mask) > 0
    image = image.astype(np.float32)
    return image / max(float(image.max()), 1e-8), mask


def _boundary_points(mask: np.ndarray, count: int = 8) -> np.ndarray:
    from skimage import measure

    contours = measure.find_contours(mask.astype(np.float32), 0.5)
    if not contours:
        return np.zeros((0, 2), np.float32)
    contour = max(contours, key=len)
    picks = contour[np.linspace(0, len(contour) - 1, count, endpoint=False).astype(int)]
    return picks[:, ::-1].astype(np.float32)


def gallery_panels() -> list[tuple[str, Callable]]:
    """(title, augmentation) per panel, each at a clearly visible setting."""
    return [
        ("speckle (Rayleigh, std 0.3)", Speckle(std=0.3, correlation=1.0)),
        ("depth attenuation (alpha 2)", DepthAttenuation(alpha=2.0)),
        ("TGC (5 knots, +/-8 dB)", TimeGainCompensation(gain_db=(-8.0, 8.0))),
        ("acoustic shadow", AcousticShadow(width=0.15, strength=0.85, depth=0.12, lateral=0.25)),
        ("sector fan (40 deg)", SectorMask(half_angle=40.0, apex_height=0.15)),
        ("resolution blur (lat 3, ax 1)", ResolutionBlur(lateral_sigma=3.0, axial_fraction=0.33)),
        ("gain/gamma (gamma 1.6)", GainContrast(gamma=1.6, gain=1.1, brightness=0.0)),
        ("horizontal flip", HorizontalFlip()),
        ("zoom in x1.4", Zoom(scale=1.4)),
        ("zoom out x0.7", Zoom(scale=0.7)),
        ("zoom in x2.5 (points may leave)", Zoom(scale=2.5)),
        ("rotate 12 deg", Rotate(degrees=12.0)),
        ("translate", Translate((0.25, 0.25))),
        ("default pipeline", ultrasound_augmentations("default")),
        ("strong pipeline", ultrasound_augmentations("strong")),
    ]


def temporal_panels() -> list[tuple[str, Callable]]:
    return [
        ("frame skip (k=3)", FrameSkip(k=(3, 3))),
        ("reverse", Reverse()),
        ("speed x0.6 (slower)", SpeedChange(factor=0.6)),
        ("temporal crop (6 frames)", TemporalCrop(length=(6, 6))),
    ]


def write_gallery(path: str | Path, image: np.ndarray, mask: np.ndarray, seed: int = 0) -> Path:
    """A PNG with the image and its contour and boundary points under each augmentation
    (valid points yellow, flagged ones red), and each temporal one as a frame-index plot."""
    from matplotlib.figure import Figure

    from ..io import atomic_output

    base = Sample(image, mask, _boundary_points(mask))
    panels = [("original", None)] + gallery_panels()
    timeline = temporal_panels()
    columns = 4
    rows = -(-len(panels) // columns) + 1
    aspect = image.shape[0] / image.shape[1]
    fig = Figure(figsize=(3.2 * columns, 3.2 * aspect * (rows - 1) + 2.6))
    grid = fig.add_gridspec(rows, columns, height_ratios=[aspect] * (rows - 1) + [0.7])
    for i, (title, aug) in enumerate(panels):
        ax = fig.add_subplot(grid[i // columns, i % columns])
        out = base if aug is None else aug(base, np.random.default_rng(seed + i))
        shown = out.image.astype(np.float32)
        ax.imshow(np.clip(shown, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for layer in _mask_list(out.masks):
            if np.any(layer):
                ax.contour(np.asarray(layer, np.float32), levels=[0.5], colors="lime", linewidths=0.8)
        ok = out.valid
        ax.plot(out.points[ok, 0], out.points[ok, 1], "o", ms=3.5, mfc="yellow", mec="black", mew=0.5)
        ax.plot(out.points[~ok, 0], out.points[~ok, 1], "x", ms=5, color="red")
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        flagged = int((~ok).sum())
        ax.set_title(title + (f"\n{flagged} of {len(ok)} points flagged (outside)" if flagged else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    video = VideoSample(np.zeros((16, 2, 2), np.float32), np.zeros((16, 2, 2), bool), np.arange(16) % 4 == 0)
    for j, (title, aug) in enumerate(timeline):
        ax = fig.add_subplot(grid[rows - 1, j])
        out = aug(video, np.random.default_rng(seed + 100 + j))
        position = np.arange(len(out.source))
        ax.plot(position, out.source, "-", color="0.7", lw=0.8)
        ax.plot(position[~out.annotated], out.source[~out.annotated], "o", ms=3, mfc="white", mec="tab:blue")
        ax.plot(position[out.annotated], out.source[out.annotated], "o", ms=4, color="tab:orange")
        ax.set_xlim(-0.5, max(16, len(position)) - 0.5)
        ax.set_ylim(-0.5, 15.5)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("output frame", fontsize=8)
        ax.set_ylabel("source frame", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("SAMUSA ultrasound augmentations (contour: mask; yellow: boundary points, red x: flagged; "
                 "bottom: source frame per output frame, orange = annotated)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m SAMUSALib.training.augment_gallery",
                                     description="Draw each ultrasound augmentation applied to one image.")
    parser.add_argument("--gallery", required=True, metavar="OUT.png", help="where to write the picture")
    parser.add_argument("--image", help="image, volume or cine (default: the bundled carotid sample)")
    parser.add_argument("--mask", help="its mask (same grid); required with --image")
    parser.add_argument("--frame", type=int, default=0, help="frame of a cine or volume (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if bool(args.image) != bool(args.mask):
        parser.error("give --image and --mask together (or neither, for the bundled sample)")
    image, mask = load_example(args.image, args.mask, args.frame)
    print(write_gallery(args.gallery, image, mask, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
