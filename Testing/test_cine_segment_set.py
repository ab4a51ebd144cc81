"""A cine's segments are one set across its frames (`mrml.segment_mirror`): renamed,
recoloured, added or deleted on the shown frame (the proxy the Segment Editor edits), they
are so on every frame, while each frame keeps its own voxels. Before, Slicer wrote the edit
into the shown frame's item only: scrolling brought the old name, or the deleted segment,
back."""

from __future__ import annotations

import numpy as np
import pytest

from SAMUSALib import mrml

pytestmark = pytest.mark.mrml

FRAMES, ROWS, COLS = 6, 12, 16


@pytest.fixture
def cine():
    """(browser, target, lesion, other): a cine shown at frame 2, two segments, each with
    a different mask on every frame."""
    headless = mrml.headless_scene()
    browser, _, _ = mrml.sequence_from_array(headless.scene, np.zeros((FRAMES, ROWS, COLS), np.uint8), None, "cine")
    browser.SetSelectedItemNumber(2)
    node = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "cine segmentation")
    target = mrml.target_for(mrml.input_from_node(browser), node)
    lesion, other = target.ensure_segment(name="lesion"), target.ensure_segment(name="other")
    target.write(lesion, {f: _mask(f, 1) for f in range(FRAMES)})
    target.write(other, {f: _mask(f, 7) for f in range(FRAMES)})
    yield browser, target, lesion, other
    headless.scene.Clear(1)


def _mask(frame: int, column: int) -> np.ndarray:
    mask = np.zeros((ROWS, COLS), bool)
    mask[1 : 2 + frame, column : column + 3] = True  # a different size on every frame
    return mask


def _names(node) -> list[str]:
    segmentation = node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def _shown(browser, target, frame: int) -> list[str]:
    browser.SetSelectedItemNumber(frame)
    return _names(target.node)


def test_a_segment_renamed_and_recoloured_on_the_shown_frame_is_so_on_every_frame(cine):
    browser, target, lesion, other = cine
    segment = target.node.GetSegmentation().GetSegment(lesion)
    segment.SetName("tumour")
    segment.SetColor(0.1, 0.9, 0.2)
    for frame in (4, 0, 5, 2):
        assert _shown(browser, target, frame) == ["tumour", "other"], frame
        assert np.allclose(target.node.GetSegmentation().GetSegment(lesion).GetColor(), (0.1, 0.9, 0.2))
        assert _names(target.item(frame)) == ["tumour", "other"]
    for frame in range(FRAMES):  # names changed, voxels not
        np.testing.assert_array_equal(target.read(lesion, [frame])[frame], _mask(frame, 1))


def test_a_segment_deleted_on_the_shown_frame_stays_deleted_and_the_other_keeps_its_masks(cine):
    browser, target, lesion, other = cine
    target.node.GetSegmentation().RemoveSegment(other)
    for frame in (4, 0, 2, 5):
        assert _shown(browser, target, frame) == ["lesion"], frame
    for frame in range(FRAMES):
        assert target.item(frame).GetSegmentation().GetSegment(other) is None
        np.testing.assert_array_equal(target.read(lesion, [frame])[frame], _mask(frame, 1))


def test_undoing_a_deletion_brings_the_segment_back_on_every_frame_with_its_masks(cine):
    """The Segment Editor's undo puts the deleted segment back into the shown frame's node
    only; the other frames get theirs back from the mirror, not empty segments."""
    browser, target, lesion, other = cine
    import slicer

    segmentation = target.node.GetSegmentation()
    kept = slicer.vtkSegment()
    kept.DeepCopy(segmentation.GetSegment(other))
    segmentation.RemoveSegment(other)
    segmentation.AddSegment(kept, other)  # what undo does
    for frame in (0, 4, 2):
        assert _shown(browser, target, frame) == ["lesion", "other"], frame
    for frame in range(FRAMES):
        np.testing.assert_array_equal(target.read(other, [frame])[frame], _mask(frame, 7))


def test_a_segment_added_on_the_shown_frame_is_on_every_frame_to_paint(cine):
    browser, target, lesion, other = cine
    added = target.node.GetSegmentation().AddEmptySegment("", "vessel", (0.2, 0.2, 0.9))
    for frame in (3, 0, 2):
        assert _shown(browser, target, frame) == ["lesion", "other", "vessel"], frame
    assert not target.read(added, [3])[3].any()
    np.testing.assert_array_equal(target.read(lesion, [3])[3], _mask(3, 1))


def test_scrolling_alone_changes_no_frame_s_segments(cine):
    browser, target, lesion, other = cine
    before = [_names(target.item(frame)) for frame in range(FRAMES)]
    for frame in (5, 1, 3, 2):
        browser.SetSelectedItemNumber(frame)
    assert [_names(target.item(frame)) for frame in range(FRAMES)] == before == [["lesion", "other"]] * FRAMES
    for frame in range(FRAMES):
        np.testing.assert_array_equal(target.read(other, [frame])[frame], _mask(frame, 7))


