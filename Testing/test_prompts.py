"""Prompt sets: JSON round trips and the messages a user sees for bad prompts (SAMUSALib.prompts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAMUSALib.errors import PromptError, SamusaError
from SAMUSALib.prompts import (
    DEFAULT_COLORS,
    FramePrompt,
    ObjectPrompts,
    PromptSet,
    TemporalWindow,
    load_prompts,
    save_prompts,
)

# The example, verbatim.
EXAMPLE = {
    "objects": [
        {
            "id": 1,
            "name": "lesion",
            "window": [5, 14],
            "prompts": [
                {"frame": 8, "boundary": [[30.5, 20.0], [40.0, 25.25], [35.0, 40.0]]},
                {"frame": 8, "positive": [[35.0, 30.0]], "negative": [[5.0, 5.0]]},
                {"frame": 12, "box": [20, 15, 50, 45]},
            ],
        },
        {"id": 3, "name": "vessel", "color": [0.1, 0.2, 0.3], "prompts": [{"frame": 0, "positive": [10, 12]}]},
    ]
}
NUM_FRAMES, FRAME_SHAPE = 20, (64, 80)  # frames are 80 wide, 64 high


def one_object(**prompt) -> dict:
    prompt.setdefault("frame", 2)
    return {"objects": [{"id": 1, "prompts": [prompt]}]}


def check(data: dict, num_frames: int = NUM_FRAMES, frame_shape=FRAME_SHAPE) -> PromptSet:
    prompts = PromptSet.from_dict(data)
    prompts.check(num_frames, frame_shape)
    return prompts


# --------------------------------------------------------------------------- round trips


def test_from_dict_reads_every_prompt_kind():
    prompts = check(EXAMPLE)
    lesion, vessel = prompts.objects
    assert (lesion.id, lesion.name, lesion.window) == (1, "lesion", TemporalWindow(5, 14))
    assert [p.frame for p in lesion.prompts] == [8, 8, 12]
    np.testing.assert_array_equal(lesion.prompts[0].boundary, [[30.5, 20.0], [40.0, 25.25], [35.0, 40.0]])
    np.testing.assert_array_equal(lesion.prompts[1].positive, [[35.0, 30.0]])
    np.testing.assert_array_equal(lesion.prompts[1].negative, [[5.0, 5.0]])
    assert lesion.prompts[2].box == (20.0, 15.0, 50.0, 45.0)
    assert lesion.color == DEFAULT_COLORS[0]
    assert (vessel.id, vessel.window, vessel.color) == (3, None, (0.1, 0.2, 0.3))
    np.testing.assert_array_equal(vessel.prompts[0].positive, [[10.0, 12.0]])  # one bare [x, y] pair


def test_to_dict_from_dict_round_trip():
    first = PromptSet.from_dict(EXAMPLE).to_dict()
    assert first["objects"][0]["window"] == [5, 14]
    assert "window" not in first["objects"][1]
    assert first["objects"][1]["color"] == [0.1, 0.2, 0.3]
    second = PromptSet.from_dict(json.loads(json.dumps(first))).to_dict()
    assert second == first


def test_save_and_load_prompts_file(tmp_path):
    path = tmp_path / "prompts.json"
    save_prompts(PromptSet.from_dict(EXAMPLE), path)
    loaded = load_prompts(path)
    assert loaded.to_dict() == PromptSet.from_dict(EXAMPLE).to_dict()


def test_ids_default_to_position_and_names_to_object_n():
    prompts = PromptSet.from_dict({"objects": [{"prompts": [{"frame": 0, "box": [1, 1, 5, 5]}]}, {"prompts": []}]})
    assert [o.id for o in prompts.objects] == [1, 2]
    assert [o.name for o in prompts.objects] == ["object 1", "object 2"]


def test_merged_adds_clicks_and_replaces_box():
    a = FramePrompt(3, boundary=[[1, 2]], box=(0, 0, 5, 5))
    b = FramePrompt(3, boundary=[[3, 4]], negative=[[6, 6]], box=(1, 1, 9, 9))
    merged = a.merged(b)
    np.testing.assert_array_equal(merged.boundary, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(merged.negative, [[6, 6]])
    assert merged.box == (1.0, 1.0, 9.0, 9.0)


def test_window_contains_and_length():
    window = TemporalWindow(5, 14)
    assert 5 in window and 14 in window and 4 not in window and 15 not in window
    assert len(window) == 10
    window.check(15)
    with pytest.raises(PromptError, match="past the last frame"):
        window.check(14)


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    "data, words",
    [
        ({"objects": [{"id": 1, "window": [9, 3], "prompts": [{"frame": 5, "box": [1, 1, 9, 9]}]}]},
         ["start 9", "after its end 3"]),
        ({"objects": [{"id": 1, "window": [-1, 3], "prompts": [{"frame": 1, "box": [1, 1, 9, 9]}]}]},
         ["negative"]),
        ({"objects": [{"id": 1, "window": [1, 2.5], "prompts": [{"frame": 1, "box": [1, 1, 9, 9]}]}]},
         ["window end", "integer"]),
        ({"objects": [{"id": 1, "window": [1, 2, 3], "prompts": [{"frame": 1, "box": [1, 1, 9, 9]}]}]},
         ["window must be [start, end]"]),
        ({"objects": [{"id": 1, "window": "1-3", "prompts": [{"frame": 1, "box": [1, 1, 9, 9]}]}]},
         ["window must be [start, end]"]),
        (one_object(frame=2.5, box=[1, 1, 9, 9]), ["frame", "integer"]),
        (one_object(frame="2", box=[1, 1, 9, 9]), ["frame", "integer"]),
        (one_object(frame=True, box=[1, 1, 9, 9]), ["frame", "integer"]),
        (one_object(box=[1, 2, 3]), ["box", "[x0, y0, x1, y1]"]),
        (one_object(box=[10, 2, 3, 8]), ["box", "inverted"]),
        (one_object(box=[1, 2, 1, 8]), ["box", "empty"]),
        (one_object(box=["a", 2, 3, 8]), ["box", "[x0, y0, x1, y1]"]),
        (one_object(box=5), ["box", "[x0, y0, x1, y1]"]),
        (one_object(box=[1, float("nan"), 3, 8]), ["box", "finite"]),
        (one_object(boundary=[[1, 2, 3]]), ["boundary points", "[x, y]"]),
        (one_object(positive=[[1, 2], [3]]), ["positive points", "[x, y]"]),
        (one_object(negative=[["a", "b"]]), ["negative points", "[x, y]"]),
        (one_object(boundary=[[1, float("inf")]]), ["boundary points", "infinite"]),
        (one_object(boxes=[1, 2, 3, 4]), ["unknown keys", "boxes", "use boundary, positive, negative or box"]),
        ({"objects": [{"id": 1, "label": "x", "prompts": []}]}, ["objects[0]", "unknown keys", "label"]),
        ({"objects": [{"id": 1, "prompts": [{"boundary": [[1, 2]]}]}]}, ["objects[0].prompts[0]", "frame"]),
        ({"objects": [{"id": 1, "prompts": ["frame 1"]}]}, ["objects[0].prompts[0]", "frame"]),
        ({"objects": ["lesion"]}, ["objects[0]", "JSON object"]),
        ({"objects": [{"id": 0, "prompts": []}]}, ["object id", "positive integer"]),
        ({"objects": [{"id": "1", "prompts": []}]}, ["object id", "positive integer"]),
        ({"objects": [{"id": 1, "color": "red", "prompts": []}]}, ["colour", "three numbers"]),
        ({"objects": [{"id": 1, "color": 5, "prompts": []}]}, ["colour", "three numbers"]),
        ({"objects": [{"id": 1, "color": [255, 0, 0], "prompts": []}]}, ["colour", "between 0 and 1"]),
        ({"window": [3, 6], "objects": [{"id": 1, "prompts": []}]}, ["unknown top-level keys", "window", "objects[i].window", "--window"]),
        ({"objects": [{"id": 1, "prompts": []}], "image": "scan.png"}, ["unknown top-level keys", "image"]),
        ({"objects": [{"id": 70000, "prompts": [{"frame": 1, "box": [1, 1, 9, 9]}]}]}, ["object id 70000", "up to 65535"]),
        ({}, ['"objects" list']),
        ({"objects": {"id": 1}}, ['"objects" list']),
        ([{"id": 1}], ['"objects" list']),
        (None, ['"objects" list']),
    ],
)
def test_from_dict_rejects_with_a_clear_message(data, words):
    with pytest.raises(PromptError) as caught:
        PromptSet.from_dict(data)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    "data, words",
    [
        ({"objects": []}, ["no objects"]),
        ({"objects": [{"id": 1, "name": "lesion", "prompts": []}]}, ["object 1", "lesion", "no prompts"]),
        ({"objects": [{"id": 1, "prompts": [{"frame": 2}]}]}, ["frame 2", "empty"]),
        ({"objects": [{"id": 1, "prompts": [{"frame": 2, "positive": []}]}]}, ["frame 2", "empty"]),
        ({"objects": [{"id": 2, "prompts": [{"frame": 1, "box": [1, 1, 5, 5]}]},
                      {"id": 2, "prompts": [{"frame": 1, "box": [1, 1, 5, 5]}]}]}, ["unique", "[2, 2]"]),
        (one_object(frame=20, box=[1, 1, 5, 5]), ["frame 20", "0..19"]),
        (one_object(frame=-1, box=[1, 1, 5, 5]), ["frame -1", "0..19"]),
        ({"objects": [{"id": 1, "window": [3, 20], "prompts": [{"frame": 5, "box": [1, 1, 5, 5]}]}]},
         ["[3, 20]", "past the last frame (19)"]),
        ({"objects": [{"id": 1, "window": [3, 6], "prompts": [{"frame": 8, "box": [1, 1, 5, 5]}]}]},
         ["frame 8", "outside its window [3, 6]"]),
        (one_object(boundary=[[80, 10]]), ["boundary point (80, 10)", "outside", "80x64"]),
        (one_object(positive=[[10, -1]]), ["positive point (10, -1)", "outside"]),
        (one_object(negative=[[10, 64]]), ["negative point (10, 64)", "outside"]),
        (one_object(box=[81, 10, 90, 20]), ["box", "outside the 80x64 frame"]),
        (one_object(box=[-20, -20, -1, -1]), ["box", "outside"]),
    ],
)
def test_check_against_frames_rejects_with_a_clear_message(data, words):
    prompts = PromptSet.from_dict(data)
    with pytest.raises(PromptError) as caught:
        prompts.check(NUM_FRAMES, FRAME_SHAPE)
    message = str(caught.value)
    for word in words:
        assert word in message, message


def test_points_on_the_frame_edges_are_inside():
    check(one_object(boundary=[[-0.5, -0.5], [79.5, 63.5], [0, 63]]))
    check(one_object(box=[-10, -10, 200, 200]))  # a box larger than the frame still covers it


def test_mask_prompt_shape_is_checked():
    obj = ObjectPrompts(1, prompts=[FramePrompt(0, mask=np.ones((10, 10)))])
    with pytest.raises(PromptError, match=r"mask prompt on frame 0 has shape \(10, 10\)"):
        PromptSet([obj]).check(NUM_FRAMES, FRAME_SHAPE)


def test_load_prompts_file_errors(tmp_path):
    with pytest.raises(PromptError, match="does not exist"):
        load_prompts(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"objects": [')
    with pytest.raises(PromptError, match="not valid JSON"):
        load_prompts(bad)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(PromptError, match="not valid JSON"):
        load_prompts(binary)


def test_prompt_errors_are_value_errors_and_samusa_errors():
    with pytest.raises(ValueError):
        TemporalWindow(3, 1)
    assert issubclass(PromptError, SamusaError)


def test_top_level_comments_are_allowed():
    """Keys starting with "_" (or "$schema") are the file's comments, not prompts."""
    data = {"_comment": "lesion on frame 1", "$schema": "x", "objects": [{"id": 1, "prompts": [{"frame": 1, "box": [1, 1, 9, 9]}]}]}
    assert PromptSet.from_dict(data).objects[0].id == 1


def test_an_object_with_only_negative_clicks_is_refused():
    """One negative click gave a 23,000-pixel mask on a breast scan, without a word."""
    prompts = PromptSet.from_dict({"objects": [{"id": 1, "prompts": [{"frame": 0, "negative": [[10, 10]]}]}]})
    with pytest.raises(PromptError, match="only negative clicks.*add a positive click, boundary points or a box"):
        prompts.check(3, (32, 32))
    corrected = PromptSet.from_dict({"objects": [{"id": 1, "prompts": [
        {"frame": 0, "box": [4, 4, 20, 20]}, {"frame": 2, "negative": [[10, 10]]}]}]})
    corrected.check(3, (32, 32))  # a negative correction on another frame of a boxed object is fine
