"""Writing masks into Slicer segmentations, headless (PyPI slicer-core): a cine in a
sequence browser gets a segmentation sequence in the same browser; a write touches one
segment on the frames given, nothing else; undo state is saved before every write."""

from __future__ import annotations

import os

import numpy as np
import pytest

try:
    import slicer  # noqa: F401
    import vtk
except ImportError as error:  # pragma: no cover - CI installs slicer-core (requirements.txt)
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip(f"slicer-core is not installed ({error}): pip install -r requirements.txt", allow_module_level=True)

from SAMUSALib import mrml
from SAMUSALib.errors import InputError
from SAMUSALib.frames import Geometry
from SAMUSALib.phantoms import rotation_matrix

pytestmark = pytest.mark.mrml

T, H, W = 6, 12, 16


@pytest.fixture
def headless():
    headless = mrml.headless_scene()
    yield headless
    headless.scene.Clear(1)


def cine_matrix() -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_matrix("z", 12.0) @ np.diag([-0.3, -0.25, 1.0])
    matrix[:3, 3] = (40.0, -12.5, 3.0)
    return matrix


def random_masks(seed: int, frames, shape=(H, W)) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f: rng.random(shape) > 0.6 for f in frames}


def raw_item_mask(item, segment_id: str, matrix: np.ndarray) -> np.ndarray:
    """A segment's voxels read straight from the item's labelmap (no resampling): its
    image-to-world matrix must be the frame's, and its extent places it in the frame."""
    labelmap = slicer.vtkOrientedImageData()
    item.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    to_world = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(to_world)
    np.testing.assert_allclose(mrml.geometry._matrix(to_world), matrix, atol=1e-9)
    out = np.zeros((H, W), bool)
    i0, i1, j0, j1, k0, k1 = labelmap.GetExtent()
    if i1 >= i0 and j1 >= j0 and labelmap.GetPointData().GetScalars() is not None:
        assert (k0, k1) == (0, 0)
        values = mrml.geometry._image_array(labelmap)[0] > 0
        out[j0 : j1 + 1, i0 : i1 + 1] = values
    return out


def test_cine_in_segmentation_sequence_out(headless):
    scene = headless.scene
    frames = np.random.default_rng(0).integers(0, 255, (T, H, W), dtype=np.uint8)
    browser, sequence, proxy = mrml.sequence_from_array(scene, frames, cine_matrix(), "cine")
    source = mrml.input_from_node(browser)
    target = mrml.target_for(source)
    assert isinstance(target, mrml.SequenceTarget)
    segments = target.sequence
    assert browser.IsSynchronizedSequenceNodeID(segments.GetID())
    assert browser.GetProxyNode(segments) is target.node
    assert segments.GetNumberOfDataNodes() == T
    assert [segments.GetNthIndexValue(i) for i in range(T)] == [sequence.GetNthIndexValue(i) for i in range(T)]
    assert browser.GetSaveChanges(segments)

    lv = target.ensure_segment(name="LV")
    masks = random_masks(1, range(T))
    target.write(lv, masks)
    for t in range(T):
        np.testing.assert_array_equal(raw_item_mask(segments.GetNthDataNode(t), lv, cine_matrix()), masks[t])

    # Scrolling the cine shows each frame's mask in the proxy segmentation.
    for t in (3, 0, 5):
        browser.SetSelectedItemNumber(t)
        shown = mrml.targets._read_segment(target.node, lv, (1, H, W), cine_matrix())[0]
        np.testing.assert_array_equal(shown, masks[t])

    # A second target for the same nodes finds the same sequence, not a new one.
    again = mrml.target_for(mrml.input_from_node(proxy), target.node)
    assert again.sequence is segments
    assert scene.GetNodesByClass("vtkMRMLSequenceNode").GetNumberOfItems() == 2


def test_current_frame_write_shows_at_once(headless):
    frames = np.zeros((T, H, W), np.uint8)
    browser, _, _ = mrml.sequence_from_array(headless.scene, frames, cine_matrix())
    browser.SetSelectedItemNumber(2)
    source = mrml.input_from_node(browser)
    assert source.current_frame() == 2
    target = mrml.target_for(source)
    lv = target.ensure_segment()
    mask = random_masks(4, [2])[2]
    target.write(lv, {2: mask})
    np.testing.assert_array_equal(mrml.targets._read_segment(target.node, lv, (1, H, W), cine_matrix())[0], mask)
    browser.SetSelectedItemNumber(3)
    browser.SetSelectedItemNumber(2)  # the proxy change was saved back identically
    np.testing.assert_array_equal(mrml.targets._read_segment(target.node, lv, (1, H, W), cine_matrix())[0], mask)


def test_existing_segmentation_becomes_the_proxy(headless):
    scene = headless.scene
    browser, _, _ = mrml.sequence_from_array(scene, np.zeros((T, H, W), np.uint8), cine_matrix())
    mine = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my segmentation")
    kept = mrml.add_segment(mine, "kept")
    target = mrml.target_for(mrml.input_from_node(browser), mine)
    assert target.node is mine and browser.GetProxyNode(target.sequence) is mine
    for t in range(T):  # its segments exist (empty) in every frame
        assert target.sequence.GetNthDataNode(t).GetSegmentation().GetSegment(kept) is not None