def test_a_reopened_scene_s_cine_segments_are_mirrored_again(cine):
    """A scene opened again has no mirror (they live in the session that made them) until
    SAMUSA's panel mirrors the scene's cine segmentations (`mirror_scene`, on scene import)."""
    from SAMUSALib.mrml import segment_mirror

    browser, target, lesion, other = cine
    mirror = segment_mirror.mirror_segments(target.node, target.sequence)
    mirror.detach()  # the session that saved the scene is gone
    segment_mirror._mirrors.clear()
    volume = target.node.GetScene().GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
    assert volume is not None and segment_mirror.mirror_scene(volume.GetScene()) == 1
    target.node.GetSegmentation().GetSegment(lesion).SetName("tumour")
    assert _shown(browser, target, 4) == ["tumour", "other"]


def test_closing_the_scene_lets_go_of_the_cine_s_segmentations():
    """Nothing SAMUSA keeps for the mirror outlives the scene: in a long Slicer session a
    closed cine's segmentations (every frame's voxels) must be freed."""
    import gc

    from SAMUSALib.mrml import segment_mirror

    headless = mrml.headless_scene()
    browser, _, _ = mrml.sequence_from_array(headless.scene, np.zeros((FRAMES, ROWS, COLS), np.uint8), None, "cine")
    node = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "cine segmentation")
    target = mrml.target_for(mrml.input_from_node(browser), node)
    target.write(target.ensure_segment(name="lesion"), {0: _mask(0, 1)})
    key = f"{id(headless.scene)}:{node.GetID()}"
    assert key in segment_mirror._mirrors
    del browser, node, target
    headless.scene.Clear(1)
    gc.collect()
    assert key not in segment_mirror._mirrors


def test_with_save_changes_off_the_shown_frame_is_a_view_and_no_frame_loses_a_segment(cine):
    """Switching "save changes" off in the Sequences module empties the proxy (Slicer copies
    the shown item onto itself); that is no deletion by the user, and with it off proxy
    edits are not the frames' either."""
    browser, target, lesion, other = cine
    browser.SetSaveChanges(target.sequence, False)
    target.node.GetSegmentation().RemoveAllSegments()  # what the proxy may go through then
    for frame in (4, 0):
        browser.SetSelectedItemNumber(frame)
        assert _names(target.item(frame)) == ["lesion", "other"], frame
        np.testing.assert_array_equal(target.read(other, [frame])[frame], _mask(frame, 7))


def test_a_new_segment_that_reuses_a_deleted_id_starts_empty_on_every_frame(cine):
    """Only the deleted segment put back (same name and colour: an undo) gets its masks
    back; a new segment given the same ID (Slicer 5.6 counts Segment_N per frame) must not
    show the old masks on the other frames."""
    browser, target, lesion, other = cine
    target.node.GetSegmentation().RemoveSegment(other)
    target.node.GetSegmentation().AddEmptySegment(other, "fresh", (0.9, 0.1, 0.1))
    for frame in range(FRAMES):
        assert not target.read(other, [frame])[frame].any(), frame
    assert _shown(browser, target, 4) == ["lesion", "fresh"]


def test_writing_a_segment_deleted_meanwhile_names_the_deletion_and_writes_nothing(cine):
    from SAMUSALib.errors import PromptError

    browser, target, lesion, other = cine
    target.node.GetSegmentation().RemoveSegment(other)
    with pytest.raises(PromptError, match="was deleted.*choose a segment or add one"):
        target.write(other, {3: _mask(3, 7)})
    assert all(target.item(frame).GetSegmentation().GetSegment(other) is None for frame in range(FRAMES))
    np.testing.assert_array_equal(target.read(lesion, [3])[3], _mask(3, 1))


def test_a_new_cine_segmentation_that_reuses_a_closed_one_s_id_is_mirrored():
    """Node IDs start again after the scene is cleared; a mirror of the old node (kept alive
    by any reference to it) must not pass for the new node's."""
    headless = mrml.headless_scene()
    kept = []
    for _ in range(2):
        browser, _, _ = mrml.sequence_from_array(headless.scene, np.zeros((FRAMES, ROWS, COLS), np.uint8), None, "cine")
        browser.SetSelectedItemNumber(1)
        node = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "cine segmentation")
        target = mrml.target_for(mrml.input_from_node(browser), node)
        segment = target.ensure_segment(name="lesion")
        kept.append(node)  # the first one outlives its scene
        if len(kept) == 1:
            headless.scene.Clear(0)
    assert kept[0].GetID() == kept[1].GetID()  # the ID was reused
    node.GetSegmentation().GetSegment(segment).SetName("tumour")
    browser.SetSelectedItemNumber(3)
    assert _names(node) == ["tumour"]
    headless.scene.Clear(1)
