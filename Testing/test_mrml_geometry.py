"""Slicer nodes <-> frames, prompts and masks, through real MRML (PyPI slicer-core), headless.

Geometry is checked against paths independent of SAMUSALib.mrml: the volume's IJK-to-RAS
matrix written by hand, Slicer's own labelmap export, and world positions computed here.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

try:
    import slicer
    import vtk
except ImportError as error:  # pragma: no cover - CI installs slicer-core (requirements.txt)
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip(f"slicer-core is not installed ({error}): pip install -r requirements.txt", allow_module_level=True)

from SAMUSALib import mrml
from SAMUSALib.errors import InputError, PromptError
from SAMUSALib.frames import Geometry
from SAMUSALib.phantoms import rotation_matrix

pytestmark = pytest.mark.mrml

SHAPE = (7, 9, 11)  # (K, J, I)
SPACING = (0.45, 0.7, 2.5)  # (I, J, K) mm
ORIGIN_LPS = (-12.0, 30.5, 7.25)


@pytest.fixture
def scene():
    headless = mrml.headless_scene()
    yield headless.scene
    headless.scene.Clear(1)


def oblique_geometry() -> Geometry:
    direction = rotation_matrix("z", 25.0) @ rotation_matrix("x", -15.0) @ rotation_matrix("y", 10.0)
    return Geometry(SPACING, ORIGIN_LPS, tuple(direction.ravel()))


def numbered_volume() -> np.ndarray:
    """Every voxel holds its own flat index, so any shift or flip shows."""
    return np.arange(np.prod(SHAPE), dtype=np.int32).reshape(SHAPE)


def ras_of(geometry: Geometry, ijk) -> np.ndarray:
    return (geometry.ijk_to_ras() @ np.append(np.asarray(ijk, dtype=float), 1.0))[:3]


def test_volume_node_geometry_is_the_matrix_slicer_holds(scene):
    geometry = oblique_geometry()
    node = mrml.volume_from_array(scene, numbered_volume(), geometry, "oblique")
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    slicer_matrix = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    np.testing.assert_allclose(slicer_matrix, geometry.ijk_to_ras(), atol=1e-9)
    np.testing.assert_allclose(node.GetSpacing(), SPACING, atol=1e-9)

    source = mrml.input_from_node(node, axis="J")
    assert source.kind == "volume" and source.axis == "J"
    np.testing.assert_array_equal(source.frames.array, numbered_volume())
    back = source.frames.geometry
    np.testing.assert_allclose(back.spacing, geometry.spacing, atol=1e-9)
    np.testing.assert_allclose(back.origin, geometry.origin, atol=1e-9)
    np.testing.assert_allclose(back.direction, geometry.direction, atol=1e-9)
    assert source.num_frames == SHAPE[1] and source.frames.frame_shape == (SHAPE[0], SHAPE[2])


@pytest.mark.parametrize("axis", ["K", "J", "I"])
def test_masks_round_trip_through_an_oblique_anisotropic_volume(scene, axis):
    geometry = oblique_geometry()
    volume = mrml.volume_from_array(scene, numbered_volume(), geometry, "oblique")
    source = mrml.input_from_node(volume, axis=axis)
    target = mrml.target_for(source)
    segment = target.ensure_segment(name="lesion")

    rng = np.random.default_rng(7)
    masks = {f: rng.random(source.frames.frame_shape) > 0.5 for f in range(source.num_frames)}
    target.write(segment, masks)

    # Independent path: Slicer exports the segment into a labelmap on the volume's grid.
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(target.node, ids, labelmap, volume)
    exported = mrml.geometry._image_array(labelmap.GetImageData())
    assert exported.shape == SHAPE
    expected = source.frames.assemble(masks, dtype=bool)
    np.testing.assert_array_equal(exported > 0, expected)
    np.testing.assert_allclose(mrml.ijk_to_ras_of(labelmap), geometry.ijk_to_ras(), atol=1e-9)

    # and back through the bridge, frame by frame
    read = target.read(segment, range(source.num_frames))
    for frame, mask in masks.items():
        np.testing.assert_array_equal(read[frame], mask)


@pytest.mark.parametrize("axis", ["K", "J", "I"])
def test_markups_ras_to_frame_pixels_is_exact(scene, axis):
    geometry = oblique_geometry()
    volume = mrml.volume_from_array(scene, numbered_volume(), geometry, "oblique")
    source = mrml.input_from_node(volume, axis=axis)
    target = mrml.target_for(source)
    segment = target.ensure_segment(name="lesion")
    node = mrml.prompt_node(target, segment, "boundary")
    negative = mrml.prompt_node(target, segment, "negative")
    plane = {"K": (0, 1, 2), "J": (0, 2, 1), "I": (1, 2, 0)}[axis]  # ijk index of x, y, frame
    expected = {}
    rng = np.random.default_rng(3)
    h, w = source.frames.frame_shape
    for frame in (0, source.num_frames - 1, source.num_frames // 2):
        x, y = rng.uniform(-0.4, w - 0.6), rng.uniform(-0.4, h - 0.6)
        ijk = np.zeros(3)
        ijk[list(plane)] = (x, y, frame)
        mrml.add_prompt_point(node, ras_of(geometry, ijk))
        expected[frame] = (x, y)
    mrml.add_prompt_point(negative, ras_of(geometry, np.where(np.arange(3) == plane[2], 1.0, 0.0)))

    prompts = mrml.frame_prompts(source, mrml.prompt_nodes(target, segment))
    assert sorted(prompts) == sorted(set(expected) | {1})
    for frame, (x, y) in expected.items():
        np.testing.assert_allclose(prompts[frame].boundary, [[x, y]], atol=1e-9)
    np.testing.assert_allclose(prompts[1].negative, [[0.0, 0.0]], atol=1e-9)


def test_points_go_through_the_volume_transform(scene):
    geometry = oblique_geometry()
    volume = mrml.volume_from_array(scene, numbered_volume(), geometry, "moved")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    to_parent = np.eye(4)
    to_parent[:3, :3] = rotation_matrix("y", 30.0)
    to_parent[:3, 3] = (5.0, -7.0, 11.0)
    transform.SetMatrixTransformToParent(mrml.geometry._vtk_matrix(to_parent))
    volume.SetAndObserveTransformNodeID(transform.GetID())
    source = mrml.input_from_node(volume)
    target = mrml.target_for(source)
    assert target.node.GetParentTransformNode() is transform  # masks land where the image is
    segment = target.ensure_segment()
    node = mrml.prompt_node(target, segment, "positive")
    world = (to_parent @ np.append(ras_of(geometry, (4.25, 3.5, 2.0)), 1.0))[:3]
    node.SetAndObserveTransformNodeID(None)
    mrml.add_prompt_point(node, world)
    prompts = mrml.frame_prompts(source, {"positive": node})
    np.testing.assert_allclose(prompts[2].positive, [[4.25, 3.5]], atol=1e-9)


def test_point_outside_the_volume_is_refused_with_a_reason(scene):
    geometry = oblique_geometry()
    volume = mrml.volume_from_array(scene, numbered_volume(), geometry)
    source = mrml.input_from_node(volume)
    target = mrml.target_for(source)
    segment = target.ensure_segment()
    node = mrml.prompt_node(target, segment, "boundary")
    mrml.add_prompt_point(node, ras_of(geometry, (2.0, 2.0, SHAPE[0] + 3)))
    with pytest.raises(PromptError, match="outside the image's slices"):
        mrml.frame_prompts(source, {"boundary": node})


def test_cine_sequence_points_carry_their_frame(scene):
    frames = np.random.default_rng(0).integers(0, 255, (6, 12, 16), dtype=np.uint8)
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag([-0.3, -0.25, 1.0])
    matrix[:3, 3] = (40.0, -12.5, 3.0)
    browser, sequence, proxy = mrml.sequence_from_array(scene, frames, matrix, "cine")
    source = mrml.input_from_node(proxy)  # the proxy volume stands for the cine
    assert source.kind == "sequence" and source.num_frames == 6
    np.testing.assert_array_equal(source.frames.array, frames)
    assert mrml.input_from_node(browser).fingerprint == source.fingerprint

    target = mrml.target_for(source)
    segment = target.ensure_segment()
    node = mrml.prompt_node(target, segment, "boundary")
    world = (matrix @ np.array([5.5, 7.25, 0.0, 1.0]))[:3]
    mrml.add_prompt_point(node, world, frame=4)
    mrml.add_prompt_point(node, world, frame=1)
    prompts = mrml.frame_prompts(source, {"boundary": node})
    assert sorted(prompts) == [1, 4]
    np.testing.assert_allclose(prompts[4].boundary, [[5.5, 7.25]], atol=1e-9)

    mrml.add_prompt_point(node, world)  # no frame stamp: ambiguous in a cine
    with pytest.raises(PromptError, match="has no frame"):
        mrml.frame_prompts(source, {"boundary": node})


def test_rgb_cine_sequence_and_rgb_volume(scene):
    rgb = np.random.default_rng(1).integers(0, 255, (4, 10, 14, 3), dtype=np.uint8)
    _, _, proxy = mrml.sequence_from_array(scene, rgb, None, "colour cine")
    source = mrml.input_from_node(proxy)
    assert source.frames.is_rgb and source.frames.array.shape == (4, 10, 14, 3)
    np.testing.assert_array_equal(source.frames.array, rgb)

    volume = mrml.volume_from_array(scene, rgb, None, "colour volume")
    assert volume.IsA("vtkMRMLVectorVolumeNode")
    one = mrml.input_from_node(volume)
    assert one.kind == "volume" and one.frames.is_rgb and one.num_frames == 4
    with pytest.raises(InputError, match="RGB"):
        mrml.input_from_node(volume, axis="I")


def _draw_box(node, first, second):
    """What Slicer's ROI place widget does for a box drawn in a slice view: two corners,
    which the ROI node turns into its centre and size."""
    mrml.add_prompt_point(node, first)
    mrml.add_prompt_point(node, second)


def test_a_box_is_an_roi_projected_on_its_frame(scene):
    """Issue 16 item 4: a box is a markups ROI (a rectangle), read in IJK through the
    volume's geometry (here flipped and anisotropic), on the slice its centre lies on."""
    geometry = Geometry((0.5, 0.8, 1.0), direction=np.diag([-1.0, -1.0, 1.0]))
    volume = mrml.volume_from_array(scene, np.zeros((3, 20, 30), np.uint8), geometry)
    source = mrml.input_from_node(volume)
    target = mrml.target_for(source)
    segment = target.ensure_segment()
    roi = mrml.prompt_node(target, segment, "box")
    assert roi.IsA("vtkMRMLMarkupsROINode") and mrml.box_nodes(target, segment) == [roi]
    assert mrml.prompt_node(target, segment, "box") is roi  # not placed yet: the next box goes here
    mrml.add_prompt_point(roi, ras_of(geometry, (20.0, 3.0, 1.0)))
    assert mrml.roi_box(source, roi) is None  # its first corner: still being drawn
    assert mrml.frame_prompts(source, {}, [roi]) == {}
    mrml.add_prompt_point(roi, ras_of(geometry, (4.0, 15.0, 1.0)))
    assert roi.GetNumberOfControlPoints() == 1  # the ROI keeps its centre (and a size)
    frame, box = mrml.roi_box(source, roi)
    assert frame == 1 and box == pytest.approx((4.0, 3.0, 20.0, 15.0))
    assert mrml.frame_prompts(source, {}, [roi])[1].box == pytest.approx((4.0, 3.0, 20.0, 15.0))
    roi.SetSize(4.0, 4.0, 1.0)  # resized by its handles: 8 x 5 pixels around the same centre
    assert mrml.roi_box(source, roi)[1] == pytest.approx((8.0, 6.5, 16.0, 11.5))

    assert mrml.prompt_node(target, segment, "box") is not roi  # placed: the next box gets a new ROI
    again = mrml.prompt_node(target, segment, "box")
    _draw_box(again, ras_of(geometry, (25.0, 10.0, 1.2)), ras_of(geometry, (35.0, 18.0, 1.2)))  # half off the image
    assert mrml.place_box(source, again) == 1
    assert roi.GetScene() is None, "the frame's old box was not replaced"
    assert mrml.point_frame(again, 0) == 1
    assert mrml.frame_prompts(source, {}, mrml.box_nodes(target, segment))[1].box == pytest.approx((25.0, 10.0, 29.5, 18.0))

    off = mrml.prompt_node(target, segment, "box")
    _draw_box(off, ras_of(geometry, (40.0, 2.0, 0.0)), ras_of(geometry, (50.0, 9.0, 0.0)))
    with pytest.raises(PromptError, match="outside the image"):
        mrml.place_box(source, off)
    assert again.GetScene() is not None  # a refused box replaces nothing
    assert mrml.remove_prompts(source, [off], frame=0) == 1 and off.GetScene() is None  # off the image: on no frame, goes
    assert mrml.remove_prompts(source, mrml.box_nodes(target, segment), frame=1) == 1
    assert mrml.box_nodes(target, segment) == []


