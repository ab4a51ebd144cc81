"""Simulated-user protocols: image (clicks on one frame), video (propagate and correct),
volume (prompt one slice, propagate both ways).

The drivers talk to a *session* through the interface of :class:`SAMUSALib.engine.Session`
only (``add_object``, ``set_window``, ``add_prompt``, ``propagate``, ``mask``, ``masks``,
``prompted_frames``, optionally ``features.stats``), created per case by a *session
factory* ``factory(frames: FrameSource) -> session``. :func:`session_factory` builds the
usual one from a loaded model; tests pass fakes.

Image protocol (SAMUSA paper, section 3.2, Table 4 / Figure 2). For every case, object and
prompt type, one simulated user (:mod:`.clicks`) clicks up to ``max_clicks`` times on the
frame; the clicks accumulate on the frame (``add_prompt`` adds to the frame's prompt) and
Dice / IoU / HD95 / ASSD are measured after each click. One session per case, one session
object per (object, prompt type), so the frame is encoded once. A box counts as one
interaction. If the user has nothing left to correct it stops and the last scores carry
over to the remaining click counts. Clicks-to-threshold (NoC) is the first click count
whose IoU reaches the threshold, None if none does within ``max_clicks``.

Video protocol (section 3.2, Table 5 / Figure 3; interventions and clicks per loop as in
SonoSAMTrack). ``clicks`` clicks on the first annotated frame that holds the object, then
propagate (forward by default). The first annotated, not yet prompted frame whose IoU is
below ``iou_threshold`` gets ``clicks`` new clicks, the single-image user restarted on that
frame, on top of the propagated mask; propagate again (the session recomputes only the
frames that depended on it); at most ``max_interventions`` times. With ``window`` the
object's temporal window is the reference's visible frames (first to last annotated
frame holding the object). Frames computed come from the ``PropagationReport`` totals.
A failing frame on which the object is absent gets negative clicks (the only way to say
"nothing here").

Volume protocol (BioSAM-2 / MedSAM2 3D protocol). The object's middle slice along the
case's axis (the slice half-way between its first and last non-empty slice; the nearest
non-empty one if that is empty) or its largest slice is prompted (``clicks`` clicks, or
a box), then propagated both ways, optionally inside a window from the reference. Dice,
IoU, HD95 and ASSD are computed on the whole volume with its spacing (millimetres).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..frames import AXES, FrameSource
from .clicks import LAYOUTS, PROMPT_TYPES, SimulatedUser, case_rng
from .giving import clicks_at_once, give_clicks, give_clicks_at_once, merged_kwargs, off_the_border
from .giving import rounded as _r
from .datasets import Case
from .metrics import all_metrics, dice, iou

__all__ = [
    "SessionFactory",
    "session_factory",
    "EvaluationResult",
    "image_case",
    "video_case",
    "volume_case",
    "run_image_protocol",
    "run_video_protocol",
    "run_volume_protocol",
    "clicks_to_reach",
]

SessionFactory = Callable[[FrameSource], Any]
Progress = Callable[[int, int, str], None]
"""progress(done, total, label): once with done=0 before the first unit, then after each
(case, object, variant) unit; label names the unit about to run ("done" at the end)."""


def session_factory(model, *, feature_cache_mb: int | None = None) -> SessionFactory:
    """A factory making one :class:`~SAMUSALib.engine.Session` per case with ``model``."""
    from ..engine import Session

    def make(frames: FrameSource):
        return Session(frames, model, feature_cache_mb=feature_cache_mb)

    return make


@dataclass
class EvaluationResult:
    """What a protocol produced: one JSON-ready record per (case, object, variant), and the
    final predicted masks (bit-packed, for the overlays) keyed by the record's ``key``."""

    protocol: str
    settings: dict
    records: list[dict] = field(default_factory=list)
    cases: dict[str, Case] = field(default_factory=dict)
    _masks: dict[str, tuple[tuple[int, ...], np.ndarray]] = field(default_factory=dict, repr=False)

    def keep_mask(self, key: str, mask: np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        self._masks[key] = (mask.shape, np.packbits(mask, axis=None))

    def mask(self, key: str) -> np.ndarray | None:
        if key not in self._masks:
            return None
        shape, packed = self._masks[key]
        return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)




