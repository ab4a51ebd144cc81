"""Issue 16's defects in the MRML bridge, each with a test that fails on the code before the
fix: an existing segmentation chosen for a cine keeps its voxels; a segment labelmap of a
larger extent is read onto the input's grid; a cine stored as one volume writes only the
slices that changed; points beyond the image are refused and can be cleared; a frame change
reads no frames."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

from SAMUSALib import mrml
from SAMUSALib.errors import PromptError
from SAMUSALib.mrml import geometry, inputs, targets
from SAMUSALib.prompts import TemporalWindow

pytestmark = pytest.mark.mrml


@pytest.fixture
def headless():
    scene = mrml.headless_scene()
    yield scene
    scene.scene.Clear(1)


def _voxels(segmentation_node, segment_id, shape, matrix) -> int:
    return int(targets._read_segment(segmentation_node, segment_id, shape, matrix).sum())


def test_an_existing_segmentation_chosen_for_a_cine_keeps_its_voxels(headless):
    browser, _, proxy = mrml.sequence_from_array(headless.scene, np.zeros((6, 12, 16), np.uint8), None, "cine")
    browser.SetSelectedItemNumber(2)
    user = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn by hand")
    user.SetReferenceImageGeometryParameterFromVolumeNode(proxy)
    segment = mrml.add_segment(user, "lesion")
    drawn = np.zeros((1, 12, 16), bool)
    drawn[0, 3:8, 4:11] = True  # 35 voxels
    targets._write_segment(user, segment, drawn, mrml.ijk_to_ras_of(proxy))
    assert _voxels(user, segment, (1, 12, 16), mrml.ijk_to_ras_of(proxy)) == 35
    target = mrml.target_for(mrml.input_from_node(browser), user)
    assert _voxels(user, segment, (1, 12, 16), mrml.ijk_to_ras_of(proxy)) == 35, "the proxy was emptied"
    assert target.read(segment, [2])[2].sum() == 35, "the shown frame's item does not hold the drawing"
    browser.SetSelectedItemNumber(4)
    browser.SetSelectedItemNumber(2)  # the browser copies the item back into the proxy
    assert _voxels(user, segment, (1, 12, 16), mrml.ijk_to_ras_of(proxy)) == 35, "scrolling erased the drawing"
    assert target.read(segment, [4])[4].sum() == 0


def test_a_segment_on_a_larger_image_is_read_onto_the_input_grid(headless):
    volume = mrml.volume_from_array(headless.scene, np.zeros((4, 10, 12), np.uint8), None, "small")
    segmentation = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segment = mrml.add_segment(segmentation)
    larger = np.zeros((8, 20, 24), bool)  # starts 2 voxels before the small volume on each axis
    larger[3, 4:9, 5:10] = True  # inside the small volume: slice 1, rows 2..6, columns 3..7
    larger[7, 18, 20] = True  # outside it
    shifted = np.eye(4)
    shifted[:3, 3] = -2.0
    targets._write_segment(segmentation, segment, larger, shifted)
    target = mrml.target_for(mrml.input_from_node(volume, "K"), segmentation)
    voxels = target.read_all(segment)
    expected = np.zeros((4, 10, 12), bool)
    expected[1, 2:7, 3:8] = True
    np.testing.assert_array_equal(voxels, expected)
    target.write(segment, {0: np.ones((10, 12), bool)})  # writes and undo work on it too
    assert target.read(segment, [0])[0].all() and target.read(segment, [1])[1].sum() == 25


def test_a_click_on_a_cine_stored_as_one_volume_writes_only_its_slices(headless, monkeypatch):
    volume = mrml.volume_from_array(headless.scene, np.zeros((30, 16, 20), np.uint8), None, "cine as volume")
    target = mrml.target_for(mrml.input_from_node(volume, "K"))
    segment = target.ensure_segment()
    first = {f: np.random.default_rng(f).random((16, 20)) > 0.5 for f in range(30)}
    target.write(segment, first)
    labelmap = segmentation_labelmap = target.node.GetSegmentation().GetSegment(segment).GetRepresentation(
        targets._labelmap_name())

    def whole_segment(*args, **kwargs):
        raise AssertionError("the whole segment was written for one slice")

    monkeypatch.setattr(targets, "_write_segment", whole_segment)
    monkeypatch.setattr(targets, "_read_segment", whole_segment)
    before = labelmap.GetMTime()
    new = np.zeros((16, 20), bool)
    new[2:5, 3:9] = True
    target.write(segment, {12: new})
    assert segmentation_labelmap.GetMTime() > before  # written in place
    read = target.read(segment, [11, 12, 13])
    np.testing.assert_array_equal(read[12], new)
    np.testing.assert_array_equal(read[11], first[11])
    np.testing.assert_array_equal(read[13], first[13])


def test_points_beyond_the_image_are_refused_and_cleared(headless):
    volume = mrml.volume_from_array(headless.scene, np.zeros((6, 20, 24), np.uint8), None, "volume")
    source = mrml.input_from_node(volume, "K")
    target = mrml.target_for(source)
    segment = target.ensure_segment()
    node = mrml.prompt_node(target, segment, "positive")
    good = mrml.add_prompt_point(node, (10.0, 10.0, 2.0))
    stray = mrml.add_prompt_point(node, (10.0, 10.0, 40.0))
    assert mrml.check_point(source, node, good)[0] == 2
    with pytest.raises(PromptError, match="slice 40.00"):
        mrml.check_point(source, node, stray)
    off_columns = mrml.add_prompt_point(node, (30.0, 10.0, 2.0))
    with pytest.raises(PromptError, match="outside the image"):
        mrml.check_point(source, node, off_columns)
    with pytest.raises(PromptError):
        mrml.frame_prompts(source, {"positive": node})
    assert mrml.remove_prompts(source, [node], frame=2) == 3  # this frame's point and the two stray ones
    node.RemoveAllControlPoints()
    mrml.add_prompt_point(node, (10.0, 10.0, 2.0))
    mrml.add_prompt_point(node, (10.0, 10.0, 40.0))
    assert mrml.remove_prompts(source, [node], frame=4) == 1  # only the stray one
    assert list(mrml.frame_prompts(source, {"positive": node})) == [2]


def test_a_frame_change_reads_no_frames(headless, monkeypatch):
    browser, _, _ = mrml.sequence_from_array(headless.scene, np.zeros((8, 12, 16), np.uint8), None, "cine")
    target = mrml.target_for(mrml.input_from_node(browser))
    segment = target.ensure_segment()
    node = mrml.prompt_node(target, segment, "boundary")
    for frame in (1, 5):
        mrml.add_prompt_point(node, (3.0, 4.0, 0.0), frame=frame)

    def reads_frames(*args, **kwargs):
        raise AssertionError("a frame change read the cine's frames")

    monkeypatch.setattr(geometry, "_image_array", reads_frames)
    monkeypatch.setattr(inputs, "_image_array", reads_frames)
    monkeypatch.setattr(inputs, "input_fingerprint", reads_frames)
    browser.SetSelectedItemNumber(5)
    assert mrml.show_points_of_current_frame(browser, target.node, segment) == 5
    assert [node.GetNthControlPointVisibility(i) for i in range(2)] == [False, True]
    assert vtk is not None


def _prompted_frames(headless, tiny_model, kind: str):
    """(node, segmenter factory, target, segment): five frames of a bright block as a cine
    or a volume, one positive click on frame 1, nothing segmented yet."""
    frames = np.zeros((5, 24, 32), np.uint8)
    frames[:, 6:18, 8:24] = 200
    if kind == "sequence":
        node, _, _ = mrml.sequence_from_array(headless.scene, frames, None, "cine")
    else:
        node = mrml.volume_from_array(headless.scene, frames, None, "cine as volume")

    def segmenter():
        return mrml.InteractiveSegmenter(model_factory=lambda name, device: tiny_model, write_interval=0.0)

    target = segmenter().target(node)
    segment = target.ensure_segment()
    prompt = mrml.prompt_node(target, segment, "positive")
    mrml.add_prompt_point(prompt, (15.0, 12.0, 1.0 if kind == "volume" else 0.0), frame=1 if kind == "sequence" else None)
    return node, segmenter, target, segment


@pytest.mark.parametrize("kind", ["sequence", "volume"])
def test_a_mask_edited_by_hand_becomes_that_frame_s_mask_prompt(headless, tiny_model, kind):
    """Issue 16 item 4: what the user painted over SAMUSA's mask is kept and becomes the
    frame's mask prompt, so propagation continues from it."""
    node, make_segmenter, target, segment = _prompted_frames(headless, tiny_model, kind)
    segmenter = make_segmenter()
    first = segmenter.propagate(node, target.node, segment, model="test-tiny", device="cpu")
    assert sorted(first.frames_written) == list(range(5))
    assert segmenter.hand_edited_frames(target.node, segment) == []
    drawn = np.zeros((24, 32), bool)
    drawn[4:20, 5:27] = True  # the user paints frame 3 (Segment Editor)
    target.write(segment, {3: drawn})
    segmenter.segment_frame(node, target.node, segment, model="test-tiny", device="cpu")
    assert segmenter.hand_edited_frames(target.node, segment) == [3]
    _, session = segmenter.session(node, model="test-tiny", device="cpu")
    obj = session.objects[segmenter._objects[(target.node.GetID(), segment)]]
    np.testing.assert_array_equal(obj.prompts[3].mask, drawn)
    again = segmenter.propagate(node, target.node, segment, model="test-tiny", device="cpu")
    assert 3 not in again.frames_written  # kept as drawn
    np.testing.assert_array_equal(target.read(segment, [3])[3], drawn)
    assert 4 in again.frames_computed  # carried on from the drawing
    assert segmenter.clear_prompts(node, target.node, segment, frame=3, model="test-tiny", device="cpu") >= 1
    assert segmenter.hand_edited_frames(target.node, segment) == []
    assert not np.array_equal(target.read(segment, [3])[3], drawn)  # its prompts' mask went with them
    # undoing the clear gives the drawing back, as the frame's prompt and on the frame
    assert segmenter.undo().description == "clear prompts"
    assert segmenter.hand_edited_frames(target.node, segment) == [3]
    np.testing.assert_array_equal(target.read(segment, [3])[3], drawn)
    assert 3 not in segmenter.propagate(node, target.node, segment, model="test-tiny", device="cpu").frames_written
    np.testing.assert_array_equal(target.read(segment, [3])[3], drawn)


