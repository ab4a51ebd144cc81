"""Boundary-point helpers: the curve through the clicks, and picking the candidate that fits them."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from SAMUSALib.boundary import choose_candidate, contour_distance, curve_mask, order_by_angle


def _circle(shape, centre, radius):
    mask = np.zeros(shape, dtype=bool)
    mask[disk(centre, radius, shape=shape)] = True
    return mask


def _points_on_circle(centre_rc, radius, count, start=0.0):
    angles = start + np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([centre_rc[1] + radius * np.cos(angles), centre_rc[0] + radius * np.sin(angles)], axis=1)


def test_order_by_angle_undoes_any_click_order():
    points = _points_on_circle((50, 60), 20, 8)
    shuffled = points[np.random.default_rng(0).permutation(len(points))]
    ordered = order_by_angle(shuffled)
    # The same set of points, each one the angular neighbour of the next (a closed, non-crossing curve).
    assert sorted(map(tuple, ordered)) == sorted(map(tuple, points))
    angles = np.arctan2(ordered[:, 1] - 50, ordered[:, 0] - 60)
    assert np.all(np.diff(angles) > 0)


def test_curve_through_shuffled_clicks_is_the_polygon_not_a_bow_tie():
    square = np.array([[10, 10], [40, 40], [40, 10], [10, 40]], dtype=float)  # a crossing order if taken as given
    mask = curve_mask(square, (50, 50))
    assert mask[25, 25] and mask[12, 38] and mask[38, 12]
    assert abs(int(mask.sum()) - 31 * 31) < 70  # the filled square, not two triangles


def test_curve_needs_three_points():
    assert not curve_mask(np.array([[1.0, 1.0], [5.0, 5.0]]), (10, 10)).any()


def test_contour_distance_is_zero_on_the_border_and_inf_for_empty():
    mask = _circle((100, 100), (50, 50), 20)
    on_border = _points_on_circle((50, 50), 20, 6)
    inside = _points_on_circle((50, 50), 8, 6)
    assert contour_distance(mask, on_border) <= 1.0
    assert contour_distance(mask, inside) > 10.0
    assert contour_distance(np.zeros((100, 100), bool), on_border) == float("inf")


def test_contour_distance_is_the_full_frame_distance_for_masks_touching_the_frame_edge_and_far_points():
    """It measures in a crop around the mask and the points; the figures must be the ones
    a full-frame distance transform gives, wherever the mask and the points lie."""
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(3)
    shape = (90, 120)
    for case in range(12):
        mask = _circle(shape, (rng.integers(0, 90), rng.integers(0, 120)), rng.integers(3, 40))
        mask[rng.integers(0, 90):, : rng.integers(0, 30)] |= case % 3 == 0  # a block on the frame's edge
        points = np.stack([rng.uniform(-5, 125, 7), rng.uniform(-5, 95, 7)], axis=1)  # some off the frame
        full = ndimage.distance_transform_edt(~find_boundaries(mask, mode="inner"))
        cols = np.clip(np.round(points[:, 0]).astype(int), 0, shape[1] - 1)
        rows = np.clip(np.round(points[:, 1]).astype(int), 0, shape[0] - 1)
        assert contour_distance(mask, points) == pytest.approx(float(full[rows, cols].mean()), abs=1e-9), case


def test_choose_candidate_picks_the_mask_whose_border_the_clicks_lie_on():
    shape = (100, 100)
    clicks = _points_on_circle((50, 50), 20, 5)
    too_small = _circle(shape, (50, 50), 12)
    right = _circle(shape, (50, 50), 20)
    too_big = _circle(shape, (50, 50), 30)
    empty = np.zeros(shape, bool)
    for order in ([too_small, right, too_big], [too_big, empty, right], [right, too_small]):
        assert order[choose_candidate(order, clicks)] is right


def test_choose_candidate_prefers_the_earlier_of_equal_fits():
    shape = (100, 100)
    clicks = _points_on_circle((50, 50), 20, 5)
    model_output = _circle(shape, (50, 50), 20)
    nearly_the_same = model_output.copy()
    nearly_the_same[50, 50] = False  # a hole far from the border: same fit to the clicks
    assert choose_candidate([model_output, nearly_the_same], clicks) == 0
    assert choose_candidate([nearly_the_same, model_output], clicks) == 0


@pytest.mark.parametrize("offset", [0.0, 2.0])
def test_choose_candidate_beats_the_plain_curve_when_the_model_follows_the_true_border(offset):
    """The curve through 4 clicks cuts the corners of a circle; the true circle fits the clicks as well
    and is an earlier candidate, so it is chosen (the polygon is only a fallback)."""
    shape = (100, 100)
    clicks = _points_on_circle((50, 50), 20, 4, start=offset)
    truth = _circle(shape, (50, 50), 20)
    polygon = curve_mask(clicks, shape)
    assert (polygon & truth).sum() / (polygon | truth).sum() < 0.7  # the polygon is a poor mask here
    assert choose_candidate([truth, polygon], clicks) == 0
