"""SAMUSA: interactive ultrasound segmentation with SAM2 in 3D Slicer.

Slicer's scripted module pattern, split by responsibility: this file holds what needs Qt
or the panel, `SAMUSA` (metadata) and `SAMUSAWidget` (wires the panel, the slice views and
the shortcuts to the Logic); the package SAMUSAModule/ beside it holds the rest:
- SAMUSAModule/parameters.py: constants, enums and `SAMUSAParameterNode`;
- SAMUSAModule/logic.py: `SAMUSALogic`, usable from the Python console with no GUI
  (translates nodes to SAMUSALib calls through `SAMUSALib.mrml`), and first-use install;
- SAMUSAModule/placing.py: the Widget's prompt tools (clicks in the slice views);
- SAMUSAModule/selftest.py: `SAMUSATest`, imported here so that Slicer finds it.
Slicer puts this file's folder on sys.path before loading it, so SAMUSAModule imports as a
package (a package, not sibling .py files: Slicer would try every .py file here as a module).

Nothing heavy is imported when Slicer starts: SAMUSALib is imported by the Logic on first
use, torch only when a model is loaded, and missing packages are installed only after the
user agreed (`SAMUSALogic.installDependencies`).
"""

import os
import sys
from typing import Optional

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

# A built extension ships SAMUSALib beside this file (both in qt-scripted-modules, which is
# on sys.path); a source checkout added through "Additional module paths" has it one level
# up, beside the SAMUSA folder.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_CHECKOUT, "SAMUSALib", "__init__.py")) and _CHECKOUT not in sys.path:
    sys.path.append(_CHECKOUT)

from SAMUSAModule.logic import InstallError, SAMUSALogic, slicerVersionProblem  # noqa: E402
from SAMUSAModule.parameters import (  # noqa: E402,F401  (re-exported: the module's public names)
    DEVICES,
    MODEL_IDS,
    Direction,
    PromptMode,
    SAMUSAParameterNode,
    SliceAxis,
)
from SAMUSAModule.placing import PromptPlacing  # noqa: E402
from SAMUSAModule.selftest import SAMUSATest  # noqa: E402,F401  (Slicer looks up SAMUSATest here)

SHORTCUTS = (
    # key, what it does (a SAMUSAWidget method name), shown in tooltips
    ("1", "useBoundaryPoints"),
    ("2", "useRegionPositive"),
    ("3", "useRegionNegative"),
    ("4", "useBox"),
    ("S", "onStartHere"),
    ("E", "onEndHere"),
    ("Return", "onSegmentFrame"),
    ("P", "onPropagate"),
    ("Escape", "onCancel"),
    ("Ctrl+Z", "onUndo"),
)
"""Keyboard shortcuts, active while the SAMUSA module is shown."""

UI_WIDGETS = {
    # every widget the code looks up in Resources/UI/SAMUSA.ui, with its class
    # (Testing/test_module_static.py checks this table against the .ui file and this file)
    "inputSelector": "qMRMLNodeComboBox",
    "axisComboBox": "QComboBox",
    "inputInfoLabel": "QLabel",
    "segmentationSelector": "qMRMLNodeComboBox",
    "segmentSelector": "qMRMLSegmentSelectorWidget",
    "addSegmentButton": "QToolButton",
    "modelComboBox": "QComboBox",
    "deviceComboBox": "QComboBox",
    "modelStatusLabel": "QLabel",
    "boundaryButton": "QToolButton",
    "regionPositiveButton": "QToolButton",
    "regionNegativeButton": "QToolButton",
    "boxButton": "QToolButton",
    "segmentOnClickCheckBox": "QCheckBox",
    "startHereButton": "QPushButton",
    "endHereButton": "QPushButton",
    "clearWindowButton": "QPushButton",
    "windowLabel": "QLabel",
    "clearFramePromptsButton": "QPushButton",
    "clearAllPromptsButton": "QPushButton",
    "segmentFrameButton": "QPushButton",
    "directionComboBox": "QComboBox",
    "propagateButton": "QPushButton",
    "progressBar": "QProgressBar",
    "cancelButton": "QPushButton",
    "undoButton": "QPushButton",
    "statusLabel": "QLabel",
}