def clicks_to_reach(ious: Sequence[float], threshold: float) -> int | None:
    """1-based count of the first click whose IoU reaches ``threshold``; None if none."""
    for index, value in enumerate(ious):
        if value is not None and value >= threshold - 1e-12:
            return index + 1
    return None


def _prompt_type(name: str) -> str:
    if name not in PROMPT_TYPES:
        raise ValueError(f"prompt type must be one of {', '.join(PROMPT_TYPES)}; got {name!r}")
    return name


def _encoder_stats(session) -> dict:
    stats = getattr(getattr(session, "features", None), "stats", None)
    if stats is None:
        return {}
    return {"frames_encoded": int(getattr(stats, "calls", 0)), "encoder_seconds": _r(getattr(stats, "seconds", None), 3)}


# ------------------------------------------------------------------------- image
def image_case(
    case: Case,
    factory: SessionFactory,
    *,
    prompt_types: Sequence[str] = ("boundary", "region", "box", "box+region"),
    max_clicks: int = 10,
    thresholds: Sequence[float] = (0.85, 0.90),
    seed: int = 0,
    frame: int = 0,
    objects: Iterable[int] | None = None,
    criterion: str = "area",
    box_noise: float = 0.0,
    distances: bool = True,
    result: EvaluationResult | None = None,
    at_once: bool | str = False,
    boundary_layout: str = "even",
    boundary_jitter: float = 0.0,
) -> list[dict]:
    """Run every prompt type on one frame of a case; one record per (object, prompt type,
    way of giving the clicks). ``at_once`` (True, or "both" for both ways): the k clicks
    go in one prompt with no earlier prediction on the frame, as from a prompts file or a
    markups node (`giving.clicks_at_once`, boundary points placed as ``boundary_layout``
    says); the group is then "<prompt> at once". ``boundary_jitter``: every boundary
    click, either way, lands up to that many pixels off the border point it aims at
    (`giving.off_the_border`)."""
    if boundary_layout not in LAYOUTS:
        raise ValueError(f"boundary_layout must be one of {', '.join(LAYOUTS)}; got {boundary_layout!r}")
    if not boundary_jitter >= 0:
        raise ValueError(f"boundary_jitter must be 0 or more pixels; got {boundary_jitter}")
    prompt_types = [_prompt_type(p) for p in prompt_types]
    ways = [False, True] if at_once == "both" else [bool(at_once)]
    variants = [(p, together) for p in prompt_types for together in ways if not (together and p == "box")]
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be at least 1; got {max_clicks}")
    frames = case.frame_source()
    session = factory(frames)
    spacing = case.frame_spacing()
    records = []
    object_ids = list(objects) if objects is not None else case.objects
    slot = 0
    for obj_id in object_ids:
        reference = case.reference_frames(obj_id)[frame]
        for prompt_type, together in variants:
            group = f"{prompt_type} at once" if together else prompt_type
            key = f"{case.id}|{obj_id}|{group}"
            if not reference.any():
                records.append(
                    {
                        "key": key,
                        "case": case.id,
                        "object": obj_id,
                        "name": case.names.get(obj_id, f"object {obj_id}"),
                        "prompt": prompt_type,
                        "group": group,
                        "frame": frame,
                        "skipped": "the reference is empty on this frame",
                    }
                )
                continue
            slot += 1
            session.add_object(slot, f"{case.names.get(obj_id, obj_id)} / {prompt_type}")
            rng = case_rng(seed, case.id, obj_id, prompt_type, frame)
            user = SimulatedUser(prompt_type, reference, rng, criterion=criterion, box_noise=box_noise)
            limit = 1 if prompt_type == "box" else max_clicks
            prediction = np.zeros(frames.frame_shape, dtype=bool)
            steps: list[dict] = []
            stopped = None
            for k in range(1, limit + 1):
                if together:
                    clicks = clicks_at_once(prompt_type, user, reference, k, prediction, case_rng(seed, key), boundary_layout)
                    clicks = off_the_border(clicks, boundary_jitter, case_rng(seed, key, "jitter", k), frames.frame_shape)
                    click = clicks[-1] if clicks else None
                else:
                    click = user.next(prediction if user.clicks else None)
                    if click is not None:
                        click, = off_the_border([click], boundary_jitter, case_rng(seed, key, "jitter", k), frames.frame_shape)
                if click is None:
                    stopped = k
                    break
                started = time.perf_counter()
                if together:
                    prediction = np.asarray(session.add_prompt(slot, frame, replace=True, **merged_kwargs(clicks)), dtype=bool)
                else:
                    prediction = np.asarray(session.add_prompt(slot, frame, **click.prompt_kwargs()), dtype=bool)
                seconds = time.perf_counter() - started
                scores = all_metrics(prediction, reference, spacing, distances=distances)
                steps.append(
                    {
                        "k": k,
                        "click": click.to_json(),
                        "dice": _r(scores["dice"]),
                        "iou": _r(scores["iou"]),
                        "hd95": _r(scores.get("hd95")),
                        "assd": _r(scores.get("assd")),
                        "pred_pixels": scores["pred_voxels"],
                        "seconds": _r(seconds, 3),
                    }
                )
            ious = [s["iou"] for s in steps]
            dices = [s["dice"] for s in steps]
            if steps:  # the user stopped: the last scores carry over
                ious += [ious[-1]] * (limit - len(ious))
                dices += [dices[-1]] * (limit - len(dices))
            record = {
                "key": key,
                "case": case.id,
                "object": obj_id,
                "name": case.names.get(obj_id, f"object {obj_id}"),
                "prompt": prompt_type,
                "group": group,
                "clicks_given": "at once" if together else "one at a time",
                "frame": frame,
                "ref_pixels": int(reference.sum()),
                "units": case.units,
                "clicks": steps,
                "iou_by_clicks": ious,
                "dice_by_clicks": dices,
                "final_iou": ious[-1] if ious else None,
                "final_dice": dices[-1] if dices else None,
                "clicks_to": {f"{t:.2f}": clicks_to_reach(ious, t) for t in thresholds},
                "stopped_at": stopped,
            }
            records.append(record)
            if result is not None:
                result.keep_mask(key, prediction)
    for record in records:
        record.update(_encoder_stats(session))
    return records


