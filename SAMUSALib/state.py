"""The per-object state a session keeps and its backends read and extend.

It lives apart from the engine so that the backends (SAMUSALib/backends/) can use it
without importing the engine that drives them.
"""

from __future__ import annotations

from .prompts import FramePrompt, TemporalWindow


class ObjectState:
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
        #: the propagated result a frame showed when its first clicks came: what those
        #: clicks (and the frame's later ones) correct, for backends that correct the
        #: shown mask (`Session._correcting`); only on frames prompted by clicks alone,
        #: so a frame's mask prompt is this result's mask exactly when the frame is here
        self.shown: dict[int, dict] = {}

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
