"""Frames from arrays: intensity normalisation, slicing axes, assembling masks, laziness (SAMUSALib.frames)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from SAMUSALib.errors import InputError
from SAMUSALib.frames import FrameSource, Geometry


def ramp(shape, low: float, high: float, dtype) -> np.ndarray:
    return np.linspace(low, high, int(np.prod(shape))).reshape(shape).astype(dtype)


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "array",
    [
        ramp((4, 16, 20), 0, 255, np.uint8),
        ramp((4, 16, 20), 0, 4095, np.uint16),
        ramp((4, 16, 20), -1024, 3071, np.int16),
        ramp((4, 16, 20), -3.5, 7.25, np.float32),
        ramp((4, 16, 20), 1e-3, 2e-3, np.float64),
        ramp((4, 16, 20), 0, 1, np.float64) > 0.5,
    ],
    ids=["uint8", "uint16", "int16", "float32", "float64", "bool"],
)
def test_every_dtype_becomes_float32_in_0_1(array):
    frames = FrameSource(array)
    assert (frames.num_frames, frames.frame_shape) == (4, (16, 20))
    values = np.stack([frames.frame(i) for i in range(frames.num_frames)])
    assert values.dtype == np.float32
    assert values.shape == (4, 16, 20)
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert values.min() < 0.01 and values.max() > 0.99  # the whole range is used
    # order of intensities is kept
    flat = values.ravel()
    assert np.all(np.diff(flat) >= -1e-6)


def test_uint8_keeps_its_display_values():
    array = np.array([[[0, 51], [102, 255]]] * 2, dtype=np.uint8)
    np.testing.assert_allclose(FrameSource(array).frame(0), [[0.0, 0.2], [0.4, 1.0]], atol=1e-6)


def test_an_8_bit_image_kept_as_float_or_short_gives_the_same_frames():
    """The same pixels as float32 or int16 (an 8-bit image saved in a wider type) are not
    stretched by percentiles: the model sees what it sees of the 8-bit image. Values with
    fractions, only 0 and 1, or whole numbers too dim to be display values keep the
    robust window."""
    rng = np.random.default_rng(0)
    array = rng.integers(2, 200, size=(3, 16, 20)).astype(np.uint8)
    eight_bit = FrameSource(array).frame(1)
    for wider in (np.float32, np.int16, np.uint16):
        np.testing.assert_array_equal(FrameSource(array.astype(wider)).frame(1), eight_bit)
    assert FrameSource(array.astype(np.float32) + 0.5).window.high < 200  # fractions: percentiles
    assert FrameSource((array > 100).astype(np.float32)).window.high == 1.0  # a 0/1 image is not 8-bit
    dim = FrameSource((array // 4).astype(np.float32))  # whole numbers up to 49, a dB map say
    assert dim.window.high < 50 and dim.frame(1).max() == 1.0  # still stretched to the full range


def test_robust_window_ignores_a_few_saturated_pixels():
    rng = np.random.default_rng(0)
    array = rng.integers(1000, 2001, size=(6, 40, 50)).astype(np.uint16)
    array[:, :2, :2] = 65535  # a burnt-in text overlay: 0.2 % of the pixels
    frames = FrameSource(array)
    assert frames.window.high < 2100  # not stretched to 65535
    tissue = frames.frame(3)[2:, 2:]
    assert np.percentile(tissue, 2) < 0.05 and np.percentile(tissue, 98) > 0.95
    assert frames.frame(3)[0, 0] == 1.0  # saturated pixels clip at 1
    assert FrameSource(array, normalization="minmax").window.high == 65535


def test_flat_image_and_normalization_none():
    flat = FrameSource(np.full((2, 8, 8), 7, np.int16))
    assert np.isfinite(flat.frame(0)).all()
    unit = np.random.default_rng(1).random((2, 8, 8))
    np.testing.assert_allclose(FrameSource(unit, normalization="none").frame(1), unit[1], atol=1e-6)
    with pytest.raises(InputError, match="normalization"):
        FrameSource(np.zeros((2, 8, 8), np.int16), normalization="zscore")


# --------------------------------------------------------------------------- colour


def test_rgb_cine():
    rng = np.random.default_rng(2)
    array = rng.integers(0, 256, size=(5, 12, 16, 3), dtype=np.uint8)
    frames = FrameSource(array)
    assert frames.is_rgb and frames.num_frames == 5 and frames.frame_shape == (12, 16)
    frame = frames.frame(2)
    assert frame.shape == (12, 16, 3) and frame.dtype == np.float32
    np.testing.assert_allclose(frame, array[2] / 255.0, atol=1e-6)


def test_rgba_cine_drops_alpha():
    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, size=(3, 10, 14, 4), dtype=np.uint8)
    frames = FrameSource(array)
    assert frames.is_rgb and frames.frame(0).shape == (10, 14, 3)
    np.testing.assert_allclose(frames.frame(1), array[1, ..., :3] / 255.0, atol=1e-6)
    assert np.shares_memory(frames.raw_frame(1), array)


def test_rgb_only_along_k():
    with pytest.raises(InputError, match="only be sliced along K"):
        FrameSource(np.zeros((3, 10, 14, 3), np.uint8), axis="I")
    with pytest.raises(InputError, match=r"\(T, H, W, 3\)"):
        FrameSource(np.zeros((3, 10, 14), np.uint8), rgb=True)


# --------------------------------------------------------------------------- axes


@pytest.mark.parametrize(
    "axis, num_frames, frame_shape",
    [("K", 5, (6, 7)), ("J", 6, (5, 7)), ("I", 7, (5, 6))],
)
def test_axis_frame_shapes_and_contents(axis, num_frames, frame_shape):
    volume = np.arange(5 * 6 * 7, dtype=np.int32).reshape(5, 6, 7)  # (K, J, I)
    frames = FrameSource(volume, axis=axis, normalization="none")
    assert frames.num_frames == num_frames and len(frames) == num_frames
    assert frames.frame_shape == frame_shape
    assert (frames.height, frames.width) == frame_shape
    expected = {"K": volume[3], "J": volume[:, 3, :], "I": volume[:, :, 3]}[axis]
    np.testing.assert_array_equal(frames.raw_frame(3), expected)
    with pytest.raises(InputError, match=f"outside 0..{num_frames - 1}"):
        frames.raw_frame(num_frames)


@pytest.mark.parametrize("axis", ["K", "J", "I"])
def test_assemble_puts_masks_in_the_right_voxels(axis):
    volume = np.zeros((5, 6, 7), np.uint8)
    frames = FrameSource(volume, axis=axis)
    np_axis = {"K": 0, "J": 1, "I": 2}[axis]
    rng = np.random.default_rng(4)
    masks = {2: rng.random(frames.frame_shape) > 0.5, 4: rng.random(frames.frame_shape) > 0.5}
    out = frames.assemble(masks)
    assert out.shape == volume.shape and out.dtype == np.uint8
    for index in range(frames.num_frames):
        plane = np.take(out, index, axis=np_axis)
        np.testing.assert_array_equal(plane, masks.get(index, np.zeros(frames.frame_shape)).astype(np.uint8))
    # a list gives frame i the i-th mask, like SegmentationResult.volumes does
    listed = frames.assemble([masks.get(i, np.zeros(frames.frame_shape, bool)) for i in range(frames.num_frames)], dtype=bool)
    np.testing.assert_array_equal(listed, out.astype(bool))
    with pytest.raises(InputError, match="mask for frame 1 has shape"):
        frames.assemble({1: np.zeros((2, 2))})


def test_geometry_rides_along():
    geometry = Geometry((0.5, 0.25, 2.0), (1.0, 2.0, 3.0))
    frames = FrameSource(np.zeros((3, 8, 8), np.uint8), geometry=geometry, axis="J")
    assert frames.geometry is geometry
    assert FrameSource(np.zeros((3, 8, 8), np.uint8)).geometry.is_identity()


def test_geometry_validation():
    with pytest.raises(InputError, match="spacing must be positive"):
        Geometry((1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="singular"):
        Geometry(direction=(1, 0, 0, 1, 0, 0, 0, 0, 1))
    with pytest.raises(InputError, match="3 spacings"):
        Geometry((1.0, 1.0))
    with pytest.raises(InputError, match="finite"):
        Geometry(origin=(0.0, float("nan"), 0.0))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_are_refused(bad, dtype):
    array = np.ones((4, 8, 9), dtype)
    array[2, 3, 4] = bad
    with pytest.raises(InputError, match="frame 2 contains NaN"):
        FrameSource(array)
    with pytest.raises(InputError, match="NaN"):
        FrameSource(array, axis="I")


@pytest.mark.parametrize(
    "shape",
    [(16, 20), (2, 3, 16, 20, 1), (2, 3, 4, 5, 6), (10,), (3, 16, 20, 5), (3, 16, 20, 2)],
)
def test_wrong_number_of_dimensions(shape):
    with pytest.raises(InputError, match=r"shape|cine|volume") as caught:
        FrameSource(np.zeros(shape, np.uint8))
    assert str(shape).replace(",)", ")") in str(caught.value) or "got" in str(caught.value)


def test_too_small_and_unsupported():
    with pytest.raises(InputError, match="too small"):
        FrameSource(np.zeros((5, 1, 20), np.uint8))
    with pytest.raises(InputError, match="too small"):
        FrameSource(np.zeros((1, 16, 20), np.uint8), axis="J")
    with pytest.raises(InputError, match="not supported"):
        FrameSource(np.zeros((2, 8, 8), np.complex64))
    with pytest.raises(InputError, match="not supported"):
        FrameSource(np.array([[["a"] * 4] * 4] * 2))
    with pytest.raises(InputError, match="axis must be one of"):
        FrameSource(np.zeros((2, 8, 8), np.uint8), axis="T")


# --------------------------------------------------------------------------- memory


def test_large_cine_is_not_copied():
    array = np.zeros((300, 480, 640), np.uint8)  # 92 MB
    array[150, 10, 20] = 200
    tracemalloc.start()
    try:
        frames = FrameSource(array)
        raw = frames.raw_frame(150)
        frame = frames.frame(150)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frames.array is array
    assert np.shares_memory(raw, array)
    assert raw[10, 20] == 200 and frame[10, 20] == pytest.approx(200 / 255)
    assert peak < 8 * 480 * 640 * 4  # a few float32 frames at most, never the 92 MB cine


@pytest.mark.parametrize("axis", ["J", "I"])
def test_volume_slices_are_views(axis):
    array = np.zeros((60, 70, 80), np.int16)
    frames = FrameSource(array, axis=axis)
    assert np.shares_memory(frames.raw_frame(5), array)


def test_float_volume_normalisation_samples_frames_only():
    rng = np.random.default_rng(5)
    array = rng.random((200, 64, 64)).astype(np.float32)  # 3.3 MB
    tracemalloc.start()
    try:
        FrameSource(array)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < array.nbytes  # the NaN check and the percentiles go frame by frame / over a sample


def test_a_single_2d_image_sliced_along_i_or_j_is_told_to_slice_along_k():
    """A 2D image read as a one-slice volume, sliced along I or J, gave frames one voxel high
    and the error only said they were too small."""
    image = np.tile(np.arange(60, dtype=np.uint8), (1, 50, 1))
    for axis in ("I", "J"):
        with pytest.raises(InputError, match=r"single 2D image.*along K \(--axis K\)"):
            FrameSource(image, axis=axis)
    assert FrameSource(image, axis="K").frame_shape == (50, 60)
    thin = np.tile(np.arange(60, dtype=np.uint8), (40, 1, 1))  # one voxel along J
    with pytest.raises(InputError, match=r"one voxel thick along J.*--axis J"):
        FrameSource(thin, axis="K")
