"""Ultrasound DICOM in (SAMUSALib.dicom.reading, .regions): pixels, region spacing, frame
times, region-only normalisation, and clear errors (issue 21).

Inputs are synthetic DICOMs written into tmp_path (Testing/dicom_samples.py) and the
ultrasound files bundled in the pydicom wheel (pydicom.data.get_testdata_file, no download).
"""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from dicom_samples import region, write_enhanced_volume, write_us
from SAMUSALib.dicom.reading import is_dicom, read_dicom
from SAMUSALib.dicom.regions import choose_region, parse_regions
from SAMUSALib.errors import InputError
from SAMUSALib.frames import FrameSource
from SAMUSALib.io import read_image


def bundled(name: str) -> str:
    """A test file shipped inside the pydicom wheel (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not in the installed pydicom wheel"
    return path


def rgb_cine(frames=5, height=40, width=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- synthetic scanner files


def test_rgb_cine_spacing_from_the_region_and_frame_time(tmp_path):
    frames = rgb_cine()
    path = write_us(tmp_path / "loop.dcm", frames, regions=[region(4, 6, 43, 37, 0.02, 0.035)], frame_time=40.0)
    image = read_dicom(path)
    np.testing.assert_array_equal(image.array, frames)  # (T, H, W, 3), RGB as stored
    np.testing.assert_allclose(image.geometry.spacing, (0.2, 0.35, 1.0))  # cm -> mm
    assert image.geometry.origin == (0.0, 0.0, 0.0)
    assert image.frame_times_ms == (0.0, 40.0, 80.0, 120.0, 160.0)
    assert image.region.index == 0
    mask = image.intensity_mask
    assert mask.shape == (40, 48) and mask.sum() == (43 - 4 + 1) * (37 - 6 + 1)
    assert mask[6, 4] and mask[37, 43] and not mask[5, 4] and not mask[6, 44]
    header = image.nrrd_metadata()
    assert header["SAMUSA_FrameTimes"] == "0 40 80 120 160" and header["SAMUSA_TimeUnit"] == "ms"
    assert header["SAMUSA_SourceSOPInstanceUID"] == pydicom.dcmread(path).SOPInstanceUID

    array, geometry = read_image(path)  # the generic reader gives the same
    np.testing.assert_array_equal(array, frames)
    assert geometry == image.geometry
    renamed = path.rename(tmp_path / "IM0001")  # PACS exports often have no suffix
    assert is_dicom(renamed) and read_image(renamed)[1] == image.geometry


def test_frame_time_vector_is_cumulative(tmp_path):
    path = write_us(tmp_path / "v.dcm", rgb_cine(frames=4), regions=[region(0, 0, 47, 39, 0.01, 0.01)],
                    frame_time_vector=[0, 30, 35, 40])
    assert read_dicom(path).frame_times_ms == (0.0, 30.0, 65.0, 105.0)


def test_gray_single_frame_and_gray_stored_as_rgb(tmp_path):
    gray = np.random.default_rng(1).integers(0, 256, size=(1, 30, 20), dtype=np.uint8)
    image = read_dicom(write_us(tmp_path / "one.dcm", gray, regions=[region(0, 0, 19, 29, 0.05, 0.05)]))
    assert image.array.shape == (1, 30, 20) and image.frame_times_ms is None
    np.testing.assert_allclose(image.geometry.spacing, (0.5, 0.5, 1.0))
    as_rgb = np.repeat(gray[..., None], 3, axis=-1)
    image = read_dicom(write_us(tmp_path / "rgb.dcm", as_rgb))
    assert image.array.shape == (1, 30, 20)  # equal channels: gray, as io does for pictures
    np.testing.assert_array_equal(image.array, gray)


def test_ybr_full_is_converted_to_rgb(tmp_path):
    from pydicom.pixels import convert_color_space

    frames = np.zeros((2, 16, 24, 3), np.uint8)
    frames[:, :, :8] = [200, 30, 30]
    frames[:, :, 8:16] = [30, 200, 30]
    frames[:, :, 16:] = [30, 30, 200]
    ybr = convert_color_space(frames, "RGB", "YBR_FULL")
    image = read_dicom(write_us(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL", frame_time=20))
    assert np.abs(image.array.astype(int) - frames).max() <= 2


def test_files_without_file_meta_and_sparse_regions(tmp_path, caplog):
    """What hand-made or older exports hold: no preamble or file meta; a region with no
    spatial format and no max corner (to the frame's edge); a negative PhysicalDeltaY."""
    frames = rgb_cine(frames=3, height=20, width=30)
    path = write_us(tmp_path / "full.dcm", frames, regions=[region(0, 2, 29, 19, 0.02, -0.03)], frame_time=10)
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    item = ds.SequenceOfUltrasoundRegions[0]
    del item.RegionLocationMaxX1, item.RegionLocationMaxY1, item.RegionSpatialFormat
    ds.save_as(tmp_path / "bare.dcm", implicit_vr=False, little_endian=True)
    assert (tmp_path / "bare.dcm").read_bytes()[128:132] != b"DICM"
    with caplog.at_level(logging.WARNING):
        image = read_dicom(tmp_path / "bare.dcm")
    np.testing.assert_array_equal(image.array, frames)
    assert image.geometry.spacing == pytest.approx((0.2, 0.3, 1.0))
    assert image.intensity_mask.sum() == 18 * 30 and not image.intensity_mask[:2].any()
    assert image.frame_times_ms == (0.0, 10.0, 20.0)
    assert caplog.text == ""  # a region to the frame's edge is not "past" it


def test_several_regions_choose_largest_tissue_or_the_one_holding_the_prompts(tmp_path, caplog):
    regions = [
        region(0, 0, 29, 19, 0.01, 0.01),                                  # small B-mode
        region(0, 20, 79, 59, 0.03, 0.03, data_type=2),                    # largest, colour flow
        region(30, 0, 79, 19, 0.02, 0.02),                                 # tissue, larger than the first
        region(0, 60, 79, 63, 0.5, 0.5, spatial_format=3, data_type=3),    # spectral Doppler strip
        region(0, 0, 79, 63, 0.1, 0.1, units=4),                           # seconds: not spatial
    ]
    path = write_us(tmp_path / "dual.dcm", rgb_cine(frames=3, height=64, width=80), regions=regions, frame_time=25)
    image = read_dicom(path)
    assert image.region.index == 2  # largest tissue region, before a larger colour-flow one
    np.testing.assert_allclose(image.geometry.spacing, (0.2, 0.2, 1.0))
    small = image.for_points([(5, 5), (20, 15)])
    assert small.region.index == 0 and small.geometry.spacing[:2] == pytest.approx((0.1, 0.1))
    assert small.frame_times_ms == image.frame_times_ms and small.array is image.array
    assert read_dicom(path, points=[(10, 40)]).region.index == 1  # only the colour-flow region holds it
    # points in two regions of different spacing: one grid cannot hold both (the other
    # region's object came out at the wrong size, and the warning said "outside every region")
    with pytest.raises(InputError, match=r"region 0 .* at 0.1 x 0.1 mm and region 2 .* at 0.2 x 0.2 mm.*run of their own"):
        image.for_points([(5, 5), (6, 6), (60, 10)])
    with caplog.at_level(logging.WARNING):
        mixed = image.for_points([(5, 5), (6, 6), (10, 62)])  # the last in the Doppler strip only
    assert mixed.region.index == 0 and "1 prompt point(s) lie outside every calibrated ultrasound region" in caplog.text
    assert [r.index for r in parse_regions(pydicom.dcmread(path)) if r.is_calibrated_2d] == [0, 1, 2]
    assert choose_region(parse_regions(pydicom.dcmread(path))[3:], 64, 80) is None


def test_no_region_warns_and_falls_back_to_1_mm(tmp_path, caplog):
    path = write_us(tmp_path / "bare.dcm", rgb_cine(frames=2), frame_time=30)
    with caplog.at_level(logging.WARNING):
        image = read_dicom(path)
    assert image.geometry.spacing == (1.0, 1.0, 1.0) and image.region is None and image.intensity_mask is None
    assert "falls back to 1 mm" in caplog.text


def test_burned_in_text_outside_the_region_is_left_out_of_normalisation(tmp_path):
    rng = np.random.default_rng(2)
    frames = rng.integers(100, 1101, size=(4, 40, 60)).astype(np.uint16)  # 16-bit tissue, 100..1100
    frames[:, :5, :] = 65535  # a bright annotation bar above the image region
    image = read_dicom(write_us(tmp_path / "mono16.dcm", frames, regions=[region(0, 5, 59, 39, 0.02, 0.02)]))
    np.testing.assert_array_equal(image.array, frames)
    whole = FrameSource(image.array, geometry=image.geometry)
    inside = FrameSource(image.array, geometry=image.geometry, intensity_mask=image.intensity_mask)
    assert whole.window.high > 60000  # the annotation sets the window without the mask
    assert 1000 <= inside.window.high <= 1100 and 100 <= inside.window.low <= 120
    assert inside.frame(0)[5:].max() == pytest.approx(1.0)  # tissue uses the full range
    with pytest.raises(InputError, match="does not fit frames"):
        FrameSource(image.array, intensity_mask=np.ones((3, 3), bool))


# --------------------------------------------------------------------------- pydicom's bundled US files


def test_bundled_multiframe_ybr_jpeg_cine():
    """examples_ybr_color.dcm: US Multi-frame, YBR_FULL_422, JPEG baseline, region and FrameTime."""
    path = bundled("examples_ybr_color.dcm")
    image = read_dicom(path)
    assert image.array.shape == (30, 240, 320, 3) and image.array.dtype == np.uint8
    reference = pydicom.dcmread(path).pixel_array  # pydicom's own RGB decode
    np.testing.assert_array_equal(image.array, reference)
    np.testing.assert_allclose(image.geometry.spacing[:2], (0.05104970559477806 * 10,) * 2)  # 0.051 cm -> 0.51 mm
    assert image.frame_times_ms[:3] == pytest.approx((0.0, 33.333, 66.666))
    assert len(image.frame_times_ms) == 30


@pytest.mark.parametrize("name, shape, spacing", [
    ("examples_rgb_color.dcm", (1, 240, 320, 3), 1.0),          # RGB, no region: 1 mm
    ("examples_jpeg2k.dcm", (1, 480, 640, 3), 1.0),             # JPEG 2000, YBR_RCT
    ("examples_palette.dcm", (1, 350, 800, 3), 0.2622878766),   # PALETTE COLOR, B-mode + waveform regions
    ("ExplVR_BigEnd.dcm", (1, 60, 80, 3), 1.0),                 # big endian RGB
])
def test_bundled_single_frame_us(name, shape, spacing):
    image = read_dicom(bundled(name))
    assert image.array.shape == shape and image.array.dtype == np.uint8
    assert image.geometry.spacing[:2] == pytest.approx((spacing, spacing))
    assert image.array.std() > 5  # real content, not a blank decode


@pytest.mark.parametrize("name", [
    "JPGExtended.dcm",               # JPEG extended 12-bit: pylibjpeg-libjpeg (Pillow cannot)
    "SC_rgb_jpeg_gdcm.dcm",          # JPEG lossless process 14, RGB: pylibjpeg-libjpeg
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS: pyjpegls
    "MR_small_jp2klossless.dcm",     # JPEG 2000: pylibjpeg-openjpeg
    "SC_rgb_rle_2frame.dcm",         # RLE, 2 frames: pydicom itself
])
def test_every_installed_decoder(name):
    """Each compressed transfer syntax the installed plugins handle, decoded into the cine layout."""
    path = bundled(name)
    image = read_dicom(path)
    reference = pydicom.dcmread(path).pixel_array
    frames = int(pydicom.dcmread(path, stop_before_pixels=True).get("NumberOfFrames", 1) or 1)
    np.testing.assert_array_equal(image.array, reference if frames > 1 else reference[np.newaxis])
    assert image.array.std() > 1


def test_compressed_synthetic_cine_round_trips(tmp_path):
    from pydicom.uid import JPEGLSLossless, RLELossless

    frames = rgb_cine(frames=3, height=24, width=32, seed=5)
    for syntax in (JPEGLSLossless, RLELossless):
        path = write_us(tmp_path / "raw.dcm", frames, regions=[region(0, 0, 31, 23, 0.02, 0.02)], frame_time=50)
        ds = pydicom.dcmread(path)
        ds.compress(syntax, frames)
        ds.save_as(tmp_path / "packed.dcm")
        image = read_dicom(tmp_path / "packed.dcm")
        np.testing.assert_array_equal(image.array, frames)
        assert image.frame_times_ms == (0.0, 50.0, 100.0)


# --------------------------------------------------------------------------- enhanced US volume


def test_enhanced_us_volume_is_read_as_a_3d_volume(tmp_path):
    from SAMUSALib.phantoms import rotation_matrix

    volume = np.random.default_rng(3).integers(0, 256, size=(6, 10, 12), dtype=np.uint8)
    direction = rotation_matrix("z", 30.0) @ rotation_matrix("x", -20.0)
    path = write_enhanced_volume(tmp_path / "vol.dcm", volume, direction=direction)
    image = read_dicom(path)
    assert image.is_volume and image.intensity_mask is None
    np.testing.assert_array_equal(image.array, volume)
    np.testing.assert_allclose(image.geometry.spacing, (0.4, 0.5, 0.7))
    np.testing.assert_allclose(image.geometry.origin, (10.0, -5.0, 3.0))
    np.testing.assert_allclose(np.reshape(image.geometry.direction, (3, 3)), direction, atol=1e-9)


def test_enhanced_us_volume_without_positions_or_over_time_says_why(tmp_path):
    volume = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(InputError, match="Enhanced US Volume.*plane position.*cannot be read as a 3D volume"):
        read_dicom(write_enhanced_volume(tmp_path / "a.dcm", volume, with_positions=False))
    twice = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1]], float)  # two time points of 2 slices
    with pytest.raises(InputError, match="2 distinct plane positions.*export one time point"):
        read_dicom(write_enhanced_volume(tmp_path / "b.dcm", volume, positions=twice))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name, words", [
    ("reportsi.dcm", ["structured report", "Basic Text SR", "not an image"]),
    ("test-SR.dcm", ["structured report", "Comprehensive SR"]),
    ("rtplan.dcm", ["holds no image", "RT Plan"]),
    ("MR_truncated.dcm", ["damaged or truncated"]),
])
def test_bundled_files_that_are_not_usable_images(name, words):
    with pytest.raises(InputError) as caught:
        read_dicom(bundled(name))
    for word in words:
        assert word in str(caught.value)


