"""SAMUSA.py run on Slicer 5.12.3's own Python layer (parameterNodeWrapper,
ScriptedLoadableModule, util, i18n) over slicer-core's MRML, loaded as Slicer's module
factory loads it; only Qt, CTK, the qMRML widgets and slicer.app are stood in for
(Testing/slicer_stand_in). The Widget is built by selecting the module, its buttons and
shortcuts are pressed, and SAMUSATest runs as written."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from SAMUSALib import mrml


pytestmark = pytest.mark.mrml

MODULE_FILE = Path(__file__).resolve().parent.parent / "SAMUSA" / "SAMUSA.py"


@pytest.fixture
def samusa(app):
    """(SAMUSA's Python module, the headless scene) for Logic-level tests."""
    session, module = app
    return module, session.headless


def test_self_test_cine_sequence(samusa):
    module, _ = samusa
    test = module.SAMUSATest("test_cine_sequence")
    test.setUp()
    test.test_cine_sequence()


def test_self_test_volume(samusa):
    module, _ = samusa
    test = module.SAMUSATest("test_volume")
    test.setUp()
    test.test_volume()


def test_logic_windows_frames_and_prompts(samusa):
    module, headless = samusa
    scene = headless.scene
    logic = module.SAMUSALogic()
    frames = np.random.default_rng(0).integers(0, 255, (6, 20, 24), dtype=np.uint8)
    browser, _, proxy = mrml.sequence_from_array(scene, frames, None, "cine")
    assert logic.isSequenceInput(proxy) and logic.browserOf(proxy) is browser
    assert logic.describeInput(proxy).startswith("6 frames of 24 x 20 pixels")
    assert logic.windowText(proxy, None, "") == "Window: all frames"

    segmentation = logic.ensureSegmentation(proxy, None)
    assert logic.ensureSegmentation(proxy, segmentation) is segmentation
    segment = logic.ensureSegment(proxy, segmentation)
    browser.SetSelectedItemNumber(4)
    assert logic.currentFrame(proxy) == 4
    logic.setWindowStart(proxy, segmentation, segment, 2)
    assert logic.window(proxy, segmentation, segment) == (2, 5)
    logic.setWindowEnd(proxy, segmentation, segment, 4)
    assert logic.windowText(proxy, segmentation, segment) == "Window: frames 2 to 4"
    logic.setWindowEnd(proxy, segmentation, segment, 1)  # before the start: the window moves with it
    assert logic.window(proxy, segmentation, segment) == (1, 1)
    logic.clearWindow(proxy, segmentation, segment)
    assert logic.window(proxy, segmentation, segment) is None

    node = logic.promptNode(proxy, segmentation, segment, "negative")
    assert logic.isPromptNode(node, segmentation, segment, "negative")
    assert not logic.isPromptNode(node, segmentation, segment, "positive")
    index = mrml.add_prompt_point(node, (3.0, 4.0, 0.0))
    assert logic.stampPoint(proxy, node, index) == 4 and mrml.point_frame(node, index) == 4
    assert logic.clearPrompts(proxy, segmentation, segment, frame=3) == 0
    assert logic.clearPrompts(proxy, segmentation, segment, frame=4) == 1
    assert node.GetNumberOfControlPoints() == 0
    assert logic.canUndo() and logic.undo()  # clearing is undone like any other action
    assert node.GetNumberOfControlPoints() == 1 and mrml.point_frame(node, 0) == 4
    assert not logic.canUndo()


def test_logic_current_frame_of_a_volume_follows_the_aligned_slice_view(samusa):
    module, headless = samusa
    scene = headless.scene
    logic = module.SAMUSALogic()
    volume = mrml.volume_from_array(scene, np.zeros((9, 10, 12), np.uint8), None, "volume")
    slices = {}
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        node.SetName(name)
        node.SetLayoutName(name)
        node.SetOrientation(orientation)
        slices[name] = node
    slices["Red"].SetSliceOffset(6.0)  # identity geometry: K = S
    assert logic.currentFrame(volume, "K") == 6
    slices["Yellow"].SetSliceOffset(-3.0)  # the sagittal normal points to the left here
    assert slices["Yellow"].GetSliceToRAS().GetElement(0, 3) == pytest.approx(3.0)
    assert logic.currentFrame(volume, "I") == 3  # I = R (identity IJK-to-RAS)


def test_dependencies_are_reported_in_words_and_pinned(samusa):
    module, _ = samusa
    logic = module.SAMUSALogic()
    assert logic.missingDependencies() == []  # the test environment has them all
    with mock.patch.object(importlib.util, "find_spec", lambda name: None):
        missing = logic.missingDependencies("litemedsam")
        assert "PyTorch" in missing and "SAM 2" in missing and "LiteMedSAM weights" in missing
        with pytest.raises(module.InstallError, match="not fully installed yet"):
            logic.requireDependencies()
    from SAMUSAModule.logic import SAM2_REQUIREMENT

    assert SAM2_REQUIREMENT == "sam2==1.1.0"
    status = logic.modelStatus("test-tiny")
    assert "untrained" in status


def test_slicer_finds_the_self_test_through_the_module_file(samusa):
    """SAMUSATest lives in SAMUSAModule/selftest.py: ctest's `slicer.testing.runUnitTest`
    loads the tests from the module named SAMUSA, and Reload and Test looks up
    `<module>.SAMUSATest`, so SAMUSA.py must hold the name (issue 15 item 4)."""
    import importlib
    import unittest

    import slicer

    module, _ = samusa
    names = [test.id() for suite in unittest.TestLoader().loadTestsFromName("SAMUSA") for test in suite]
    assert {"SAMUSAModule.selftest.SAMUSATest.test_widget_smoke", "SAMUSAModule.selftest.SAMUSATest.test_cine_sequence",
            "SAMUSAModule.selftest.SAMUSATest.test_volume"} <= set(names)
    instance = slicer.modules.SAMUSAInstance
    assert getattr(importlib.import_module(instance.__module__), instance.moduleName + "Test") is module.SAMUSATest
    assert slicer.util.getModuleLogic("SAMUSA").__class__ is module.SAMUSALogic  # the console's way in
