"""Training prompts sampled as the SAMUSA paper describes (section 2.2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from SAMUSALib.evaluation.clicks import contour_points
from SAMUSALib.training.sampling import (
    KIND_LABELS,
    choose_corrections,
    choose_mode,
    correct,
    point_budget,
    start_prompt,
    temporal_window,
)


def ellipse(shape=(80, 100), centre=(50, 40), axes=(30, 18)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((xx - centre[0]) / axes[0]) ** 2 + ((yy - centre[1]) / axes[1]) ** 2 <= 1


def on_contour(mask, points, tolerance=0.75) -> bool:
    distance, _ = cKDTree(contour_points(mask)).query(np.asarray(points))
    return bool((distance <= tolerance).all())


def test_first_two_boundary_points_lie_on_the_boundary_and_span_it():
    reference = ellipse()
    contour = contour_points(reference)
    for seed in range(5):
        state = start_prompt(reference, "boundary", np.random.default_rng(seed), initial=2)
        points = state.boundary_points
        assert len(points) == 2 and on_contour(reference, points)
        span = np.hypot(*(points[1] - points[0]))
        furthest = np.hypot(*(contour - points[0]).T).max()
        assert span == pytest.approx(furthest, abs=1e-3)
        assert span > 30  # across the ellipse, never two neighbours
    starts = {tuple(start_prompt(reference, "boundary", np.random.default_rng(s), initial=1).boundary_points[0]) for s in range(6)}
    assert len(starts) > 1  # the first point is random


def test_later_boundary_points_go_where_the_prediction_is_most_wrong():
    reference = ellipse()
    prediction = reference.copy()
    prediction[:, 60:] = False  # the right end of the structure is missed
    state = start_prompt(reference, "boundary", np.random.default_rng(0), initial=2)
    assert correct(state, prediction)
    x, y, label = state.points[-1]
    assert label == KIND_LABELS["boundary"]
    assert on_contour(reference, [(x, y)])
    assert x >= 75  # the far end of the missed part (the ellipse reaches x = 80)


def test_region_corrections_click_inside_the_error_with_the_right_sign():
    reference = ellipse()
    state = start_prompt(reference, "region", np.random.default_rng(0))
    x, y, label = state.points[0]
    assert label == KIND_LABELS["positive"] and reference[int(round(y)), int(round(x))]
    missed = reference.copy()
    missed[:, 55:] = False
    correct(state, missed)
    x, y, label = state.points[-1]
    assert label == KIND_LABELS["positive"] and reference[int(y), int(x)] and not missed[int(y), int(x)]
    spill = reference | ellipse(centre=(20, 15), axes=(12, 10))
    correct(state, spill)
    x, y, label = state.points[-1]
    assert label == KIND_LABELS["negative"] and spill[int(y), int(x)] and not reference[int(y), int(x)]


def test_box_mode_gives_a_box_and_no_corrections():
    reference = ellipse()
    state = start_prompt(reference, "box", np.random.default_rng(0), box_noise=0.0)
    assert state.box == pytest.approx((19.5, 21.5, 80.5, 58.5))
    assert not correct(state, np.zeros_like(reference))


def test_point_budgets_stay_within_two_to_ten_and_use_the_whole_range():
    rng = np.random.default_rng(0)
    budgets = [point_budget(rng) for _ in range(500)]
    assert min(budgets) == 2 and max(budgets) == 10
    with pytest.raises(ValueError):
        point_budget(rng, 5, 3)


def test_two_distinct_images_per_batch_are_chosen_for_corrections():
    rng = np.random.default_rng(0)
    for _ in range(20):
        chosen = choose_corrections(8, rng)
        assert len(chosen) == 2 and len(set(chosen.tolist())) == 2 and chosen.max() < 8
    assert len(choose_corrections(1, rng)) == 1


def test_mode_weights_are_followed_and_validated():
    rng = np.random.default_rng(0)
    modes = [choose_mode(rng, {"boundary": 3, "region": 1}) for _ in range(400)]
    assert set(modes) == {"boundary", "region"}
    assert 0.65 < modes.count("boundary") / 400 < 0.85
    with pytest.raises(ValueError, match="positive weight"):
        choose_mode(rng, {"boundary": 0})


def test_temporal_windows_span_the_visible_frames():
    visible = np.zeros(12, bool)
    visible[3:8] = True
    assert temporal_window(visible) == (3, 7)
    rng = np.random.default_rng(0)
    for _ in range(20):
        start, end = temporal_window(visible, rng, slack=5)
        assert 0 <= start <= 3 and 7 <= end <= 11
    assert temporal_window(np.zeros(5, bool)) is None
