"""How a simulated user hands its clicks to a session: one at a time (each chosen from
the mask the last one gave, the frame's history kept) or all at once (one prompt, no
history on the frame, as a prompts file or a markups node gives them)."""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from .clicks import Click, SimulatedUser, boundary_layout, jitter_points
from .metrics import dice, iou


def rounded(value: float | None, digits: int = 4) -> float | None:
    """A score for the records: rounded, None when missing or not finite."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def clicks_at_once(prompt_type: str, user: SimulatedUser, reference: np.ndarray, k: int, prediction: np.ndarray,
                    rng: np.random.Generator, layout: str = "even") -> list[Click]:
    """The k clicks of the at-once user, chosen without the model's history on the frame:
    boundary points placed along the border as ``layout`` says (`clicks.LAYOUTS`: spread
    evenly, bunched on one arc, or furthest-first) from a start fixed per case (k + 1
    points are not k points plus one: a user re-placing the set places them anew);
    region clicks (after the box, for box+region) chosen as the one-at-a-time user does,
    from the previous at-once run's mask, and all given again together."""
    if prompt_type == "boundary":
        points = boundary_layout(reference, k, layout, np.random.default_rng(rng.integers(2**32)))
        return [Click("boundary", float(x), float(y)) for x, y in points]
    if user.next(prediction if user.clicks else None) is None:
        return []
    return list(user.clicks)


def off_the_border(clicks: Sequence[Click], radius: float, rng: np.random.Generator, shape: tuple[int, int]) -> list[Click]:
    """Boundary clicks as a hand gives them: each up to ``radius`` pixels off the border
    point it aims at (`clicks.jitter_points`), within the (H, W) frame (a click cannot
    land outside the picture); other clicks unchanged."""
    if radius <= 0:
        return list(clicks)
    out = []
    for click in clicks:
        if click.kind == "boundary":
            (x, y), = jitter_points(np.array([[click.x, click.y]]), radius, rng)
            click = Click("boundary", float(np.clip(x, 0, shape[1] - 1)), float(np.clip(y, 0, shape[0] - 1)))
        out.append(click)
    return out


def merged_kwargs(clicks: Sequence[Click]) -> dict:
    """One `Session.add_prompt` call's keyword arguments for several clicks."""
    kwargs: dict[str, list] = {}
    for click in clicks:
        for name, value in click.prompt_kwargs().items():
            kwargs[name] = value if name == "box" else kwargs.get(name, []) + value
    return kwargs


def give_clicks(session, obj: int, frame: int, user: SimulatedUser, count: int, reference, current) -> tuple[list[dict], np.ndarray, float]:
    """Up to ``count`` clicks of ``user`` on ``frame``; each scored right after it."""
    steps = []
    seconds = 0.0
    for _ in range(count):
        click = user.next(current)
        if click is None:
            break
        started = time.perf_counter()
        current = np.asarray(session.add_prompt(obj, frame, **click.prompt_kwargs()), dtype=bool)
        seconds += time.perf_counter() - started
        steps.append({"click": click.to_json(), "iou": rounded(iou(current, reference)), "dice": rounded(dice(current, reference))})
    return steps, current, seconds


def give_clicks_at_once(session, obj: int, frame: int, user: SimulatedUser, count: int, reference) -> tuple[list[dict], np.ndarray, float]:
    """``count`` clicks of ``user`` chosen without looking at any prediction (no history:
    the boundary user spreads them along the border, each furthest from the earlier ones),
    given in one prompt and scored once."""
    chosen = []
    for _ in range(count):
        click = user.next(None)
        if click is None:
            break
        chosen.append(click)
    if not chosen:
        return [], np.asarray(session.mask(obj, frame), dtype=bool), 0.0
    started = time.perf_counter()
    current = np.asarray(session.add_prompt(obj, frame, **merged_kwargs(chosen)), dtype=bool)
    seconds = time.perf_counter() - started
    steps = [{"click": click.to_json()} for click in chosen]
    steps[-1].update({"iou": rounded(iou(current, reference)), "dice": rounded(dice(current, reference))})
    return steps, current, seconds
