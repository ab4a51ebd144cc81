"""Synthetic phantoms: determinism, exact visibility, motion, contrast, geometry."""

from __future__ import annotations


import numpy as np
import pytest

from SAMUSALib.errors import InputError
from SAMUSALib.phantoms import cine_phantom, volume_phantom


@pytest.fixture(scope="module")
def cine():
    return cine_phantom()


@pytest.fixture(scope="module")
def volume():
    return volume_phantom()


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                out |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _fully_inside(cine, object_id: int) -> list[int]:
    """Frames where the object's whole ellipse lies inside the field of view."""
    fov_inner = ~_dilate(~cine.field_of_view, 2)
    frames = []
    for t in range(cine.num_frames):
        mask = cine.masks[object_id][t]
        if mask.any() and not (mask & ~fov_inner).any():
            frames.append(t)
    return frames


def test_cine_shapes_and_types(cine):
    assert cine.frames.shape == (40, 128, 160)
    assert cine.frames.dtype == np.uint8
    assert set(cine.masks) == {1, 2}
    for mask in cine.masks.values():
        assert mask.shape == cine.frames.shape and mask.dtype == bool
    assert cine.geometry.spacing == (0.3, 0.3, 1.0)
    assert cine.field_of_view.shape == (128, 160)
    assert not (cine.masks[1] & cine.masks[2]).any()
    assert cine.label_map().max() == 2


def test_cine_is_deterministic_per_seed():
    a, b, c = cine_phantom(seed=3), cine_phantom(seed=3), cine_phantom(seed=4)
    assert np.array_equal(a.frames, b.frames)
    for object_id in (1, 2):
        assert np.array_equal(a.masks[object_id], b.masks[object_id])
    assert not np.array_equal(a.frames, c.frames)
    assert a.visible == c.visible


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"sector": False},
        {"seed": 11},
        {"num_frames": 12, "height": 96, "width": 96},
        {"num_frames": 120},
        {"visible": {1: (0, 39), 2: (10, 10)}},
        {"visible": {1: (20, 21), 2: (3, 38)}},
    ],
)
def test_masks_empty_exactly_outside_visible_range(kwargs):
    cine = cine_phantom(**kwargs)
    if "visible" in kwargs:
        for object_id, span in kwargs["visible"].items():
            assert cine.visible[object_id] == span
    for object_id, (first, last) in cine.visible.items():
        areas = cine.masks[object_id].reshape(cine.num_frames, -1).sum(axis=1)
        inside = np.zeros(cine.num_frames, dtype=bool)
        inside[first : last + 1] = True
        assert (areas[inside] > 0).all(), (object_id, areas)
        assert (areas[~inside] == 0).all(), (object_id, areas)
        # Never outside the imaged region.
        assert not (cine.masks[object_id] & ~cine.field_of_view).any()


def test_default_visible_ranges(cine):
    assert cine.visible == {1: (5, 32), 2: (0, 19)}
    # Object 1 enters and leaves: absent at both ends of the loop.
    assert not cine.masks[1][0].any() and not cine.masks[1][-1].any()


def test_object_moves_and_deforms(cine):
    first, last = cine.visible[1]
    mid = (first + last) // 2
    c_first = _centroid(cine.masks[1][first + 3])
    c_mid = _centroid(cine.masks[1][mid])
    c_last = _centroid(cine.masks[1][last - 3])
    assert c_mid[0] - c_first[0] > 10 and c_last[0] - c_mid[0] > 10  # moves left to right
    # Deformation: among frames where it is wholly in view, the area changes.
    whole = _fully_inside(cine, 1)
    assert len(whole) >= 5
    areas = np.array([cine.masks[1][t].sum() for t in whole])
    assert areas.max() / areas.min() > 1.1
    axes = cine.axes[1][whole]
    assert np.ptp(axes[:, 0] / axes[:, 1]) > 0.1
    # Object 2 moves the other way.
    c2 = [_centroid(cine.masks[2][t]) for t in (2, 12)]
    assert c2[1][0] < c2[0][0] - 5


def test_object1_is_darker_than_its_surroundings(cine):
    for t in _fully_inside(cine, 1):
        mask = cine.masks[1][t]
        ring = _dilate(mask, 9) & ~_dilate(mask, 3) & cine.field_of_view
        frame = cine.frames[t].astype(float)
        assert frame[mask].mean() < frame[ring].mean() - 30


def test_object2_is_brighter_than_its_surroundings(cine):
    for t in range(3, 15):
        mask = cine.masks[2][t]
        ring = _dilate(mask, 8) & ~_dilate(mask, 3) & cine.field_of_view
        frame = cine.frames[t].astype(float)
        assert frame[mask].mean() > frame[ring].mean() + 10


