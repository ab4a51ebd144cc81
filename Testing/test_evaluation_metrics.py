"""Metrics: exact values on hand-made masks, spacing in millimetres, empty masks, STAPLE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from SAMUSALib.evaluation.metrics import (
    all_metrics,
    assd,
    dice,
    hd95,
    iou,
    numpy_spacing,
    staple,
    surface,
    surface_distances,
)
from SAMUSALib.frames import Geometry


def square(shape, top, left, size) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_dice_and_iou_of_two_overlapping_squares():
    a = square((12, 12), 2, 2, 4)  # 16 pixels
    b = square((12, 12), 4, 4, 4)  # 16 pixels, 2 x 2 = 4 shared
    assert dice(a, b) == pytest.approx(2 * 4 / 32)
    assert iou(a, b) == pytest.approx(4 / 28)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    c = square((12, 12), 8, 8, 3)
    assert dice(a, c) == 0.0 and iou(a, c) == 0.0


def test_iou_and_dice_are_consistent():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 30, 30)) > 0.5
    d, j = dice(a, b), iou(a, b)
    assert d == pytest.approx(2 * j / (1 + j))


def test_both_empty_is_perfect_by_convention():
    empty = np.zeros((8, 8), dtype=bool)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0
    assert hd95(empty, empty) == 0.0
    assert assd(empty, empty) == 0.0
    scores = all_metrics(empty, empty)
    assert scores["dice"] == 1.0 and scores["hd95"] == 0.0 and scores["assd"] == 0.0


def test_one_empty_gives_zero_overlap_and_infinite_distances():
    empty = np.zeros((8, 8), dtype=bool)
    full = square((8, 8), 2, 2, 3)
    for pred, ref in ((empty, full), (full, empty)):
        assert dice(pred, ref) == 0.0
        assert iou(pred, ref) == 0.0
        assert math.isinf(hd95(pred, ref))
        assert math.isinf(assd(pred, ref))
        scores = all_metrics(pred, ref, (1.0, 1.0))
        assert scores["dice"] == 0.0 and math.isinf(scores["hd95"]) and math.isinf(scores["assd"])


def test_surface_is_the_mask_minus_its_face_eroded_interior():
    mask = square((7, 7), 2, 2, 3)
    shell = surface(mask)
    assert shell.sum() == 8 and not shell[3, 3]
    # The array border counts as outside: a full frame is all surface at its edge.
    assert surface(np.ones((4, 4), dtype=bool)).sum() == 12


def test_distances_use_the_spacing_of_each_numpy_axis():
    a = np.zeros((10, 10), dtype=bool)
    b = np.zeros((10, 10), dtype=bool)
    a[2, 2] = True
    spacing = (2.0, 0.5)  # rows 2 mm apart, columns 0.5 mm
    b[2, 5] = True  # 3 columns away: 1.5 mm
    assert hd95(a, b, spacing) == pytest.approx(1.5)
    assert assd(a, b, spacing) == pytest.approx(1.5)
    b[:] = False
    b[5, 2] = True  # 3 rows away: 6 mm
    assert hd95(a, b, spacing) == pytest.approx(6.0)
    assert assd(a, b, spacing) == pytest.approx(6.0)
    b[:] = False
    b[5, 5] = True
    assert hd95(a, b, spacing) == pytest.approx(math.hypot(6.0, 1.5))


def test_asymmetric_distances_hd95_takes_the_worse_direction_assd_pools_both():
    # Reference: two single pixels 8 columns apart; prediction: only the first one.
    ref = np.zeros((5, 20), dtype=bool)
    ref[2, 2] = ref[2, 10] = True
    pred = np.zeros_like(ref)
    pred[2, 2] = True
    spacing = (1.0, 0.25)
    to_ref, to_pred = surface_distances(pred, ref, spacing)
    assert sorted(to_ref) == [0.0]
    assert sorted(to_pred) == pytest.approx([0.0, 2.0])
    assert hd95(pred, ref, spacing) == pytest.approx(np.percentile([0.0, 2.0], 95))
    assert assd(pred, ref, spacing) == pytest.approx((0.0 + 0.0 + 2.0) / 3)


def brute_force(a: np.ndarray, b: np.ndarray, spacing) -> tuple[float, float]:
    pa = np.argwhere(surface(a)) * np.asarray(spacing)
    pb = np.argwhere(surface(b)) * np.asarray(spacing)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    ab, ba = d.min(axis=1), d.min(axis=0)
    return max(np.percentile(ab, 95), np.percentile(ba, 95)), (ab.sum() + ba.sum()) / (ab.size + ba.size)


def test_volume_distances_match_brute_force_with_anisotropic_spacing():
    a = np.zeros((10, 12, 12), dtype=bool)
    b = np.zeros_like(a)
    a[2:6, 2:7, 3:8] = True
    b[3:8, 3:7, 2:9] = True
    spacing = (3.0, 0.8, 0.5)
    expected_hd, expected_assd = brute_force(a, b, spacing)
    assert hd95(a, b, spacing) == pytest.approx(expected_hd)
    assert assd(a, b, spacing) == pytest.approx(expected_assd)
    scores = all_metrics(a, b, spacing)
    assert scores["hd95"] == pytest.approx(expected_hd) and scores["assd"] == pytest.approx(expected_assd)


def test_shift_along_a_thick_axis_is_measured_in_millimetres():
    a = np.zeros((12, 8, 8), dtype=bool)
    a[3:6, 2:6, 2:6] = True
    b = np.roll(a, 2, axis=0)  # two slices further along K
    spacing = (2.5, 0.4, 0.4)
    # every surface voxel of a has one of b within 2 slices (5 mm); the caps are 5 mm away
    assert hd95(a, b, spacing) == pytest.approx(5.0)
    assert 0 < assd(a, b, spacing) < 5.0
    assert hd95(a, b, spacing) == pytest.approx(brute_force(a, b, spacing)[0])


def test_numpy_spacing_reverses_the_itk_order():
    geometry = Geometry(spacing=(0.5, 0.4, 1.2))  # I, J, K
    assert numpy_spacing(geometry, 3) == (1.2, 0.4, 0.5)
    assert numpy_spacing(geometry, 2) == (0.4, 0.5)  # a cine frame: (row=J, column=I)
    assert numpy_spacing(geometry, 2, axis="J") == (1.2, 0.5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="spacing"):
        hd95(np.ones((3, 3)), np.ones((3, 3)), (1.0, 1.0, 1.0))


def test_staple_fuses_annotators_towards_the_consensus():
    truth = square((24, 24), 6, 6, 10)
    over = truth.copy()
    over[6:16, 16:18] = True  # one annotator draws 2 columns too wide
    under = truth.copy()
    under[6:8, 6:16] = False  # another misses 2 rows
    fused = staple([truth, truth, over, under])
    assert fused.reference.shape == truth.shape
    assert np.array_equal(fused.reference, truth)
    assert len(fused.sensitivity) == 4 and len(fused.specificity) == 4
    assert fused.sensitivity[3] < fused.sensitivity[0] == pytest.approx(1.0)
    assert fused.specificity[2] < fused.specificity[0]
    assert ((fused.probability >= 0) & (fused.probability <= 1)).all()


def test_staple_edge_cases():
    one = square((10, 10), 2, 2, 4)
    assert np.array_equal(staple([one]).reference, one)
    empty = np.zeros((10, 10), dtype=bool)
    assert not staple([empty, empty]).reference.any()
    with pytest.raises(ValueError, match="shape"):
        staple([one, np.zeros((9, 9), dtype=bool)])
    with pytest.raises(ValueError, match="at least one"):
        staple([])
    cube = np.zeros((6, 6, 6), dtype=bool)
    cube[1:4, 1:4, 1:4] = True
    assert np.array_equal(staple([cube, cube, cube]).reference, cube)


@pytest.mark.parametrize("shape", [(9, 11), (5, 6, 7)])
def test_random_masks_metrics_are_symmetric(shape):
    rng = np.random.default_rng(1)
    for _ in range(3):
        a, b = rng.random((2, *shape)) > 0.6
        spacing = tuple(rng.uniform(0.3, 2.0, len(shape)))
        for f in (dice, iou):
            assert f(a, b) == pytest.approx(f(b, a))
        assert hd95(a, b, spacing) == pytest.approx(hd95(b, a, spacing))
        assert assd(a, b, spacing) == pytest.approx(assd(b, a, spacing))
        hd, mean = brute_force(a, b, spacing)
        assert hd95(a, b, spacing) == pytest.approx(hd)
        assert assd(a, b, spacing) == pytest.approx(mean)


