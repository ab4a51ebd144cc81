"""The bundled real sample (Resources/Samples): loads, matches its README, prompts fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")

SAMPLES = Path(__file__).resolve().parents[1] / "Resources" / "Samples"
SHAPE = (15, 374, 354)
PROMPT_FRAME = 7


def _load(name: str) -> np.ndarray:
    image = sitk.ReadImage(str(SAMPLES / name))
    assert image.GetSpacing() == (1.0, 1.0, 1.0)
    assert image.GetOrigin() == (0.0, 0.0, 0.0)
    return sitk.GetArrayFromImage(image)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return _load("carotid_cine.nrrd")


@pytest.fixture(scope="module")
def masks() -> np.ndarray:
    return _load("carotid_cine_masks.nrrd")


def _prompts(suffix: str = "") -> dict:
    data = json.loads((SAMPLES / f"carotid_cine_prompts{suffix}.json").read_text())
    (obj,) = data["objects"]
    assert obj["id"] == 1 and obj["name"] == "carotid lumen"
    assert obj["window"] == [0, SHAPE[0] - 1]
    (prompt,) = obj["prompts"]
    assert prompt["frame"] == PROMPT_FRAME
    return prompt


def _contour_distance(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from each (x, y) point to the mask's boundary (pixel edges between a
    mask pixel and a background pixel)."""
    padded = np.pad(mask, 1)
    edges = []
    # Midpoints of pixel edges where the mask changes, in (x, y) of the unpadded frame.
    rows, cols = np.nonzero(padded[:, 1:] != padded[:, :-1])
    edges.append(np.stack([cols - 0.5, rows - 1.0], axis=1))
    rows, cols = np.nonzero(padded[1:, :] != padded[:-1, :])
    edges.append(np.stack([cols - 1.0, rows - 0.5], axis=1))
    edges = np.concatenate(edges).astype(float)
    diff = points[:, None, :] - edges[None, :, :]
    return np.sqrt((diff**2).sum(axis=2)).min(axis=1)


def test_sample_files_exist_and_are_small():
    names = [
        "carotid_cine.nrrd",
        "carotid_cine_masks.nrrd",
        "carotid_cine_prompts.json",
        "carotid_cine_prompts_region.json",
        "carotid_cine_prompts_box.json",
        "README.md",
        "make_carotid_sample.py",
    ]
    total = 0
    for name in names:
        path = SAMPLES / name
        assert path.is_file(), name
        total += path.stat().st_size
    assert total < 2_000_000


def test_frames_shape_and_type(frames):
    assert frames.shape == SHAPE
    assert frames.dtype == np.uint8
    assert frames.max() > 200 and frames.std() > 10  # real image content


def test_masks_match_frames(frames, masks):
    assert masks.shape == frames.shape
    assert masks.dtype == np.uint8
    assert set(np.unique(masks).tolist()) == {0, 1}
    areas = masks.reshape(SHAPE[0], -1).sum(axis=1)
    assert (areas > 1500).all()  # the lumen is visible in every frame (window = all)
    # The lumen is dark: inside the mask the image is darker than around it.
    mask = masks[PROMPT_FRAME].astype(bool)
    frame = frames[PROMPT_FRAME].astype(float)
    rows, cols = np.nonzero(mask)
    around = np.zeros_like(mask)
    around[max(rows.min() - 15, 0) : rows.max() + 16, max(cols.min() - 15, 0) : cols.max() + 16] = True
    assert frame[mask].mean() < frame[around & ~mask].mean()


def test_neighbouring_masks_overlap(masks):
    for t in range(SHAPE[0] - 1):
        a, b = masks[t].astype(bool), masks[t + 1].astype(bool)
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.6


def test_boundary_prompt_lies_on_the_contour(masks):
    prompt = _prompts()
    points = np.asarray(prompt["boundary"], dtype=float)
    assert points.shape == (5, 2)
    mask = masks[prompt["frame"]].astype(bool)
    assert mask.any()
    assert (_contour_distance(mask, points) <= 1.5).all()
    # Spread around the structure, not bunched on one side.
    centre = np.array([np.nonzero(mask)[1].mean(), np.nonzero(mask)[0].mean()])
    angles = np.sort(np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0]))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi]))
    assert gaps.max() < np.pi


def test_region_prompt_is_deep_inside(masks):
    prompt = _prompts("_region")
    ((x, y),) = prompt["positive"]
    mask = masks[prompt["frame"]].astype(bool)
    assert mask[int(round(y)), int(round(x))]
    assert _contour_distance(mask, np.array([[x, y]]))[0] > 20


def test_box_prompt_is_the_bounding_box(masks):
    prompt = _prompts("_box")
    x0, y0, x1, y1 = prompt["box"]
    rows, cols = np.nonzero(masks[prompt["frame"]])
    assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max(), rows.max())


def test_readme_names_licence_and_source():
    text = (SAMPLES / "README.md").read_text()
    assert "CC BY 4.0" in text
    assert "creativecommons.org/licenses/by/4.0" in text
    assert "10.17632/d4xt63mgjm.1" in text
    assert "Momot" in text
    for slice_number in (549, 689, 776):
        assert str(slice_number) in text