def test_depth_attenuation_and_sector(cine):
    frame = cine.frames[0].astype(float)
    fov = cine.field_of_view
    rows = np.arange(128)[:, None]
    background = fov & ~cine.masks[2][0] & ~_dilate(cine.masks[2][0], 12)
    near = frame[background & (rows >= 20) & (rows < 50)].mean()
    far = frame[background & (rows >= 90)].mean()
    assert near > far + 10
    assert (cine.frames[:, ~fov] == 0).all()
    assert not fov[0, 0] and fov[127, 80]
    assert cine_phantom(sector=False).field_of_view.all()


def test_speckle_is_rayleigh_like(cine):
    # Log-compressed Rayleigh speckle has a standard deviation of about 5.6 dB.
    from SAMUSALib.phantoms import _DYNAMIC_RANGE_DB

    frame = cine.frames[0].astype(float) * _DYNAMIC_RANGE_DB / 255.0
    patch = frame[60:75, 20:50]
    assert 3.5 < patch.std() < 8.0


def test_invalid_arguments():
    with pytest.raises(InputError):
        cine_phantom(num_frames=0)
    with pytest.raises(InputError):
        cine_phantom(visible={1: (5, 50)})
    with pytest.raises(InputError):
        cine_phantom(visible={3: (0, 1)})
    with pytest.raises(InputError):
        volume_phantom(shape=(4, 64, 56))


def test_volume_shapes_and_determinism(volume):
    assert volume.volume.shape == (48, 64, 56) and volume.volume.dtype == np.uint8
    assert volume.mask.shape == (48, 64, 56) and volume.mask.dtype == bool
    again = volume_phantom()
    assert np.array_equal(again.volume, volume.volume)
    assert np.array_equal(again.mask, volume.mask)
    assert not np.array_equal(volume_phantom(seed=1).volume, volume.volume)
    assert volume.geometry.spacing == (0.5, 0.4, 1.2)


