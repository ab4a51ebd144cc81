"""Prompts as Slicer markups (.mrk.json) through oblique image geometry (SAMUSALib.markups)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAMUSALib.errors import PromptError
from SAMUSALib.frames import FrameSource, Geometry
from SAMUSALib.markups import read_markups, write_markups
from SAMUSALib.phantoms import rotation_matrix
from SAMUSALib.prompts import FramePrompt, ObjectPrompts, PromptSet, TemporalWindow

SHAPE = (9, 12, 15)  # (K, J, I)
SPACING = (0.7, 0.45, 2.5)
ORIGIN = (-12.0, 30.5, 7.25)


def oblique() -> Geometry:
    direction = rotation_matrix("z", 25.0) @ rotation_matrix("x", -15.0) @ rotation_matrix("y", 10.0)
    return Geometry(SPACING, ORIGIN, tuple(direction.ravel()))


def frames_along(axis: str, geometry: Geometry | None = None) -> FrameSource:
    return FrameSource(np.zeros(SHAPE, np.uint8), axis=axis, geometry=geometry or oblique())


def sample_prompts(frames: FrameSource) -> PromptSet:
    """Points spread over frames and over the whole frame, sub-pixel coordinates included."""
    h, w = frames.frame_shape
    last = frames.num_frames - 1
    lesion = ObjectPrompts(
        1,
        "lesion",
        prompts=[
            FramePrompt(1, boundary=[[0.0, 0.0], [w - 1, h / 2], [w / 3 + 0.123, h - 1.0]]),
            FramePrompt(last, boundary=[[1.5, 2.25]]),
        ],
    )
    vessel = ObjectPrompts(
        2,
        "vessel",
        prompts=[FramePrompt(2, positive=[[w / 2, h / 2]], negative=[[0.25, h - 1.5], [w - 1.0, 0.5]])],
    )
    return PromptSet([lesion, vessel])


def points(prompts: PromptSet) -> dict:
    """{(object name, kind, frame): sorted (x, y) array}."""
    out: dict = {}
    for obj in prompts.objects:
        for prompt in obj.prompts:
            for kind in ("boundary", "positive", "negative"):
                values = getattr(prompt, kind)
                if len(values):
                    key = (obj.name, kind, prompt.frame)
                    out[key] = np.concatenate([out.get(key, np.zeros((0, 2))), values])
    return {k: v[np.lexsort(v.T[::-1])] for k, v in out.items()}


def node(name: str, positions, system: str = "LPS", **extra) -> dict:
    return {
        "type": "Fiducial",
        "coordinateSystem": system,
        "name": name,
        "controlPoints": [{"id": str(i + 1), "position": list(map(float, p))} for i, p in enumerate(positions)],
        **extra,
    }


def world(frames: FrameSource, frame: float, x: float, y: float, system: str = "LPS") -> np.ndarray:
    """The world position of (x, y) on `frame`, computed independently of markups.py."""
    ijk = {"K": (x, y, frame), "J": (x, frame, y), "I": (frame, x, y)}[frames.axis]
    matrix = frames.geometry.ijk_to_ras() if system == "RAS" else frames.geometry.ijk_to_lps()
    return (matrix @ np.append(ijk, 1.0))[:3]


def write_document(path, *nodes) -> None:
    path.write_text(json.dumps({"markups": list(nodes)}))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("axis", ["K", "J", "I"])
def test_write_read_round_trip_through_oblique_geometry(tmp_path, axis):
    frames = frames_along(axis)
    prompts = sample_prompts(frames)
    path = tmp_path / "prompts.mrk.json"
    write_markups(prompts, path, frames)

    document = json.loads(path.read_text())
    assert {n["coordinateSystem"] for n in document["markups"]} == {"LPS"}
    assert sorted(n["name"] for n in document["markups"]) == ["lesion boundary", "vessel negative", "vessel positive"]

    back = read_markups(path, frames)
    assert [o.name for o in back.objects] == ["lesion", "vessel"]
    expected, got = points(prompts), points(back)
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-6, err_msg=str(key))
    back.check(frames.num_frames, frames.frame_shape)


def test_written_positions_are_world_coordinates(tmp_path):
    frames = frames_along("J")
    prompts = PromptSet([ObjectPrompts(1, "cyst", prompts=[FramePrompt(4, boundary=[[3.5, 6.0]])])])
    path = tmp_path / "cyst.mrk.json"
    write_markups(prompts, path, frames)
    position = json.loads(path.read_text())["markups"][0]["controlPoints"][0]["position"]
    np.testing.assert_allclose(position, world(frames, 4, 3.5, 6.0), atol=1e-9)


@pytest.mark.parametrize("axis", ["K", "I"])
def test_ras_and_lps_files_give_the_same_prompts(tmp_path, axis):
    frames = frames_along(axis)
    spots = [(2, 1.0, 2.0), (2, 6.5, 3.25), (5, 4.0, 4.0)]
    lps, ras = tmp_path / "lps.mrk.json", tmp_path / "ras.mrk.json"
    write_document(lps, node("lesion boundary", [world(frames, *s, "LPS") for s in spots], "LPS"))
    write_document(ras, node("lesion boundary", [world(frames, *s, "RAS") for s in spots], "RAS"))
    from_lps, from_ras = read_markups(lps, frames), read_markups(ras, frames)
    for prompts in (from_lps, from_ras):
        (obj,) = prompts.objects
        assert [p.frame for p in obj.prompts] == [2, 5]
        np.testing.assert_allclose(obj.prompts[0].boundary, [[1.0, 2.0], [6.5, 3.25]], atol=1e-9)
        np.testing.assert_allclose(obj.prompts[1].boundary, [[4.0, 4.0]], atol=1e-9)
    # the same numbers read in the other convention land elsewhere (mirrored in x and y)
    mixed = json.loads(lps.read_text())
    mixed["markups"][0]["coordinateSystem"] = "RAS"
    lps.write_text(json.dumps(mixed))
    with pytest.raises(PromptError):
        read_markups(lps, frames).check(frames.num_frames, frames.frame_shape)


def test_lowercase_ras_and_missing_system_means_lps(tmp_path):
    frames = frames_along("K")
    path = tmp_path / "m.mrk.json"
    bare = node("lesion", [world(frames, 3, 5.0, 6.0)])
    del bare["coordinateSystem"]
    write_document(path, bare, node("lesion negative", [world(frames, 3, 1.0, 1.0, "RAS")], "ras"))
    (obj,) = read_markups(path, frames).objects
    np.testing.assert_allclose(obj.prompts[0].boundary, [[5.0, 6.0]], atol=1e-9)
    np.testing.assert_allclose(obj.prompts[0].negative, [[1.0, 1.0]], atol=1e-9)


# --------------------------------------------------------------------------- node names


@pytest.mark.parametrize(
    "name, kind, object_name",
    [
        ("lesion boundary", "boundary", "lesion"),
        ("lesion negative", "negative", "lesion"),
        ("lesion positive", "positive", "lesion"),
        ("Lesion: inside", "positive", "Lesion"),
        ("outside lesion", "negative", "lesion"),
        ("region+", "positive", "object"),
        ("region-", "negative", "object"),
        ("carotid region +", "positive", "carotid"),
        ("carotid", "boundary", "carotid"),
        ("F", "boundary", "F"),
        ("", "boundary", "object"),
    ],
)
def test_node_names_map_to_prompt_kinds(tmp_path, name, kind, object_name):
    frames = frames_along("K")
    path = tmp_path / "named.mrk.json"
    nodes = [node(name, [world(frames, 4, 7.0, 5.0)])]
    if kind == "negative":  # an object of negative clicks alone is refused: give it a positive one elsewhere
        nodes.append(node(f"{object_name} positive", [world(frames, 1, 3.0, 3.0)]))
    write_document(path, *nodes)
    (obj,) = read_markups(path, frames).objects
    assert obj.name == object_name
    (prompt,) = [p for p in obj.prompts if p.frame == 4]
    np.testing.assert_allclose(getattr(prompt, kind), [[7.0, 5.0]], atol=1e-9)
    others = {"boundary", "positive", "negative"} - {kind}
    assert all(len(getattr(prompt, k)) == 0 for k in others)


@pytest.mark.parametrize("name, meant", [("lesion negtive", "lesion negative"), ("vessel postive", "vessel positive"),
                                         ("lesion boundry", "lesion boundary"), ("outsde lesion", "outside lesion"),
                                         ("lesion negatives", "lesion negative")])
def test_a_misspelt_type_word_is_refused_with_the_name_meant(tmp_path, name, meant):
    """"lesion negtive" was read as boundary points of a second object named "lesion
    negtive": the lesion lost its corrections and a stray object got a mask of its own."""
    frames = frames_along("K")
    path = tmp_path / "typo.mrk.json"
    write_document(path, node("lesion boundary", [world(frames, 4, 7.0, 5.0)]),
                   node("vessel boundary", [world(frames, 2, 3.0, 3.0)]), node(name, [world(frames, 4, 2.0, 2.0)]))
    with pytest.raises(PromptError, match=f"'{meant}'"):
        read_markups(path, frames)


