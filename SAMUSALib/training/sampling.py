"""Simulated prompts for training, as the SAMUSA paper samples them (section 2.2).

Boundary points: a random point of the reference contour, then the contour point
furthest from it, then, one at a time, the reference contour point furthest from the
*predicted* contour (the model's own prediction with the points so far). Per batch,
`corrections` images (2 in the paper) receive such corrective points, up to a total
drawn from 2 to 10. Region clicks for baselines follow the evaluation's simulated user
(the first at the reference's deepest point, then the centre of the largest error
region, positive or negative). The point simulators are the evaluation's
(`SAMUSALib.evaluation.clicks`), so training and evaluation prompt alike.

Temporal windows for training videos span the frames where the object is visible,
optionally loosened by a few frames, as a user would mark them approximately.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..evaluation.clicks import LAYOUTS, Click, SimulatedUser, boundary_layout, jitter_points

MODES = ("boundary", "region", "box", "box+region")
KIND_LABELS = {"negative": 0, "positive": 1, "boundary": 4}
"""Point labels as SAMUSA-Lite's prompt encoder reads them: SAM's 0 (negative) and 1
(positive), 2 and 3 for box corners, and 4, new, for boundary points."""


@dataclass
class PromptState:
    """One training image's simulated user and the prompt it has given so far."""

    mode: str
    user: SimulatedUser
    points: list[tuple[float, float, int]] = field(default_factory=list)  # x, y, label
    box: tuple[float, float, float, float] | None = None
    jitter: float = 0.0  # boundary points land up to this many pixels off the border
    rng: np.random.Generator | None = None  # draws the jitter
    unboxed: bool = False  # boundary points decoded without their extent as a box

    def add(self, click: Click | None) -> bool:
        if click is None:
            return False
        if click.kind == "box":
            self.box = click.box
        else:
            x, y = float(click.x), float(click.y)
            if click.kind == "boundary" and self.jitter > 0 and self.rng is not None:
                x, y = jitter_points(np.array([[x, y]]), self.jitter, self.rng)[0]
            self.points.append((float(x), float(y), KIND_LABELS[click.kind]))
        return True

    @property
    def boundary_points(self) -> np.ndarray:
        return np.array([(x, y) for x, y, label in self.points if label == KIND_LABELS["boundary"]], dtype=np.float32).reshape(-1, 2)


def start_prompt(reference: np.ndarray, mode: str, rng: np.random.Generator, *, box_noise: float = 0.1,
                 initial: int = 2, jitter: float = 0.0) -> PromptState:
    """The first interaction(s) without a prediction: `initial` (1 or 2) boundary points
    (random, then the furthest), one region click at the deepest point, or a (noisy) box.
    Boundary points, these and later ones, land up to `jitter` pixels off the border."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    state = PromptState(mode, SimulatedUser(mode, reference, rng, box_noise=box_noise), jitter=jitter,
                        rng=rng if jitter > 0 else None)
    state.add(state.user.next(None))
    if mode == "boundary" and initial >= 2:
        state.add(state.user.next(None))
    return state


def layout_prompt(reference: np.ndarray, mode: str, rng: np.random.Generator, count: int, layout: str, *,
                  jitter: float = 0.0, shuffle: bool = True) -> PromptState:
    """Boundary points chosen without a prediction, as a prompts file or a markups node
    gives them: ``count`` points placed by ``layout`` (`LAYOUTS`), each up to ``jitter``
    pixels off the border, in a random order when ``shuffle`` (users click in any order)."""
    state = PromptState(mode, SimulatedUser(mode, reference, rng), jitter=jitter, rng=rng)
    points = jitter_points(boundary_layout(reference, count, layout, rng), jitter, rng)
    if shuffle:
        points = points[rng.permutation(len(points))]
    state.points = [(float(x), float(y), KIND_LABELS["boundary"]) for x, y in points]
    return state


def choose_layout(rng: np.random.Generator, weights: dict[str, float]) -> str:
    return _weighted_choice(rng, LAYOUTS, weights, "layout")


def correct(state: PromptState, prediction: np.ndarray) -> bool:
    """One corrective click from the current prediction; False when the user is done
    (nothing left to correct, or box-only mode)."""
    if state.mode == "box":
        return False
    return state.add(state.user.next(prediction))


def choose_corrections(batch: int, rng: np.random.Generator, count: int = 2) -> np.ndarray:
    """Indices of the images of a batch that receive corrective points."""
    return np.sort(rng.choice(batch, size=min(count, batch), replace=False))


def point_budget(rng: np.random.Generator, low: int = 2, high: int = 10) -> int:
    """Total points for a corrected image, uniform in [low, high]."""
    if not 1 <= low <= high:
        raise ValueError(f"need 1 <= low <= high; got {low}, {high}")
    return int(rng.integers(low, high + 1))


def choose_mode(rng: np.random.Generator, weights: dict[str, float]) -> str:
    return _weighted_choice(rng, MODES, weights, "prompt mode")


def _weighted_choice(rng: np.random.Generator, choices: tuple[str, ...], weights: dict[str, float], what: str) -> str:
    """One of `choices` drawn with the given weights (those absent or zero never drawn)."""
    names = [name for name in choices if weights.get(name, 0) > 0]
    if not names:
        raise ValueError(f"{what} weights must give at least one of {choices} a positive weight")
    p = np.array([weights[name] for name in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def temporal_window(visible: np.ndarray, rng: np.random.Generator | None = None, slack: int = 0) -> tuple[int, int] | None:
    """(start, end) frames of a training video's window: the first and last frames where
    the object is visible, each moved outwards by up to `slack` frames (random) and
    clipped to the video; None when the object is never visible."""
    visible = np.asarray(visible, dtype=bool)
    frames = np.flatnonzero(visible)
    if frames.size == 0:
        return None
    start, end = int(frames[0]), int(frames[-1])
    if slack > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        start = max(0, start - int(rng.integers(0, slack + 1)))
        end = min(len(visible) - 1, end + int(rng.integers(0, slack + 1)))
    return start, end