def test_a_write_touches_one_segment_on_the_given_frames_sequence(headless):
    browser, _, _ = mrml.sequence_from_array(headless.scene, np.zeros((T, H, W), np.uint8), cine_matrix())
    target = mrml.target_for(mrml.input_from_node(browser))
    a, b = target.ensure_segment(name="A"), target.ensure_segment(name="B")
    first_a, first_b = random_masks(10, range(T)), random_masks(11, range(T))
    target.write(a, first_a)
    target.write(b, first_b)

    new = random_masks(12, [2, 3])  # overlaps B: B must not lose voxels
    target.write(a, new)
    after_a, after_b = target.read(a, range(T)), target.read(b, range(T))
    for t in range(T):
        np.testing.assert_array_equal(after_b[t], first_b[t])
        np.testing.assert_array_equal(after_a[t], new[t] if t in new else first_a[t])


def test_a_write_touches_one_segment_on_the_given_frames_volume(headless):
    geometry = Geometry((0.4, 0.6, 1.5), (3.0, -2.0, 8.0), tuple((rotation_matrix("x", 20.0)).ravel()))
    volume = mrml.volume_from_array(headless.scene, np.zeros((5, H, W), np.uint8), geometry)
    target = mrml.target_for(mrml.input_from_node(volume, axis="K"))
    a, b = target.ensure_segment(name="A"), target.ensure_segment(name="B")
    first_a, first_b = random_masks(20, range(5)), random_masks(21, range(5))
    target.write(a, first_a)
    target.write(b, first_b)
    new = random_masks(22, [1, 4])
    target.write(a, new)
    np.testing.assert_array_equal(target.read_all(b), np.stack([first_b[f] for f in range(5)]))
    np.testing.assert_array_equal(target.read_all(a), np.stack([new.get(f, first_a[f]) for f in range(5)]))


def test_window_is_stored_per_segment_and_survives_frame_changes(headless):
    browser, _, _ = mrml.sequence_from_array(headless.scene, np.zeros((T, H, W), np.uint8), cine_matrix())
    target = mrml.target_for(mrml.input_from_node(browser))
    a, b = target.ensure_segment(), target.ensure_segment()
    target.set_window(a, (1, 4))
    browser.SetSelectedItemNumber(5)
    assert target.window(a).start == 1 and target.window(a).end == 4
    assert target.window(b) is None
    target.set_window(a, None)
    assert target.window(a) is None
    with pytest.raises(Exception, match="past the last frame"):
        target.set_window(a, (2, T))


def test_undo_restores_the_written_frames_and_removes_the_click(headless):
    browser, _, _ = mrml.sequence_from_array(headless.scene, np.zeros((T, H, W), np.uint8), cine_matrix())
    target = mrml.target_for(mrml.input_from_node(browser))
    a, b = target.ensure_segment(), target.ensure_segment()
    before_a, before_b = random_masks(30, range(T)), random_masks(31, range(T))
    target.write(a, before_a)
    target.write(b, before_b)
    node = mrml.prompt_node(target, a, "boundary")
    index = mrml.add_prompt_point(node, (0.0, 0.0, 0.0), frame=2)

    stack = mrml.UndoStack(levels=2)
    step = stack.begin(target, a, "click")
    step.prompt_point = (node, node.GetNthControlPointID(index))
    new = random_masks(32, [2, 3])
    step.keep(new)  # state saved before the write
    assert sorted(step.before) == [2, 3]
    target.write(a, new)
    stack.push(step)
    assert len(stack) == 1

    stack.undo()
    assert node.GetNumberOfControlPoints() == 0
    after_a, after_b = target.read(a, range(T)), target.read(b, range(T))
    for t in range(T):
        np.testing.assert_array_equal(after_a[t], before_a[t])
        np.testing.assert_array_equal(after_b[t], before_b[t])
    assert stack.undo() is None


def test_undo_stack_keeps_a_bounded_number_of_steps(headless):
    volume = mrml.volume_from_array(headless.scene, np.zeros((3, H, W), np.uint8))
    target = mrml.target_for(mrml.input_from_node(volume))
    a = target.ensure_segment()
    stack = mrml.UndoStack(levels=2)
    for seed in range(4):
        step = stack.begin(target, a, f"write {seed}")
        masks = random_masks(seed, [seed % 3])
        step.keep(masks)
        target.write(a, masks)
        stack.push(step)
    assert len(stack) == 2
    empty = stack.begin(target, a, "nothing")
    stack.push(empty)  # a step that saved nothing is not an undo level
    assert len(stack) == 2


def test_sequence_input_refuses_multi_slice_frames(headless):
    scene = headless.scene
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    for t in range(2):
        item = slicer.vtkMRMLScalarVolumeNode()
        item.SetAndObserveImageData(mrml.geometry._new_image(np.zeros((3, H, W), np.uint8)))
        sequence.SetDataNodeAtValue(item, str(t))
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.SetSelectedItemNumber(0)
    with pytest.raises(InputError, match="single-frame"):
        mrml.input_from_node(browser)
