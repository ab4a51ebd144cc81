"""Propagation for image-only models (SAMUSALib.tracking, issue 19) and the pseudo-cine
generator. The real-model test uses the bundled carotid cine (CC BY 4.0,
Resources/Samples/README.md) with its expert masks; its embeddings are shared between
the trackers compared, so each frame is encoded once (~1.3 s per frame on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from SAMUSALib.evaluation.metrics import dice
from SAMUSALib.evaluation.pseudocine import pseudo_cine
from SAMUSALib.tracking import make_tracker, motion, shape
from conftest import require_shared_data

SAMPLES = Path(__file__).resolve().parent.parent / "Resources" / "Samples"


# ------------------------------------------------------------------ pseudo-cines
def test_pseudo_cine_masks_follow_the_image_exactly():
    """An image whose content is its mask, moved with speckle off, gives back exactly the
    moved masks; the probe really moves (the masks are not all the same)."""
    mask = np.zeros((96, 128), bool)
    mask[30:60, 40:80] = True
    mask[65:80, 20:35] = True
    cine = pseudo_cine(mask.astype(np.uint8) * 255, mask, 10, seed=1, speckle=0.0)
    for t in range(10):
        assert np.array_equal(cine.frames[t] >= 128, cine.masks[t]), t
    assert np.array_equal(cine.masks[0], mask)  # frame 0 is the original
    assert max(dice(cine.masks[t], mask) for t in range(1, 10)) < 1.0
    assert np.abs(cine.shifts).max() > 3


def test_pseudo_cine_resynthesises_speckle_and_rejects_bad_input():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64)).astype(np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    still = pseudo_cine(image, mask, 3, seed=0, step=0.0, deform=0.0, speckle=0.0)
    fresh = pseudo_cine(image, mask, 3, seed=0, step=0.0, deform=0.0, speckle=1.0)
    assert np.array_equal(still.frames[2], still.frames[0])
    assert not np.array_equal(fresh.frames[2], fresh.frames[1])
    with pytest.raises(Exception, match="differ in size"):
        pseudo_cine(image, mask[:10], 3)
    with pytest.raises(Exception, match="speckle"):
        pseudo_cine(image, mask, 3, speckle=2.0)


# ------------------------------------------------------------------ components
def test_phase_correlation_offers_the_true_shift():
    rng = np.random.default_rng(3)
    from scipy import ndimage

    image = ndimage.gaussian_filter(rng.random((128, 128)), 2)
    mask = np.zeros((128, 128), bool)
    mask[50:80, 40:70] = True
    moved = np.roll(image, (4, -9), axis=(0, 1))
    shifts = motion.estimate_shifts(image, moved, mask, (128, 128))
    assert any(np.abs(s - np.array([4, -9])).max() <= 1 for s in shifts)
    assert np.array_equal(shifts[0], [0, 0])  # "no motion" is always a candidate


def test_contour_samples_lie_on_the_border():
    mask = np.zeros((50, 50), bool)
    mask[10:30, 15:40] = True
    points = motion.contour_samples(mask, 8)
    assert points.shape == (8, 2)
    x, y = points.T
    on_edge = (np.isclose(x, 14.5) | np.isclose(x, 39.5) | np.isclose(y, 9.5) | np.isclose(y, 29.5))
    assert on_edge.all()


def test_growth_needs_the_image_to_support_it():
    image = np.zeros((60, 60))
    image[20:40, 20:40] = 1.0  # a bright square on black
    true, balloon = np.zeros_like(image, bool), np.zeros_like(image, bool)
    true[20:40, 20:40] = True
    balloon[5:55, 5:55] = True
    assert shape.area_verdict(1.2, 1.5, 0.0, 1.0) is None
    assert shape.edge_contrast(image, true) > 0.9
    assert shape.area_verdict(6.0, 1.5, shape.edge_contrast(image, balloon), shape.edge_contrast(image, true)) is not None
    assert shape.area_verdict(3.0, 1.5, 0.9, 1.0) is None  # an entering object: a real border


def test_tracker_designs_are_named():
    assert make_tracker("legacy") is None
    assert make_tracker(None).config == make_tracker("motion").config
    with pytest.raises(ValueError, match="tracker design"):
        make_tracker("magic")


# ------------------------------------------------------------------ planning
class _Backend:
    nearest_prompt = True

    def __init__(self, frames):
        from SAMUSALib.features import EncoderStats

        import torch

        self.torch = torch
        self.frames = frames
        self.features = type("Cache", (), {"stats": EncoderStats()})()

    def prompt(self, obj, prompt, *, is_init, previous):
        return {"logits": self.torch.ones(1, 1, 4, 4)}

    def track(self, obj, frame, *, reverse):
        return {"logits": self.torch.ones(1, 1, 4, 4), "how": "held" if frame == 3 else "track"}

    @staticmethod
    def low_res_logits(out):
        return out["logits"]

    def logits_to_mask(self, low_res):
        return np.ones(self.frames.frame_shape, bool)


def test_frames_between_prompts_come_from_the_nearer_prompt_and_held_frames_are_reported(monkeypatch):
    import SAMUSALib.engine as engine
    from SAMUSALib.engine import Session
    from SAMUSALib.frames import FrameSource

    frames = FrameSource(np.zeros((12, 16, 16), np.uint8))
    monkeypatch.setattr(engine, "make_backend", lambda frames, model, mb=None: _Backend(frames))
    session = Session(frames, model=None)
    session.set_window(1, (0, 11))
    session.add_prompt(1, 2, box=[2, 2, 8, 8])
    session.add_prompt(1, 9, box=[2, 2, 8, 8])
    report = session.propagate()
    origin = session.objects[1].origin
    assert {g: origin[g] for g in range(3, 9)} == {3: (2, False), 4: (2, False), 5: (2, False), 6: (9, True), 7: (9, True), 8: (9, True)}
    assert report.held == {1: [3]}
    # a correction on frame 7 recomputes only frame 6 (its chain from 9 passed through 7);
    # frame 8 (from 9) and frames 3..5 (from the earlier prompt on 2) are not undone
    session.add_prompt(1, 7, box=[2, 2, 8, 8])
    again = session.propagate()
    assert again.frames_computed[1] == [6]
    assert origin[8] == (9, True)
    assert all(origin[g] == (2, False) for g in (3, 4, 5))


# ------------------------------------------------------------------ the probe's field of view
def test_field_of_view_is_the_fan_read_from_the_loop():
    """The black corners outside a curved probe's fan are found from the loop alone (the
    phantom knows its fan exactly); a linear probe's loop, a frozen loop and a single frame
    say nothing (None: no restriction)."""
    from SAMUSALib.phantoms import cine_phantom
    from SAMUSALib.tracking.view import field_of_view, sample_frames

    fan = cine_phantom(num_frames=16, height=96, width=128, seed=1)
    found = field_of_view([fan.frames[i] for i in sample_frames(fan.num_frames)])
    truth = fan.field_of_view
    assert found is not None and (found & truth).sum() / (found | truth).sum() > 0.99
    linear = cine_phantom(num_frames=16, height=96, width=128, seed=1, sector=False)
    assert field_of_view(list(linear.frames)) is None
    assert field_of_view([fan.frames[3]] * 5) is None
    assert field_of_view([fan.frames[3]]) is None
    assert sample_frames(40, 12)[0] == 0 and sample_frames(40, 12)[-1] == 39 and len(sample_frames(40, 12)) == 12


def test_field_of_view_of_a_real_acquisition_keeps_every_expert_mask():
    """On the real carotid acquisition (39 frames, black below the imaged depth) the field
    of view leaves out the black part of the frame but no pixel of any expert mask."""
    from PIL import Image

    from SAMUSALib.tracking.view import field_of_view, sample_frames

    folder = require_shared_data("carotid")
    images = sorted((folder / "images").glob("*.png"))
    frames = [np.asarray(Image.open(images[i])) for i in sample_frames(len(images))]
    view = field_of_view(frames)
    assert view is not None and 0.3 < view.mean() < 0.95, None if view is None else view.mean()
    for path in sorted((folder / "masks").glob("*.png")):
        assert not (np.asarray(Image.open(path)) > 0)[~view].any(), path.name


def test_an_object_that_leaves_the_view_is_found_again_and_never_drawn_where_it_is_not(monkeypatch):
    """Without a window, on the phantom's leave-and-re-enter loop (a box on the middle frame
    of the first visit): no mask on any frame where the object is out of view (the gap, and
    both ends of the loop, where it had been drawn on the fan's black corners before the
    field of view was known), and it is found again on the second visit. Measured on seeds
    0-3 of this 14-frame loop: second-visit mean Dice 0.57-0.76, the object found on every
    frame of each visit but the slivers at its ends (which count as Dice 0). Held to found
    on half the second visit and Dice >= 0.45 there, and it must beat by 0.3, in this same
    test, the legacy tracker (it never looks again) and the prompted mask copied to every
    frame."""
    from SAMUSALib.backends.litemedsam.backend import TRACKER_ENV, shared_embeddings
    from SAMUSALib.engine import Session
    from SAMUSALib.frames import FrameSource
    from SAMUSALib.models import load_model
    from SAMUSALib.phantoms import cine_phantom

    cine = cine_phantom(num_frames=14, height=128, width=160, seed=0, visible={1: (1, 12)}, reenter=True)
    (s0, e0), (s1, e1) = cine.visible_runs[1]
    truth = cine.masks[1]
    frame = (s0 + e0) // 2
    rows, cols = np.nonzero(truth[frame])
    box = (cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5)
    model = load_model("samusa-lite", device="cpu")
    second = {}
    with shared_embeddings():
        for design in ("legacy", "default"):
            if design == "legacy":
                monkeypatch.setenv(TRACKER_ENV, "legacy")
            else:
                monkeypatch.delenv(TRACKER_ENV, raising=False)
            session = Session(FrameSource(cine.frames), model)
            prompted = session.add_prompt(1, frame, box=box)
            session.propagate()
            predicted = session.masks(1)
            second[design] = float(np.mean([dice(predicted[f], truth[f]) for f in range(s1, e1 + 1)]))
            if design == "default":
                drawn = predicted.any(axis=(1, 2))
                assert not drawn[~cine.present[1]].any(), np.flatnonzero(drawn & ~cine.present[1])
                assert drawn[s1 : e1 + 1].sum() >= (e1 - s1 + 1) / 2, drawn
    second["copy"] = float(np.mean([dice(prompted, truth[f]) for f in range(s1, e1 + 1)]))
    assert second["default"] >= 0.45, second
    assert second["default"] > second["legacy"] + 0.3 and second["default"] > second["copy"] + 0.3, second


# ------------------------------------------------------------------ the bundled cine
@pytest.fixture(scope="module")
def _embeddings():
    """Each frame of the bundled cine is encoded once for every test below (keyed by content)."""
    from SAMUSALib.backends.litemedsam.backend import shared_embeddings

    with shared_embeddings():
        yield


@pytest.fixture(scope="module")
def bundled(_embeddings, carotid_sample):
    prompt = json.loads((SAMPLES / "carotid_cine_prompts.json").read_text())["objects"][0]
    return (*carotid_sample, prompt)


def test_bundled_cine_is_tracked_to_both_ends_from_one_prompt(bundled, monkeypatch):
    """The sample's one prompt (5 boundary points on frame 7, window over all 15 frames),
    default model and tracker: worst-frame Dice measured 0.926 with SAMUSA-Lite 2 (0.909 with SAMUSA-Lite 1; docs/tracking.md); held to
    0.85 (room for CPU numerics, still above the issue's 0.80 target), and it must beat, in this same test, the legacy grown-box tracker (measured
    worst 0.27: it balloons towards both ends) and the prompted mask copied to every frame."""
    from SAMUSALib.engine import Session
    from SAMUSALib.frames import FrameSource
    from SAMUSALib.backends.litemedsam.backend import TRACKER_ENV
    from SAMUSALib.models import load_model

    array, masks, prompt = bundled
    model = load_model("samusa-lite", device="cpu")
    frame = prompt["prompts"][0]["frame"]
    worst = {}
    for design in ("legacy", "motion"):
        monkeypatch.setenv(TRACKER_ENV, design)
        session = Session(FrameSource(array), model)
        session.set_window(1, tuple(prompt["window"]))
        prompted = session.add_prompt(1, frame, boundary=np.array(prompt["prompts"][0]["boundary"]))
        report = session.propagate()
        predicted = session.masks(1)
        worst[design] = min(dice(predicted[f], masks[f]) for f in range(len(masks)))
        if design == "motion":
            assert not report.held, "no frame fell back to copying a mask forward"
    worst["copy"] = min(dice(prompted, masks[f]) for f in range(len(masks)))
    assert worst["motion"] >= 0.85, worst
    assert worst["motion"] > worst["legacy"] + 0.1 and worst["motion"] > worst["copy"] + 0.1, worst


def test_samusa_segment_tracks_the_bundled_cine_with_the_default_model(bundled, tmp_path, capsys, monkeypatch):
    """What a user runs: `samusa segment` on the bundled cine with its prompts file (five
    boundary points at once, no --model: the CPU default), then the .seg.nrrd it wrote is
    read back and compared with the expert masks on every frame. Held to the same bar as the
    Session test above (worst frame 0.85, measured 0.926), and it must beat the prompted
    frame's mask copied to every frame by 0.1, measured here."""
    from SAMUSALib import cli
    from SAMUSALib.backends.litemedsam.backend import TRACKER_ENV
    from SAMUSALib.io import read_segmentation

    monkeypatch.delenv(TRACKER_ENV, raising=False)
    array, masks, prompt = bundled
    out = tmp_path / "lumen.seg.nrrd"
    code = cli.main(["segment", str(SAMPLES / "carotid_cine.nrrd"), "--prompts", str(SAMPLES / "carotid_cine_prompts.json"),
                     "--out", str(out), "--device", "cpu"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "samusa-lite" in stdout, stdout
    segments, _, names = read_segmentation(out)
    assert names == {1: "carotid lumen"}
    predicted = segments[1].astype(bool)
    assert predicted.shape == masks.shape
    scores = [dice(predicted[f], masks[f]) for f in range(len(masks))]
    frame = prompt["prompts"][0]["frame"]
    copied = min(dice(predicted[frame], masks[f]) for f in range(len(masks)))
    assert min(scores) >= 0.85, scores
    assert min(scores) > copied + 0.1, (min(scores), copied)