def test_a_box_on_a_cine_is_on_the_frame_it_was_drawn_on(scene):
    frames = np.zeros((4, 10, 12), np.uint8)
    browser, _, proxy = mrml.sequence_from_array(scene, frames, None, "cine")
    source = mrml.input_from_node(browser)
    target = mrml.target_for(source)
    segment = target.ensure_segment()
    roi = mrml.prompt_node(target, segment, "box")
    _draw_box(roi, (2.0, 1.0, 0.0), (6.0, 5.0, 0.0))
    with pytest.raises(PromptError, match="has no frame"):
        mrml.frame_prompts(source, {}, [roi])  # in a cine the frame is the one it was drawn on
    assert mrml.place_box(source, roi, frame=2) == 2
    assert mrml.frame_prompts(source, {}, [roi])[2].box == pytest.approx((2.0, 1.0, 6.0, 5.0))
    for shown, visible in ((1, False), (2, True)):
        mrml.show_points_of_frame(source, mrml.existing_prompt_nodes(target.node, segment), shown)
        assert bool(roi.GetDisplayVisibility()) is visible


def test_prompt_nodes_are_coloured_by_type_and_found_by_attribute(scene):
    volume = mrml.volume_from_array(scene, np.zeros((3, 8, 8), np.uint8))
    target = mrml.target_for(mrml.input_from_node(volume))
    segment = target.ensure_segment(name="vessel")
    nodes = mrml.prompt_nodes(target, segment, create=True)
    assert set(nodes) == set(mrml.POINT_KINDS)
    nodes["box"] = mrml.prompt_node(target, segment, "box")
    assert set(nodes) == set(mrml.PROMPT_KINDS)
    colours = {kind: tuple(node.GetDisplayNode().GetSelectedColor()) for kind, node in nodes.items()}
    assert len(set(colours.values())) == len(mrml.PROMPT_KINDS)
    for kind, node in nodes.items():
        assert colours[kind] == pytest.approx(mrml.PROMPT_COLORS[kind])
        assert mrml.prompt_node(target, segment, kind, create=False) is node
    assert nodes["positive"].GetName() == "vessel region+"
    other = target.ensure_segment(name="other")
    assert mrml.prompt_nodes(target, other) == {}


