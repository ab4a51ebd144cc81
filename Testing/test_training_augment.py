"""Ultrasound augmentations: geometry keeps image, masks and points together; physics
changes only intensities, as configured; seeds reproduce; cines stay aligned in time."""

from __future__ import annotations

import numpy as np
import pytest

from SAMUSALib.training import augment as A
from SAMUSALib.training import augment_gallery as G

H, W = 64, 80
CENTRE, RADIUS = (36.0, 30.0), 12.0  # x, y


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _disc_sample(dtype=np.float32) -> A.Sample:
    rows, cols = np.mgrid[0:H, 0:W]
    disc = (cols - CENTRE[0]) ** 2 + (rows - CENTRE[1]) ** 2 <= RADIUS**2
    image = np.where(disc, 0.9, 0.1).astype(np.float32)
    if dtype == np.uint8:
        image = (image * 255).astype(np.uint8)
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    points = np.stack([CENTRE[0] + RADIUS * np.cos(angles), CENTRE[1] + RADIUS * np.sin(angles)], axis=1)
    return A.Sample(image, disc, points)


def _boundary_distance(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from each (x, y) point to the nearest pixel edge between mask and background."""
    padded = np.pad(mask, 1)
    rows, cols = np.nonzero(padded[:, 1:] != padded[:, :-1])
    edges = [np.stack([cols - 0.5, rows - 1.0], axis=1)]
    rows, cols = np.nonzero(padded[1:, :] != padded[:-1, :])
    edges.append(np.stack([cols - 1.0, rows - 0.5], axis=1))
    edges = np.concatenate(edges).astype(float)
    return np.sqrt(((points[:, None, :] - edges[None]) ** 2).sum(axis=2)).min(axis=1)


GEOMETRIC = [
    A.HorizontalFlip(),
    A.Zoom(scale=1.3),
    A.Zoom(scale=0.75),
    A.Rotate(degrees=8.0),
    A.Rotate(degrees=-8.0),
    A.Translate((0.1, 0.1)),
]
PHOTOMETRIC = [
    A.Speckle(),
    A.Speckle(distribution="gamma"),
    A.DepthAttenuation(),
    A.TimeGainCompensation(),
    A.AcousticShadow(),
    A.ResolutionBlur(),
    A.GainContrast(),
]


@pytest.mark.parametrize("aug", GEOMETRIC, ids=repr)
@pytest.mark.parametrize("seed", [0, 1])
def test_geometry_keeps_image_mask_and_points_aligned(aug, seed):
    out = aug(_disc_sample(), _rng(seed))
    bright, mask = out.image > 0.5, out.masks
    assert mask.dtype == bool and mask.shape == (H, W)
    iou = (bright & mask).sum() / (bright | mask).sum()
    assert iou > 0.9
    assert out.valid.all()
    assert _boundary_distance(mask, out.points).max() < 1.5


def test_flip_and_zoom_move_as_expected():
    sample = _disc_sample()
    flipped = A.HorizontalFlip()(sample, _rng())
    assert np.allclose(flipped.points[:, 0], W - 1 - sample.points[:, 0])
    assert np.array_equal(flipped.masks, sample.masks[:, ::-1])
    zoomed = A.Zoom(scale=1.5)(sample, _rng())
    assert zoomed.masks.sum() == pytest.approx(1.5**2 * sample.masks.sum(), rel=0.08)


def test_points_leaving_the_image_are_flagged_not_dropped():
    sample = A.Sample(np.zeros((H, W), np.float32), np.zeros((H, W), bool), [[0.0, 0.0], [40.0, 30.0], [70.0, 20.0]],
                      valid=[True, True, False])
    out = A.Rotate(degrees=20.0)(sample, _rng())
    assert out.points.shape == (3, 2)
    assert out.valid.tolist() == [False, True, False]  # the corner leaves; a flag once cleared stays cleared


def test_geometry_handles_stacked_and_named_masks_and_colour():
    sample = _disc_sample()
    disc = sample.masks
    stacked = A.Sample(np.repeat(sample.image[..., None], 3, axis=2), np.stack([disc, ~disc]), sample.points)
    out = A.Rotate(degrees=5.0)(stacked, _rng(3))
    assert out.image.shape == (H, W, 3) and out.masks.shape == (2, H, W)
    assert np.array_equal(out.image[..., 0], out.image[..., 2])
    named = A.Zoom(scale=1.2)(A.Sample(sample.image, {1: disc, 7: disc}), _rng(3))
    assert set(named.masks) == {1, 7} and np.array_equal(named.masks[1], named.masks[7])
    assert np.array_equal(named.masks[1], A.Zoom(scale=1.2)(sample, _rng(3)).masks)


@pytest.mark.parametrize("aug", PHOTOMETRIC, ids=repr)
@pytest.mark.parametrize("kind", ["float", "uint8", "rgb"])
def test_photometric_changes_only_intensities(aug, kind):
    sample = _disc_sample(np.uint8 if kind == "uint8" else np.float32)
    if kind == "rgb":
        sample = sample.replace(image=np.repeat(sample.image[..., None], 3, axis=2))
    out = aug(sample, _rng(5))
    assert out.image.shape == sample.image.shape and out.image.dtype == sample.image.dtype
    assert np.isfinite(out.image.astype(float)).all()
    assert np.array_equal(out.masks, sample.masks)
    assert np.array_equal(out.points, sample.points) and np.array_equal(out.valid, sample.valid)
    assert not np.array_equal(out.image, sample.image)
    if kind != "uint8":
        assert out.image.min() >= 0.0 and out.image.max() <= 1.0


def test_sector_mask_zeroes_outside_the_fan():
    image = np.ones((H, W), np.float32)
    mask = np.ones((H, W), bool)
    sample = A.Sample(image, mask, [[W / 2, 2.0], [0.0, 0.0], [W / 2, H / 2]])
    out = A.SectorMask(half_angle=35.0, apex_height=0.2)(sample, _rng())
    fan = A.sector_mask((H, W), 35.0, 0.2)
    assert (out.image[~fan] == 0).all() and (out.image[fan] == 1).all()
    assert fan[0, W // 2] and not fan[0, 0] and not fan[H - 1, 0] and not fan[0, W - 1]
    assert np.array_equal(out.masks, fan)
    assert out.valid.tolist() == [True, False, True]
    kept = A.SectorMask(clip_masks=False)(sample, _rng())
    assert np.array_equal(kept.masks, mask) and kept.valid.all()


def test_shadow_darkens_below_its_origin_only():
    image = np.full((H, W), 0.5, np.float32)
    sample = A.Sample(image, np.zeros((H, W), bool))
    out = A.AcousticShadow(width=0.2, strength=0.8, depth=0.4, lateral=0.5, softness=2.0)(sample, _rng()).image
    y0, x0 = int(0.4 * (H - 1)), int(round(0.5 * (W - 1)))
    assert np.array_equal(out[: y0 + 1], image[: y0 + 1])
    assert np.allclose(out[y0 + 3 :, x0], 0.1, atol=1e-6)
    assert np.array_equal(out[:, :20], image[:, :20]) and np.array_equal(out[:, -20:], image[:, -20:])
    fan = A.AcousticShadow(width=0.1, strength=0.8, depth=0.4, lateral=0.65, apex_height=0.3)(sample, _rng()).image
    assert np.array_equal(fan[: y0 - 1], image[: y0 - 1])
    x_origin = 0.65 * (W - 1)
    assert np.flatnonzero(fan[y0 + 4] < 0.2).mean() == pytest.approx(x_origin, abs=1.5)
    assert np.flatnonzero(fan[H - 1] < 0.2).mean() > x_origin + 5  # along the ray from the apex: outwards with depth


def test_attenuation_and_tgc_change_intensity_monotonically_with_depth():
    image = np.full((H, W), 0.5, np.float32)
    sample = A.Sample(image, np.zeros((H, W), bool))
    attenuated = A.DepthAttenuation(alpha=(0.5, 1.5))(sample, _rng()).image
    assert (np.diff(attenuated[:, 0]) < 0).all() and (attenuated == attenuated[:, :1]).all()
    assert attenuated[0, 0] == pytest.approx(0.5)
    boosted = A.DepthAttenuation(alpha=-0.5)(sample, _rng()).image
    assert (np.diff(boosted[:, 0]) > 0).all()
    for seed in range(5):
        profile = A.TimeGainCompensation(gain_db=(-6.0, 6.0), knots=2)(sample, _rng(seed)).image[:, 3].astype(float)
        steps = np.diff(profile)
        assert (steps >= -1e-7).all() or (steps <= 1e-7).all()
        assert abs(profile[-1] - profile[0]) > 0.01


def test_same_seed_same_output_different_seed_different():
    pipeline = A.ultrasound_augmentations("strong")
    sample = _disc_sample()
    first, again, other = (pipeline(sample, _rng(s)) for s in (11, 11, 12))
    assert np.array_equal(first.image, again.image) and np.array_equal(first.masks, again.masks)
    assert np.array_equal(first.points, again.points)
    assert not np.array_equal(first.image, other.image)
    for aug in [A.Zoom(), A.Rotate(), A.Translate()] + PHOTOMETRIC:
        a, b = aug(sample, _rng(1)), aug(sample, _rng(2))
        assert not np.array_equal(a.image, b.image), aug


def test_inputs_are_never_changed():
    sample = _disc_sample()
    image, masks, points = sample.image.copy(), sample.masks.copy(), sample.points.copy()
    everything = GEOMETRIC + PHOTOMETRIC + [A.SectorMask(), A.ultrasound_augmentations("strong")]
    for seed, aug in enumerate(everything):
        aug(sample, _rng(seed))
    assert np.array_equal(sample.image, image) and np.array_equal(sample.masks, masks)
    assert np.array_equal(sample.points, points) and sample.valid.all()


def test_compose_probabilities_and_strengths():
    sample = _disc_sample()
    assert A.Compose([A.HorizontalFlip()], p=0.0)(sample, _rng()) is sample
    assert np.array_equal(A.Compose([A.HorizontalFlip()] * 2)(sample, _rng()).image, sample.image)
    with pytest.raises(ValueError, match="one probability per augmentation"):
        A.Compose([A.HorizontalFlip()], p=[0.5, 0.5])
    with pytest.raises(ValueError, match="strength"):
        A.ultrasound_augmentations("extreme")
    assert A.ultrasound_augmentations("none")(sample, _rng()) is sample
    for seed in range(10):
        out = A.ultrasound_augmentations()(sample, _rng(seed))
        assert out.image.shape == (H, W) and out.masks.shape == (H, W) and len(out.valid) == 8


# --------------------------------------------------------------------------- time


def _video(n: int = 12) -> A.VideoSample:
    frames = np.repeat(np.arange(n, dtype=np.float32)[:, None, None], 8, axis=1).repeat(8, axis=2)
    masks = np.zeros((n, 8, 8), bool)
    for t in range(n):
        masks[t, t % 8, t // 8] = True
    return A.VideoSample(frames, masks, annotated=np.arange(n) % 3 == 0)


def _assert_aligned(out: A.VideoSample, video: A.VideoSample) -> None:
    assert len(out.frames) == len(out.masks) == len(out.annotated) == len(out.source)
    assert np.array_equal(out.frames[:, 0, 0], out.source.astype(np.float32))
    assert np.array_equal(out.masks, video.masks[out.source])
    assert np.array_equal(out.annotated, video.annotated[out.source])


def test_reverse_twice_is_identity():
    video = _video()
    once = A.Reverse()(video, _rng())
    _assert_aligned(once, video)
    assert once.source.tolist() == list(range(11, -1, -1))
    twice = A.Reverse()(once, _rng())
    assert np.array_equal(twice.frames, video.frames) and np.array_equal(twice.masks, video.masks)
    assert np.array_equal(twice.annotated, video.annotated) and np.array_equal(twice.source, video.source)


def test_frame_skip_keeps_every_kth_frame():
    video = _video()
    for seed in range(4):
        out = A.FrameSkip(k=(3, 3))(video, _rng(seed))
        _assert_aligned(out, video)
        assert (np.diff(out.source) == 3).all() and 0 <= out.source[0] < 3


def test_speed_change_and_crop_keep_alignment():
    video = _video()
    slow = A.SpeedChange(factor=0.5)(video, _rng())
    fast = A.SpeedChange(factor=2.0)(video, _rng())
    _assert_aligned(slow, video)
    _assert_aligned(fast, video)
    assert len(slow.source) == 24 and len(fast.source) == 6
    assert (np.diff(slow.source) >= 0).all() and fast.source.tolist() == [0, 2, 4, 6, 8, 10]
    sparse = A.VideoSample(video.frames, video.masks, annotated=np.arange(12) == 10)
    for seed in range(6):
        crop = A.TemporalCrop(length=(4, 4))(sparse, _rng(seed))
        _assert_aligned(crop, sparse)
        assert len(crop.source) == 4 and (np.diff(crop.source) == 1).all() and crop.annotated.any()
    for seed in range(6):
        _assert_aligned(A.temporal_augmentations("strong")(video, _rng(seed)), video)


def test_frame_augmentations_share_parameters_across_a_cine():
    disc = _disc_sample()
    video = A.VideoSample(np.stack([disc.image] * 3), {1: np.stack([disc.masks] * 3)})
    out = A.ApplyToFrames(A.Compose([A.Rotate(), A.Zoom()]))(video, _rng(4))
    assert out.frames.shape == (3, H, W) and out.masks[1].shape == (3, H, W)
    assert np.array_equal(out.frames[0], out.frames[2]) and np.array_equal(out.masks[1][0], out.masks[1][2])
    own = A.ApplyToFrames(A.Rotate(), shared=False)(video, _rng(4))
    assert not np.array_equal(own.frames[0], own.frames[1])


# --------------------------------------------------------------------------- gallery


def test_gallery_command_writes_a_png(tmp_path):
    from PIL import Image

    sample = _disc_sample(np.uint8)
    Image.fromarray(sample.image).save(tmp_path / "image.png")
    Image.fromarray(sample.masks.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    out = tmp_path / "gallery.png"
    assert G.main(["--gallery", str(out), "--image", str(tmp_path / "image.png"), "--mask", str(tmp_path / "mask.png")]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(out).size[0] > 800
    with pytest.raises(SystemExit):
        G.main(["--gallery", str(out), "--image", str(tmp_path / "image.png")])
