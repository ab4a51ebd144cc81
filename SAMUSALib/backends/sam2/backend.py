"""SAM2 behind the session: one frame at a time through SAM2's own building blocks.

The session decides which frame to compute and in which direction; this module turns
that into SAM2's steps (image encoder, memory attention, mask decoder, memory encoder)
with cached image features, and encodes prompts the way SAM2 expects (points scaled to
the model's square input, box corners as labels 2 and 3).

Clicks are what a user waits for, so a click on a frame already computed skips
everything but the prompt encoder and mask decoder: the frame's memory-conditioned
features from its last computation are reused (kept within `CONDITIONED_CACHE_MB`,
valid while the frames its memory reads are unchanged), and the clicked frame's
own memory is encoded only when another frame first needs it.
"""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ... import boundary as boundary_encoding
from ...features import FeatureCache, cache_budget_bytes
from ...frames import FrameSource
from ...prompts import FramePrompt

if TYPE_CHECKING:
    from ...state import ObjectState

#: Object-score logit written over the model's own inside a temporal window.
PRESENT_LOGIT = 10.0
#: Memory-conditioned features kept for fast clicks (MB; SAMUSA_CONDITIONED_CACHE_MB).
CONDITIONED_CACHE_MB = 128


@contextmanager
def presence_forced(sam: torch.nn.Module, forced: bool) -> Iterator[None]:
    """Declare the object present for every decoder call inside the block.

    SAM2 gates the mask, the object pointer and the memory's no-object embedding on
    `object_score_logits > 0`, the fourth output of the mask decoder; raising that
    output is the one place that overrides all three consistently.
    """
    if getattr(sam, "_samusa_presence_hook", None) is None:
        sam._samusa_force_presence = False

        def hook(module, inputs, outputs):
            if not sam._samusa_force_presence:
                return None
            masks, ious, tokens, scores = outputs
            return masks, ious, tokens, torch.clamp(scores, min=PRESENT_LOGIT)

        sam._samusa_presence_hook = sam.sam_mask_decoder.register_forward_hook(hook)
    previous = sam._samusa_force_presence
    sam._samusa_force_presence = forced
    try:
        yield
    finally:
        sam._samusa_force_presence = previous


