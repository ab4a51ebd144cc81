"""`LoadedModel`: what the rest of SAMUSALib holds once a model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ContextManager

import torch

from .device import autocast_context, cache_dtype, resolve_precision, stage_dtype
from .registry import ModelSpec


@dataclass
class LoadedModel:
    """A built SAM2 video predictor (eval mode) plus what is known about its weights."""

    spec: ModelSpec
    sam: torch.nn.Module  # sam2.sam2_video_predictor.SAM2VideoPredictor (a SAM2Base)
    device: torch.device
    image_size: int
    metadata: dict[str, Any] = field(default_factory=dict)
    precision: str = "auto"

    def autocast(self, stage: str = "all") -> ContextManager[Any]:
        """Mixed-precision context for this model's device and precision (one SAM2 stage)."""
        return autocast_context(self.device, self.precision, stage)

    def stage_dtype(self, stage: str = "all") -> torch.dtype:
        return stage_dtype(self.device, self.precision, stage)

    def cache_dtype(self) -> torch.dtype:
        """What a session keeps per frame in (see `models.device.cache_dtype`)."""
        return cache_dtype(self.device, self.precision)

    @property
    def resolved_precision(self) -> str:
        return resolve_precision(self.device, self.precision)
