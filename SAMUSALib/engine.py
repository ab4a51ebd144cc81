"""The interactive session: prompts in, masks out, propagation over frames.

A `Session` holds one cine loop or volume (a `FrameSource`) and one model. It keeps
the prompts, windows and per-frame results of every object and decides which frames
to compute; a backend computes one object on one frame (`backends.sam2.SAM2Backend`
drives SAM2's building blocks through `SAM2Base.track_step`; image-only models
propagate from the neighbouring frame's result). The session exists instead of
`SAM2VideoPredictor` because the product needs what the predictor does not give:

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

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from .errors import PromptError
from .frames import FrameSource
from .heap import TRIM_EVERY, release_free_memory
from .prompts import DEFAULT_COLORS, FramePrompt, PromptSet, TemporalWindow
from .backends import make_backend
from .backends.sam2.backend import PRESENT_LOGIT, presence_forced  # noqa: F401 (re-exported)
from .state import ObjectState

DIRECTIONS = ("both", "forward", "backward")

#: Result of a frame skipped after an image-only backend lost the object (see propagate).
VANISHED: dict = {"vanished": True}

ProgressCallback = Callable[[int, int, int, int], None]
"""progress(done, total, frame, object_id), called after each computed frame."""


@dataclass
class PropagationReport:
    """What a propagate() call did."""

    frames_computed: dict[int, list[int]] = field(default_factory=dict)
    #: frames where the backend found no acceptable candidate and copied the last mask
    #: forward (the last resort inside a window), per object
    held: dict[int, list[int]] = field(default_factory=dict)
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
    run: int = 0


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
        self.backend = make_backend(frames, model, feature_cache_mb)
        self.objects: dict[int, ObjectState] = {}
        self._cancel_requested = False

    @property
    def features(self):
        """The backend's image-feature cache (its `stats` count encoder calls)."""
        return self.backend.features

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
            self.objects[obj_id] = ObjectState(
                obj_id, name or f"object {obj_id}", color or DEFAULT_COLORS[(obj_id - 1) % len(DEFAULT_COLORS)]
            )
        obj = self.objects[obj_id]
        if name:
            obj.name = name
        if color:
            obj.color = tuple(color)  # type: ignore[assignment]
        if window is not None:
            self.set_window(obj_id, window)

    def _object(self, obj_id: int) -> ObjectState:
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
        has_other_cond = any(f != frame for f in obj.cond)
        is_init = not has_other_cond or previous is None
        out = self.backend.prompt(obj, self._correcting(obj, merged, old, previous), is_init=is_init,
                                  previous=None if replace else previous)

        obj.prompts[frame] = merged
        obj.noncond.pop(frame, None)
        obj.origin.pop(frame, None)
        obj.cond[frame] = out
        obj.invalidate_through(frame)
        return self.mask(obj_id, frame)

    def _correcting(self, obj: ObjectState, prompt: FramePrompt, old: FramePrompt | None, previous: dict | None) -> FramePrompt:
        """Clicks on a propagated frame correct the mask shown there: it becomes the
        prompt's mask (for backends whose `clicks_correct_shown_mask` is set), kept for
        the frame's later clicks until its prompts are cleared. Why: a model that
        settles decodes a frame from its clicks alone, so one negative click on a good
        propagated mask gave a mask of that click alone (bundled carotid loop: Dice
        0.958 -> 0.689). The mask is the one from before the first click, so the result
        still depends on the clicks, not their order (positive clicks without a box on a
        settling model aside: each adds to the mask of the ones before it)."""
        frame = prompt.frame
        if prompt.box is not None or prompt.mask is not None or len(prompt.boundary):
            obj.shown.pop(frame, None)  # a prompt of its own: no propagated mask behind it
            return prompt
        if not getattr(self.backend, "clicks_correct_shown_mask", False):
            return prompt
        if old is None and frame not in obj.cond and previous is not None and not previous.get("vanished"):
            obj.shown[frame] = previous
        shown = obj.shown.get(frame)
        if shown is None:
            return prompt
        mask = self.backend.logits_to_mask(self.backend.low_res_logits(shown))
        return dataclasses.replace(prompt, mask=mask) if mask.any() else prompt

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
            obj.shown.pop(f, None)
        if not obj.cond:
            obj.forget_results()

    def prompts(self, obj_id: int) -> dict[int, FramePrompt]:
        return dict(self._object(obj_id).prompts)

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
                if left and right and direction == "both" and getattr(self.backend, "nearest_prompt", False):
                    # image-only backends: each frame from the nearer prompted frame
                    fwd, bwd = self._split_between(obj, a, b)
                    forward += [_Step(g, obj_id, False, fwd[0], a) for g in fwd[1]]
                    backward += [_Step(g, obj_id, True, bwd[0], a) for g in bwd[1][::-1]]
                elif left and direction in ("both", "forward"):
                    source = self._chain_source(obj, a - 1, reverse=False)
                    forward += [_Step(g, obj_id, False, source, a) for g in range(a, b + 1)]
                elif right and direction in ("both", "backward"):
                    source = self._chain_source(obj, b + 1, reverse=True)
                    backward += [_Step(g, obj_id, True, source, a) for g in range(b, a - 1, -1)]
        forward.sort(key=lambda s: s.frame)
        backward.sort(key=lambda s: -s.frame)
        return forward + backward

    def _split_between(self, obj: ObjectState, a: int, b: int) -> tuple[tuple[int, list[int]], tuple[int, list[int]]]:
        """Frames a..b between two known frames: (forward source, frames), (backward
        source, frames), each frame going to the chain whose prompted frame is nearer."""
        left = self._chain_source(obj, a - 1, reverse=False)
        right = self._chain_source(obj, b + 1, reverse=True)
        ahead = [g for g in range(a, b + 1) if g - left <= right - g]
        return (left, ahead), (right, [g for g in range(a, b + 1) if g - left > right - g])

    @staticmethod
    def _chain_source(obj: ObjectState, anchor: int, reverse: bool) -> int:
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
        vanished: set[tuple[int, int, bool]] = set()
        for done, step in enumerate(steps):
            if self._cancel_requested or (cancel is not None and cancel()):
                report.cancelled = True
                break
            obj = self.objects[step.obj_id]
            run = (step.obj_id, step.run, step.reverse)
            if run in vanished:
                # An image-only backend lost the object with no window to hold it: the
                # rest of this run is empty (recorded so it is not retried until an edit),
                # unless the backend can tell that the object came back.
                redetect = getattr(self.backend, "redetect", None)
                out = VANISHED if redetect is None else redetect(obj, step.frame)
                if not out.get("vanished"):
                    vanished.discard(run)
            else:
                out = self.backend.track(obj, step.frame, reverse=step.reverse)
                if out.get("vanished") and obj.window is None:
                    vanished.add(run)
            obj.noncond[step.frame] = out
            obj.origin[step.frame] = (step.source, step.reverse)
            if out.get("how") == "held":
                report.held.setdefault(step.obj_id, []).append(step.frame)
            report.frames_computed.setdefault(step.obj_id, []).append(step.frame)
            if (done + 1) % TRIM_EVERY == 0:
                release_free_memory()
            if progress is not None:
                progress(done + 1, len(steps), step.frame, step.obj_id)
        if steps:
            release_free_memory()
        report.seconds = time.perf_counter() - started
        return report

    # ----------------------------------------------------------------- results
    def mask(self, obj_id: int, frame: int) -> np.ndarray:
        """(H, W) bool mask of an object on a frame; empty where nothing was computed."""
        obj = self._object(obj_id)
        if not 0 <= frame < self.num_frames:
            raise PromptError(f"frame {frame} is outside 0..{self.num_frames - 1}")
        out = obj.output(frame)
        if out is None or out is VANISHED or (obj.window is not None and frame not in obj.window):
            return np.zeros(self.frame_shape, dtype=bool)
        return self.backend.logits_to_mask(self.backend.low_res_logits(out))

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
