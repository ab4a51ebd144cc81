"""`InteractiveSegmenter`: Slicer nodes in, segments out, through one cached engine `Session`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import PromptError
from ..prompts import FramePrompt, TemporalWindow
from .inputs import SlicerInput, input_fingerprint, input_from_node
from .prompt_nodes import box_nodes, frame_prompts, move_back, moved_since, prompt_nodes, prompt_positions, remove_prompts
from .targets import SegmentationTarget, _segment_exists, made_for_another_image, mask_digest, target_for
from .undo import UndoStack, UndoStep

# --------------------------------------------------------------------------- the interactive segmenter


#: In a segment's record of what SAMUSA wrote (`SegmentationTarget.written_record`): a
#: frame the user drew by hand, kept as drawn and read as that frame's mask prompt.
DRAWN = "drawn"


@dataclass
class ActionResult:
    """What one segmenter action did."""

    segment_id: str
    frames_written: list[int] = field(default_factory=list)
    frames_computed: list[int] = field(default_factory=list)
    prompted_frames: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False
    target: SegmentationTarget | None = None
    frames_cleared: list[int] = field(default_factory=list)  # SAMUSA's masks outside a narrowed window

    @property
    def fps(self) -> float:
        return len(self.frames_computed) / self.seconds if self.seconds > 0 else 0.0


def _default_model_factory(model: str, device: str):
    from ..models import load_model  # torch is imported here, never at module import

    return load_model(model, device=device)


class _Writer:
    """Writes finished frames into the target, batching writes that cost a whole-volume
    read/write (volume targets) to at most one per `interval` seconds; keeps undo state."""

    def __init__(self, target: SegmentationTarget, segment_id: str, step: UndoStep, interval: float) -> None:
        self.target, self.segment_id, self.step = target, segment_id, step
        self.interval = 0.0 if target.kind == "sequence" else interval
        self.pending: dict[int, np.ndarray] = {}
        self.written: list[int] = []
        self.keep_as_drawn: set[int] = set()
        self.on_write = None
        self._last = time.perf_counter()

    def add(self, frame: int, mask: np.ndarray) -> None:
        self.pending[int(frame)] = mask
        if time.perf_counter() - self._last >= self.interval:
            self.flush()

    @property
    def alive(self) -> bool:
        """False once the target left the scene (the scene was closed during a run)."""
        node = self.target.node
        sequence = getattr(self.target, "sequence", None)
        return node.GetScene() is not None and (sequence is None or sequence.GetScene() is not None)

    def flush(self) -> None:
        for frame in self.keep_as_drawn:
            self.pending.pop(frame, None)  # the user's drawing stays as drawn
        if not self.pending:
            return
        if not self.alive:
            self.pending = {}
            return
        self.step.keep(self.pending)
        self.target.write(self.segment_id, self.pending)
        if self.on_write is not None:
            self.on_write(self.pending)
        self.written += sorted(self.pending)
        self.pending = {}
        self._last = time.perf_counter()


class InteractiveSegmenter:
    """Slicer nodes in, segments out, through one cached engine `Session`.

    Each call names the input node, the segmentation node (None creates one) and the
    segment; prompts are read from the segment's markups nodes (`prompt_node`) and the
    temporal window from the target (`SegmentationTarget.window`), so the scene is the
    only source of truth and is saved with it. The session (cached image features,
    results) is kept while the input's voxels, the model, the device and the slicing axis
    are unchanged; a change of any of them starts a new one.

    ``model_factory(model, device)`` loads a model (default: `SAMUSALib.models.load_model`).
    """

    def __init__(self, model_factory: Callable[[str, str], object] | None = None, undo_levels: int = 20,
                 write_interval: float = 1.0) -> None:
        self.model_factory = model_factory or _default_model_factory
        self.undo_stack = UndoStack(undo_levels)
        self.write_interval = write_interval
        self._models: dict[tuple[str, str], object] = {}
        self._session = None
        self._session_key: tuple | None = None
        self._input: SlicerInput | None = None
        self._objects: dict[tuple[str, str], int] = {}
        self._cancel = False
        # what SAMUSA wrote, per (segmentation ID, segment ID): {frame: (voxel stamp, mask bytes)}
        self._written: dict[tuple[str, str, str], dict[int, tuple]] = {}
        # masks the user drew over SAMUSA's (e.g. with the Segment Editor): mask prompts
        self._hand_masks: dict[tuple[str, str, str], dict[int, np.ndarray]] = {}
        # where each segment's points and boxes were when last read (`prompt_positions`)
        self._positions: dict[tuple[str, str, str], dict] = {}

    # ---- session
    def model(self, model: str, device: str):
        key = (str(model), str(device))
        if key not in self._models:
            self._models.clear()  # one model in memory at a time
            self._models[key] = self.model_factory(*key)
        return self._models[key]

    def input(self, input_node, axis: str = "K") -> SlicerInput:
        """The input's frames; the cached ones while the node's voxels are unchanged."""
        if self._input is None or not self._input_is(input_node, axis):
            self._input = input_from_node(input_node, axis)
        return self._input

    def _input_is(self, input_node, axis: str) -> bool:
        cached = self._input
        ids = {cached.node.GetID(), cached.browser.GetID() if cached.browser is not None else None}
        node_ok = input_node is not None and input_node.GetID() in ids
        if cached.kind == "volume" and cached.axis != axis:
            return False
        return node_ok and input_fingerprint(cached.browser or cached.node, axis) == cached.fingerprint

    def session(self, input_node, *, model: str, device: str = "auto", axis: str = "K"):
        """(SlicerInput, engine Session), reused while input, model, device and axis are unchanged."""
        from ..engine import Session

        input_ = self.input(input_node, axis)
        key = (input_.fingerprint, input_.axis, str(model), str(device))
        if self._session is None or key != self._session_key:
            self._session = Session(input_.frames, self.model(model, device))
            self._session_key = key
            self._objects.clear()
        return input_, self._session

    def is_ready(self, input_node, *, model: str, device: str = "auto", axis: str = "K", frame: int | None = None) -> bool:
        """Whether a click would run at once: the model loaded, its session open on this
        input, and `frame` (if given) encoded."""
        if (str(model), str(device)) not in self._models or self._session is None or self._input is None:
            return False
        if not self._input_is(input_node, axis) or self._session_key[2:] != (str(model), str(device)):
            return False
        return frame is None or int(frame) in self._session.features

    def prepare(self, input_node, *, model: str, device: str = "auto", axis: str = "K", frame: int | None = None,
                progress: Callable[[str], None] | None = None, cancel: Callable[[], bool] | None = None) -> bool:
        """Get ready for the first click: load the model (its weights are downloaded and
        checked on first use), open the session, encode `frame`. ``progress(text)`` is told
        each stage; ``cancel()`` is polled between stages. Returns False when cancelled
        (what finished is kept: a loaded model stays loaded)."""
        def stage(text: str) -> bool:
            if cancel is not None and cancel():
                return False
            if progress is not None:
                progress(text)
            return True

        if (str(model), str(device)) not in self._models:
            if not stage(f"Loading the model {model} on {device} (downloaded and checked on first use)..."):
                return False
            self.model(model, device)
        if not stage("Reading the image..."):
            return False
        _, session = self.session(input_node, model=model, device=device, axis=axis)
        if frame is not None and int(frame) not in session.features:
            if not stage(f"Encoding frame {int(frame)} (the first click on an image takes longest)..."):
                return False
            session.features.get(int(frame))
        return not (cancel is not None and cancel())

    def drop_session(self) -> None:
        """Forget the session and its cached features (e.g. when the scene closes)."""
        self._session = self._session_key = self._input = None
        self._objects.clear()
        self._written.clear()
        self._hand_masks.clear()
        self._positions.clear()
        self.undo_stack.clear()

    @property
    def has_session(self) -> bool:
        return self._session is not None

    def target(self, input_node, segmentation_node=None, *, axis: str = "K", create: bool = True):
        """The target for these nodes (see `target_for`); None when `create` is off and it
        would have to be created."""
        return target_for(self.input(input_node, axis), segmentation_node, create=create)

    def made_for_another_image(self, input_node, segmentation_node, *, axis: str = "K") -> str | None:
        """Why the segmentation cannot take this input's masks (`targets.made_for_another_image`),
        None where it can (or where there is none)."""
        if input_node is None or segmentation_node is None:
            return None
        return made_for_another_image(self.input(input_node, axis), segmentation_node)

    def _object_id(self, target: SegmentationTarget, segment_id: str) -> int:
        key = (target.node.GetID(), segment_id)
        if key not in self._objects:
            self._objects[key] = max(self._objects.values(), default=0) + 1
        return self._objects[key]

    # ---- prompts
    def _sync(self, session, input_, target, segment_id: str) -> tuple[int, list[int]]:
        """Bring the session's prompts and window for the segment in line with the scene.
        Returns (object id, frames whose prompts changed)."""
        obj_id = self._object_id(target, segment_id)
        wanted = frame_prompts(input_, prompt_nodes(target, segment_id), box_nodes(target, segment_id))
        self._positions[self._key(target, segment_id)] = prompt_positions(target, segment_id)
        hand = self._hand_edits(target, segment_id)
        for frame, mask in hand.items():
            prompt = wanted.get(frame) or FramePrompt(frame)
            prompt.mask = mask
            wanted[frame] = prompt
        window = target.window(segment_id)
        name = target.segment_name(segment_id)
        if obj_id not in session.objects:
            session.add_object(obj_id, name)
        obj = session.objects[obj_id]
        changed = []
        for frame in sorted(set(obj.prompts) - set(wanted)):
            session.clear_prompts(obj_id, frame)
            changed.append(frame)
        outside = [f for f in wanted if window is not None and f not in window]
        if outside:
            raise PromptError(
                f"segment '{name}' has prompts on frame(s) {', '.join(map(str, outside))}, outside its "
                f"window {window.start}-{window.end}: clear them or widen the window"
            )
        if window != obj.window:
            session.set_window(obj_id, window)
        for frame, prompt in wanted.items():
            if not _same_prompt(obj.prompts.get(frame), prompt):
                session.add_prompt(obj_id, frame, boundary=prompt.boundary, positive=prompt.positive,
                                   negative=prompt.negative, box=prompt.box, mask=prompt.mask, replace=True)
                changed.append(frame)
        return obj_id, sorted(set(changed))

    # ---- masks edited by hand
    def _key(self, target, segment_id: str) -> tuple[str, str, str]:
        """A segment as read along one axis: a volume's slice 3 along K is not its slice 3
        along J (K's written frames were read as J slices drawn by hand)."""
        return (target.node.GetID(), segment_id, target.input.axis)

    def _written_of(self, target, segment_id: str) -> dict[int, tuple]:
        """{frame: (voxel stamp, digest)} of what SAMUSA last wrote; for a segment this
        segmenter has not written yet, the record saved with the scene (stamps unknown, so
        every recorded frame is checked once)."""
        key = self._key(target, segment_id)
        if key not in self._written:
            record = {f: d for f, d in target.written_record(segment_id).items() if 0 <= f < target.input.num_frames}
            self._written[key] = {frame: (None, digest) for frame, digest in record.items() if digest != DRAWN}
            drawn = [frame for frame, digest in record.items() if digest == DRAWN]
            if drawn:  # frames found drawn by hand before the scene was saved stay mask prompts
                self._hand_masks.setdefault(key, {}).update(target.read(segment_id, drawn))
        return self._written[key]

    def _record(self, target, segment_id: str, masks) -> None:
        """Remember what SAMUSA wrote (or undo restored) on these frames, here and in the
        scene: after the scene is closed and opened again, a frame drawn by hand is still
        told from one SAMUSA wrote, and propagation still keeps it as drawn."""
        written = self._written_of(target, segment_id)
        for frame, mask in masks.items():
            written[int(frame)] = (target.stamp(segment_id, frame), mask_digest(mask))
        self._save_record(target, segment_id)

    def _save_record(self, target, segment_id: str) -> None:
        record = {frame: digest for frame, (_, digest) in self._written_of(target, segment_id).items()}
        record.update({frame: DRAWN for frame in self._hand_masks.get(self._key(target, segment_id), {})})
        target.set_written_record(segment_id, record)

    def _hand_edits(self, target, segment_id: str) -> dict[int, np.ndarray]:
        """Frames whose voxels differ from what SAMUSA last wrote there: the user edited
        them (Segment Editor, paint, scissors). Each becomes that frame's mask prompt, so
        propagation continues from what the user drew. Only frames whose voxel stamp
        changed are read."""
        key = self._key(target, segment_id)
        written = self._written_of(target, segment_id)
        hand = self._hand_masks.setdefault(key, {})
        suspects = [f for f, (stamp, _) in written.items() if target.stamp(segment_id, f) != stamp]
        if suspects:
            drawn = False
            for frame, mask in target.read(segment_id, suspects).items():
                if mask_digest(mask) != written[frame][1]:
                    hand[frame] = mask
                    del written[frame]
                    drawn = True
                else:
                    written[frame] = (target.stamp(segment_id, frame), written[frame][1])
            if drawn:
                self._save_record(target, segment_id)
        return dict(hand)

    def hand_edited_frames(self, segmentation_node, segment_id: str, axis: str = "K") -> list[int]:
        """Frames (slices along `axis`) of a segment whose masks the user drew by hand (now mask prompts)."""
        return sorted(self._hand_masks.get((segmentation_node.GetID(), segment_id, axis), {}))

    def set_window(self, input_node, segmentation_node, segment_id: str, start: int | None, end: int | None,
                   *, axis: str = "K") -> TemporalWindow | None:
        """Set (or with both None, clear) a segment's temporal window, after checking that
        no prompt of the segment lies outside it. A missing end is the last frame, a missing
        start frame 0."""
        input_ = self.input(input_node, axis)
        target = target_for(input_, segmentation_node)
        _require_segment(target, segment_id)
        if start is None and end is None:
            target.set_window(segment_id, None)
            return None
        window = TemporalWindow(0 if start is None else int(start), input_.num_frames - 1 if end is None else int(end))
        window.check(input_.num_frames)
        outside = [f for f in frame_prompts(input_, prompt_nodes(target, segment_id), box_nodes(target, segment_id))
                   if f not in window]
        if outside:
            raise PromptError(
                f"segment '{target.segment_name(segment_id)}' has prompts on frame(s) "
                f"{', '.join(map(str, outside))}, outside {window.start}-{window.end}: clear them first"
            )
        target.set_window(segment_id, window)
        return window

    def set_window_start(self, input_node, segmentation_node, segment_id: str, frame: int, *,
                         axis: str = "K") -> TemporalWindow | None:
        """Start the window at `frame`; its end stays (the last frame if none), or moves to
        `frame` if it was before it."""
        window = self.target(input_node, segmentation_node, axis=axis).window(segment_id)
        end = None if window is None else max(window.end, int(frame))
        return self.set_window(input_node, segmentation_node, segment_id, int(frame), end, axis=axis)

    def set_window_end(self, input_node, segmentation_node, segment_id: str, frame: int, *,
                       axis: str = "K") -> TemporalWindow | None:
        """End the window at `frame`; its start stays (frame 0 if none), or moves to `frame`
        if it was after it."""
        window = self.target(input_node, segmentation_node, axis=axis).window(segment_id)
        start = 0 if window is None else min(window.start, int(frame))
        return self.set_window(input_node, segmentation_node, segment_id, start, int(frame), axis=axis)

    # ---- actions
    def segment_frame(self, input_node, segmentation_node, segment_id: str, frame: int | None = None, *,
                      model: str, device: str = "auto", axis: str = "K", prompt_point=None) -> ActionResult:
        """Segment the frames whose prompts changed (and `frame`), and write them.

        `prompt_point` (markups node, control point ID) is the click that triggered this,
        so that undo removes it with the mask it made.
        """
        started = time.perf_counter()
        input_, session = self.session(input_node, model=model, device=device, axis=axis)
        target = target_for(input_, segmentation_node)
        _require_segment(target, segment_id)
        step = self.undo_stack.begin(target, segment_id, "segment frame")
        step.prompt_point = prompt_point
        step.moved = moved_since(self._positions.get(self._key(target, segment_id), {}), prompt_positions(target, segment_id))
        try:
            written, changed = self._write_changed(session, input_, target, segment_id, frame, step)
        except PromptError as error:
            if not step.moved:
                raise
            move_back(step.moved)  # kept, a point dragged off the image made every later action fail
            self._positions[self._key(target, segment_id)] = prompt_positions(target, segment_id)
            raise PromptError(f"{error}; the {_moved_words(step.moved)} put back where it was") from None
        self.undo_stack.push(step)
        return ActionResult(segment_id, written, [], changed, time.perf_counter() - started, target=target)

    def _write_changed(self, session, input_, target, segment_id: str, frame: int | None,
                       step: UndoStep) -> tuple[list[int], list[int]]:
        """Write the masks of the frames whose prompts changed (and `frame`) inside the
        window; returns (frames written, frames whose prompts changed)."""
        obj_id, changed = self._sync(session, input_, target, segment_id)
        frames = set(changed)
        if frame is not None and int(frame) in session.computed_frames(obj_id):
            frames.add(int(frame))  # rewrite its mask (e.g. after a manual edit); never blank a frame
        window = target.window(segment_id)
        frames = sorted(f for f in frames if window is None or f in window)
        writer = _Writer(target, segment_id, step, 0.0)
        writer.keep_as_drawn = set(self._hand_masks.get(self._key(target, segment_id), {}))
        writer.on_write = lambda masks: self._record(target, segment_id, masks)
        for f in frames:
            writer.add(f, session.mask(obj_id, f))
        writer.flush()
        return writer.written, changed

    def propagate(self, input_node, segmentation_node, segment_id: str, *, direction: str = "both",
                  model: str, device: str = "auto", axis: str = "K",
                  progress: Callable[[int, int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> ActionResult:
        """Segment the prompted frames and carry the masks through the segment's window.

        Finished frames are written as they finish (inside the window only; other
        segments and frames are never touched), so a cancelled or failed run keeps them
        and leaves the rest as it was; one undo step covers the whole run.
        ``progress(done, total, frame)``; ``cancel()`` is polled between frames.
        """
        started = time.perf_counter()
        self._cancel = False
        input_, session = self.session(input_node, model=model, device=device, axis=axis)
        target = target_for(input_, segmentation_node)
        _require_segment(target, segment_id)
        obj_id, changed = self._sync(session, input_, target, segment_id)
        if not session.prompted_frames(obj_id):
            raise PromptError(
                f"segment '{target.segment_name(segment_id)}' has no prompts yet: place boundary or "
                "region points (or a box) on a frame first"
            )
        window = target.window(segment_id)
        step = self.undo_stack.begin(target, segment_id, "propagate")
        writer = _Writer(target, segment_id, step, self.write_interval)
        writer.keep_as_drawn = set(self._hand_masks.get(self._key(target, segment_id), {}))
        writer.on_write = lambda masks: self._record(target, segment_id, masks)
        computed: list[int] = []
        cleared = self._outside_window(target, segment_id, window)
        for f in cleared:  # the structure is not on these frames: the masks SAMUSA left there go
            writer.add(f, np.zeros(input_.frames.frame_shape, bool))
        for f in changed:
            if window is None or f in window:
                writer.add(f, session.mask(obj_id, f))

        def on_frame(done: int, total: int, frame: int, _obj: int) -> None:
            computed.append(frame)
            writer.add(frame, session.mask(obj_id, frame))
            if progress is not None:
                progress(done, total, frame)

        def should_stop() -> bool:
            return self._cancel or not writer.alive or (cancel is not None and bool(cancel()))

        report = None
        try:
            report = session.propagate(direction, objects=[obj_id], progress=on_frame, cancel=should_stop)
        finally:
            writer.flush()
            if writer.alive:
                self.undo_stack.push(step)
        return ActionResult(segment_id, writer.written, computed, changed, time.perf_counter() - started,
                            cancelled=bool(report and report.cancelled) or not writer.alive, target=target,
                            frames_cleared=sorted(set(cleared) & set(writer.written)))

    def _outside_window(self, target, segment_id: str, window: TemporalWindow | None) -> list[int]:
        """Frames outside the window still showing a mask SAMUSA wrote there: after the
        window was narrowed, they marked the structure on frames the user had just said it
        is not on. Frames drawn by hand are not SAMUSA's to clear."""
        if window is None:
            return []
        empty = mask_digest(np.zeros(target.input.frames.frame_shape, bool))
        written = self._written_of(target, segment_id)
        return sorted(f for f, (_, digest) in written.items() if f not in window and digest != empty)

    def cancel(self) -> None:
        """Ask a running propagate() to stop after the current frame."""
        self._cancel = True

    def clear_prompts(self, input_node, segmentation_node, segment_id: str, frame: int | None = None, *,
                      axis: str = "K", model: str | None = None, device: str = "auto") -> int:
        """Remove a segment's prompts on one frame (or all), as one undo step: undo puts the
        points, boxes and hand drawings back, with the masks. With `model` and a session
        open, the frames left without prompts lose the masks their prompts made at once;
        otherwise at the next `segment_frame` / `propagate` (propagation refills them from
        their neighbours)."""
        input_ = self.input(input_node, axis)
        target = target_for(input_, segmentation_node)
        _require_segment(target, segment_id)
        self._written_of(target, segment_id)  # what the scene says was drawn by hand
        step = self.undo_stack.begin(target, segment_id, "clear prompts")
        hand = self._hand_masks.get(self._key(target, segment_id), {})
        step.hand_drawn = {f: hand.pop(f) for f in [f for f in hand if frame is None or f == frame]}
        if step.hand_drawn:  # its voxels stay; it is no longer a prompt
            self._save_record(target, segment_id)
        nodes = [*prompt_nodes(target, segment_id).values(), *box_nodes(target, segment_id)]
        removed = remove_prompts(input_, nodes, frame, kept=step.removed) + len(step.hand_drawn)
        try:
            if removed and model is not None and self.has_session:
                _, session = self.session(input_node, model=model, device=device, axis=axis)
                self._write_changed(session, input_, target, segment_id, None, step)
        finally:  # a clear whose re-segmentation failed is still undone by Ctrl+Z
            self.undo_stack.push(step)
        return removed

    def undo(self) -> UndoStep | None:
        """Undo the last action; the session forgets the segment's propagated frames so the
        next propagate recomputes them from the (restored) prompts."""
        step = self.undo_stack.undo()
        if step is not None and step.target.node.GetScene() is not None:
            self._record(step.target, step.segment_id, step.masks())
            if _segment_exists(step.target.node, step.segment_id):  # where undo left the points
                self._positions[self._key(step.target, step.segment_id)] = prompt_positions(step.target, step.segment_id)
            if step.hand_drawn:  # drawings the action had stopped using are prompts again
                written = self._written_of(step.target, step.segment_id)
                for frame in step.hand_drawn:
                    written.pop(frame, None)
                self._hand_masks.setdefault(self._key(step.target, step.segment_id), {}).update(step.hand_drawn)
                self._save_record(step.target, step.segment_id)
        if step is not None and self._session is not None:
            obj_id = self._objects.get((step.target.node.GetID(), step.segment_id))
            if obj_id is not None and obj_id in self._session.objects:
                self._session.objects[obj_id].forget_results()
                self._resync(step)
        return step

    def _resync(self, step: UndoStep) -> None:
        """Take the prompts undo restored into the session now. Left for the next action,
        a frame whose click was undone counted as changed there and was rewritten with
        the mask of no prompts: undo a correction, click on another frame, and the
        corrected frame went blank."""
        if self._input is None or step.target.node.GetScene() is None:
            return
        if step.target.input.fingerprint != self._input.fingerprint:
            return  # the session is another image's now
        if not _segment_exists(step.target.node, step.segment_id):
            return
        try:
            self._sync(self._session, self._input, step.target, step.segment_id)
        except PromptError:
            pass  # prompts the scene now holds outside the window: the next action says so


def _moved_words(moved: list[tuple]) -> str:
    boxes = sum(1 for node, *_ in moved if node.IsA("vtkMRMLMarkupsROINode"))
    points = len(moved) - boxes
    words = [w for w in (f"{points} point(s)" if points > 1 else "point" if points else "",
                         f"{boxes} box(es)" if boxes > 1 else "box" if boxes else "") if w]
    return " and ".join(words) + (" moved was" if len(moved) == 1 else " moved were")


def _require_segment(target: SegmentationTarget, segment_id: str) -> None:
    """A segment deleted while the panel still named it (Segment Editor, Data module) failed
    deep inside the write with "'NoneType' object has no attribute 'GetName'"."""
    if not _segment_exists(target.node, segment_id):
        raise PromptError(
            f"the segment {segment_id!r} is no longer in '{target.node.GetName()}' (it was deleted): "
            "choose a segment or add one"
        )


def _same_prompt(a: FramePrompt | None, b: FramePrompt) -> bool:
    if a is None:
        return False
    return (
        np.array_equal(a.boundary, b.boundary)
        and np.array_equal(a.positive, b.positive)
        and np.array_equal(a.negative, b.negative)
        and a.box == b.box
        and ((a.mask is None and b.mask is None)
             or (a.mask is not None and b.mask is not None and np.array_equal(a.mask, b.mask)))
    )