def run_image_protocol(
    cases: Sequence[Case],
    factory: SessionFactory,
    *,
    prompt_types: Sequence[str] = ("boundary", "region", "box", "box+region"),
    max_clicks: int = 10,
    thresholds: Sequence[float] = (0.85, 0.90),
    seed: int = 0,
    criterion: str = "area",
    box_noise: float = 0.0,
    progress: Progress | None = None,
    at_once: bool | str = False,
    boundary_layout: str = "even",
    boundary_jitter: float = 0.0,
) -> EvaluationResult:
    """The image protocol over cases (every frame-0 object of every case); ``at_once``,
    ``boundary_layout`` and ``boundary_jitter`` as in `image_case`."""
    settings = {
        "prompt_types": list(prompt_types),
        "max_clicks": max_clicks,
        "thresholds": list(thresholds),
        "seed": seed,
        "criterion": criterion,
        "box_noise": box_noise,
        "clicks_at_once": at_once if isinstance(at_once, str) else bool(at_once),
        "boundary_layout": boundary_layout,
        "boundary_jitter": float(boundary_jitter),
    }
    result = EvaluationResult("image", settings)
    if progress is not None and cases:
        progress(0, len(cases), cases[0].id)
    for index, case in enumerate(cases):
        result.cases[case.id] = case
        result.records += image_case(
            case,
            factory,
            prompt_types=prompt_types,
            max_clicks=max_clicks,
            thresholds=thresholds,
            seed=seed,
            criterion=criterion,
            box_noise=box_noise,
            result=result,
            at_once=at_once,
            boundary_layout=boundary_layout,
            boundary_jitter=boundary_jitter,
        )
        if progress is not None:
            progress(index + 1, len(cases), cases[index + 1].id if index + 1 < len(cases) else "done")
    return result


# ------------------------------------------------------------------------- video
def _per_frame(masks: np.ndarray, reference: np.ndarray, annotated: np.ndarray) -> tuple[list, list]:
    ious, dices = [], []
    for f in range(reference.shape[0]):
        if not annotated[f]:
            ious.append(None)
            dices.append(None)
            continue
        ious.append(_r(iou(masks[f], reference[f])))
        dices.append(_r(dice(masks[f], reference[f])))
    return ious, dices


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return _r(float(np.mean(kept))) if kept else None