@pytest.mark.parametrize("name", ["posterior wall", "left side lesion", "region1", "thyroid nodule", "outer boundary",
                                  "native artery", "onside nodule"])
def test_object_names_near_no_type_word_are_read_as_boundary_points(tmp_path, name):
    frames = frames_along("K")
    path = tmp_path / "named.mrk.json"
    write_document(path, node(name, [world(frames, 4, 7.0, 5.0)]))
    (obj,) = read_markups(path, frames).objects
    assert len(obj.prompts[0].boundary) == 1


def test_nodes_of_one_object_merge_per_frame(tmp_path):
    frames = frames_along("K")
    path = tmp_path / "merged.mrk.json"
    write_document(
        path,
        node("lesion boundary", [world(frames, 6, 2.0, 3.0), world(frames, 2, 4.0, 4.0)]),
        node("lesion negative", [world(frames, 6, 9.0, 9.0)]),
        node("vessel region+", [world(frames, 1, 5.0, 5.0)]),
    )
    prompts = read_markups(path, frames, window=(1, 7))
    lesion, vessel = prompts.objects
    assert (lesion.id, lesion.name, vessel.id, vessel.name) == (1, "lesion", 2, "vessel")
    assert [p.frame for p in lesion.prompts] == [2, 6]  # sorted by frame
    np.testing.assert_allclose(lesion.prompts[1].boundary, [[2.0, 3.0]], atol=1e-9)
    np.testing.assert_allclose(lesion.prompts[1].negative, [[9.0, 9.0]], atol=1e-9)
    assert lesion.window == vessel.window == TemporalWindow(1, 7)