def test_a_volume_segmented_along_k_then_along_j_keeps_a_record_per_axis(headless, tiny_model):
    """What SAMUSA wrote was recorded by frame number alone: after propagating along K, the
    same segmentation read along J took K's slices 0-4 for J slices drawn by hand, kept them
    as drawn and used them as mask prompts."""
    node, make_segmenter, target, segment = _prompted_frames(headless, tiny_model, "volume")
    segmenter = make_segmenter()
    segmenter.propagate(node, target.node, segment, model="test-tiny", device="cpu")
    along_j = segmenter.propagate(node, target.node, segment, model="test-tiny", device="cpu", axis="J")
    assert segmenter.hand_edited_frames(target.node, segment, "J") == []
    assert {0, 1, 2, 3, 4} <= set(along_j.frames_written)
    assert segmenter.hand_edited_frames(target.node, segment, "K") == []  # and K's record is still K's


def _click(segmenter, node, target, segment, prompt, world, frame):
    """A click as the panel makes it: a stamped point, then segment_frame naming it for undo."""
    index = mrml.add_prompt_point(prompt, world, frame=frame)
    return segmenter.segment_frame(node, target.node, segment, model="test-tiny", device="cpu",
                                   prompt_point=(prompt, prompt.GetNthControlPointID(index)))