def test_corrupt_and_truncated_files(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(InputError, match="not a DICOM file or it is damaged"):
        read_image(junk)
    good = write_us(tmp_path / "good.dcm", rgb_cine(), regions=[region(0, 0, 47, 39, 0.02, 0.02)], frame_time=40)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="damaged or truncated"):
        read_image(cut)


def test_missing_decoder_names_the_package(tmp_path, monkeypatch):
    from pydicom.pixels.decoders.base import Decoder

    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    with pytest.raises(InputError, match=r"JPEG 2000.*no decoder for it is installed; pip install pylibjpeg pylibjpeg-openjpeg"):
        read_dicom(bundled("examples_jpeg2k.dcm"))
    with pytest.raises(InputError, match=r"JPEG Baseline.*pip install pylibjpeg pylibjpeg-libjpeg"):
        read_dicom(bundled("examples_ybr_color.dcm"))


def test_video_transfer_syntax_and_seg_input_are_refused(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG4HP41

    path = write_us(tmp_path / "mp4.dcm", rgb_cine(frames=2))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" * 8])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "video.dcm")
    with pytest.raises(InputError, match="stores its frames as video.*MPEG-4"):
        read_dicom(tmp_path / "video.dcm")
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    ds.save_as(tmp_path / "seg.dcm")
    with pytest.raises(InputError, match="is a DICOM SEG"):
        read_dicom(tmp_path / "seg.dcm")