def _visible_span(reference: np.ndarray, annotated: np.ndarray) -> tuple[int, int] | None:
    present = np.flatnonzero(annotated & reference.reshape(reference.shape[0], -1).any(axis=1))
    if present.size == 0:
        return None
    return int(present[0]), int(present[-1])


def video_case(
    case: Case,
    factory: SessionFactory,
    obj_id: int = 1,
    *,
    prompt_type: str = "boundary",
    clicks: int = 5,
    iou_threshold: float = 0.75,
    max_interventions: int = 7,
    window: bool = False,
    direction: str = "forward",
    seed: int = 0,
    result: EvaluationResult | None = None,
    at_once: bool = False,
) -> dict:
    """The video protocol on one object of one case; returns its record. ``at_once``: each
    prompted frame gets its ``clicks`` in one prompt, chosen without a prediction (else one
    at a time, each after the last one's result)."""
    prompt_type = _prompt_type(prompt_type)
    if clicks < 1:
        raise ValueError(f"clicks must be at least 1; got {clicks}")
    reference = case.reference_frames(obj_id)
    annotated = case.annotated_frames()
    at_once = bool(at_once) and prompt_type != "box"
    variant = f"{prompt_type}{' +at-once' if at_once else ''}{' +window' if window else ''}"
    key = f"{case.id}|{obj_id}|{variant}"
    record: dict[str, Any] = {
        "key": key,
        "case": case.id,
        "object": obj_id,
        "name": case.names.get(obj_id, f"object {obj_id}"),
        "prompt": prompt_type,
        "window": None,
        "clicks_given": "at once" if at_once else "one at a time",
        "variant": variant,
        "num_frames": case.num_frames,
        "annotated_frames": int(annotated.sum()),
    }
    span = _visible_span(reference, annotated)
    if span is None:
        record["skipped"] = "the object is on no annotated frame"
        return record
    frames = case.frame_source()
    session = factory(frames)
    session.add_object(1, record["name"])
    if window:
        session.set_window(1, span)
        record["window"] = list(span)
    per_loop = 1 if prompt_type == "box" else clicks

    loops: list[dict] = []
    history: list[list] = []
    frame = span[0]
    iou_before = None
    total_frames = 0
    total_seconds = 0.0
    click_seconds = 0.0
    started_case = time.perf_counter()
    while True:
        user = SimulatedUser(prompt_type, reference[frame], case_rng(seed, case.id, obj_id, prompt_type, frame))
        current = np.asarray(session.mask(1, frame), dtype=bool)
        if at_once:
            steps, current, seconds = give_clicks_at_once(session, 1, frame, user, per_loop, reference[frame])
        else:
            steps, current, seconds = give_clicks(session, 1, frame, user, per_loop, reference[frame], current)
        click_seconds += seconds
        report = session.propagate(direction)
        total_frames += int(report.total)
        total_seconds += float(report.seconds)
        masks = np.asarray(session.masks(1), dtype=bool)
        ious, dices = _per_frame(masks, reference, annotated)
        history.append(ious)
        loops.append(
            {
                "loop": len(loops),
                "frame": frame,
                "iou_before": iou_before,
                "clicks": steps,
                "iou_after_clicks": steps[-1]["iou"] if steps else iou_before,
                "frames_propagated": int(report.total),
                "propagation_seconds": _r(report.seconds, 3),
                "click_seconds": _r(seconds, 3),
            }
        )
        if len(loops) > max_interventions:
            break
        prompted = set(int(f) for f in session.prompted_frames(1))
        failing = [f for f in range(case.num_frames) if ious[f] is not None and ious[f] < iou_threshold and f not in prompted]
        if not failing:
            break
        frame = failing[0]
        iou_before = ious[frame]

    visible = annotated & reference.reshape(reference.shape[0], -1).any(axis=1)
    interventions = len(loops) - 1
    clicks_total = sum(len(loop["clicks"]) for loop in loops)
    record.update(
        {
            "first_frame": span[0],
            "visible": list(span),
            "loops": loops,
            "interventions": interventions,
            "intervention_frames": [loop["frame"] for loop in loops[1:]],
            "iou_drop_at_interventions": _mean(
                [None if loop["iou_before"] is None else 1.0 - loop["iou_before"] for loop in loops[1:]]
            ),
            "clicks_total": clicks_total,
            "clicks_per_frame": _r(clicks_total / max(int(annotated.sum()), 1)),
            "iou_per_frame": ious,
            "dice_per_frame": dices,
            "iou_history": history,
            "mean_iou": _mean(ious),
            "mean_dice": _mean(dices),
            "worst_dice": min((d for d in dices if d is not None), default=None),
            "mean_iou_visible": _mean([v for v, keep in zip(ious, visible) if keep]),
            "mean_dice_visible": _mean([v for v, keep in zip(dices, visible) if keep]),
            "false_positive_frames": int(sum(1 for f in range(case.num_frames) if annotated[f] and not visible[f] and masks[f].any())),
            "frames_computed": total_frames,
            "propagation_seconds": _r(total_seconds, 3),
            "seconds_per_frame": _r(total_seconds / total_frames, 4) if total_frames else None,
            "click_seconds": _r(click_seconds, 3),
            "seconds_total": _r(time.perf_counter() - started_case, 3),
        }
    )
    record.update(_encoder_stats(session))
    if result is not None:
        result.keep_mask(key, masks)
    return record