def test_undo_keeps_working_on_points_that_undo_put_back_and_on_a_drag_refused(headless, tiny_model):
    """A point undo put back gets a new ID: undoing the click that had made it then found
    nothing to remove (two points left of one, frame 2 blank under a visible point). A
    point dragged off the image and put back was dragged off again by undoing the next
    click. A clear whose re-segmentation failed could not be undone."""
    node, make_segmenter, target, segment = _prompted_frames(headless, tiny_model, "sequence")
    segmenter = make_segmenter()
    prompt = mrml.prompt_node(target, segment, "positive")
    segmenter.segment_frame(node, target.node, segment, model="test-tiny", device="cpu")  # frame 1's point
    for frame in (2, 3):
        _click(segmenter, node, target, segment, prompt, (15.0, 12.0, 0.0), frame)
    assert segmenter.clear_prompts(node, target.node, segment, frame=2, model="test-tiny", device="cpu") == 1
    for _ in range(3):  # the clear, the click on frame 3, the click on frame 2
        segmenter.undo()
    assert [mrml.point_frame(prompt, i) for i in range(prompt.GetNumberOfControlPoints())] == [1]

    prompt.SetNthControlPointPositionWorld(0, 60.0, 9.0, 0.0)  # dragged off the 32 x 24 frame
    with pytest.raises(PromptError, match="put back where it was"):
        segmenter.segment_frame(node, target.node, segment, model="test-tiny", device="cpu")
    _click(segmenter, node, target, segment, prompt, (12.0, 10.0, 0.0), 2)
    segmenter.undo()
    assert tuple(prompt.GetNthControlPointPositionWorld(0)) == (15.0, 12.0, 0.0)

    segmenter.set_window(node, target.node, segment, 0, 3)
    mrml.add_prompt_point(prompt, (15.0, 12.0, 0.0), frame=4)  # outside the window, as a script might add it
    with pytest.raises(PromptError, match="outside its window"):
        segmenter.clear_prompts(node, target.node, segment, frame=1, model="test-tiny", device="cpu")
    assert segmenter.undo().description == "clear prompts"
    assert 1 in [mrml.point_frame(prompt, i) for i in range(prompt.GetNumberOfControlPoints())]


