"""Image-encoder features per frame, computed once and kept within a memory budget.

The image encoder is the expensive part of SAM2 (most of a frame's time); clicks on a
frame already seen and re-propagation after an edit reuse these features instead of
encoding again. Positional encodings depend only on the feature-map size, so one copy
serves every frame.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CACHE_MB = 1024


@dataclass
class FrameFeatures:
    vision_feats: list[torch.Tensor]
    vision_pos: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.vision_feats)


@dataclass
class EncoderStats:
    """What the encoder did, for tests (window semantics) and benchmarks."""

    calls: int = 0
    frames: list[int] = field(default_factory=list)
    seconds: float = 0.0


def cache_budget_bytes(megabytes: int | None) -> int:
    if megabytes is None:
        megabytes = int(os.environ.get("SAMUSA_FEATURE_CACHE_MB", DEFAULT_CACHE_MB))
    return max(0, int(megabytes)) * 1024 * 1024


def preprocess_frame(frame: np.ndarray, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[0, 1] frame (H, W) or (H, W, 3) -> SAM2's normalised (1, 3, size, size) input.

    Shared by inference and training so that a fine-tuned model sees its frames exactly
    as the session will show them."""
    image = torch.from_numpy(np.ascontiguousarray(frame)).to(device)
    if image.ndim == 2:
        image = image[None, None].expand(1, 3, -1, -1)
    else:
        image = image.permute(2, 0, 1)[None]
    image = F.interpolate(image.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (image - mean) / std


Entry = TypeVar("Entry")


class FrameLRU(Generic[Entry]):
    """Per-frame encodings computed on first use and kept within a byte budget, least
    recently used dropped first (at least one is always kept). Subclasses say how to
    encode a frame (`_encode`, which also counts `stats`) and what an entry weighs."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.stats = EncoderStats()
        self._entries: "OrderedDict[int, Entry]" = OrderedDict()
        self._bytes = 0

    def __contains__(self, frame: int) -> bool:
        return frame in self._entries

    def lookup(self, frame: int) -> Entry:
        entry = self._entries.get(frame)
        if entry is not None:
            self._entries.move_to_end(frame)
            return entry
        entry = self._encode(frame)
        if self.budget > 0:
            self._entries[frame] = entry
            self._bytes += self._nbytes(entry)
            while self._bytes > self.budget and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= self._nbytes(dropped)
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _encode(self, frame: int) -> Entry:
        raise NotImplementedError

    @staticmethod
    def _nbytes(entry: Entry) -> int:
        raise NotImplementedError


class FeatureCache(FrameLRU[FrameFeatures]):
    """SAM2's image-encoder features per frame (`FrameLRU`)."""

    def __init__(
        self,
        sam: torch.nn.Module,
        load_frame: Callable[[int], np.ndarray],
        device: torch.device,
        budget_bytes: int,
        autocast: Callable,
        store_dtype: torch.dtype,
    ) -> None:
        """`store_dtype`: what the features are kept in (`LoadedModel.cache_dtype`); the
        stages cast them to their own precision when they read them."""
        super().__init__(budget_bytes)
        self.sam = sam
        self.store_dtype = store_dtype
        self.load_frame = load_frame
        self.device = device
        self.autocast = autocast
        self._shared_pos: list[torch.Tensor] | None = None
        self._size = int(sam.image_size)

    def preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """[0, 1] frame (H, W) or (H, W, 3) -> normalised (1, 3, S, S) on the device."""
        return preprocess_frame(frame, self._size, self.device)

    def get(self, frame: int) -> FrameFeatures:
        return self.lookup(frame)

    @staticmethod
    def _nbytes(entry: FrameFeatures) -> int:
        return entry.nbytes()

    def _encode(self, frame: int) -> FrameFeatures:
        start = time.perf_counter()
        # inference_mode: without it autograd would keep the encoder's activations
        # (about 150 MB a frame at 256 px) alive for as long as the features are cached.
        with torch.inference_mode():
            image = self.preprocess(self.load_frame(frame))
            with self.autocast():
                backbone_out = self.sam.forward_image(image)
            _, feats, pos, sizes = self.sam._prepare_backbone_features(backbone_out)
            # Deliberately rounded to the store dtype (bf16 on CPUs and under bf16 autocast):
            # SAM2's FPN returns the coarsest kept level in float32 even under autocast; bf16
            # keeps about half its values exactly and the rest within 0.4 %, for half the
            # bytes of every cached frame.
            feats = [f.to(self.store_dtype) for f in feats]
        if self._shared_pos is None:
            self._shared_pos = list(pos)
        self.stats.calls += 1
        self.stats.frames.append(frame)
        self.stats.seconds += time.perf_counter() - start
        return FrameFeatures(list(feats), self._shared_pos, sizes)
