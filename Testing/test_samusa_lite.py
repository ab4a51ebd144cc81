"""The shipped SAMUSA-Lite: weights verified by SHA256, the default CPU model, and native
boundary points that beat the pretrained LiteMedSAM given the same points on real frames.

Real frames: the bundled carotid cine (CC BY 4.0, Resources/Samples/README.md) with its
reference masks; the model was never trained on this acquisition. Thresholds are below
what was measured (docs/samusa_lite.md), with room for CPU numerics.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from SAMUSALib.boundary import contour_distance, curve_mask
from SAMUSALib.engine import Session
from SAMUSALib.errors import ModelError
from SAMUSALib.evaluation.metrics import dice
from SAMUSALib.frames import FrameSource
from SAMUSALib.models import REGISTRY, load_model, sha256_of

from conftest import centroid_points

FRAMES = (0, 4, 9, 14)


@pytest.fixture(scope="module")
def cine(carotid_sample):
    return carotid_sample


def _segment(model, frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    session = Session(FrameSource(frame[None]), model)
    return session.add_prompt(1, 0, boundary=points)


def test_shipped_weights_load_and_verify_their_sha256(tmp_path, monkeypatch):
    from SAMUSALib.backends.litemedsam import lite

    spec = REGISTRY["samusa-lite"]
    path = lite.shipped_weights(spec)
    assert path is not None and spec.sha256 is not None and sha256_of(path) == spec.sha256
    assert path.stat().st_size < 12_000_000  # a delta, not a copy of LiteMedSAM (39 MB)
    loaded = load_model("samusa-lite", device="cpu")
    assert loaded.spec.boundary_native and loaded.sam.boundary_box
    assert loaded.metadata["sha256"] == spec.sha256

    tampered = tmp_path / spec.filename
    shutil.copy(path, tampered)
    with tampered.open("r+b") as handle:
        handle.seek(-200, 2)
        handle.write(b"\0" * 8)
    monkeypatch.setattr(lite, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelError, match="SHA256"):
        load_model("samusa-lite", device="cpu")


def test_samusa_lite_is_the_default_cpu_model(monkeypatch, tmp_path):
    from SAMUSALib.models import default_model_id

    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(tmp_path))  # no SAM2 weights cached
    assert default_model_id() == "samusa-lite"


def test_three_boundary_points_give_a_mask_through_them_better_than_the_pretrained_model(cine):
    """Against LiteMedSAM given the same points as SAM point prompts (what the pretrained
    model understands), against SAMUSA's best encoding of them for LiteMedSAM (`fit`,
    box candidates), and against the polygon through the clicks (no model): far better than
    the first and the last, as good as the second on this sample.
    Measured: SAMUSA-Lite 0.927 mean Dice, LiteMedSAM + fit 0.929, LiteMedSAM with points
    0.657, the triangle through the three clicks 0.578."""
    array, masks = cine
    lite_model = load_model("samusa-lite", device="cpu")
    pretrained = load_model("litemedsam", device="cpu")
    scores = {"lite": [], "fit": [], "points": [], "polygon": []}
    for t in FRAMES:
        points = centroid_points(masks[t], count=3)
        lite_mask = _segment(lite_model, array[t], points)
        scores["lite"].append(dice(lite_mask, masks[t]))
        scores["polygon"].append(dice(curve_mask(points, masks[t].shape), masks[t]))
        scores["fit"].append(dice(_segment(pretrained, array[t], points), masks[t]))
        raw = Session(FrameSource(array[t][None]), pretrained)
        raw.backend.region_encoding = "points"
        scores["points"].append(dice(raw.add_prompt(1, 0, positive=points), masks[t]))
        assert contour_distance(lite_mask, points) < 4.0, f"frame {t}: contour far from the points"
    means = {k: float(np.mean(v)) for k, v in scores.items()}
    assert means["lite"] > 0.88, scores
    assert means["lite"] > means["points"] + 0.2, scores
    assert means["lite"] > means["polygon"] + 0.2, scores
    assert means["lite"] > means["fit"] - 0.02, scores


def test_a_box_alone_gives_litemedsam_s_own_mask(cine):
    array, masks = cine
    lite_model = load_model("samusa-lite", device="cpu")
    pretrained = load_model("litemedsam", device="cpu")
    for t in FRAMES[:2]:
        rows, cols = np.nonzero(masks[t])
        box = [float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())]
        ours = Session(FrameSource(array[t][None]), lite_model).add_prompt(1, 0, box=box)
        theirs = Session(FrameSource(array[t][None]), pretrained).add_prompt(1, 0, box=box)
        np.testing.assert_array_equal(ours, theirs)


def test_a_prompts_file_gives_the_mask_of_the_same_clicks_one_at_a_time(cine, tmp_path):
    """The same boundary points, and the same region clicks, written to a prompts file
    (read back and applied in one prompt, as `samusa segment --prompts` does) and clicked
    one by one in another order give the same mask, within Dice 0.02, on every third
    bundled frame (boundary points go through arbitration, `test_boundary_arbitration.py`).
    SAMUSA-Lite 1 fed each click the previous logits: its file and click masks agreed to
    Dice 0.956 (worst 0.939) for 5 boundary points and 0.858 (worst 0.697) for 3 region
    clicks on every second frame."""
    from SAMUSALib.backends.litemedsam.backend import shared_embeddings
    from SAMUSALib.evaluation.clicks import SimulatedUser, boundary_layout, jitter_points
    from SAMUSALib.prompts import load_prompts

    array, masks = cine
    model = load_model("samusa-lite", device="cpu")
    agreement = {"boundary": [], "region": []}
    with shared_embeddings():  # each frame encoded once for its three sessions
        for t in range(0, len(array), 3):
            rng = np.random.default_rng(t)
            boundary = jitter_points(boundary_layout(masks[t], 5, "even", rng), 1.5, rng)
            user, clicked, prediction = SimulatedUser("region", masks[t]), Session(FrameSource(array[t][None]), model), None
            for _ in range(3):
                click = user.next(prediction)
                prediction = clicked.add_prompt(1, 0, **click.prompt_kwargs())
            region = {kind: [[c.x, c.y] for c in user.clicks if c.kind == kind] for kind in ("positive", "negative")}
            path = tmp_path / f"prompts_{t}.json"
            objects = [{"id": 1, "prompts": [{"frame": 0, "boundary": boundary.tolist()}]},
                       {"id": 2, "prompts": [{"frame": 0, **{k: v for k, v in region.items() if v}}]}]
            path.write_text(json.dumps({"objects": objects}))
            from_file = Session(FrameSource(array[t][None]), model).apply(load_prompts(path))
            one_by_one = Session(FrameSource(array[t][None]), model)
            for x, y in boundary[rng.permutation(5)]:
                by_hand = one_by_one.add_prompt(1, 0, boundary=[[x, y]])
            agreement["boundary"].append(dice(from_file[1][0], by_hand))
            agreement["region"].append(dice(from_file[2][0], prediction))
    for kind, values in agreement.items():
        assert min(values) >= 0.98, (kind, np.round(values, 3))