@pytest.mark.parametrize("kind", ["sequence", "volume"])
def test_propagating_after_the_window_narrowed_clears_samusa_s_masks_outside_it(headless, tiny_model, kind):
    """After a full propagation, "Start here" / "End here" on frames 1 and 3 and Propagate
    left frames 0 and 4 with their masks: the structure stayed marked on frames the user had
    just said it is not on. Undo brings the cleared masks back."""
    node, make_segmenter, target, segment = _prompted_frames(headless, tiny_model, kind)
    segmenter = make_segmenter()
    segmenter.propagate(node, target.node, segment, model="test-tiny", device="cpu")
    before = target.read(segment, range(5))
    assert all(mask.any() for mask in before.values())
    segmenter.set_window_start(node, target.node, segment, 1)
    segmenter.set_window_end(node, target.node, segment, 3)
    result = segmenter.propagate(node, target.node, segment, model="test-tiny", device="cpu")
    assert result.frames_cleared == [0, 4]
    assert not target.read(segment, [0])[0].any() and not target.read(segment, [4])[4].any()
    assert segmenter.undo().description == "propagate"
    for frame, mask in target.read(segment, [0, 4]).items():
        np.testing.assert_array_equal(mask, before[frame])


@pytest.mark.parametrize("kind", ["sequence", "volume"])
def test_a_deleted_segment_is_named_as_deleted_and_the_others_are_left_alone(headless, tiny_model, kind):
    """Deleted in the Segment Editor while the panel still named it, a segment made the next
    click fail with "'NoneType' object has no attribute 'GetName'"."""
    node, make_segmenter, target, segment = _prompted_frames(headless, tiny_model, kind)
    segmenter = make_segmenter()
    other = target.ensure_segment()
    mrml.add_prompt_point(mrml.prompt_node(target, other, "positive"), (12.0, 10.0, 1.0 if kind == "volume" else 0.0),
                          frame=1 if kind == "sequence" else None)
    segmenter.segment_frame(node, target.node, other, model="test-tiny", device="cpu")
    kept = target.read(other, [1])[1]
    assert kept.any()
    target.node.GetSegmentation().RemoveSegment(segment)
    for action in (lambda: segmenter.segment_frame(node, target.node, segment, model="test-tiny", device="cpu"),
                   lambda: segmenter.propagate(node, target.node, segment, model="test-tiny", device="cpu"),
                   lambda: segmenter.clear_prompts(node, target.node, segment),
                   lambda: segmenter.set_window(node, target.node, segment, 1, 3)):
        with pytest.raises(PromptError, match="deleted.*choose a segment or add one"):
            action()
    np.testing.assert_array_equal(target.read(other, [1])[1], kept)


