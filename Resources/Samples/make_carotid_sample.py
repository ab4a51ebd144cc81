"""Build the bundled carotid cine sample from the shared carotid data (Momot 2022).

Usage (from anywhere):

    python Resources/Samples/make_carotid_sample.py [SHARED_DATA_DIR] [--preview PNG]

SHARED_DATA_DIR is the folder that holds ``carotid/`` (images/, masks/, frames.csv); it
defaults to ``../shared/data`` relative to the repository root. The outputs are written
next to this script:

    carotid_cine.nrrd                grey frames, uint8 (T, H, W), gzip NRRD
    carotid_cine_masks.nrrd          expert lumen masks, uint8 0/1, same grid
    carotid_cine_prompts.json        5 boundary points on the middle frame's mask contour
    carotid_cine_prompts_region.json 1 positive point at the mask's deepest interior point
    carotid_cine_prompts_box.json    the mask's bounding box on the middle frame

Needs numpy, pillow, SimpleITK, scipy and scikit-image. The result is deterministic.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage
from skimage import measure

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

# Frames 013..027 of carotid/ (source slices 549..793): the longest run of the 39 frames
# in which every pair of neighbours overlaps well (Dice >= 0.65). Dice drops to 0.07 at
# 011 -> 012 and 0.12 at 012 -> 013 (the probe jumps), and to 0.51 at 027 -> 028, so the
# only truly adjacent pair (008/009) sits in a run of just 6 frames (006..011).
FIRST, LAST = 13, 27
NAME = "carotid lumen"
NUM_BOUNDARY_POINTS = 5


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def downscale_image(path: Path) -> np.ndarray:
    """RGB PNG -> grey ("L"), cropped to even size, 2x2 box average -> uint8."""
    image = Image.open(path).convert("L")
    width, height = image.size
    image = image.crop((0, 0, width - width % 2, height - height % 2))
    return np.asarray(image.reduce(2), dtype=np.uint8)


def downscale_mask(path: Path) -> np.ndarray:
    """{0, 255} PNG -> bool, cropped to even size, nearest-neighbour halving."""
    mask = Image.open(path)
    if mask.mode != "L":
        mask = mask.convert("L")
    width, height = mask.size
    mask = mask.crop((0, 0, width - width % 2, height - height % 2))
    small = mask.resize((mask.width // 2, mask.height // 2), Image.NEAREST)
    return np.asarray(small) > 127


def boundary_points(mask: np.ndarray, count: int) -> list[list[float]]:
    """``count`` points spread evenly (by arc length) along the mask's outer contour,
    starting at its top-most point, as [x, y] = [column, row]."""
    contours = measure.find_contours(mask.astype(float), 0.5)
    contour = max(contours, key=len)  # (row, col), closed
    if not np.allclose(contour[0], contour[-1]):
        contour = np.vstack([contour, contour[:1]])
    start = int(np.argmin(contour[:, 0]))
    contour = np.vstack([contour[start:-1], contour[:start], contour[start : start + 1]])
    steps = np.hypot(*np.diff(contour, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    targets = np.arange(count) * arc[-1] / count
    rows = np.interp(targets, arc, contour[:, 0])
    cols = np.interp(targets, arc, contour[:, 1])
    return [[round(float(c), 1), round(float(r), 1)] for r, c in zip(rows, cols)]


def deepest_point(mask: np.ndarray) -> list[float]:
    distance = ndimage.distance_transform_edt(mask)
    row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return [float(col), float(row)]


def bounding_box(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())]


def write_nrrd(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)  # (T, H, W) -> size (W, H, T)
    image.SetSpacing((1.0, 1.0, 1.0))  # the PNGs record no physical spacing
    image.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(image, str(path), useCompression=True)


def write_prompts(path: Path, window: list[int], frame_prompt: dict) -> None:
    data = {"objects": [{"id": 1, "name": NAME, "window": window, "prompts": [frame_prompt]}]}
    text = json.dumps(data, indent=2)
    # Keep each [x, y] pair, box and window on one line.
    numbers = r"\[\s+(-?[\d.]+(?:,\s+-?[\d.]+)*)\s+\]"
    text = re.sub(numbers, lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    path.write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(HERE), help="output folder (default: next to this script)")
    parser.add_argument("--preview", help="also write a PNG of the prompted frame with its mask contour")
    args = parser.parse_args()
    carotid = Path(args.data) / "carotid"
    out = Path(args.out)

    with open(carotid / "frames.csv", newline="") as handle:
        rows = {int(row["index"]): row for row in csv.DictReader(handle)}
    indices = list(range(FIRST, LAST + 1))
    frames = np.stack([downscale_image(carotid / "images" / f"{i:03d}.png") for i in indices])
    masks = np.stack([downscale_mask(carotid / "masks" / f"{i:03d}.png") for i in indices])

    print("frame  source  slice  gap  area(px, downscaled)  dice-to-next")
    for n, i in enumerate(indices):
        nxt = f"{dice(masks[n], masks[n + 1]):.3f}" if n + 1 < len(indices) else ""
        row = rows[i]
        print(
            f"{n:5d}  {i:06d}  {row['slice']:>5}  {row['slice_gap_from_previous'] or '-':>3}  "
            f"{int(masks[n].sum()):20d}  {nxt}"
        )
    visible = [n for n in range(len(indices)) if masks[n].any()]
    window = [visible[0], visible[-1]]
    prompt_frame = len(indices) // 2
    mask = masks[prompt_frame]

    write_nrrd(frames, out / "carotid_cine.nrrd")
    write_nrrd(masks.astype(np.uint8), out / "carotid_cine_masks.nrrd")
    write_prompts(
        out / "carotid_cine_prompts.json",
        window,
        {"frame": prompt_frame, "boundary": boundary_points(mask, NUM_BOUNDARY_POINTS)},
    )
    write_prompts(
        out / "carotid_cine_prompts_region.json", window, {"frame": prompt_frame, "positive": [deepest_point(mask)]}
    )
    write_prompts(out / "carotid_cine_prompts_box.json", window, {"frame": prompt_frame, "box": bounding_box(mask)})
    print(f"frames {frames.shape} {frames.dtype}; window {window}; prompted frame {prompt_frame} "
          f"(source {indices[prompt_frame]:03d}, slice {rows[indices[prompt_frame]]['slice']})")

    if args.preview:
        rgb = np.repeat(frames[prompt_frame][..., None], 3, axis=2)
        edge = mask & ~ndimage.binary_erosion(mask)
        rgb[edge] = (255, 0, 0)
        for x, y in boundary_points(mask, NUM_BOUNDARY_POINTS):
            r, c = int(round(y)), int(round(x))
            rgb[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3] = (0, 255, 0)
        Image.fromarray(rgb).save(args.preview)


if __name__ == "__main__":
    main()