def _window_modes(window: str | bool | None) -> list[bool]:
    if window in (True, "on", "yes"):
        return [True]
    if window in (False, None, "off", "no"):
        return [False]
    if window == "both":
        return [False, True]
    raise ValueError(f"window must be 'off', 'on' or 'both'; got {window!r}")


def run_video_protocol(
    cases: Sequence[Case],
    factory: SessionFactory,
    *,
    prompt_types: Sequence[str] = ("boundary", "region"),
    clicks: int = 5,
    iou_threshold: float = 0.75,
    max_interventions: int = 7,
    window: str | bool = "both",
    direction: str = "forward",
    seed: int = 0,
    progress: Progress | None = None,
    at_once: bool | str = False,
) -> EvaluationResult:
    """The video protocol over cases, objects, prompt types, window modes and ways of giving
    the clicks (``at_once``: False one at a time, True all at once, "both")."""
    ways = [False, True] if at_once == "both" else [bool(at_once)]
    modes = _window_modes(window)
    settings = {
        "prompt_types": list(prompt_types),
        "clicks": clicks,
        "iou_threshold": iou_threshold,
        "max_interventions": max_interventions,
        "window": window if isinstance(window, str) else ("on" if window else "off"),
        "direction": direction,
        "seed": seed,
        "clicks_at_once": at_once if isinstance(at_once, str) else bool(at_once),
    }
    result = EvaluationResult("video", settings)
    units = [(c, o, p, w, a) for c in cases for o in c.objects for p in prompt_types for a in ways for w in modes
             if not (a and p == "box")]
    labels = [f"{c.id} {p}{' at once' if a else ''}{' window' if w else ''}" for c, _, p, w, a in units] + ["done"]
    if progress is not None and units:
        progress(0, len(units), labels[0])
    for index, (case, obj_id, prompt_type, with_window, together) in enumerate(units):
        result.cases[case.id] = case
        result.records.append(
            video_case(
                case,
                factory,
                obj_id,
                prompt_type=prompt_type,
                clicks=clicks,
                iou_threshold=iou_threshold,
                max_interventions=max_interventions,
                window=with_window,
                direction=direction,
                seed=seed,
                result=result,
                at_once=together,
            )
        )
        if progress is not None:
            progress(index + 1, len(units), labels[index + 1])
    return result


# ------------------------------------------------------------------------ volume
def start_slice(reference: np.ndarray, start: str = "middle") -> int:
    """The slice to prompt: "middle" of the object's slice range (nearest non-empty slice
    if that one is empty) or the "largest"."""
    areas = reference.reshape(reference.shape[0], -1).sum(axis=1)
    present = np.flatnonzero(areas)
    if present.size == 0:
        raise ValueError("the object is empty")
    if start == "largest":
        return int(np.argmax(areas))
    if start != "middle":
        raise ValueError(f"start must be 'middle' or 'largest'; got {start!r}")
    middle = (int(present[0]) + int(present[-1])) // 2
    return int(present[np.argmin(np.abs(present - middle))])