def test_undefined_control_points_are_skipped(tmp_path):
    frames = frames_along("K")
    path = tmp_path / "preview.mrk.json"
    document = node("lesion", [world(frames, 3, 1.0, 1.0), world(frames, 3, 2.0, 2.0)])
    document["controlPoints"][1]["positionStatus"] = "preview"
    write_document(path, document)
    (obj,) = read_markups(path, frames).objects
    np.testing.assert_allclose(obj.prompts[0].boundary, [[1.0, 1.0]], atol=1e-9)


# --------------------------------------------------------------------------- ROI


def roi(center, size, system="LPS", name="lesion box", **extra) -> dict:
    return {"type": "ROI", "roiType": "Box", "coordinateSystem": system, "name": name,
            "center": list(map(float, center)), "size": list(map(float, size)), **extra}


def test_roi_becomes_a_box_on_its_centre_frame(tmp_path):
    geometry = Geometry((0.5, 0.25, 2.0), (10.0, -4.0, 3.0))  # axis-aligned, so the box is exact
    frames = FrameSource(np.zeros(SHAPE, np.uint8), geometry=geometry)
    lps = geometry.ijk_to_lps()
    low = (lps @ [2.0, 3.0, 4.0, 1.0])[:3]
    high = (lps @ [10.0, 9.0, 4.0, 1.0])[:3]
    path = tmp_path / "roi.mrk.json"
    write_document(path, roi((low + high) / 2, np.abs(high - low) + [0, 0, 2.0]))
    (obj,) = read_markups(path, frames).objects
    assert obj.name == "lesion"  # the word "box" names the prompt type, as the SAMUSA module writes it
    (prompt,) = obj.prompts
    assert prompt.frame == 4
    np.testing.assert_allclose(prompt.box, (2.0, 3.0, 10.0, 9.0), atol=1e-9)