def _high_res_features(feats, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """The encoder's two finer levels as (B, C, H, W) maps, for the mask decoder."""
    maps = [x.permute(1, 2, 0).view(x.size(1), x.size(2), *s) for x, s in zip(feats.vision_feats[:-1], feats.feat_sizes[:-1])]
    return maps if dtype is None else [m.to(dtype) for m in maps]


def _in_dtype(out: dict, dtype: torch.dtype) -> dict:
    """A frame's output with its memory features in `dtype` (a shallow copy)."""
    features = out.get("maskmem_features")
    if features is None or features.dtype == dtype:
        return out
    return {**out, "maskmem_features": features.to(dtype)}


def _lowest_level_map(feats) -> torch.Tensor:
    """The encoder's coarsest level as a (B, C, H, W) map (what memory attention reads)."""
    x = feats.vision_feats[-1]
    return x.permute(1, 2, 0).view(x.size(1), x.size(2), *feats.feat_sizes[-1])


class SAM2Backend:
    """Computes one object's result on one frame with a SAM2 model (a `LoadedModel`)."""

    def __init__(self, frames: FrameSource, model, feature_cache_mb: int | None = None) -> None:
        self.frames = frames
        self.model = model
        self.sam = model.sam
        self.device = model.device
        self.image_size = int(self.sam.image_size)
        self.features = FeatureCache(
            self.sam, frames.frame, self.device, cache_budget_bytes(feature_cache_mb),
            lambda: model.autocast("encoder"), model.cache_dtype(),
        )
        spec = getattr(model, "spec", None)
        self.boundary_native = bool(getattr(spec, "boundary_native", False))
        self.boundary_label = int(getattr(spec, "boundary_label", 1))
        self.decoder_steps = 0
        self.memory_encodings = 0
        self.conditioned: "OrderedDict[tuple[int, int], tuple[tuple, bool, torch.Tensor]]" = OrderedDict()
        self._conditioned_bytes = 0
        self._memory_positions: dict[tuple, list[torch.Tensor]] = {}
        self._serial = itertools.count()
        stride = int(getattr(self.sam, "memory_temporal_stride_for_eval", 1))
        self._reach = max(int(self.sam.num_maskmem) * stride, int(getattr(self.sam, "max_obj_ptrs_in_encoder", 16)))
        mb = int(os.environ.get("SAMUSA_CONDITIONED_CACHE_MB", CONDITIONED_CACHE_MB))
        self._conditioned_budget = max(0, mb) * 1024 * 1024

    # -------------------------------------------------------------- interface
    def prompt(self, obj: "ObjectState", prompt: FramePrompt, *, is_init: bool, previous: dict | None) -> dict:
        """Segment a prompted frame; `previous` is its earlier result when the user refines it."""
        # a frame keeps the direction it was tracked in (as SAM2VideoPredictor does): its
        # memory is read from that side
        reverse = bool(previous.get("reverse", False)) if previous is not None and not is_init else False
        prev_logits = None
        if previous is not None and prompt.mask is None:
            prev_logits = torch.clamp(previous["pred_masks"].float().to(self.device), -32.0, 32.0)
        point_inputs = None
        mask_inputs = None
        if len(prompt.boundary) > 0 and not self.boundary_native:
            mask_inputs = self._mask_to_input(self._boundary_candidate(obj, prompt, is_init, reverse, prev_logits))
            prev_logits = None
        elif prompt.mask is not None and prompt.box is None and not (
            len(prompt.positive) or len(prompt.negative) or len(prompt.boundary)
        ):
            mask_inputs = self._mask_to_input(prompt.mask)
        else:
            point_inputs = self._encode_prompt(prompt, boundary_as_points=True)
            if prompt.mask is not None:
                prev_logits = F.interpolate(
                    torch.from_numpy(prompt.mask.astype(np.float32) * 20 - 10).to(self.device)[None, None],
                    size=(self.image_size // 4, self.image_size // 4),
                    mode="bilinear",
                    align_corners=False,
                )
        return self._track(
            obj, prompt.frame, is_init=is_init, point_inputs=point_inputs, mask_inputs=mask_inputs,
            prev_logits=prev_logits, reverse=reverse, click=True,
        )

    def track(self, obj: "ObjectState", frame: int, *, reverse: bool) -> dict:
        """Propagate: segment `frame` from the object's memory alone."""
        return self._track(obj, frame, is_init=False, reverse=reverse)

    @staticmethod
    def low_res_logits(out: dict) -> torch.Tensor:
        return out["pred_masks"]

    # -------------------------------------------------------------- internals
    def _point_inputs(self, points: list, labels: list[int]) -> dict | None:
        if not points:
            return None
        height, width = self.frames.frame_shape
        coords = torch.tensor(np.asarray(points, dtype=np.float32), device=self.device)
        coords = coords * torch.tensor([self.image_size / width, self.image_size / height], device=self.device)
        return {
            "point_coords": coords[None],
            "point_labels": torch.tensor(labels, dtype=torch.int32, device=self.device)[None],
        }

    def _encode_prompt(self, prompt: FramePrompt, *, boundary_as_points: bool) -> dict | None:
        points: list = []
        labels: list[int] = []
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            points += [[x0, y0], [x1, y1]]
            labels += [2, 3]
        points += list(prompt.positive)
        labels += [1] * len(prompt.positive)
        points += list(prompt.negative)
        labels += [0] * len(prompt.negative)
        if boundary_as_points:
            points += list(prompt.boundary)
            labels += [self.boundary_label] * len(prompt.boundary)
        return self._point_inputs(points, labels)

    def _mask_to_input(self, mask: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(mask.astype(np.float32)).to(self.device)[None, None]
        return F.interpolate(tensor, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)

    def logits_to_mask(self, low_res: torch.Tensor) -> np.ndarray:
        logits = F.interpolate(low_res.float(), size=self.frames.frame_shape, mode="bilinear", align_corners=False)
        return (logits[0, 0] > 0).cpu().numpy()

    def _boundary_candidate(self, obj: "ObjectState", prompt: FramePrompt, is_init: bool, reverse: bool, prev_logits) -> np.ndarray:
        """Best mask for boundary points on a model not trained on them (see `boundary`)."""
        shape = self.frames.frame_shape
        points = prompt.boundary
        box = prompt.box
        positive = prompt.positive
        if box is None and len(points) >= 2:
            box = boundary_encoding.bounding_box(points, shape)
        elif box is None:
            positive = np.concatenate([positive, points])
        candidate_prompt = FramePrompt(prompt.frame, positive=positive, negative=prompt.negative, box=box)
        point_inputs = self._encode_prompt(candidate_prompt, boundary_as_points=False)
        feats = self.features.get(prompt.frame)
        candidates: list[np.ndarray] = []
        with torch.inference_mode(), presence_forced(self.sam, obj.window is not None):
            pix_feat = self._condition(obj, prompt.frame, feats, is_init, reverse)
            for multimask in (True, False):
                low_res, *_ = self._heads(pix_feat, feats, point_inputs, prev_logits, multimask)
                for index in range(low_res.shape[1]):
                    candidates.append(self.logits_to_mask(low_res[:, index : index + 1]))
        self.decoder_steps += 1
        curve = boundary_encoding.curve_mask(points, shape)
        if curve.any():
            candidates.append(curve)
        return candidates[boundary_encoding.choose_candidate(candidates, points)]

    def _track(
        self,
        obj: "ObjectState",
        frame: int,
        *,
        is_init: bool,
        point_inputs=None,
        mask_inputs=None,
        prev_logits=None,
        reverse: bool = False,
        click: bool = False,
    ) -> dict:
        """One frame through SAM2 (as `SAM2Base.track_step`). A click reuses the frame's
        memory-conditioned features when they are still valid and defers its memory."""
        feats = self.features.get(frame)
        signature = self._signature(obj, frame, reverse)
        cached = self.conditioned.get((obj.id, frame)) if click and mask_inputs is None else None
        reuse = cached is not None and cached[0] == signature and cached[1] == is_init
        multimask = self.sam._use_multimask(is_init, point_inputs)
        with torch.inference_mode(), presence_forced(self.sam, obj.window is not None):
            if reuse:
                outputs = self._heads(cached[2], feats, point_inputs, prev_logits, multimask)
                self.conditioned.move_to_end((obj.id, frame))
            elif mask_inputs is not None and self.sam.use_mask_input_as_output_without_sam:
                # a mask prompt is taken as the answer (SAM2's own rule); the heads only add the pointer
                with self.model.autocast("heads"):
                    dtype = self.model.stage_dtype("heads")
                    pix_feat = _lowest_level_map(feats).to(dtype)
                    outputs = self.sam._use_mask_as_output(pix_feat, _high_res_features(feats, dtype), mask_inputs)
            else:
                pix_feat = self._condition(obj, frame, feats, is_init, reverse)
                self._keep_conditioned(obj.id, frame, signature, is_init, pix_feat)
                logits = prev_logits if mask_inputs is None else mask_inputs
                outputs = self._heads(pix_feat, feats, point_inputs, logits, multimask)
            _, _, _, low_res, high_res_masks, obj_ptr, scores = outputs
            out = {"pred_masks": low_res.float(), "obj_ptr": obj_ptr, "object_score_logits": scores,
                   "from_points": point_inputs is not None, "reverse": reverse, "serial": next(self._serial)}
            if click:  # memory encoded when another frame first needs it, from the same high-res mask
                out.update(maskmem_features=None, maskmem_pos_enc=None, pending_high_res=high_res_masks)
            else:
                self._encode_memory(out, feats, high_res_masks)
        self.decoder_steps += 1
        return out

    def _condition(self, obj: "ObjectState", frame: int, feats, is_init: bool, reverse: bool) -> torch.Tensor:
        """Memory attention: the frame's features conditioned on the object's memory.

        Rounded once to the cache's dtype before anything decodes them, so a click that
        reuses them from the cache decodes the same values (and the cache holds half the
        bytes in bfloat16)."""
        memory = self._memory(obj, frame)
        with self.model.autocast("memory_attention"):
            pix_feat = self.sam._prepare_memory_conditioned_features(
                frame_idx=frame,
                is_init_cond_frame=is_init,
                current_vision_feats=[feats.vision_feats[-1].to(self.model.stage_dtype("memory_attention"))],
                current_vision_pos_embeds=feats.vision_pos[-1:],
                feat_sizes=feats.feat_sizes[-1:],
                output_dict=memory,
                num_frames=self.frames.num_frames,
                track_in_reverse=reverse,
            )
        return pix_feat.to(self.model.cache_dtype())

    def _heads(self, pix_feat: torch.Tensor, feats, point_inputs, mask_inputs, multimask: bool) -> tuple:
        """SAM2's prompt encoder and mask decoder, at their own stage precision."""
        with self.model.autocast("heads"):
            dtype = self.model.stage_dtype("heads")
            return self.sam._forward_sam_heads(
                backbone_features=pix_feat.to(dtype),
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                high_res_features=_high_res_features(feats, dtype),
                multimask_output=multimask,
            )

    def _memory(self, obj: "ObjectState", frame: int) -> dict:
        """The object's memories for `frame`, in memory attention's dtype (kept in the
        cache's: a float32 stage cannot read bfloat16 memories)."""
        self._encode_pending(obj, exclude=frame)
        memory = obj.memory(exclude=frame)
        dtype = self.model.stage_dtype("memory_attention")
        if dtype == self.model.cache_dtype():
            return memory
        return {kind: {f: _in_dtype(out, dtype) for f, out in outputs.items()} for kind, outputs in memory.items()}

    # -------------------------------------------------------------- fast clicks
    def _signature(self, obj: "ObjectState", frame: int, reverse: bool) -> tuple:
        """What a frame's memory-conditioned features depend on: the direction it is tracked
        in, the object's other prompted frames, and the propagated frames within the
        memory's reach on that side (SAM2 reads the last `num_maskmem - 1` memories and
        up to `max_obj_ptrs_in_encoder - 1` object pointers), each by the serial number of
        its result, so a recomputed neighbour invalidates the cached features."""
        side = range(frame + 1, frame + self._reach + 1) if reverse else range(frame - self._reach, frame)
        cond = tuple((f, out.get("serial")) for f, out in sorted(obj.cond.items()) if f != frame)
        near = tuple((f, obj.noncond[f].get("serial")) for f in side if f in obj.noncond)
        return reverse, cond, near

    def _keep_conditioned(self, obj_id: int, frame: int, signature: tuple, is_init: bool, pix_feat: torch.Tensor) -> None:
        if self._conditioned_budget <= 0:
            return
        key = (obj_id, frame)
        old = self.conditioned.pop(key, None)
        if old is not None:
            self._conditioned_bytes -= old[2].numel() * old[2].element_size()
        self.conditioned[key] = (signature, is_init, pix_feat)
        self._conditioned_bytes += pix_feat.numel() * pix_feat.element_size()
        while self._conditioned_bytes > self._conditioned_budget and self.conditioned:
            _, dropped = self.conditioned.popitem(last=False)
            self._conditioned_bytes -= dropped[2].numel() * dropped[2].element_size()

    def _encode_memory(self, out: dict, feats, high_res_masks: torch.Tensor) -> None:
        out.pop("pending_high_res", None)
        with self.model.autocast("memory_encoder"):
            dtype = self.model.stage_dtype("memory_encoder")
            features, position = self.sam._encode_new_memory(
                current_vision_feats=[feats.vision_feats[-1].to(dtype)],
                feat_sizes=feats.feat_sizes[-1:],
                pred_masks_high_res=high_res_masks.to(dtype),
                object_score_logits=out["object_score_logits"],
                is_mask_from_pts=out.get("from_points", False),
            )
        out["maskmem_features"] = features.to(self.model.cache_dtype())
        out["maskmem_pos_enc"] = self._shared_memory_position(position)
        self.memory_encodings += 1

    def _shared_memory_position(self, position: list[torch.Tensor]) -> list[torch.Tensor]:
        """The memory's positional encoding depends only on its size: one copy for all frames
        (as SAM2VideoPredictor keeps it), not one per frame."""
        key = tuple((tuple(p.shape), p.dtype) for p in position)
        return self._memory_positions.setdefault(key, position)

    def _encode_pending(self, obj: "ObjectState", exclude: int | None = None) -> None:
        """Encode the memory of clicked (prompted) frames before any other frame reads it."""
        for frame, out in obj.cond.items():
            if frame != exclude and out.get("maskmem_features") is None and "pred_masks" in out:
                with torch.inference_mode(), presence_forced(self.sam, obj.window is not None):
                    self._encode_memory(out, self.features.get(frame), out["pending_high_res"])