def volume_case(
    case: Case,
    factory: SessionFactory,
    obj_id: int = 1,
    *,
    prompt_type: str = "box",
    clicks: int = 5,
    window: bool = False,
    start: str = "middle",
    seed: int = 0,
    result: EvaluationResult | None = None,
) -> dict:
    """The volume protocol on one object of one case; returns its record."""
    prompt_type = _prompt_type(prompt_type)
    reference = case.reference_frames(obj_id)
    variant = f"{prompt_type}{' +window' if window else ''}"
    key = f"{case.id}|{obj_id}|{variant}"
    record: dict[str, Any] = {
        "key": key,
        "case": case.id,
        "object": obj_id,
        "name": case.names.get(obj_id, f"object {obj_id}"),
        "prompt": prompt_type,
        "variant": variant,
        "axis": case.axis,
        "num_slices": case.num_frames,
        "units": case.units,
        "spacing": list(case.volume_spacing()),
        "window": None,
    }
    span = _visible_span(reference, np.ones(reference.shape[0], dtype=bool))
    if span is None:
        record["skipped"] = "the object is empty"
        return record
    frame = start_slice(reference, start)
    frames = case.frame_source()
    session = factory(frames)
    session.add_object(1, record["name"])
    if window:
        session.set_window(1, span)
        record["window"] = list(span)
    started = time.perf_counter()
    user = SimulatedUser(prompt_type, reference[frame], case_rng(seed, case.id, obj_id, prompt_type, frame))
    per_loop = 1 if prompt_type == "box" else clicks
    steps, _, click_seconds = give_clicks(session, 1, frame, user, per_loop, reference[frame], None)
    report = session.propagate("both")
    masks = np.asarray(session.masks(1), dtype=bool)
    predicted = np.moveaxis(masks, 0, AXES[case.axis])
    scores = all_metrics(predicted, case.references[obj_id], case.volume_spacing())
    ious, dices = _per_frame(masks, reference, np.ones(reference.shape[0], dtype=bool))
    record.update(
        {
            "start": start,
            "prompt_slice": frame,
            "visible": list(span),
            "clicks": steps,
            "dice": _r(scores["dice"]),
            "iou": _r(scores["iou"]),
            "hd95": _r(scores["hd95"]),
            "assd": _r(scores["assd"]),
            "pred_voxels": scores["pred_voxels"],
            "ref_voxels": scores["ref_voxels"],
            "iou_per_frame": ious,
            "dice_per_frame": dices,
            "frames_computed": int(report.total),
            "propagation_seconds": _r(report.seconds, 3),
            "seconds_per_frame": _r(report.seconds / report.total, 4) if report.total else None,
            "click_seconds": _r(click_seconds, 3),
            "seconds_total": _r(time.perf_counter() - started, 3),
        }
    )
    record.update(_encoder_stats(session))
    if result is not None:
        result.keep_mask(key, masks)
    return record


def run_volume_protocol(
    cases: Sequence[Case],
    factory: SessionFactory,
    *,
    prompt_types: Sequence[str] = ("box",),
    clicks: int = 5,
    window: str | bool = "off",
    start: str = "middle",
    seed: int = 0,
    progress: Progress | None = None,
) -> EvaluationResult:
    """The volume protocol over cases, objects, prompt types and window modes."""
    modes = _window_modes(window)
    settings = {
        "prompt_types": list(prompt_types),
        "clicks": clicks,
        "window": window if isinstance(window, str) else ("on" if window else "off"),
        "start": start,
        "seed": seed,
    }
    result = EvaluationResult("volume", settings)
    units = [(c, o, p, w) for c in cases for o in c.objects for p in prompt_types for w in modes]
    labels = [f"{c.id} {p}{' window' if w else ''}" for c, _, p, w in units] + ["done"]
    if progress is not None and units:
        progress(0, len(units), labels[0])
    for index, (case, obj_id, prompt_type, with_window) in enumerate(units):
        result.cases[case.id] = case
        result.records.append(
            volume_case(
                case,
                factory,
                obj_id,
                prompt_type=prompt_type,
                clicks=clicks,
                window=with_window,
                start=start,
                seed=seed,
                result=result,
            )
        )
        if progress is not None:
            progress(index + 1, len(units), labels[index + 1])
    return result