def test_a_cine_s_fingerprint_follows_voxels_geometry_and_items_without_reading_them(scene, monkeypatch):
    """Issue 16 (long cines): every click checks that the cine is unchanged. The check uses
    each item's modification stamps, not its matrix or buffer address, and still sees a
    voxel edit, a new geometry and a replaced item; browsing the cine changes nothing."""
    from SAMUSALib.mrml import inputs

    frames = np.zeros((4, 6, 8), np.uint8)
    browser, sequence, proxy = mrml.sequence_from_array(scene, frames, None, "cine")
    before = mrml.input_fingerprint(browser)
    monkeypatch.setattr(inputs, "ijk_to_ras_of", lambda node: pytest.fail("the check read an item's matrix"))
    browser.SetSelectedItemNumber(2)
    browser.SetSelectedItemNumber(0)
    assert mrml.input_fingerprint(proxy) == before, "browsing the cine changed its fingerprint"
    item = sequence.GetNthDataNode(1)
    item.GetImageData().Modified()  # voxels edited in place (as arrayFromVolumeModified does)
    edited = mrml.input_fingerprint(browser)
    assert edited != before
    item.SetSpacing(0.5, 0.5, 1.0)
    moved = mrml.input_fingerprint(browser)
    assert moved != edited
    replacement = vtk.vtkImageData()
    replacement.DeepCopy(item.GetImageData())
    item.SetAndObserveImageData(replacement)
    assert mrml.input_fingerprint(browser) != moved