def test_two_rois_of_one_object_on_one_frame_are_refused(tmp_path):
    """The second box replaced the first without a word."""
    frames = frames_along("K")
    path = tmp_path / "boxes.mrk.json"
    write_document(path, roi(world(frames, 3, 5.0, 4.0), [4.0, 4.0, 0.5]),
                   roi(world(frames, 3, 10.0, 8.0), [4.0, 4.0, 0.5]))
    with pytest.raises(PromptError, match="second box of 'lesion' on frame 3"):
        read_markups(path, frames)


def test_roi_in_ras_with_slicer_orientation_and_centre_in_control_point(tmp_path):
    """Slicer writes an LPS-file ROI with orientation diag(-1, -1, 1); older files keep the
    centre only as the control point's position."""
    geometry = Geometry((0.5, 0.25, 2.0), (10.0, -4.0, 3.0))
    frames = FrameSource(np.zeros(SHAPE, np.uint8), geometry=geometry)
    ras = geometry.ijk_to_ras()
    low, high = (ras @ [2.0, 3.0, 4.0, 1.0])[:3], (ras @ [10.0, 9.0, 4.0, 1.0])[:3]
    center = (low + high) / 2
    node_ = roi(center, np.abs(high - low) + [0, 0, 2.0], "RAS",
                orientation=[-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0])
    del node_["center"]
    node_["controlPoints"] = [{"id": "1", "position": list(map(float, center))}]
    path = tmp_path / "roi.mrk.json"
    write_document(path, node_)
    (prompt,) = read_markups(path, frames).objects[0].prompts
    assert prompt.frame == 4
    np.testing.assert_allclose(prompt.box, (2.0, 3.0, 10.0, 9.0), atol=1e-9)


def test_thick_roi_on_the_first_frame_is_a_box(tmp_path):
    """Only the centre picks the frame: a slab reaching past the first frame is still fine."""
    frames = frames_along("K")
    lps = frames.geometry.ijk_to_lps()
    center = (lps @ [7.0, 6.0, 0.0, 1.0])[:3]
    path = tmp_path / "roi.mrk.json"
    write_document(path, roi(center, [4.0, 4.0, 10.0]))
    (prompt,) = read_markups(path, frames).objects[0].prompts
    assert prompt.frame == 0
    x0, y0, x1, y1 = prompt.box
    assert x0 < 7.0 < x1 and y0 < 6.0 < y1


