"""The interactive session: prompts in, masks out, memory propagation over frames.

A `Session` holds one cine loop or volume (a `FrameSource`) and one SAM2 model. It
drives SAM2's own building blocks (image encoder, memory attention, mask decoder,
memory encoder through `SAM2Base.track_step`) with its own bookkeeping instead of
`SAM2VideoPredictor`, because the product needs what the predictor does not give:

- frames come from memory, lazily, and their features are cached within a budget;
- each object has its own temporal window: frames outside it are never encoded nor
  decoded and their masks are empty; inside it the object-presence head is overridden
  (the object is declared present, so the model cannot drop it);
- an edit recomputes only the frames whose propagation chain passes through the edited
  frame (from it towards the window end, up to the next prompted frame).

Propagation plan. Every frame of a window that has no result yet is "dirty". Each run
of consecutive dirty frames is computed from its neighbour: forward when the frame
before it has a result (a prompt or an earlier propagation), otherwise backward from the
frame after it. So a single prompted frame propagates both ways, and a frame between
two prompted frames is computed once, forward, with both prompted frames in memory.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from . import boundary as boundary_encoding
from .errors import Cancelled, PromptError
from .features import FeatureCache, cache_budget_bytes
from .frames import FrameSource
from .prompts import DEFAULT_COLORS, FramePrompt, ObjectPrompts, PromptSet, TemporalWindow

#: Object-score logit written over the model's own inside a temporal window.
PRESENT_LOGIT = 10.0
DIRECTIONS = ("both", "forward", "backward")

ProgressCallback = Callable[[int, int, int, int], None]
"""progress(done, total, frame, object_id), called after each computed frame."""


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


@dataclass
class PropagationReport:
    """What a propagate() call did."""

    frames_computed: dict[int, list[int]] = field(default_factory=dict)
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.frames_computed.values())


@dataclass
class _Step:
    frame: int
    obj_id: int
    reverse: bool
    source: int


class _ObjectState:
    """Prompts and results of one object; results per frame, split as SAM2's memory wants
    them (conditioning frames carry user prompts, the others were propagated)."""

    def __init__(self, obj_id: int, name: str, color: tuple[float, float, float]) -> None:
        self.id = obj_id
        self.name = name
        self.color = color
        self.window: TemporalWindow | None = None
        self.prompts: dict[int, FramePrompt] = {}
        self.cond: dict[int, dict] = {}
        self.noncond: dict[int, dict] = {}
        self.origin: dict[int, tuple[int, bool]] = {}

    def output(self, frame: int) -> dict | None:
        return self.cond.get(frame, self.noncond.get(frame))

    def memory(self, exclude: int | None = None) -> dict:
        cond, noncond = self.cond, self.noncond
        if exclude is not None and (exclude in cond or exclude in noncond):
            cond = {k: v for k, v in cond.items() if k != exclude}
            noncond = {k: v for k, v in noncond.items() if k != exclude}
        return {"cond_frame_outputs": cond, "non_cond_frame_outputs": noncond}

    def invalidate_through(self, frame: int) -> list[int]:
        """Forget propagated frames whose chain starts at or passes through `frame`."""
        dropped = []
        for g, (source, reverse) in list(self.origin.items()):
            if (not reverse and source <= frame < g) or (reverse and g < frame <= source):
                dropped.append(g)
                self.noncond.pop(g, None)
                self.origin.pop(g, None)
        return sorted(dropped)

    def forget_results(self) -> None:
        self.noncond.clear()
        self.origin.clear()

    def span(self, num_frames: int) -> tuple[int, int]:
        if self.window is None:
            return 0, num_frames - 1
        return self.window.start, self.window.end


class Session:
    """One loop or volume, one model, any number of objects.

    Typical use::

        session = Session(FrameSource(cine), load_model("test-tiny"))
        session.set_window(1, (5, 40))
        mask = session.add_prompt(1, frame=12, boundary=[[80, 40], [100, 60], [80, 85]])
        session.propagate()
        masks = session.masks(1)            # (T, H, W) bool, empty outside the window
    """

    def __init__(self, frames: FrameSource, model, *, feature_cache_mb: int | None = None) -> None:
        self.frames = frames
        self.model = model
        self.sam = model.sam
        self.device = model.device
        self.image_size = int(self.sam.image_size)
        self.features = FeatureCache(
            self.sam, frames.frame, self.device, cache_budget_bytes(feature_cache_mb), model.autocast
        )
        self.objects: dict[int, _ObjectState] = {}
        self.decoder_steps = 0
        self._cancel_requested = False
        spec = getattr(model, "spec", None)
        self.boundary_native = bool(getattr(spec, "boundary_native", False))
        self.boundary_label = int(getattr(spec, "boundary_label", 1))

    # ------------------------------------------------------------------ objects
    @property
    def num_frames(self) -> int:
        return self.frames.num_frames

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.frames.frame_shape

    def add_object(
        self,
        obj_id: int,
        name: str | None = None,
        color: tuple[float, float, float] | None = None,
        window: TemporalWindow | tuple[int, int] | None = None,
    ) -> None:
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)) or obj_id < 1:
            raise PromptError(f"object id must be a positive integer; got {obj_id!r}")
        obj_id = int(obj_id)
        if obj_id not in self.objects:
            self.objects[obj_id] = _ObjectState(
                obj_id, name or f"object {obj_id}", color or DEFAULT_COLORS[(obj_id - 1) % len(DEFAULT_COLORS)]
            )
        obj = self.objects[obj_id]
        if name:
            obj.name = name
        if color:
            obj.color = tuple(color)  # type: ignore[assignment]
        if window is not None:
            self.set_window(obj_id, window)

    def _object(self, obj_id: int) -> _ObjectState:
        if obj_id not in self.objects:
            known = sorted(self.objects) or "none"
            raise PromptError(f"no object with id {obj_id}; objects: {known}")
        return self.objects[obj_id]

    def remove_object(self, obj_id: int) -> None:
        self._object(obj_id)
        del self.objects[obj_id]

    def set_window(self, obj_id: int, window: TemporalWindow | tuple[int, int] | None) -> None:
        """Restrict the object to frames [start, end]; None lifts the restriction.

        Results outside the new window are dropped. Switching between windowed and
        unwindowed changes how presence is decided, so all propagated results go.
        """
        if obj_id not in self.objects:
            self.add_object(obj_id)
        obj = self.objects[obj_id]
        if window is not None and not isinstance(window, TemporalWindow):
            if not isinstance(window, (tuple, list)) or len(window) != 2:
                raise PromptError(f"window must be (start, end); got {window!r}")
            window = TemporalWindow(*window)
        if window is not None:
            window.check(self.num_frames)
            outside = [f for f in obj.prompts if f not in window]
            if outside:
                raise PromptError(
                    f"object {obj_id} has prompts on frames {outside}, outside the window "
                    f"[{window.start}, {window.end}]; clear them or widen the window"
                )
        if (window is None) != (obj.window is None):
            obj.forget_results()
        obj.window = window
        if window is not None:
            for g in [g for g in obj.noncond if g not in window]:
                obj.noncond.pop(g)
                obj.origin.pop(g, None)

    # ------------------------------------------------------------------ prompts
    def apply(self, prompts: PromptSet) -> dict[int, dict[int, np.ndarray]]:
        """Add every object, window and prompt of a prompt set; returns the prompted frames' masks."""
        prompts.check(self.num_frames, self.frame_shape)
        results: dict[int, dict[int, np.ndarray]] = {}
        for obj in prompts.objects:
            self.add_object(obj.id, obj.name, obj.color, obj.window)
            for prompt in obj.prompts:
                results.setdefault(obj.id, {})[prompt.frame] = self.add_prompt(
                    obj.id,
                    prompt.frame,
                    boundary=prompt.boundary,
                    positive=prompt.positive,
                    negative=prompt.negative,
                    box=prompt.box,
                    mask=prompt.mask,
                )
        return results

    def add_prompt(
        self,
        obj_id: int,
        frame: int,
        *,
        boundary=None,
        positive=None,
        negative=None,
        box=None,
        mask=None,
        replace: bool = False,
    ) -> np.ndarray:
        """Add clicks (or a box / mask) for an object on a frame and segment that frame.

        Clicks accumulate on the frame (a new box replaces the old one) unless
        `replace` is set. Returns the frame's mask, (H, W) bool. Frames whose
        propagation depended on this frame are marked for recomputation; call
        `propagate()` to update them.
        """
        if obj_id not in self.objects:
            self.add_object(obj_id)
        obj = self.objects[obj_id]
        new = FramePrompt(frame, boundary, positive, negative, box, mask)
        if not 0 <= new.frame < self.num_frames:
            raise PromptError(f"prompt on frame {frame}, but frames are 0..{self.num_frames - 1}")
        if obj.window is not None and new.frame not in obj.window:
            raise PromptError(
                f"frame {frame} is outside object {obj_id}'s window [{obj.window.start}, "
                f"{obj.window.end}]; widen the window or prompt a frame inside it"
            )
        old = obj.prompts.get(new.frame)
        merged = new if (replace or old is None) else old.merged(new)
        merged.check(self.num_frames, self.frame_shape)

        frame = new.frame
        previous = obj.output(frame)
        prev_logits = None
        if previous is not None and not replace and new.mask is None:
            prev_logits = torch.clamp(previous["pred_masks"].float(), -32.0, 32.0)
        has_other_cond = any(f != frame for f in obj.cond)
        is_init = not has_other_cond or previous is None
        out = self._prompt_frame(obj, merged, is_init=is_init, prev_logits=prev_logits)

        obj.prompts[frame] = merged
        obj.noncond.pop(frame, None)
        obj.origin.pop(frame, None)
        obj.cond[frame] = out
        obj.invalidate_through(frame)
        return self.mask(obj_id, frame)

    def clear_prompts(self, obj_id: int, frame: int | None = None) -> None:
        """Remove an object's prompts on one frame (or all), with the results that followed from them."""
        obj = self._object(obj_id)
        frames = list(obj.prompts) if frame is None else [frame]
        for f in frames:
            if f not in obj.prompts:
                continue
            obj.invalidate_through(f)
            obj.prompts.pop(f)
            obj.cond.pop(f, None)
        if not obj.cond:
            obj.forget_results()

    def prompts(self, obj_id: int) -> dict[int, FramePrompt]:
        return dict(self._object(obj_id).prompts)

    # ------------------------------------------------------------- one frame
    def _point_inputs(self, points: list[np.ndarray], labels: list[int]) -> dict | None:
        if not points:
            return None
        height, width = self.frame_shape
        coords = torch.tensor(np.asarray(points, dtype=np.float32), device=self.device)
        coords = coords * torch.tensor(
            [self.image_size / width, self.image_size / height], device=self.device
        )
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
        for p in prompt.positive:
            points.append(p)
            labels.append(1)
        for p in prompt.negative:
            points.append(p)
            labels.append(0)
        if boundary_as_points:
            for p in prompt.boundary:
                points.append(p)
                labels.append(self.boundary_label)
        return self._point_inputs(points, labels)

    def _mask_to_input(self, mask: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(mask.astype(np.float32)).to(self.device)[None, None]
        return F.interpolate(tensor, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)

    def _prompt_frame(self, obj: _ObjectState, prompt: FramePrompt, *, is_init: bool, prev_logits) -> dict:
        point_inputs = None
        mask_inputs = None
        vanilla_boundary = len(prompt.boundary) > 0 and not self.boundary_native
        if vanilla_boundary:
            mask_inputs = self._mask_to_input(self._boundary_candidate(obj, prompt, is_init, prev_logits))
            prev_logits = None
        elif prompt.mask is not None and len(prompt.positive) + len(prompt.negative) + len(prompt.boundary) == 0 and prompt.box is None:
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
        return self._track(obj, prompt.frame, is_init=is_init, point_inputs=point_inputs, mask_inputs=mask_inputs, prev_logits=prev_logits)

    def _boundary_candidate(self, obj: _ObjectState, prompt: FramePrompt, is_init: bool, prev_logits) -> np.ndarray:
        """Best mask for boundary points on a model not trained on them (see `boundary`)."""
        shape = self.frame_shape
        pts = prompt.boundary
        box = prompt.box
        positive = prompt.positive
        if box is None and len(pts) >= 2:
            box = boundary_encoding.bounding_box(pts, shape)
        elif box is None:
            positive = np.concatenate([positive, pts])
        candidate_prompt = FramePrompt(prompt.frame, positive=positive, negative=prompt.negative, box=box)
        point_inputs = self._encode_prompt(candidate_prompt, boundary_as_points=False)
        feats = self.features.get(prompt.frame)
        sam = self.sam
        candidates: list[np.ndarray] = []
        with torch.inference_mode(), self.model.autocast(), presence_forced(sam, obj.window is not None):
            high_res = [
                x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
                for x, s in zip(feats.vision_feats[:-1], feats.feat_sizes[:-1])
            ]
            pix_feat = sam._prepare_memory_conditioned_features(
                frame_idx=prompt.frame,
                is_init_cond_frame=is_init,
                current_vision_feats=feats.vision_feats[-1:],
                current_vision_pos_embeds=feats.vision_pos[-1:],
                feat_sizes=feats.feat_sizes[-1:],
                output_dict=obj.memory(exclude=prompt.frame),
                num_frames=self.num_frames,
            )
            for multimask in (True, False):
                low_res, *_ = sam._forward_sam_heads(
                    backbone_features=pix_feat,
                    point_inputs=point_inputs,
                    mask_inputs=prev_logits,
                    high_res_features=high_res,
                    multimask_output=multimask,
                )
                for index in range(low_res.shape[1]):
                    candidates.append(self._logits_to_mask(low_res[:, index : index + 1]))
        self.decoder_steps += 1
        curve = boundary_encoding.curve_mask(pts, shape)
        if curve.any():
            candidates.append(curve)
        return candidates[boundary_encoding.choose_candidate(candidates, pts)]

    def _track(
        self,
        obj: _ObjectState,
        frame: int,
        *,
        is_init: bool,
        point_inputs=None,
        mask_inputs=None,
        prev_logits=None,
        reverse: bool = False,
    ) -> dict:
        feats = self.features.get(frame)
        with torch.inference_mode(), self.model.autocast(), presence_forced(self.sam, obj.window is not None):
            out = self.sam.track_step(
                frame_idx=frame,
                is_init_cond_frame=is_init,
                current_vision_feats=feats.vision_feats,
                current_vision_pos_embeds=feats.vision_pos,
                feat_sizes=feats.feat_sizes,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                output_dict=obj.memory(exclude=frame),
                num_frames=self.num_frames,
                track_in_reverse=reverse,
                run_mem_encoder=True,
                prev_sam_mask_logits=prev_logits,
            )
        self.decoder_steps += 1
        return {
            "maskmem_features": out["maskmem_features"],
            "maskmem_pos_enc": out["maskmem_pos_enc"],
            "pred_masks": out["pred_masks"].float(),
            "obj_ptr": out["obj_ptr"],
            "object_score_logits": out["object_score_logits"],
        }

    # ------------------------------------------------------------ propagation
    def cancel(self) -> None:
        """Ask a running propagate() to stop after the current frame (thread-safe enough:
        one flag, read between frames)."""
        self._cancel_requested = True

    def plan(self, direction: str = "both", objects: Iterable[int] | None = None) -> list[_Step]:
        """The frames propagate() would compute, in order; nothing outside windows."""
        if direction not in DIRECTIONS:
            raise PromptError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
        ids = list(self.objects) if objects is None else [self._object(i).id for i in objects]
        forward: list[_Step] = []
        backward: list[_Step] = []
        for obj_id in ids:
            obj = self.objects[obj_id]
            if not obj.cond:
                continue
            start, end = obj.span(self.num_frames)
            known = set(obj.cond) | set(obj.noncond)
            dirty = [g for g in range(start, end + 1) if g not in known]
            for a, b in _runs(dirty):
                left = a - 1 >= start and (a - 1) in known
                right = b + 1 <= end and (b + 1) in known
                if left and direction in ("both", "forward"):
                    source = self._chain_source(obj, a - 1, reverse=False)
                    forward += [_Step(g, obj_id, False, source) for g in range(a, b + 1)]
                elif right and direction in ("both", "backward"):
                    source = self._chain_source(obj, b + 1, reverse=True)
                    backward += [_Step(g, obj_id, True, source) for g in range(b, a - 1, -1)]
        forward.sort(key=lambda s: s.frame)
        backward.sort(key=lambda s: -s.frame)
        return forward + backward

    @staticmethod
    def _chain_source(obj: _ObjectState, anchor: int, reverse: bool) -> int:
        if anchor in obj.cond:
            return anchor
        source, anchor_reverse = obj.origin[anchor]
        return source if anchor_reverse == reverse else anchor

    def propagate(
        self,
        direction: str = "both",
        *,
        objects: Iterable[int] | None = None,
        progress: ProgressCallback | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> PropagationReport:
        """Carry every object's prompted masks through its window.

        Only frames without a result are computed, so after an edit this recomputes
        just the frames the edit affected. A cancelled run keeps every frame it
        finished; calling propagate() again continues where it stopped.
        """
        steps = self.plan(direction, objects)
        self._cancel_requested = False
        report = PropagationReport()
        started = time.perf_counter()
        for done, step in enumerate(steps):
            if self._cancel_requested or (cancel is not None and cancel()):
                report.cancelled = True
                break
            obj = self.objects[step.obj_id]
            obj.noncond[step.frame] = self._track(obj, step.frame, is_init=False, reverse=step.reverse)
            obj.origin[step.frame] = (step.source, step.reverse)
            report.frames_computed.setdefault(step.obj_id, []).append(step.frame)
            if progress is not None:
                progress(done + 1, len(steps), step.frame, step.obj_id)
        report.seconds = time.perf_counter() - started
        return report

    # ----------------------------------------------------------------- results
    def _logits_to_mask(self, low_res: torch.Tensor) -> np.ndarray:
        logits = F.interpolate(low_res.float(), size=self.frame_shape, mode="bilinear", align_corners=False)
        return (logits[0, 0] > 0).cpu().numpy()

    def mask(self, obj_id: int, frame: int) -> np.ndarray:
        """(H, W) bool mask of an object on a frame; empty where nothing was computed."""
        obj = self._object(obj_id)
        if not 0 <= frame < self.num_frames:
            raise PromptError(f"frame {frame} is outside 0..{self.num_frames - 1}")
        out = obj.output(frame)
        if out is None or (obj.window is not None and frame not in obj.window):
            return np.zeros(self.frame_shape, dtype=bool)
        return self._logits_to_mask(out["pred_masks"])

    def masks(self, obj_id: int) -> np.ndarray:
        """(T, H, W) bool masks of an object over all frames."""
        out = np.zeros((self.num_frames, *self.frame_shape), dtype=bool)
        obj = self._object(obj_id)
        for frame in sorted(set(obj.cond) | set(obj.noncond)):
            out[frame] = self.mask(obj_id, frame)
        return out

    def computed_frames(self, obj_id: int) -> list[int]:
        obj = self._object(obj_id)
        return sorted(set(obj.cond) | set(obj.noncond))

    def prompted_frames(self, obj_id: int) -> list[int]:
        return sorted(self._object(obj_id).cond)


def _runs(frames: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for g in frames:
        if runs and g == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], g)
        else:
            runs.append((g, g))
    return runs
