"""The module's constants, enums and parameter node: what the panel and the Logic share.

Imports only Slicer's Python layer (no SAMUSALib, no torch): cheap when Slicer starts.
"""

import enum
from typing import Annotated, Union

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLSequenceBrowserNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, Default, parameterNodeWrapper

MODEL_IDS = ("sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus", "sam2.1-large", "test-tiny", "litemedsam", "samusa-lite", "samusa-lite-1")
"""Registry ids of SAMUSALib.models (kept here so that listing them imports no torch;
Testing/test_module_static.py checks the two agree)."""

DEVICES = ("auto", "cuda", "mps", "cpu")

CLINICAL_MODEL_IDS = tuple(m for m in MODEL_IDS if m != "test-tiny")
"""What the model menu offers: the untrained test-tiny only in developer mode (Application
settings > Developer), where it demonstrates the pipeline in seconds."""


def _developerMode() -> bool:
    return slicer.util.settingsValue("Developer/DeveloperMode", False, converter=slicer.util.toBool)


def offeredModels() -> tuple:
    """Model ids the panel offers (test-tiny only in developer mode)."""
    return MODEL_IDS if _developerMode() else CLINICAL_MODEL_IDS


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

