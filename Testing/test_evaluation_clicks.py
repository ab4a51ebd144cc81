"""Simulated users: where the region, boundary and box users click."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from SAMUSALib.evaluation.clicks import (
    Click,
    SimulatedUser,
    box_click,
    boundary_click,
    case_rng,
    contour_points,
    deepest_point,
    region_click,
)


def ellipse(shape=(60, 80), centre=(34.0, 28.0), axes=(22.0, 13.0)) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((cols - centre[0]) / axes[0]) ** 2 + ((rows - centre[1]) / axes[1]) ** 2 <= 1.0


def depth(mask: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def on_contour(mask: np.ndarray, x: float, y: float) -> bool:
    """The point is half-way between an inside and an outside pixel centre."""
    height, width = mask.shape

    def inside(r, c):
        return 0 <= r < height and 0 <= c < width and bool(mask[r, c])

    if float(x).is_integer() and not float(y).is_integer():
        c, r0 = int(x), int(np.floor(y))
        return inside(r0, c) != inside(r0 + 1, c)
    if float(y).is_integer() and not float(x).is_integer():
        r, c0 = int(y), int(np.floor(x))
        return inside(r, c0) != inside(r, c0 + 1)
    return False


def test_first_region_click_is_the_deepest_point_of_the_reference():
    reference = ellipse()
    user = SimulatedUser("region", reference)
    click = user.next(None)
    assert click.kind == "positive"
    d = depth(reference)
    assert d[int(click.y), int(click.x)] == d.max()
    assert (click.x, click.y) == (34.0, 28.0)  # the centre of this symmetric ellipse


def test_deepest_point_of_a_rectangle_is_its_middle_not_a_corner_of_the_ridge():
    mask = np.zeros((30, 60), dtype=bool)
    mask[10:20, 5:55] = True
    x, y = deepest_point(mask)
    assert depth(mask)[int(y), int(x)] == depth(mask).max()
    assert abs(x - 29.5) <= 0.5 and abs(y - 14.5) <= 0.5


def test_image_border_counts_as_outside_for_the_deepest_point():
    mask = np.zeros((20, 40), dtype=bool)
    mask[:, :20] = True  # touches the left, top and bottom borders
    x, y = deepest_point(mask)
    assert 8 <= x <= 11 and 8 <= y <= 11


def test_a_missed_region_gets_a_positive_click_inside_it():
    reference = ellipse()
    prediction = reference.copy()
    missed = np.zeros_like(reference)
    missed[20:34, 40:52] = True
    prediction &= ~missed
    click = region_click(reference, prediction, [Click("positive", 34.0, 28.0)])
    assert click.kind == "positive"
    assert missed[int(click.y), int(click.x)]
    d = depth(missed & reference)
    assert d[int(click.y), int(click.x)] == d.max()


def test_a_false_region_gets_a_negative_click_inside_it():
    reference = ellipse()
    false = np.zeros_like(reference)
    false[45:58, 2:20] = True  # well outside the ellipse
    prediction = reference | false
    click = region_click(reference, prediction, [Click("positive", 34.0, 28.0)])
    assert click.kind == "negative"
    assert false[int(click.y), int(click.x)] and not reference[int(click.y), int(click.x)]


def test_the_largest_error_region_is_corrected_first():
    reference = ellipse()
    small_false = np.zeros_like(reference)
    small_false[50:54, 70:74] = True  # 16 px false positive
    big_miss = np.zeros_like(reference)
    big_miss[22:34, 14:26] = True  # 144 px missed
    prediction = (reference & ~big_miss) | small_false
    click = region_click(reference, prediction)
    assert click.kind == "positive" and big_miss[int(click.y), int(click.x)]
    # "depth" criterion: the deepest region, here also the big miss
    assert region_click(reference, prediction, criterion="depth").kind == "positive"


def test_region_user_is_done_when_the_mask_is_right_and_never_clicks_twice_on_a_pixel():
    reference = ellipse()
    assert region_click(reference, reference.copy()) is None
    one = np.zeros_like(reference)
    one[5, 5] = True
    prediction = reference | one  # a one-pixel false positive
    first = region_click(reference, prediction)
    assert (first.kind, first.x, first.y) == ("negative", 5.0, 5.0)
    assert region_click(reference, prediction, [first]) is None  # already clicked there


def test_boundary_clicks_lie_on_the_contour_and_the_second_is_the_farthest():
    reference = ellipse()
    user = SimulatedUser("boundary", reference, case_rng(3, "case", 1))
    first = user.next(None)
    second = user.next(np.zeros_like(reference))
    for click in (first, second):
        assert click.kind == "boundary"
        assert on_contour(reference, click.x, click.y), (click.x, click.y)
    points = contour_points(reference)
    distances = np.hypot(points[:, 0] - first.x, points[:, 1] - first.y)
    assert np.hypot(second.x - first.x, second.y - first.y) == pytest.approx(distances.max())
    # every contour point lies on the border
    assert all(on_contour(reference, x, y) for x, y in points[::7])


def test_next_boundary_click_is_the_contour_point_furthest_from_the_predicted_contour():
    reference = ellipse()
    prediction = reference.copy()
    prediction[:, 45:] = False  # the right end of the ellipse is missing
    previous = [Click("boundary", 12.5, 28.0), Click("boundary", 55.5, 28.0)]
    click = boundary_click(reference, prediction, previous)
    assert on_contour(reference, click.x, click.y)
    gt_points = contour_points(reference)
    pred_points = contour_points(prediction)
    far = np.array([np.hypot(*(pred_points - p).T).min() for p in gt_points])
    allowed = np.array([min(np.hypot(p[0] - c.x, p[1] - c.y) for c in previous) > 1.0 for p in gt_points])
    mine = np.hypot(*(pred_points - np.array([click.x, click.y])).T).min()
    assert mine == pytest.approx(far[allowed].max())
    assert click.x > 45  # in the missing part


def test_boundary_user_is_seeded_and_deterministic():
    reference = ellipse()
    a = SimulatedUser("boundary", reference, case_rng(0, "x", 1, "boundary")).next(None)
    b = SimulatedUser("boundary", reference, case_rng(0, "x", 1, "boundary")).next(None)
    seeds = {SimulatedUser("boundary", reference, case_rng(s, "x", 1, "boundary")).next(None) for s in range(8)}
    assert a == b
    assert len(seeds) > 1


def test_box_is_the_reference_extent_at_pixel_edges_and_box_plus_clicks_corrects_after_it():
    reference = np.zeros((20, 30), dtype=bool)
    reference[4:9, 10:12] = True
    assert box_click(reference).box == (9.5, 3.5, 11.5, 8.5)
    thin = np.zeros((10, 10), dtype=bool)
    thin[2:8, 4] = True  # one pixel wide: still a valid box
    x0, y0, x1, y1 = box_click(thin).box
    assert x1 > x0 and y1 > y0
    noisy = box_click(reference, np.random.default_rng(0), noise=0.1).box
    assert noisy != box_click(reference).box

    only_box = SimulatedUser("box", reference)
    assert only_box.next(None).kind == "box"
    assert only_box.next(reference) is None  # box only: one interaction
    user = SimulatedUser("box+region", reference)
    assert user.next(None).kind == "box"
    prediction = reference.copy()
    prediction[4:9, 11] = False
    second = user.next(prediction)
    assert second.kind == "positive" and second.x == 11.0
    user = SimulatedUser("box+boundary", reference)
    user.next(None)
    click = user.next(prediction)
    assert click.kind == "boundary" and on_contour(reference, click.x, click.y)


def test_object_absent_gives_only_negative_clicks():
    reference = np.zeros((20, 20), dtype=bool)
    prediction = np.zeros_like(reference)
    prediction[5:10, 5:10] = True
    for kind in ("region", "boundary", "box", "box+region"):
        user = SimulatedUser(kind, reference)
        click = user.next(prediction)
        assert click.kind == "negative" and prediction[int(click.y), int(click.x)]
        assert SimulatedUser(kind, reference).next(np.zeros_like(reference)) is None


def test_click_prompt_kwargs_match_session_add_prompt():
    assert Click("positive", 1.0, 2.0).prompt_kwargs() == {"positive": [[1.0, 2.0]]}
    assert Click("negative", 1.0, 2.0).prompt_kwargs() == {"negative": [[1.0, 2.0]]}
    assert Click("boundary", 1.5, 2.0).prompt_kwargs() == {"boundary": [[1.5, 2.0]]}
    assert Click("box", box=(0.0, 1.0, 5.0, 6.0)).prompt_kwargs() == {"box": [0.0, 1.0, 5.0, 6.0]}
    assert Click("boundary", 1.5, 2.0).to_json() == {"kind": "boundary", "x": 1.5, "y": 2.0}
    with pytest.raises(ValueError):
        SimulatedUser("lasso", np.ones((3, 3), dtype=bool))


def _arc_positions(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where each point sits along the border, as a fraction of its length."""
    from SAMUSALib.evaluation.clicks import outer_contour

    contour = outer_contour(mask)
    steps = np.r_[0.0, np.cumsum(np.hypot(*np.diff(contour, axis=0).T))]
    index = [int(np.argmin(np.hypot(*(contour - p).T))) for p in points]
    return steps[index] / (steps[-1] + np.hypot(*(contour[0] - contour[-1])))