def test_volume_direction_is_a_proper_rotation(volume):
    direction = np.reshape(volume.geometry.direction, (3, 3))
    assert np.allclose(direction @ direction.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(direction) == pytest.approx(1.0)
    assert not np.allclose(direction, np.eye(3))  # oblique
    assert np.allclose(np.reshape(volume_phantom(oblique=False).geometry.direction, (3, 3)), np.eye(3))


def test_volume_mask_is_round_in_millimetres(volume):
    extents = volume.extent_mm()
    assert max(extents.values()) / min(extents.values()) < 1.35
    voxels = {axis: last - first + 1 for axis, (first, last) in volume.ranges.items()}
    assert max(voxels.values()) / min(voxels.values()) > 2.0  # yet very anisotropic in voxels
    # Volume of the mask matches the ellipsoid's volume in mm^3.
    voxel_mm3 = float(np.prod(volume.geometry.spacing))
    expected = 4.0 / 3.0 * np.pi * np.prod(volume.radii_mm)
    assert volume.mask.sum() * voxel_mm3 == pytest.approx(expected, rel=0.05)
    # The centre maps back to the stated LPS point and lies inside the mask.
    i, j, k = volume.center_ijk
    point = volume.geometry.ijk_to_lps() @ np.array([i, j, k, 1.0])
    assert np.allclose(point[:3], volume.center_lps)
    assert volume.mask[int(round(k)), int(round(j)), int(round(i))]


def test_volume_ranges_and_contrast(volume):
    for axis, numpy_axis in (("K", 0), ("J", 1), ("I", 2)):
        first, last = volume.ranges[axis]
        present = volume.mask.any(axis=tuple(a for a in range(3) if a != numpy_axis))
        assert present[first] and present[last]
        assert not present[:first].any() and not present[last + 1 :].any()
    inside = volume.volume[volume.mask].mean()
    outside = volume.volume[~volume.mask].mean()
    assert inside < outside - 30


# ---------------------------------------------------------------------------------------
# Leaving and re-entering the view
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reentry():
    return cine_phantom(reenter=True)


def _areas(cine, object_id: int) -> np.ndarray:
    return cine.masks[object_id].reshape(cine.num_frames, -1).sum(axis=1)


def test_default_has_one_run_and_present_matches_visible(cine):
    for object_id, (first, last) in cine.visible.items():
        assert cine.visible_runs[object_id] == [(first, last)]
        expected = np.zeros(cine.num_frames, dtype=bool)
        expected[first : last + 1] = True
        assert cine.present[object_id].dtype == bool
        assert np.array_equal(cine.present[object_id], expected)


def test_reentry_runs_and_exact_gap(reentry):
    assert reentry.visible == {1: (5, 32), 2: (0, 19)}  # the whole span is unchanged
    runs = reentry.visible_runs[1]
    assert len(runs) == 2
    (s0, e0), (s1, e1) = runs
    assert (s0, e1) == reentry.visible[1] and s1 - e0 - 1 >= 2  # a gap of a few frames
    areas = _areas(reentry, 1)
    assert (areas[s0 : e0 + 1] > 0).all() and (areas[s1 : e1 + 1] > 0).all()
    assert (areas[e0 + 1 : s1] == 0).all()  # exactly empty while out of view
    assert (areas[:s0] == 0).all() and (areas[e1 + 1 :] == 0).all()
    assert np.array_equal(reentry.present[1], areas > 0)
    assert reentry.visible_runs[2] == [reentry.visible[2]] and np.array_equal(reentry.present[2], _areas(reentry, 2) > 0)
    assert not (reentry.masks[1] & reentry.masks[2]).any()
    assert not (reentry.masks[1] & ~reentry.field_of_view).any()


def test_reentry_object_moved(reentry):
    (s0, e0), (s1, e1) = reentry.visible_runs[1]
    before, after = _centroid(reentry.masks[1][e0]), _centroid(reentry.masks[1][s1])
    assert np.linalg.norm(after - before) > 3  # comes back somewhere else (shallower)
    assert after[1] < before[1] - 2
    # Sweeps away and back: left to right before the gap, right to left after it.
    x_before = [_centroid(reentry.masks[1][t])[0] for t in range(s0, e0 + 1)]
    x_after = [_centroid(reentry.masks[1][t])[0] for t in range(s1, e1 + 1)]
    assert x_before[-1] - x_before[0] > 60 and x_after[0] - x_after[-1] > 60
    # Still a dark lumen after coming back.
    for t in _fully_inside(reentry, 1):
        mask = reentry.masks[1][t]
        ring = _dilate(mask, 9) & ~_dilate(mask, 3) & reentry.field_of_view
        frame = reentry.frames[t].astype(float)
        assert frame[mask].mean() < frame[ring].mean() - 30


def test_reentry_is_deterministic_per_seed():
    kwargs = dict(num_frames=24, height=96, width=128, visible={1: (4, 17), 2: (0, 11)}, reenter=True)
    a, b, c = cine_phantom(seed=3, **kwargs), cine_phantom(seed=3, **kwargs), cine_phantom(seed=4, **kwargs)
    assert np.array_equal(a.frames, b.frames)
    for object_id in (1, 2):
        assert np.array_equal(a.masks[object_id], b.masks[object_id])
    assert not np.array_equal(a.frames, c.frames)
    assert a.visible == c.visible == {1: (4, 17), 2: (0, 11)}
    assert a.visible_runs == c.visible_runs
    assert len(a.visible_runs[1]) == 2
    # The same seed without re-entry is unaffected by the option.
    plain = cine_phantom(seed=3, num_frames=24, height=96, width=128, visible={1: (4, 17), 2: (0, 11)})
    assert plain.visible_runs[1] == [(4, 17)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reenter": True, "sector": False},
        {"reenter": True, "seed": 7, "num_frames": 12, "height": 96, "width": 96},
        {"reenter": True, "num_frames": 120},
        {"reenter": True, "visible": {1: (0, 39)}},
        {"reenter": True, "visible": {1: (2, 4)}},
        {"visible": {1: (0, 39), 2: (0, 39)}, "gaps": {1: [(5, 7), (20, 30)], 2: (10, 10)}},
        {"reenter": True, "gaps": {1: (30, 31)}},
    ],
)
def test_gaps_are_exact(kwargs):
    cine = cine_phantom(**kwargs)
    for object_id, runs in cine.visible_runs.items():
        expected = np.zeros(cine.num_frames, dtype=bool)
        for first, last in runs:
            expected[first : last + 1] = True
        assert np.array_equal(_areas(cine, object_id) > 0, expected), (object_id, runs)
        assert np.array_equal(cine.present[object_id], expected)
        assert cine.visible[object_id] == (runs[0][0], runs[-1][1])
    if kwargs.get("reenter") and "gaps" in kwargs:  # explicit gaps win over the default one
        assert cine.visible_runs[1] == [(5, 29), (32, 32)]
    elif "gaps" in kwargs:
        assert cine.visible_runs[1] == [(0, 4), (8, 19), (31, 39)]
        assert cine.visible_runs[2] == [(0, 9), (11, 39)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reenter": True, "visible": {1: (3, 4)}},  # too short to leave and come back
        {"gaps": {1: (5, 10)}},  # touches the start of the span (5, 32)
        {"gaps": {1: (20, 32)}},  # touches its end
        {"gaps": {1: [(10, 12), (13, 15)]}},  # no visible frame between
        {"gaps": {1: [(10, 14), (12, 15)]}},  # overlap
        {"gaps": {3: (10, 12)}},
        {"gaps": {1: "ab"}},
    ],
)
def test_invalid_gaps(kwargs):
    with pytest.raises(InputError):
        cine_phantom(**kwargs)