def test_oblique_roi_box_covers_the_projected_corners(tmp_path):
    frames = frames_along("K")
    lps = frames.geometry.ijk_to_lps()
    center = (lps @ [7.0, 6.0, 4.0, 1.0])[:3]
    size = np.array([3.0, 3.0, 1.0])
    path = tmp_path / "roi.mrk.json"
    write_document(path, roi(center, size))
    (prompt,) = read_markups(path, frames).objects[0].prompts
    inverse = np.linalg.inv(lps)
    corners = np.array([
        (inverse @ np.append(center + np.array(signs) * size / 2, 1.0))[:2]
        for signs in np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3)
    ])
    np.testing.assert_allclose(prompt.box, (*corners.min(axis=0), *corners.max(axis=0)), atol=1e-9)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("axis", ["K", "J", "I"])
def test_point_outside_the_frames_is_refused(tmp_path, axis):
    frames = frames_along(axis)
    path = tmp_path / "outside.mrk.json"
    write_document(path, node("lesion", [world(frames, frames.num_frames + 2, 3.0, 3.0)]))
    with pytest.raises(PromptError, match=r"outside the image's frames 0\.\.\d+"):
        read_markups(path, frames)
    write_document(path, node("lesion", [world(frames, -3, 3.0, 3.0)]))
    with pytest.raises(PromptError, match="outside the image's frames"):
        read_markups(path, frames)


def test_point_outside_the_frame_plane_is_refused(tmp_path):
    frames = frames_along("K")
    path = tmp_path / "outside.mrk.json"
    write_document(path, node("lesion", [world(frames, 3, frames.width + 5.0, 2.0)]))
    with pytest.raises(PromptError, match="outside the 15x12 frame"):
        read_markups(path, frames)


def test_roi_centred_outside_is_refused(tmp_path):
    frames = frames_along("K")
    center = (frames.geometry.ijk_to_lps() @ [7.0, 6.0, 40.0, 1.0])[:3]
    path = tmp_path / "roi.mrk.json"
    write_document(path, roi(center, [2.0, 2.0, 2.0]))
    with pytest.raises(PromptError, match="ROI 'lesion box'.*outside"):
        read_markups(path, frames)


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", ["not valid JSON"]),
        ('{"markups": []}', ["holds no markups"]),
        ('{"points": [1, 2]}', ["holds no markups"]),
        ("[1, 2]", ["holds no markups"]),
        ('{"markups": [{"name": "a", "controlPoints": []}]}', ["no defined control points"]),
        ('{"markups": [{"name": "a", "controlPoints": [{"position": [1, 2]}]}]}', ["control point 0", "'a'", "position"]),
        ('{"markups": [{"name": "a", "controlPoints": [{"position": ["x", 2, 3]}]}]}', ["control point 0", "position"]),
        ('{"markups": [7]}', ["markups[0]", "JSON object"]),
        ('{"markups": [{"name": "a", "controlPoints": 3}]}', ["controlPoints", "list"]),
        ('{"markups": [{"name": "a", "coordinateSystem": "XYZ", "controlPoints": []}]}', ["coordinate system", "XYZ"]),
        ('{"markups": [{"type": "ROI", "name": "b", "size": [1, 1, 1]}]}', ["ROI 'b'", "center"]),
        ('{"markups": [{"type": "ROI", "name": "b", "center": [0, 0, 0], "size": [1, 1]}]}', ["ROI 'b'", "size"]),
    ],
)
def test_bad_markups_files(tmp_path, content, words):
    path = tmp_path / "bad.mrk.json"
    path.write_text(content)
    with pytest.raises(PromptError) as caught:
        read_markups(path, frames_along("K"))
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_missing_markups_file(tmp_path):
    with pytest.raises(PromptError, match="does not exist"):
        read_markups(tmp_path / "none.mrk.json", frames_along("K"))


def test_window_is_checked_against_prompts(tmp_path):
    frames = frames_along("K")
    path = tmp_path / "w.mrk.json"
    write_document(path, node("lesion", [world(frames, 6, 3.0, 3.0)]))
    with pytest.raises(PromptError, match="outside its window"):
        read_markups(path, frames, window=(0, 4))
    with pytest.raises(PromptError, match="after its end"):
        read_markups(path, frames, window=(5, 4))