def test_boundary_layouts_spread_bunch_or_spread_furthest_first_on_the_border():
    """A prompts file's boundary points: `even` splits the border into equal arcs, `clustered`
    keeps them on at most half of it, `furthest` makes each the point furthest from the
    earlier ones; all lie on the border and a seed repeats them."""
    from SAMUSALib.evaluation.clicks import boundary_layout

    mask = ellipse()
    for layout in ("even", "clustered", "furthest"):
        points = boundary_layout(mask, 6, layout, np.random.default_rng(3))
        assert points.shape == (6, 2)
        assert all(on_contour(mask, x, y) for x, y in points), layout
        np.testing.assert_array_equal(points, boundary_layout(mask, 6, layout, np.random.default_rng(3)))
    gaps = np.diff(np.sort(_arc_positions(mask, boundary_layout(mask, 6, "even", np.random.default_rng(3)))))
    assert np.allclose(gaps, 1 / 6, atol=0.02), gaps
    bunched = np.sort(_arc_positions(mask, boundary_layout(mask, 6, "clustered", np.random.default_rng(3))))
    circular_gaps = np.diff(np.r_[bunched, bunched[0] + 1])
    assert circular_gaps.max() >= 0.5, circular_gaps  # the rest of the border is left empty
    far = boundary_layout(mask, 2, "furthest", np.random.default_rng(3))
    assert np.hypot(*(far[0] - far[1])) > 2 * 13.0 - 2  # across the ellipse, at least its minor axis
    with pytest.raises(ValueError, match="layout"):
        boundary_layout(mask, 3, "spiral")


def test_jittered_points_land_within_the_radius_and_not_all_on_the_border():
    from SAMUSALib.evaluation.clicks import boundary_layout, jitter_points

    mask = ellipse()
    points = boundary_layout(mask, 50, "even", np.random.default_rng(0))
    moved = jitter_points(points, 3.0, np.random.default_rng(1))
    distance = np.hypot(*(moved - points).T)
    assert distance.max() <= 3.0 and distance.mean() > 1.0
    np.testing.assert_array_equal(jitter_points(points, 0.0, np.random.default_rng(1)), points)
