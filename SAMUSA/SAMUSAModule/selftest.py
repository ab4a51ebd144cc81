"""SAMUSATest, the module's self-test (Slicer finds it as ``SAMUSA.SAMUSATest``: SAMUSA.py
imports it), run by "Reload and Test", ``slicer.testing.runUnitTest`` and ctest."""

import vtk

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from SAMUSAModule.logic import SAMUSALogic


class SAMUSATest(ScriptedLoadableModuleTest):
    """The widget smoke test (select the module, its parameter node, a prompt button that
    places a point), then SAMUSALogic on a synthetic cine and a synthetic volume: where masks
    go (segmentation sequence / node), their geometry, the temporal-window semantics.

    The plumbing needs only numpy (bundled with Slicer). The model steps need PyTorch and
    SAM 2: on a Slicer without them (as on Slicer's test machines) they are skipped, and
    the test says so (`skipped`). With them it runs in full, with the untrained test-tiny,
    whose masks mean nothing: they are compared with what the engine computed."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.skipped = []
        for test in (self.test_widget_smoke, self.test_cine_sequence, self.test_volume):
            self.setUp()
            test()
        if self.skipped:
            self.delayDisplay("SAMUSA self-test passed; skipped: " + "; ".join(self.skipped))
        else:
            self.delayDisplay("SAMUSA self-test passed in full")

    def _logic(self):
        return SAMUSALogic()

    def _canRunModel(self, what: str) -> bool:
        """Whether test-tiny can run here; if not, note what is skipped and why."""
        missing = SAMUSALogic.missingDependencies()
        if not missing:
            return True
        if not hasattr(self, "skipped"):
            self.skipped = []
        self.skipped.append(f"{what} (needs {', '.join(missing)})")
        self.delayDisplay(f"Skipping {what}: {', '.join(missing)} not installed")
        return False

    def test_widget_smoke(self):
        """Select the module, take its widget, check the parameter node, place a point with a prompt button."""
        import numpy as np

        from SAMUSALib import mrml

        self.delayDisplay("Widget smoke test")
        browser, _sequence, proxy = mrml.sequence_from_array(
            slicer.mrmlScene, np.zeros((4, 16, 20), np.uint8), None, "SAMUSA smoke cine")
        slicer.util.selectModule("SAMUSA")
        widget = slicer.util.getModuleWidget("SAMUSA")
        self.assertIsNotNone(widget._parameterNode, "the module has no parameter node")
        parameters = widget._parameterNode
        parameters.inputNode = browser
        parameters.segmentOnClick = False  # placing, not segmenting: that needs the model
        browser.SetSelectedItemNumber(2)
        widget.ui.boundaryButton.click()
        self.assertTrue(widget.ui.boundaryButton.checked, "the boundary tool did not start placing")
        node = slicer.mrmlScene.GetNodeByID(slicer.app.applicationLogic().GetSelectionNode().GetActivePlaceNodeID())
        self.assertTrue(widget.logic.isPromptNode(node, parameters.segmentation, parameters.segmentID, "boundary"))
        ijk_to_ras = mrml.ijk_to_ras_of(proxy)
        center = list((ijk_to_ras @ np.array([10.0, 8.0, 0.0, 1.0]))[:3])
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None and layoutManager.sliceWidget("Red") is not None:
            red = layoutManager.sliceWidget("Red")
            red.sliceLogic().GetSliceNode().JumpSliceByCentering(*center)
            view = red.sliceView()
            slicer.util.clickAndDrag(view, start=(view.width // 2, view.height // 2), end=(view.width // 2, view.height // 2), steps=1)
        else:  # no views (a headless test run): what the place widget does on a click
            node.AddControlPointWorld(vtk.vtkVector3d(*center))
        slicer.app.processEvents()
        self.assertEqual(node.GetNumberOfControlPoints(), 1, "the click placed no point")
        self.assertEqual(mrml.point_frame(node, 0), 2, "the point is not stamped with the frame it was placed on")
        widget.ui.boundaryButton.click()  # again: stop placing
        self.assertFalse(widget.ui.boundaryButton.checked)
        self.delayDisplay("Widget smoke test passed")

    def test_cine_sequence(self):
        import numpy as np

        from SAMUSALib import mrml
        from SAMUSALib.phantoms import cine_phantom

        self.delayDisplay("Building a synthetic cine (10 frames) as a sequence of single-frame volumes")
        logic = self._logic()
        phantom = cine_phantom(num_frames=10, height=48, width=64, seed=3, visible={1: (2, 8), 2: (0, 9)})
        matrix = np.eye(4)
        matrix[:3, :3] = np.diag([-0.3, -0.3, 1.0])
        matrix[:3, 3] = (12.0, 20.0, 0.0)
        browser, sequence, proxy = mrml.sequence_from_array(slicer.mrmlScene, phantom.frames, matrix, "SAMUSA test cine")

        segmentation = logic.ensureSegmentation(proxy, None)
        lv = logic.ensureSegment(proxy, segmentation)
        other = logic.ensureSegment(proxy, segmentation)
        target = logic.target(proxy, segmentation)
        bystander = {f: np.random.default_rng(f).random((48, 64)) > 0.7 for f in range(10)}
        target.write(other, bystander)

        self.delayDisplay("Placing boundary and region prompts on frame 5, window 2-8")
        mask = phantom.masks[1][5]
        ys, xs = np.nonzero(mask)
        boundary = logic.promptNode(proxy, segmentation, lv, "boundary")
        for x, y in ((xs.min(), ys.mean()), (xs.max(), ys.mean()), (xs.mean(), ys.min()), (xs.mean(), ys.max())):
            mrml.add_prompt_point(boundary, (matrix @ np.array([x, y, 0.0, 1.0]))[:3], frame=5)
        positive = logic.promptNode(proxy, segmentation, lv, "positive")
        mrml.add_prompt_point(positive, (matrix @ np.array([xs.mean(), ys.mean(), 0.0, 1.0]))[:3], frame=5)
        logic.setWindow(proxy, segmentation, lv, 2, 8)

        if not self._canRunModel("propagation through a cine"):
            self.assertEqual(target.read(other, range(10))[3].sum(), bystander[3].sum())
            return
        self.delayDisplay("Propagating with test-tiny")
        result = logic.propagate(proxy, segmentation, lv, "both", "test-tiny", "cpu")
        self.assertFalse(result.cancelled)
        self.assertEqual(sorted(result.frames_written), list(range(2, 9)))

        self.delayDisplay("Checking the segmentation sequence")
        segments = target.sequence
        self.assertTrue(browser.IsSynchronizedSequenceNodeID(segments.GetID()))
        self.assertEqual(segments.GetNumberOfDataNodes(), 10)
        self.assertIs(browser.GetProxyNode(segments), segmentation)
        _, session = logic.segmenter.session(proxy, model="test-tiny", device="cpu")
        objectId = logic.segmenter._objects[(segmentation.GetID(), lv)]
        written = target.read(lv, range(10))
        for frame in range(10):
            expected = session.mask(objectId, frame) if 2 <= frame <= 8 else np.zeros((48, 64), bool)
            np.testing.assert_array_equal(written[frame], expected, err_msg=f"frame {frame}")
            item = segments.GetNthDataNode(frame)
            np.testing.assert_allclose(mrml.ijk_to_ras_of(sequence.GetNthDataNode(frame)), matrix, atol=1e-9)
            labelmap = slicer.vtkOrientedImageData()
            item.GetBinaryLabelmapRepresentation(lv, labelmap)
            toWorld = vtk.vtkMatrix4x4()
            labelmap.GetImageToWorldMatrix(toWorld)
            np.testing.assert_allclose(mrml.geometry._matrix(toWorld), matrix, atol=1e-9)
        untouched = target.read(other, range(10))
        for frame in range(10):
            np.testing.assert_array_equal(untouched[frame], bystander[frame])

        self.delayDisplay("Scrolling the cine shows each frame's mask")
        for frame in (4, 0):
            browser.SetSelectedItemNumber(frame)
            slicer.app.processEvents()
            shown = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, lv, proxy)
            np.testing.assert_array_equal(shown[0] > 0, written[frame])

        self.delayDisplay("A segment renamed on the shown frame is renamed on every frame")
        segmentation.GetSegmentation().GetSegment(lv).SetName("left ventricle")
        for frame in (7, 0):
            browser.SetSelectedItemNumber(frame)
            slicer.app.processEvents()
            self.assertEqual(segmentation.GetSegmentation().GetSegment(lv).GetName(), "left ventricle")
            shown = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, lv, proxy)
            np.testing.assert_array_equal(shown[0] > 0, written[frame])

        self.assertTrue(logic.undo())
        self.assertFalse(target.read(lv, [5])[5].any())
        self.delayDisplay("Cine test passed")

    def test_volume(self):
        import numpy as np

        from SAMUSALib import mrml
        from SAMUSALib.phantoms import volume_phantom

        self.delayDisplay("Building a synthetic oblique, anisotropic 3D volume")
        logic = self._logic()
        phantom = volume_phantom(shape=(16, 24, 20), spacing=(0.9, 0.8, 1.6), radii_mm=(4.5, 4.0, 4.5), seed=2)
        volume = mrml.volume_from_array(slicer.mrmlScene, phantom.volume, phantom.geometry, "SAMUSA test volume")
        axis = "J"
        segmentation = logic.ensureSegmentation(volume, None, axis)
        lesion = logic.ensureSegment(volume, segmentation, "", axis)

        first, last = phantom.ranges[axis]
        middle = (first + last) // 2
        ks, is_ = np.nonzero(phantom.mask[:, middle, :])
        self.delayDisplay(f"Prompting slice {middle} along J, window {middle - 2}-{middle + 2}")
        positive = logic.promptNode(volume, segmentation, lesion, "positive", axis)
        ijk = np.array([is_.mean(), middle, ks.mean(), 1.0])
        mrml.add_prompt_point(positive, (phantom.geometry.ijk_to_ras() @ ijk)[:3])
        logic.setWindow(volume, segmentation, lesion, middle - 2, middle + 2, axis)
        if not self._canRunModel("propagation through a volume"):
            return
        result = logic.propagate(volume, segmentation, lesion, "both", "test-tiny", "cpu", axis)
        self.assertEqual(sorted(result.frames_written), list(range(middle - 2, middle + 3)))

        self.delayDisplay("Checking geometry through Slicer's own export")
        voxels = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, lesion, volume) > 0
        self.assertEqual(voxels.shape, phantom.volume.shape)
        outside = np.ones(voxels.shape, bool)
        outside[:, middle - 2 : middle + 3, :] = False
        self.assertFalse(voxels[outside].any(), "voxels written outside the window")
        _, session = logic.segmenter.session(volume, model="test-tiny", device="cpu", axis=axis)
        objectId = logic.segmenter._objects[(segmentation.GetID(), lesion)]
        for frame in range(middle - 2, middle + 3):
            np.testing.assert_array_equal(voxels[:, frame, :], session.mask(objectId, frame))
        self.delayDisplay("Volume test passed")
