"""Placing prompts in the slice views: the part of SAMUSAWidget that turns clicks into
prompt points and boxes (a mixin of the Widget; it needs Qt and the Widget's panel and Logic).

A prompt tool puts the views in Markups place mode on the segment's prompt node; each
placed point is checked and stamped with its frame, then the frame is segmented. The box
tool draws a markups ROI (a rectangle in the frame's plane, one per frame): once drawn it
is checked and stamped the same way, and resizing or moving it segments its frame again.
"""

import qt
import vtk

import slicer
from slicer.i18n import tr as _

from SAMUSAModule.parameters import PromptMode


class PromptPlacing:
    """Prompt tools, their buttons, and the clicks they place (used by SAMUSAWidget, which
    provides ``ui``, ``logic``, ``_parameterNode``, ``_busy``, ``_run`` and ``_showStatus``)."""

    PROMPT_BUTTONS = {
        PromptMode.BOUNDARY: "boundaryButton",
        PromptMode.REGION_POSITIVE: "regionPositiveButton",
        PromptMode.REGION_NEGATIVE: "regionNegativeButton",
        PromptMode.BOX: "boxButton",
    }

    def _dropPromptObservers(self) -> None:
        """Stop observing the prompt nodes and the interaction node."""
        for node in self._observedPromptNodes:
            if self.hasObserver(node, node.PointPositionDefinedEvent, self.onPointPlaced):
                self.removeObserver(node, node.PointPositionDefinedEvent, self.onPointPlaced)
            if self.hasObserver(node, node.PointEndInteractionEvent, self.onPointMoved):
                self.removeObserver(node, node.PointEndInteractionEvent, self.onPointMoved)
        self._observedPromptNodes = []
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


    def useBoundaryPoints(self) -> None:
        self.onPromptTool(PromptMode.BOUNDARY)

    def useRegionPositive(self) -> None:
        self.onPromptTool(PromptMode.REGION_POSITIVE)

    def useRegionNegative(self) -> None:
        self.onPromptTool(PromptMode.REGION_NEGATIVE)

    def useBox(self) -> None:
        self.onPromptTool(PromptMode.BOX)

    def onPromptTool(self, mode: PromptMode) -> None:
        """Start placing points of one prompt type, or drawing a box, in the slice views (again: stop)."""
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
        selectionNode.SetReferenceActivePlaceNodeClassName(node.GetClassName())
        selectionNode.SetActivePlaceNodeID(node.GetID())
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        # points: click after click into one node; a box: one rectangle, then its handles resize it
        interactionNode.SetPlaceModePersistence(0 if mode == PromptMode.BOX else 1)
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
        frames is removed, and the status line says why; so is a box that misses the image.
        A box is taken once its second corner is placed (its ROI then has one control point,
        its centre, and a size)."""
        p = self._parameterNode
        if p is None or index is None or not 0 <= int(index) < caller.GetNumberOfControlPoints():
            return
        index = int(index)
        if not (self._isPlacingOn(caller) or self._isBoxBeingDrawn(caller)):
            return
        if self._busy:  # a prediction is running: this click would race it
            self._removePlaced(caller, index)
            return
        try:
            frame = self.logic.stampPoint(p.inputNode, caller, index, p.axis.value)
        except Exception as error:
            self._removePlaced(caller, index)
            self._showStatus(_("Click refused: {reason}").format(reason=error))
            return
        if frame is None or not p.segmentOnClick:  # frame None: a box's first corner, the second is to come
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
                    self._removePlaced(node, index)
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

    def _isBoxBeingDrawn(self, node) -> bool:
        """Whether this is the box the box tool is drawing: the active place node, not yet
        stamped. (With place persistence off, Slicer may leave place mode as the second
        corner lands, before this node reports it.)"""
        activeID = slicer.app.applicationLogic().GetSelectionNode().GetActivePlaceNodeID()
        return self.logic.isBoxNode(node) and activeID == node.GetID() and not self.logic.isBoxPlaced(node)

    def _removePlaced(self, node, index: int) -> None:
        """Take back a placed point; a box goes with its whole ROI node."""
        if self.logic.isBoxNode(node):
            if node.GetScene() is not None:
                node.GetScene().RemoveNode(node)
        else:
            node.RemoveNthControlPoint(index)

    def onPointMoved(self, caller, event) -> None:
        """A point was dragged, or a box moved or resized by its handles: segment again the
        frames whose prompts changed (none if nothing moved). Removing points does not
        re-segment: undo removes points too."""
        p = self._parameterNode
        if p is None or self._busy or not p.segmentOnClick:
            return
        qt.QTimer.singleShot(0, lambda: self._run(
            _("Segmenting after the move failed."),
            lambda: self.logic.segmentFrame(p.inputNode, p.segmentation, p.segmentID, None,
                                            p.modelName, p.device, p.axis.value)))
