"""`scripts/segment_check.py`, issue 20's check: `samusa segment` with one prompts file per
image gives the evaluation's at-once figure for the same prompt, so what the evaluation
reports is what a user running the command line gets. Real frame: the bundled carotid
cine's first frame (CC BY 4.0, Resources/Samples/README.md), written as a dataset of one
PNG the way the shared sets are stored."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from SAMUSALib.evaluation.datasets import load_cases
from SAMUSALib.evaluation.protocols import run_image_protocol, session_factory
from SAMUSALib.models import load_model

from conftest import write_png_dataset

REPO = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("segment_check", REPO / "scripts" / "segment_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dataset(folder: Path, sample, masks_name: str, transpose: bool) -> Path:
    """One real frame and its lumen mask (label 1) as PNGs (transposed, as CAMUS's PNGs are stored)."""
    return write_png_dataset(folder, *sample, (0,), masks_dir=masks_name, mask_value=1, transpose=transpose)


def _evaluated(folder: Path) -> dict[str, float]:
    """The evaluation's at-once Dice: three boundary points, the box, one and two region clicks."""
    cases = load_cases(folder, "image")
    result = run_image_protocol(cases, session_factory(load_model("samusa-lite", device="cpu")),
                                prompt_types=["boundary", "box", "region"], max_clicks=3, at_once="both")
    by_group = {record["group"]: record["dice_by_clicks"] for record in result.records if "skipped" not in record}
    region = by_group["region at once"]
    return {"boundary3": by_group["boundary at once"][-1], "box": by_group["box"][0], "region1": region[0], "region2": region[1]}


def _checked(folder: Path, out: Path, *extra: str) -> dict[str, float]:
    _script().main([str(folder), "--out", str(out), "--points", "3", *extra])
    return {name: dice for _, _, name, dice in json.loads((out / "rows.json").read_text())}


def test_the_command_line_gives_the_evaluation_s_at_once_dice(carotid_sample, tmp_path):
    folder = _dataset(tmp_path / "carotid_frame", carotid_sample, "masks", transpose=False)
    checked = _checked(folder, tmp_path / "out", "--region", "2")
    evaluated = _evaluated(folder)
    assert min(checked.values()) > 0.8, checked
    assert checked == pytest.approx(evaluated, abs=1e-3)


def test_a_transposed_dataset_is_checked_as_stored_or_as_evaluated(carotid_sample, tmp_path):
    """CAMUS-like storage (the evaluation transposes the images back): as evaluated, the
    check reproduces the evaluation; as stored, the prompts and the reference are
    transposed with the image, so the mask still lands on the structure. One region click
    only, as stored: on this frame turned sideways the second drops Dice 0.78 -> 0.35 (the
    same through `Session` directly; the models are not orientation-free)."""
    folder = _dataset(tmp_path / "camus_like", carotid_sample, "labels", transpose=True)
    assert load_cases(folder, "image")[0].meta["transposed"]
    evaluated = _evaluated(folder)
    as_evaluated = _checked(folder, tmp_path / "evaluated", "--orientation", "evaluated", "--region", "0")
    assert as_evaluated == pytest.approx({name: evaluated[name] for name in ("boundary3", "box")}, abs=1e-3)
    stored = _checked(folder, tmp_path / "stored", "--region", "1")
    assert min(stored.values()) > 0.7, stored