#
# SAMUSA
#


class SAMUSA(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SAMUSA")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "Sequences", "Markups"]
        self.parent.contributors = ["SAMUSA developers"]
        self.parent.helpText = _(
            "Segment structures in ultrasound cine loops and 3D volumes with SAM2 from a few clicks: "
            "points on the structure's border (boundary points), inside/outside points, or a box, on one "
            "frame; mark the frames where the structure is visible (Start here / End here); then Propagate. "
            "Correct any frame with more clicks: only the frames that depend on it are recomputed.<br>"
            "Keys (while this module is shown): 1 boundary, 2 region +, 3 region −, 4 box, S start here, "
            "E end here, Enter segment this frame, P propagate, Esc cancel, Ctrl+Z undo."
        )
        self.parent.acknowledgementText = _(
            "SAMUSA uses SAM 2 (Meta, Apache-2.0). The module follows the 3D Slicer scripted module template."
        )

#
# SAMUSAWidget
#


class SAMUSAWidget(PromptPlacing, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wires the panel to the Logic; holds no state of its own besides Qt objects."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._shortcuts = []
        self._busy = False
        self._cancelRequested = False
        self._observedPromptNodes = []
        self._observedBrowser = None
        self._shownInput = None
        self._updatingGUI = False
        self._observedInteractionNode = None
        self._shownModel = None
        self._closedDuringRun = False
        self._importedDuringRun = False

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SAMUSA.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SAMUSALogic()
        self.logic.logCallback = self._showStatus

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartImportEvent, self.onSceneStartImport)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self.logic.mirrorCineSegments()  # a scene opened before the panel was

        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentSelected)
        self.ui.addSegmentButton.connect("clicked()", self.onAddSegment)
        for mode, name in self.PROMPT_BUTTONS.items():
            getattr(self.ui, name).connect("clicked()", lambda mode=mode: self.onPromptTool(mode))
        self.ui.startHereButton.connect("clicked()", self.onStartHere)
        self.ui.endHereButton.connect("clicked()", self.onEndHere)
        self.ui.clearWindowButton.connect("clicked()", self.onClearWindow)
        self.ui.clearFramePromptsButton.connect("clicked()", lambda: self.onClearPrompts(currentFrameOnly=True))
        self.ui.clearAllPromptsButton.connect("clicked()", lambda: self.onClearPrompts(currentFrameOnly=False))
        self.ui.segmentFrameButton.connect("clicked()", self.onSegmentFrame)
        self.ui.propagateButton.connect("clicked()", self.onPropagate)
        self.ui.cancelButton.connect("clicked()", self.onCancel)
        self.ui.undoButton.connect("clicked()", self.onUndo)
        self.ui.progressBar.setVisible(False)
        self._setupSegmentEditor()

        self._platformProblem = slicerVersionProblem()
        self.initializeParameterNode()
        if self._platformProblem:
            self._showStatus(self._platformProblem)

    EDITOR_EFFECTS = ("Paint", "Erase", "Scissors", "Draw", "Smoothing")
    """Segment Editor effects offered inside the panel: a hand-edited mask becomes that
    frame's mask prompt (SAMUSALib.mrml.InteractiveSegmenter), so propagation continues from it."""

    def _setupSegmentEditor(self) -> None:
        """An embedded Segment Editor (as SlicerNNInteractive does), on SAMUSA's segmentation,
        segment and image, so painting, erasing and scissors never leave the module."""
        import ctk

        box = ctk.ctkCollapsibleButton()
        box.text = _("Edit by hand")
        box.collapsed = True
        self.layout.addWidget(box)
        layout = qt.QVBoxLayout(box)
        self.segmentEditorWidget = slicer.qMRMLSegmentEditorWidget()
        self.segmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        self.segmentEditorWidget.effectNameOrder = list(self.EDITOR_EFFECTS)
        self.segmentEditorWidget.unorderedEffectsVisible = False
        self.segmentEditorWidget.segmentationNodeSelectorVisible = False
        self.segmentEditorWidget.sourceVolumeNodeSelectorVisible = False
        self.segmentEditorWidget.switchToSegmentationsButtonVisible = False
        layout.addWidget(self.segmentEditorWidget)
        self._segmentEditorNodeFor(slicer.mrmlScene)

    def _segmentEditorNodeFor(self, scene) -> None:
        node = scene.GetSingletonNode("SAMUSA", "vtkMRMLSegmentEditorNode")
        if node is None:
            node = slicer.vtkMRMLSegmentEditorNode()
            node.SetSingletonTag("SAMUSA")
            node = scene.AddNode(node)
        self.segmentEditorWidget.setMRMLSegmentEditorNode(node)

    def _updateSegmentEditor(self) -> None:
        p = self._parameterNode
        if p is None or not hasattr(self, "segmentEditorWidget"):
            return
        editor = self.segmentEditorWidget
        editor.setSegmentationNode(p.segmentation)
        editor.setSourceVolumeNode(self.logic.shownVolume(p.inputNode))
        if p.segmentID:
            editor.setCurrentSegmentID(p.segmentID)

    def cleanup(self) -> None:
        self._removeShortcuts()
        self._stopPlacing()
        self.removeObservers()

    def onReload(self) -> None:
        """Developer mode's Reload: Slicer re-runs only SAMUSA.py, so the SAMUSAModule package
        is dropped first and imported afresh with it."""
        for name in [m for m in sys.modules if m.split(".")[0] == "SAMUSAModule"]:
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()
        self._installShortcuts()
        self._observeInteractionNode(True)
        qt.QTimer.singleShot(0, self._updateModelStatus)

    def exit(self) -> None:
        self._removeShortcuts()
        self._stopPlacing()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            if self.hasObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified):
                self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._dropNodeObservers()

    def _dropNodeObservers(self) -> None:
        """Stop observing prompt nodes, the cine's browser and the interaction node (after
        exit and when the scene closes; only the scene's close events stay observed)."""
        self._dropPromptObservers()
        if self._observedBrowser is not None and self.hasObserver(
                self._observedBrowser, vtk.vtkCommand.ModifiedEvent, self._onFrameChanged):
            self.removeObserver(self._observedBrowser, vtk.vtkCommand.ModifiedEvent, self._onFrameChanged)
        self._observedBrowser = None
        self._shownInput = None

    def onSceneStartClose(self, caller, event) -> None:
        if self._busy:  # a run is in progress: it stops after the current frame and writes nothing more
            self._cancelRequested = self._closedDuringRun = True
            self.logic.cancel()
        self.setParameterNode(None)
        self._dropNodeObservers()
        self.logic.dropSession()

    def onSceneEndClose(self, caller, event) -> None:
        if hasattr(self, "segmentEditorWidget"):
            self._segmentEditorNodeFor(slicer.mrmlScene)
        if self.parent.isEntered:
            self.initializeParameterNode()
            self._observeInteractionNode(True)

    def onSceneStartImport(self, caller, event) -> None:
        """Let go of the panel while a scene is read: its selectors, bound to the parameter
        node, wrote back "no segmentation" when the saved parameter node named one not read
        yet, and the first click after reopening a scene started a second segmentation.
        (During a run the panel stays bound, the run holding it; it is taken up afresh after.)"""
        if not self._busy:
            self.setParameterNode(None)

    def onSceneEndImport(self, caller, event) -> None:
        self.logic.mirrorCineSegments()  # the session that saved the scene took its mirrors with it
        if self._busy:
            self._importedDuringRun = True  # taken back when the run ends (`_run`)
        elif self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputNode:
            browser = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSequenceBrowserNode")
            volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if browser or volume:
                self._parameterNode.inputNode = browser or volume

    def setParameterNode(self, inputParameterNode: Optional[SAMUSAParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            if self.hasObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified):
                self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    # ------------------------------------------------------------------ state shown in the panel
    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            if self.ui.segmentSelector.currentNode() != p.segmentation:
                self.ui.segmentSelector.setCurrentNode(p.segmentation)
            if p.segmentID and self.ui.segmentSelector.currentSegmentID() != p.segmentID:
                self.ui.segmentSelector.setCurrentSegmentID(p.segmentID)
        finally:
            self._updatingGUI = False
        if p.inputNode is not self._shownInput:
            self._shownInput = p.inputNode
            self._observeBrowser(p.inputNode)
            self.logic.showInput(p.inputNode)
            if self._leaveSegmentationOfAnotherImage():
                return  # modifying the parameter node has shown the rest
        self.ui.inputInfoLabel.text = self.logic.describeInput(p.inputNode, p.axis.value)
        for mode, name in self.PROMPT_BUTTONS.items():
            getattr(self.ui, name).checked = self._isPlacing(mode)
        self._updateWindowLabel()
        self._updateSegmentEditor()
        self._checkCanRun()
        self._warnIfModelChanged()
        if caller is not None and self.parent.isEntered:
            self._updateModelStatus()

    def _leaveSegmentationOfAnotherImage(self) -> bool:
        """A newly chosen image gets a new segmentation at its first prompt, unless the one
        chosen was made for it: the next click would otherwise rewrite the other image's
        masks (and prompts) on this one. Returns whether the choice was cleared."""
        p = self._parameterNode
        name = p.segmentation.GetName() if p.segmentation is not None else ""
        if not self.logic.segmentationOfAnotherImage(p.inputNode, p.segmentation, p.axis.value):
            return False
        self._stopPlacing()
        p.segmentID = ""
        p.segmentation = None
        self._showStatus(_("'{name}' belongs to the image shown before and is left as it is; "
                           "the first prompt on this image starts a new segmentation.").format(name=name))
        return True

    def _warnIfModelChanged(self) -> None:
        """Changing the model or the device drops the cached image features: say so."""
        p = self._parameterNode
        chosen = (p.modelName, p.device)
        if self._shownModel is not None and chosen != self._shownModel and self.logic.hasSession():
            self._showStatus(_("Model or device changed: the cached image features of this image will be "
                               "dropped, and the next click encodes its frames again with {model} on {device}.").format(
                model=p.modelName, device=p.device))
        self._shownModel = chosen

    RUN_INPUTS = ("inputSelector", "segmentationSelector", "segmentSelector", "addSegmentButton", "axisComboBox",
                  "modelComboBox", "deviceComboBox", "directionComboBox", "segmentOnClickCheckBox")
    """Controls that would change what a running computation computes: disabled during a run."""

    def _checkCanRun(self) -> None:
        p = self._parameterNode
        ready = p is not None and p.inputNode is not None and not self._platformProblem
        reason = self._platformProblem or ("" if ready else _("Choose an image first."))
        for name in ("segmentFrameButton", "propagateButton", "startHereButton", "endHereButton",
                     "clearWindowButton", "clearFramePromptsButton", "clearAllPromptsButton",
                     "boundaryButton", "regionPositiveButton", "regionNegativeButton", "boxButton"):
            button = getattr(self.ui, name)
            button.enabled = ready and not self._busy
        for name in self.RUN_INPUTS:
            getattr(self.ui, name).enabled = not self._busy and not self._platformProblem
        isSequence = p is not None and self.logic.isSequenceInput(p.inputNode)
        self.ui.axisComboBox.enabled = (not self._busy and p is not None and p.inputNode is not None and not isSequence)
        self.ui.propagateButton.toolTip = reason or _("Carry the masks through the segment's window (key P)")
        self.ui.cancelButton.enabled = self._busy
        self.ui.undoButton.enabled = not self._busy and self.logic.canUndo()
        if hasattr(self, "segmentEditorWidget"):
            self.segmentEditorWidget.enabled = not self._busy and not self._platformProblem

    def _updateWindowLabel(self) -> None:
        p = self._parameterNode
        if p is None:
            return
        self.ui.windowLabel.text = self.logic.windowText(p.inputNode, p.segmentation, p.segmentID, p.axis.value)

    def _updateModelStatus(self) -> None:
        p = self._parameterNode
        if p is not None:
            self.ui.modelStatusLabel.text = self.logic.modelStatus(p.modelName)

    def _showStatus(self, text: str) -> None:
        self.ui.statusLabel.text = text
        slicer.util.showStatusMessage(text, 5000)

    # ------------------------------------------------------------------ segments
    def _ensureTarget(self) -> bool:
        """Make sure a segmentation and a segment exist; store them in the parameter node."""
        p = self._parameterNode
        if p.inputNode is None:
            return False
        with slicer.util.tryWithErrorDisplay(_("Could not prepare the segmentation."), waitCursor=True):
            p.segmentation = self.logic.ensureSegmentation(p.inputNode, p.segmentation, p.axis.value)
            p.segmentID = self.logic.ensureSegment(p.inputNode, p.segmentation, p.segmentID, p.axis.value)
            return True
        return False

    def onSegmentSelected(self, segmentID) -> None:
        if self._updatingGUI:
            return
        if self._parameterNode is not None and segmentID != self._parameterNode.segmentID:
            self._stopPlacing()
            self._parameterNode.segmentID = segmentID or ""

    def onAddSegment(self) -> None:
        p = self._parameterNode
        if p.inputNode is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not add a segment."), waitCursor=True):
            p.segmentation = self.logic.ensureSegmentation(p.inputNode, p.segmentation, p.axis.value)
            self._stopPlacing()
            p.segmentID = self.logic.ensureSegment(p.inputNode, p.segmentation, "", p.axis.value)

    # ------------------------------------------------------------------ temporal window
    def onStartHere(self) -> None:
        self._setWindowEdge(start=True)

    def onEndHere(self) -> None:
        self._setWindowEdge(start=False)

    def _setWindowEdge(self, start: bool) -> None:
        if self._busy or not self._ensureTarget():
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not set the window."), waitCursor=True):
            frame = self.logic.currentFrame(p.inputNode, p.axis.value)
            if start:
                self.logic.setWindowStart(p.inputNode, p.segmentation, p.segmentID, frame, p.axis.value)
            else:
                self.logic.setWindowEnd(p.inputNode, p.segmentation, p.segmentID, frame, p.axis.value)
        self._updateWindowLabel()

    def onClearWindow(self) -> None:
        p = self._parameterNode
        if self._busy or not p.segmentation or not p.segmentID:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not clear the window."), waitCursor=True):
            self.logic.clearWindow(p.inputNode, p.segmentation, p.segmentID, p.axis.value)
        self._updateWindowLabel()

    def onClearPrompts(self, currentFrameOnly: bool) -> None:
        p = self._parameterNode
        if self._busy or not p.segmentation or not p.segmentID:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not clear the prompts."), waitCursor=True):
            frame = self.logic.currentFrame(p.inputNode, p.axis.value) if currentFrameOnly else None
            self.logic.clearPrompts(p.inputNode, p.segmentation, p.segmentID, frame, p.axis.value,
                                    p.modelName, p.device)

    # ------------------------------------------------------------------ segmenting
    def onSegmentFrame(self) -> None:
        if self._busy or not self._ensureTarget():
            return
        p = self._parameterNode
        frame = self.logic.currentFrame(p.inputNode, p.axis.value)
        self._run(_("Segmenting frame {frame} failed.").format(frame=frame),
                  lambda: self.logic.segmentFrame(p.inputNode, p.segmentation, p.segmentID, frame,
                                                  p.modelName, p.device, p.axis.value))

    def onPropagate(self) -> None:
        if self._busy or not self._ensureTarget():
            return
        p = self._parameterNode
        self._run(_("Propagation failed."),
                  lambda: self.logic.propagate(p.inputNode, p.segmentation, p.segmentID, p.direction.value,
                                               p.modelName, p.device, p.axis.value,
                                               progress=self._onProgress, cancel=lambda: self._cancelRequested),
                  showProgress=True)

    def onCancel(self) -> None:
        if self._busy:
            self._cancelRequested = True
            self.ui.cancelButton.enabled = False
            self._showStatus(_("Cancelling after the current frame..."))

    def onUndo(self) -> None:
        if self._busy:
            return
        with slicer.util.tryWithErrorDisplay(_("Undo failed."), waitCursor=True):
            self.logic.undo()
        self._checkCanRun()

    def _onProgress(self, done: int, total: int, frame: int) -> None:
        self.ui.progressBar.maximum = max(total, 1)
        self.ui.progressBar.value = done
        self.ui.progressBar.format = _("frame {frame}: {done}/{total}").format(frame=frame, done=done, total=total)
        slicer.app.processEvents()  # paints the bar and lets Cancel / Esc through between frames

    def _run(self, errorText: str, action, showProgress: bool = False) -> None:
        """Run one Logic action: dependencies first (asking before installing), busy state,
        errors as one readable dialog."""
        if not self._ensureDependencies():
            return
        self._busy, self._cancelRequested = True, False
        self.ui.progressBar.setVisible(showProgress)
        self.ui.progressBar.value = 0
        self._checkCanRun()
        try:
            with slicer.util.tryWithErrorDisplay(errorText, waitCursor=not showProgress):
                action()
        finally:
            self._busy = False
            self.ui.progressBar.setVisible(False)
            self._checkCanRun()
            self._updateModelStatus()
            if self._closedDuringRun:
                self._closedDuringRun = False
                self._showStatus(_("The scene was closed: the run was cancelled."))
            if self._importedDuringRun:
                self._importedDuringRun = False
                if self.parent.isEntered:
                    self.initializeParameterNode()

    # ------------------------------------------------------------------ dependencies
    def _ensureDependencies(self) -> bool:
        modelName = self._parameterNode.modelName if self._parameterNode else None
        missing = self.logic.missingDependencies(modelName)
        if not missing:
            return True
        if not slicer.util.confirmOkCancelDisplay(
            _("SAMUSA needs some additional software before it can segment: {names}.\n\n"
              "It will be downloaded and installed now. This needs an internet connection and a few "
              "gigabytes of disk space, and can take several minutes. Slicer may need to restart afterwards.").format(
                names=", ".join(missing)),
            windowTitle=_("Install SAMUSA components"),
        ):
            self._showStatus(_("Installation declined: SAMUSA cannot segment until it is installed."))
            return False
        dialog = slicer.util.createProgressDialog(labelText=_("Installing SAMUSA components..."), maximum=0)
        try:
            self.logic.installDependencies(
                progress=lambda text: (setattr(dialog, "labelText", text), slicer.app.processEvents()), modelName=modelName)
        except InstallError as error:
            dialog.close()
            if error.restartRequired:
                if slicer.util.confirmOkCancelDisplay(str(error) + "\n\n" + _("Restart Slicer now?")):
                    slicer.util.restart()
            else:
                slicer.util.errorDisplay(str(error), windowTitle=_("SAMUSA installation failed"))
            return False
        dialog.close()
        return not self.logic.missingDependencies(modelName)

    # ------------------------------------------------------------------ views and frames
    def _observeBrowser(self, inputNode) -> None:
        browser = self.logic.browserOf(inputNode)
        if browser is self._observedBrowser:
            return
        if self._observedBrowser is not None:
            self.removeObserver(self._observedBrowser, vtk.vtkCommand.ModifiedEvent, self._onFrameChanged)
        self._observedBrowser = browser
        if browser is not None:
            self.addObserver(browser, vtk.vtkCommand.ModifiedEvent, self._onFrameChanged)

    def _onFrameChanged(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is not None and p.segmentation and p.segmentID:
            self.logic.showPointsOfCurrentFrame(p.inputNode, p.segmentation, p.segmentID)

    # ------------------------------------------------------------------ shortcuts
    def _installShortcuts(self) -> None:
        self._removeShortcuts()
        mainWindow = slicer.util.mainWindow()
        if mainWindow is None:
            return
        for key, methodName in SHORTCUTS:
            shortcut = qt.QShortcut(qt.QKeySequence(key), mainWindow)
            shortcut.connect("activated()", getattr(self, methodName))
            self._shortcuts.append(shortcut)

    def _removeShortcuts(self) -> None:
        for shortcut in self._shortcuts:
            shortcut.setParent(None)
            shortcut.deleteLater()
        self._shortcuts = []
