"""Protocols: exact bookkeeping against a scripted session, then smoke runs with test-tiny
(untrained: scores are not checked for quality), datasets and reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from SAMUSALib.evaluation.clicks import Click, contour_points
from SAMUSALib.evaluation.giving import off_the_border
from SAMUSALib.evaluation.datasets import (
    Case,
    camus,
    image_pairs,
    load_cases,
    phantom_cases,
    sequence,
    volume_pairs,
)
from SAMUSALib.evaluation.protocols import (
    clicks_to_reach,
    image_case,
    run_image_protocol,
    run_video_protocol,
    run_volume_protocol,
    session_factory,
    start_slice,
    video_case,
    volume_case,
)
from SAMUSALib.evaluation.report import summarize, write_report
from SAMUSALib.errors import InputError
from SAMUSALib.frames import Geometry

from conftest import require_shared_data


# --------------------------------------------------------------------------- scripted session
@dataclass
class Report:
    frames_computed: dict = field(default_factory=dict)
    seconds: float = 0.0
    cancelled: bool = False

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.frames_computed.values())


class ScriptedSession:
    """Session stand-in that knows the reference.

    A prompted frame's mask is the reference eroded by (3 - clicks on it) pixels, so IoU
    grows with clicks and is exact from the third click. Propagation forward copies the
    reference, except that tracking breaks at each frame in ``breaks`` (that frame and all
    after it are empty) until that frame is prompted.
    """

    def __init__(self, frames, reference: np.ndarray, breaks=()):
        self.num_frames = frames.num_frames
        self.frame_shape = frames.frame_shape
        self.reference = reference
        self.breaks = set(breaks)
        self.clicks: dict[int, int] = {}
        self.results: dict[int, np.ndarray] = {}
        self.window = None
        self.calls = []

    def add_object(self, obj_id, name=None, **_):
        self.calls.append(("add_object", obj_id))

    def set_window(self, obj_id, window):
        self.window = tuple(window)
        self.calls.append(("set_window", tuple(window)))

    def prompted_frames(self, obj_id):
        return sorted(self.clicks)

    def add_prompt(self, obj_id, frame, **prompt):
        self.calls.append(("add_prompt", frame, sorted(prompt)))
        self.clicks[frame] = self.clicks.get(frame, 0) + 1
        erosion = max(0, 3 - self.clicks[frame])
        mask = self.reference[frame]
        if erosion:
            mask = ndimage.binary_erosion(mask, iterations=erosion)
        self.results[frame] = mask
        for f in [f for f in self.results if f > frame and f not in self.clicks]:
            nxt = min([p for p in self.clicks if p > frame], default=self.num_frames)
            if f < nxt:
                del self.results[f]
        return mask.copy()

    def _span(self):
        return self.window or (0, self.num_frames - 1)

    def propagate(self, direction="forward", **_):
        report = Report()
        start, end = self._span()
        for f in range(start, end + 1):
            if f in self.results:
                continue
            source = max([p for p in self.clicks if p < f], default=None)
            if source is None:  # backward from the next prompted frame (never breaks)
                if direction == "forward" or min([p for p in self.clicks if p > f], default=None) is None:
                    continue
                source = f
            broken = any(source < b <= f for b in self.breaks)
            self.results[f] = np.zeros(self.frame_shape, bool) if broken else self.reference[f].copy()
            report.frames_computed.setdefault(1, []).append(f)
        report.seconds = 0.01 * report.total
        return report

    def mask(self, obj_id, frame):
        return self.results.get(frame, np.zeros(self.frame_shape, bool)).copy()

    def masks(self, obj_id):
        return np.stack([self.mask(obj_id, f) for f in range(self.num_frames)])


def square_video(num_frames=10, visible=(2, 8)) -> Case:
    frames = np.zeros((num_frames, 40, 48), np.uint8)
    ref = np.zeros((num_frames, 40, 48), bool)
    for f in range(visible[0], visible[1] + 1):
        ref[f, 10:30, 8 + f : 28 + f] = True
    frames[ref] = 200
    return Case("squares", "video", frames, {1: ref}, geometry=Geometry((0.5, 0.5, 1.0)))


# --------------------------------------------------------------------------- image protocol
def test_image_protocol_records_every_click_and_clicks_to_reach():
    case = square_video(1, (0, 0))
    case = Case("square", "image", case.array, case.references, geometry=case.geometry)
    sessions = []

    def factory(frames):
        sessions.append(ScriptedSession(frames, case.reference_frames(1)))
        return sessions[-1]

    records = image_case(case, factory, prompt_types=["region"], max_clicks=6, thresholds=(0.7, 0.9))
    (record,) = records
    # eroded by 2, 1, 0 pixels: 16x16, 18x18, 20x20 of a 20x20 square
    assert record["iou_by_clicks"][:3] == pytest.approx([256 / 400, 324 / 400, 1.0], abs=1e-4)
    assert record["iou_by_clicks"] == pytest.approx([0.64, 0.81] + [1.0] * 4)
    assert record["clicks_to"] == {"0.70": 2, "0.90": 3}
    assert len(record["clicks"]) == 3 and record["stopped_at"] == 4  # nothing left to correct
    assert [c["click"]["kind"] for c in record["clicks"]] == ["positive"] * 3
    assert record["clicks"][0]["click"] == {"kind": "positive", "x": 17.0, "y": 19.0}
    assert record["clicks"][2]["hd95"] == 0.0
    assert record["units"] == "mm"
    assert clicks_to_reach([0.5, 0.8, 0.95], 0.9) == 3 and clicks_to_reach([0.5], 0.9) is None


def test_image_protocol_box_only_is_one_interaction_and_box_plus_clicks_starts_with_the_box():
    case = square_video(1, (0, 0))
    case = Case("square", "image", case.array, case.references)
    calls = []

    def factory(frames):
        session = ScriptedSession(frames, case.reference_frames(1))
        calls.append(session.calls)
        return session

    records = {r["prompt"]: r for r in image_case(case, factory, prompt_types=["box", "box+region", "boundary"], max_clicks=4)}
    assert len(calls) == 1  # one session per case, one object per prompt type
    assert len(records["box"]["clicks"]) == 1 and len(records["box"]["iou_by_clicks"]) == 1
    assert [c["click"]["kind"] for c in records["box+region"]["clicks"]][:2] == ["box", "positive"]
    assert all(c["click"]["kind"] == "boundary" for c in records["boundary"]["clicks"])
    objects = [c[1] for c in calls[0] if c[0] == "add_object"]
    assert objects == [1, 2, 3]


# --------------------------------------------------------------------------- video protocol
def test_image_protocol_can_give_the_clicks_all_at_once():
    """At once (a prompts file, a markups node): the k-th run gives k clicks in one prompt
    that replaces the frame's earlier ones (no history); boundary points spread evenly
    along the border, region clicks chosen from the previous run's mask. The summary
    reports "<prompt> at once" beside the one-at-a-time rows, and the box once."""
    case = square_video(1, (0, 0))
    case = Case("square", "image", case.array, case.references)
    calls = []

    class Recording(ScriptedSession):
        def add_prompt(self, obj_id, frame, replace=False, **prompt):
            calls.append((obj_id, replace, {k: np.asarray(v, float) for k, v in prompt.items()}))
            return super().add_prompt(obj_id, frame, **prompt)

    result = run_image_protocol([case], lambda frames: Recording(frames, case.reference_frames(1)),
                                prompt_types=("boundary", "region", "box"), max_clicks=4, at_once="both")
    assert sorted(summarize(result)) == ["boundary", "boundary at once", "box", "region", "region at once"]
    assert result.settings["clicks_at_once"] == "both"
    by_group = {r["group"]: r for r in result.records}
    assert by_group["boundary at once"]["clicks_given"] == "at once" and by_group["boundary"]["clicks_given"] == "one at a time"
    slots = {r["group"]: i + 1 for i, r in enumerate(result.records)}
    boundary = [c for c in calls if c[0] == slots["boundary at once"]]
    assert [len(c[2]["boundary"]) for c in boundary] == [1, 2, 3, 4] and all(c[1] for c in boundary)
    four = boundary[-1][2]["boundary"]
    gaps = np.hypot(*(four[:, None] - four[None]).transpose(2, 0, 1))[np.triu_indices(4, 1)]
    assert gaps.min() >= 14.0, gaps  # a quarter of the 20 x 20 square's border apart
    region = [c for c in calls if c[0] == slots["region at once"]]
    counts = [len(c[2].get("positive", [])) + len(c[2].get("negative", [])) for c in region]
    assert counts == list(range(1, len(region) + 1)) and all(c[1] for c in region)
    one_by_one = [c for c in calls if c[0] == slots["region"]]
    assert all(not c[1] for c in one_by_one)
    assert all(len(c[2].get("positive", [])) + len(c[2].get("negative", [])) == 1 for c in one_by_one)


def test_boundary_clicks_can_be_bunched_and_land_off_the_border_as_a_hand_gives_them():
    """`--boundary-layout clustered --boundary-jitter 3`: at once, the points bunch on one
    arc of the border; either way every boundary click lands within 3 px of the border
    and most not on it; the same seed gives the same clicks. The settings say so."""
    case = square_video(1, (0, 0))
    case = Case("square", "image", case.array, case.references)
    reference = case.reference_frames(1)[0]
    border = contour_points(reference)

    def given(**options):
        calls = []

        class Recording(ScriptedSession):
            def add_prompt(self, obj_id, frame, replace=False, **prompt):
                calls.append((obj_id, np.asarray(prompt["boundary"], float)))
                return super().add_prompt(obj_id, frame, **prompt)

        result = run_image_protocol([case], lambda frames: Recording(frames, case.reference_frames(1)), prompt_types=("boundary",),
                                    max_clicks=4, at_once="both", **options)
        slots = {r["group"]: i + 1 for i, r in enumerate(result.records)}
        return result, [points for obj, points in calls if obj == slots["boundary"]], \
            [points for obj, points in calls if obj == slots["boundary at once"]]

    result, one_by_one, at_once = given(boundary_layout="clustered", boundary_jitter=3.0)
    assert result.settings["boundary_layout"] == "clustered" and result.settings["boundary_jitter"] == 3.0
    points = np.concatenate(one_by_one + at_once)
    off = np.hypot(*(points[:, None] - border[None]).transpose(2, 0, 1)).min(axis=1)
    assert off.max() <= 3.0 + 1e-6 and (off > 0.25).mean() > 0.5, off  # off the border, but near it
    four = at_once[-1]
    spread = np.hypot(*(four[:, None] - four[None]).transpose(2, 0, 1)).max()
    _, _, even = given()
    even_spread = np.hypot(*(even[-1][:, None] - even[-1][None]).transpose(2, 0, 1)).max()
    assert spread < even_spread, (spread, even_spread)  # bunched on one arc, not around the square
    again = given(boundary_layout="clustered", boundary_jitter=3.0)
    assert all(np.array_equal(a, b) for a, b in zip(at_once + one_by_one, again[2] + again[1]))
    with pytest.raises(ValueError, match="boundary_jitter"):
        given(boundary_jitter=-1.0)
    corner = off_the_border([Click("boundary", 0.0, 39.0)] * 20, 3.0, np.random.default_rng(0), (40, 48))
    assert all(0 <= c.x <= 47 and 0 <= c.y <= 39 for c in corner)  # a click cannot land outside the picture


def test_video_protocol_corrects_each_frame_where_tracking_breaks():
    case = square_video(12, (2, 9))
    made = []

    def factory(frames):
        made.append(ScriptedSession(frames, case.reference_frames(1), breaks=(5, 8)))
        return made[-1]

    record = video_case(case, factory, prompt_type="region", clicks=3, iou_threshold=0.75, max_interventions=7)
    session = made[0]
    assert record["first_frame"] == 2
    assert record["interventions"] == 2 and record["intervention_frames"] == [5, 8]
    assert [loop["frame"] for loop in record["loops"]] == [2, 5, 8]
    assert record["loops"][1]["iou_before"] == 0.0
    assert record["clicks_total"] == 9 and all(len(loop["clicks"]) == 3 for loop in record["loops"])
    # frames propagated: 3..11 first, then 6..11 after frame 5, then 9..11 after frame 8
    assert [loop["frames_propagated"] for loop in record["loops"]] == [9, 6, 3]
    assert record["frames_computed"] == 18
    assert record["seconds_per_frame"] == pytest.approx(0.01)
    assert record["mean_iou"] == 1.0 and record["mean_iou_visible"] == 1.0
    assert session.window is None and record["window"] is None
    assert record["false_positive_frames"] == 0


def test_video_protocol_stops_after_max_interventions_and_uses_the_window():
    case = square_video(12, (2, 9))
    made = []

    def factory(frames):
        made.append(ScriptedSession(frames, case.reference_frames(1), breaks=(4, 6, 8)))
        return made[-1]

    record = video_case(case, factory, prompt_type="boundary", clicks=2, max_interventions=1, window=True)
    assert made[0].window == (2, 9) and record["window"] == [2, 9]
    assert record["interventions"] == 1 and record["intervention_frames"] == [4]
    assert record["frames_computed"] == 7 + 5  # window 3..9, then 5..9
    ious = record["iou_per_frame"]
    assert ious[:2] == [1.0, 1.0] and ious[10:] == [1.0, 1.0]  # outside the window: both empty
    assert ious[6] == 0.0 and ious[5] == 1.0
    assert record["mean_iou_visible"] < record["mean_iou"] < 1.0


def test_video_protocol_leaves_unannotated_frames_out():
    case = square_video(8, (1, 6))
    case.annotated = np.array([True, True, False, True, True, True, False, True])

    def factory(frames):
        return ScriptedSession(frames, case.reference_frames(1), breaks=(2,))

    record = video_case(case, factory, prompt_type="region", clicks=3)
    assert record["iou_per_frame"][2] is None and record["iou_per_frame"][6] is None
    assert record["intervention_frames"] == [3]  # frame 2 breaks tracking but is not annotated


def test_volume_protocol_prompts_the_middle_slice_and_measures_in_millimetres():
    ref = np.zeros((9, 20, 20), bool)
    ref[2:7, 5:15, 6:14] = True
    ref[6, 5:7, 6:8] = False
    case = Case("cube", "volume", (ref * 100).astype(np.uint8), {1: ref}, geometry=Geometry((0.5, 0.8, 2.0)))
    made = []

    def factory(frames):
        made.append(ScriptedSession(frames, case.reference_frames(1)))
        return made[-1]

    record = volume_case(case, factory, prompt_type="region", clicks=3, window=True)
    assert record["prompt_slice"] == 4 and record["visible"] == [2, 6]
    assert record["spacing"] == [2.0, 0.8, 0.5]
    assert record["dice"] == 1.0 and record["hd95"] == 0.0
    assert start_slice(ref, "largest") == 2
    with pytest.raises(ValueError):
        start_slice(ref, "first")


# --------------------------------------------------------------------------- with the model
def test_image_protocol_with_test_tiny_on_a_phantom(tiny_model, tmp_path):
    cases = phantom_cases("image", count=1, seed=5, height=64, width=80)
    result = run_image_protocol(cases, session_factory(tiny_model), prompt_types=["boundary", "box", "box+region"], max_clicks=2)
    assert len(result.records) == 3
    for record in result.records:
        expected = 1 if record["prompt"] == "box" else 2
        assert len(record["iou_by_clicks"]) == expected
        assert record["clicks"][0]["click"]["kind"] == ("boundary" if record["prompt"] == "boundary" else "box")
        assert all(0.0 <= v <= 1.0 for v in record["iou_by_clicks"])
        assert record["frames_encoded"] == 1  # one encoding shared by all prompt types
        assert result.mask(record["key"]).shape == (64, 80)
    written = write_report(result, tmp_path, model={"id": "test-tiny", "trained": False})
    doc = json.loads(written["json"].read_text())
    assert doc["format"] == "samusa-eval/1" and len(doc["cases"]) == 3
    assert "UNTRAINED" in written["markdown"].read_text()


def test_video_protocol_with_test_tiny_on_a_phantom(tiny_model, tmp_path):
    cases = phantom_cases("video", count=1, seed=2, num_frames=6, height=64, width=80)
    cases[0].references = {1: cases[0].references[1]}
    result = run_video_protocol(
        cases, session_factory(tiny_model), prompt_types=["box"], clicks=1, max_interventions=1, window="on"
    )
    (record,) = result.records
    assert record["window"] == list(record["visible"])
    assert 0 <= record["interventions"] <= 1
    assert record["frames_computed"] == sum(loop["frames_propagated"] for loop in record["loops"]) > 0
    assert record["seconds_per_frame"] > 0
    assert len(record["iou_per_frame"]) == 6
    written = write_report(result, tmp_path, model={"id": "test-tiny", "trained": False})
    assert "interventions" in written["markdown"].read_text()
    pytest.importorskip("matplotlib")
    assert {p.name for p in written["plots"]} == {"iou_per_frame.png", "overlays.png"}


def test_volume_protocol_with_test_tiny_on_a_phantom(tiny_model, tmp_path):
    cases = phantom_cases("volume", count=1, seed=0, volume_shape=(10, 40, 40), volume_spacing=(0.5, 0.4, 2.0))
    case = cases[0]
    result = run_volume_protocol(cases, session_factory(tiny_model), prompt_types=["box"], window="on")
    (record,) = result.records
    lo, hi = record["visible"]
    assert record["frames_computed"] == hi - lo  # every slice in the window but the prompted one
    assert record["spacing"] == [2.0, 0.4, 0.5] and record["units"] == "mm"
    assert 0.0 <= record["dice"] <= 1.0
    assert record["hd95"] is None or record["hd95"] >= 0
    assert result.mask(record["key"]).shape == (case.num_frames, 40, 40)
    summary = summarize(result)
    assert summary["box +window"]["records"] == 1


# --------------------------------------------------------------------------- datasets
def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_dataset_loaders_read_pairs_label_maps_sequences_and_volumes(tmp_path, caplog):
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (30, 40), dtype=np.uint8)
    mask = np.zeros((30, 40), np.uint8)
    mask[5:15, 10:30] = 255
    for stem in ("b", "a", "c"):
        write_png(tmp_path / "pairs/images" / f"{stem}.png", image)
    write_png(tmp_path / "pairs/masks/a.png", mask)
    write_png(tmp_path / "pairs/masks/b.png", mask)
    with caplog.at_level("WARNING", logger="samusa"):
        cases = image_pairs(tmp_path / "pairs")
    assert [c.id for c in cases] == ["a", "b"]  # c has no mask: left out, and said so
    assert "1 image(s) in" in caplog.text and "left out (first: c.png)" in caplog.text
    assert cases[0].array.shape == (1, 30, 40) and cases[0].references[1].sum() == 200
    assert cases[0].units == "px"
    assert [c.id for c in load_cases(tmp_path / "pairs", "image", limit=1)] == ["a"]

    labels = np.zeros((30, 40), np.uint8)
    labels[2:10, 3:12] = 1
    labels[12:20, 3:12] = 2
    labels[22:28, 20:30] = 3
    labels[0, 39] = 3  # a stray pixel
    write_png(tmp_path / "camus/images/p1.png", image)
    write_png(tmp_path / "camus/labels/p1.png", labels)
    (case,) = camus(tmp_path / "camus")
    assert case.objects == [1, 2, 3] and case.names[3] == "left atrium"
    assert case.array.shape == (1, 40, 30)  # transposed back
    assert case.references[3].sum() == 60  # stray removed
    assert np.array_equal(case.references[1][0], (labels == 1).T)

    for phase, shift in (("ED", 0), ("ES", 2)):  # CAMUS as ED -> ES tracking: one 2-frame video per view
        write_png(tmp_path / "camus/images" / f"patient0001_2CH_{phase}.png", image)
        write_png(tmp_path / "camus/labels" / f"patient0001_2CH_{phase}.png", np.roll(labels, shift, axis=1))
    write_png(tmp_path / "camus/images/patient0001_4CH_ED.png", image)  # no ES: left out
    write_png(tmp_path / "camus/labels/patient0001_4CH_ED.png", labels)
    (pair,) = load_cases(tmp_path / "camus", "video")
    assert pair.id == "patient0001_2CH" and pair.kind == "video" and pair.num_frames == 2
    assert np.array_equal(pair.references[1][1], np.roll(labels == 1, 2, axis=1).T)  # ES second

    for index in range(4):
        write_png(tmp_path / "seq/images" / f"{index}.png", image)
        if index != 2:
            write_png(tmp_path / "seq/masks" / f"{index}.png", mask)
    write_png(tmp_path / "seq/images/10.png", image)  # natural order: after 3
    write_png(tmp_path / "seq/masks/10.png", np.zeros_like(mask))
    case = sequence(tmp_path / "seq")
    assert case.kind == "video" and case.num_frames == 5
    assert case.annotated.tolist() == [True, True, False, True, True]
    assert case.references[1][:, 5, 10].tolist() == [True, True, False, True, False]
    assert load_cases(tmp_path / "seq", "video")[0].id == "seq"

    volume = rng.integers(0, 255, (6, 20, 24), dtype=np.uint8)
    label = np.zeros((6, 20, 24), np.uint8)
    label[1:4, 5:10, 6:12] = 1
    label[2:5, 12:16, 6:12] = 2
    vol_dir = tmp_path / "vols"
    vol_dir.mkdir()
    for array, name in ((volume, "v1.nrrd"), (label, "v1_label.nrrd")):
        itk = sitk.GetImageFromArray(array)
        itk.SetSpacing((0.5, 0.6, 2.0))
        sitk.WriteImage(itk, str(vol_dir / name))
    (case,) = volume_pairs(vol_dir)
    assert case.id == "v1" and case.objects == [1, 2] and case.units == "mm"
    assert case.volume_spacing() == (2.0, 0.6, 0.5)
    assert load_cases(vol_dir, "volume")[0].references[2].sum() == 3 * 4 * 6
    assert load_cases(vol_dir, "video")[0].kind == "video"
    assert len(load_cases("phantom:2", "video")) == 2


def test_pseudo_cine_benchmark_is_the_same_loops_on_every_run(tmp_path):
    """`--data pseudo-cine:N:FOLDER` (video protocol): N loops from images spread over the
    folder, each moved with its mask, the same on every run; a bad spec names the problem."""
    rng = np.random.default_rng(1)
    for index in range(5):
        image = rng.integers(0, 255, (48, 64), dtype=np.uint8)
        mask = np.zeros((48, 64), np.uint8)
        mask[10 + index : 30, 15:40] = 255
        write_png(tmp_path / "pairs/images" / f"{index}.png", image)
        write_png(tmp_path / "pairs/masks" / f"{index}.png", mask)
    loops = load_cases(f"pseudo-cine:3:{tmp_path / 'pairs'}", "video")
    assert [c.id for c in loops] == ["0-pseudo", "2-pseudo", "4-pseudo"]  # first, middle, last
    again = load_cases(f"pseudo-cine:3:{tmp_path / 'pairs'}", "video")
    for loop, same in zip(loops, again):
        assert loop.kind == "video" and loop.num_frames == 10
        assert np.array_equal(loop.array, same.array) and np.array_equal(loop.references[1], same.references[1])
        assert loop.references[1].any(axis=(1, 2)).all()  # the object is in every frame
        assert not np.array_equal(loop.array[0], loop.array[-1])  # and the picture moves
    assert len(load_cases(f"pseudo-cine:{tmp_path / 'pairs'}", "video")) == 4  # default count
    with pytest.raises(InputError, match="video protocol"):
        load_cases(f"pseudo-cine:{tmp_path / 'pairs'}", "image")
    with pytest.raises(InputError, match="no such data folder"):
        load_cases(f"pseudo-cine:{tmp_path / 'nothing'}", "video")


def test_image_protocol_runs_on_real_busbra_cases(tiny_model, tmp_path):
    folder = require_shared_data("busbra")
    cases = load_cases(folder, "image", limit=2)
    assert len(cases) == 2 and all(c.units == "px" for c in cases)
    result = run_image_protocol(cases, session_factory(tiny_model), prompt_types=["boundary", "region"], max_clicks=1)
    assert len(result.records) == 4
    written = write_report(result, tmp_path, model={"id": "test-tiny", "trained": False}, data=str(folder), plots=False)
    doc = json.loads(written["json"].read_text())
    assert {r["case"] for r in doc["cases"]} == {c.id for c in cases}
    assert all(len(r["clicks"]) == 1 and r["clicks"][0]["iou"] is not None for r in doc["cases"])
    text = written["markdown"].read_text()
    assert "| boundary |" in text and "| region |" in text


def test_video_protocol_can_give_the_clicks_all_at_once():
    """Clicks all at once: each prompted frame gets its 5 boundary clicks in one prompt,
    chosen without a prediction (spread along the border), and the record says so;
    run_video_protocol(at_once="both") runs both ways side by side."""
    case = square_video(12, (2, 9))
    made = []

    def factory(frames):
        made.append(ScriptedSession(frames, case.reference_frames(1), breaks=(5, 8)))
        return made[-1]

    record = video_case(case, factory, prompt_type="boundary", clicks=5, max_interventions=7, at_once=True)
    prompts = [c for c in made[0].calls if c[0] == "add_prompt"]
    assert [c[1] for c in prompts] == [2, 5, 8] and all(c[2] == ["boundary"] for c in prompts)
    assert record["clicks_given"] == "at once" and record["variant"] == "boundary +at-once"
    assert record["intervention_frames"] == [5, 8] and record["clicks_total"] == 15
    first = np.array([[c["click"]["x"], c["click"]["y"]] for c in record["loops"][0]["clicks"]])
    gaps = np.hypot(*(first[:, None] - first[None]).transpose(2, 0, 1))[np.triu_indices(5, 1)]
    assert gaps.min() >= 5.0, gaps  # spread along the 20 x 20 square's border, not bunched
    assert record["worst_dice"] == min(d for d in record["dice_per_frame"] if d is not None)
    both = run_video_protocol([case], factory, prompt_types=("boundary", "box"), window="on", at_once="both")
    assert sorted(r["variant"] for r in both.records) == ["boundary +at-once +window", "boundary +window", "box +window"]