@pytest.mark.parametrize("kind", ["sequence", "volume"])
def test_a_frame_drawn_by_hand_is_kept_after_the_scene_is_opened_again(headless, tiny_model, kind):
    """What SAMUSA wrote was known to the segmenter only: after the scene was closed and
    opened again (a new segmenter), the next propagation rewrote the frame the user had
    painted, and painted over. Now the record is saved with the scene."""
    node, segmenter, target, segment = _prompted_frames(headless, tiny_model, kind)
    before = segmenter()
    before.propagate(node, target.node, segment, model="test-tiny", device="cpu")
    drawn = np.zeros((24, 32), bool)
    drawn[4:20, 5:27] = True
    target.write(segment, {3: drawn})  # painted before the scene was saved; SAMUSA has not looked since
    before.drop_session()  # the scene closes (the module's onSceneStartClose)

    after = segmenter()
    again = after.propagate(node, target.node, segment, model="test-tiny", device="cpu")
    assert 3 not in again.frames_written
    np.testing.assert_array_equal(target.read(segment, [3])[3], drawn)
    assert after.hand_edited_frames(target.node, segment) == [3]
    # still known as drawn by a third session, which never saw it change
    third = segmenter()
    assert 3 not in third.propagate(node, target.node, segment, model="test-tiny", device="cpu").frames_written
    np.testing.assert_array_equal(target.read(segment, [3])[3], drawn)
    # cleared as a prompt, it is SAMUSA's to rewrite again, in any later session too
    assert third.clear_prompts(node, target.node, segment, frame=3) >= 1
    assert 3 in segmenter().propagate(node, target.node, segment, model="test-tiny", device="cpu").frames_written


def test_a_volume_s_window_holds_along_the_axis_it_was_set_on(headless):
    """Read along another axis, a window of axial slices 1-3 was sagittal slices 1-3, and
    propagating along that axis overwrote slices that cut through the axial masks."""
    volume = mrml.volume_from_array(headless.scene, np.zeros((6, 20, 24), np.uint8), None, "volume")
    along_k = mrml.target_for(mrml.input_from_node(volume, "K"))
    segment = along_k.ensure_segment()
    along_k.set_window(segment, (1, 3))
    assert mrml.target_for(mrml.input_from_node(volume, "I"), along_k.node).window(segment) is None
    assert mrml.target_for(mrml.input_from_node(volume, "K"), along_k.node).window(segment) == TemporalWindow(1, 3)
    # a window stored before the axis was recorded ("start end") holds along any axis, as it did
    along_k.node.SetAttribute(mrml.ATTRIBUTE_WINDOW + segment, "1 3")
    assert mrml.target_for(mrml.input_from_node(volume, "I"), along_k.node).window(segment) == TemporalWindow(1, 3)


def test_prompts_follow_their_segmentation_when_a_scene_is_imported_into_another(headless):
    """Importing a saved scene (File > Add Data of a .mrb) into one that already holds a
    segmentation renames the imported one's ID; prompts that named their segmentation by an
    attribute then pointed at the other scene's node, and the imported segment had none."""
    import slicer

    volume = mrml.volume_from_array(headless.scene, np.zeros((4, 24, 32), np.uint8), None, "v")
    target = mrml.target_for(mrml.input_from_node(volume))
    segment = target.ensure_segment()
    mrml.add_prompt_point(mrml.prompt_node(target, segment, "positive"), (10.0, 10.0, 1.0))
    headless.scene.SetSaveToXMLString(1)
    headless.scene.Commit()
    saved = headless.scene.GetSceneXMLString()

    other = slicer.vtkMRMLScene()
    here = other.AddNewNodeByClass("vtkMRMLSegmentationNode", "already here")  # takes the saved one's ID
    other.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "F")
    other.SetLoadFromXMLString(1)
    other.SetSceneXMLString(saved)
    other.Import()
    imported = [n for n in (other.GetNthNodeByClass(i, "vtkMRMLSegmentationNode")
                            for i in range(other.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))) if n is not here]
    assert len(imported) == 1 and imported[0].GetID() != target.node.GetID()
    prompts = mrml.existing_prompt_nodes(imported[0], segment)
    assert len(prompts) == 1 and prompts[0].GetAttribute(mrml.ATTRIBUTE_PROMPT) == "positive"  # (its points are in a file)
    assert mrml.existing_prompt_nodes(here, segment) == []
