"""Reading images/cines/videos and writing Slicer segmentations (SAMUSALib.io)."""

from __future__ import annotations

import os
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from SAMUSALib import io as sio
from SAMUSALib.errors import InputError
from SAMUSALib.frames import Geometry

SPACING = (0.3, 0.45, 1.7)
ORIGIN = (12.5, -30.25, 101.0)


def oblique_direction() -> tuple[float, ...]:
    """A proper rotation about a tilted axis, so every matrix entry is non-zero."""
    a, b = np.deg2rad(25.0), np.deg2rad(-40.0)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return tuple((rz @ rx).ravel())


def make_volume(shape=(5, 7, 9), dtype=np.int16, components: int = 0) -> sitk.Image:
    rng = np.random.default_rng(1)
    full = shape + ((components,) if components else ())
    array = rng.integers(0, 200, size=full).astype(dtype)
    image = sitk.GetImageFromArray(array, isVector=bool(components))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(oblique_direction())
    return image


def assert_geometry(geometry: Geometry, image: sitk.Image, atol: float = 1e-9) -> None:
    assert np.allclose(geometry.spacing, image.GetSpacing(), atol=atol)
    assert np.allclose(geometry.origin, image.GetOrigin(), atol=atol)
    assert np.allclose(geometry.direction, image.GetDirection(), atol=atol)


# --------------------------------------------------------------------------- read_image


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha", ".mhd"])
def test_read_image_itk_round_trip(tmp_path, suffix):
    image = make_volume()
    path = tmp_path / f"volume{suffix}"
    sitk.WriteImage(image, str(path))
    array, geometry = sio.read_image(path)
    assert array.shape == (5, 7, 9)
    np.testing.assert_array_equal(array, sitk.GetArrayFromImage(image))
    assert_geometry(geometry, sitk.ReadImage(str(path)))  # exactly what the file holds
    assert_geometry(geometry, image, atol=1e-6)  # NIfTI stores geometry as float32


def test_read_image_vector_volume(tmp_path):
    image = make_volume(dtype=np.uint8, components=3)
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(image, str(path))
    array, geometry = sio.read_image(path)
    assert array.shape == (5, 7, 9, 3)
    np.testing.assert_array_equal(array, sitk.GetArrayFromImage(image))
    assert_geometry(geometry, image)


def test_read_image_2d(tmp_path):
    image = sitk.GetImageFromArray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    image.SetSpacing((0.2, 0.5))
    image.SetOrigin((3.0, 4.0))
    path = tmp_path / "plane.nrrd"
    sitk.WriteImage(image, str(path))
    array, geometry = sio.read_image(path)
    assert array.shape == (1, 3, 4)
    np.testing.assert_array_equal(array[0], np.arange(12).reshape(3, 4))
    assert geometry.spacing == (0.2, 0.5, 1.0)
    assert geometry.origin == (3.0, 4.0, 0.0)
    assert geometry.direction == Geometry().direction


def test_read_image_rejects_4d(tmp_path):
    path = tmp_path / "sequence.nrrd"
    sitk.WriteImage(sitk.Image([4, 3, 2, 5], sitk.sitkUInt8), str(path))
    with pytest.raises(InputError, match="4D"):
        sio.read_image(path)


def test_read_image_missing_and_corrupt(tmp_path):
    missing = tmp_path / "nope.nrrd"
    with pytest.raises(InputError, match="nope.nrrd"):
        sio.read_image(missing)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"this is not a nifti file")
    with pytest.raises(InputError, match="corrupt.nii.gz"):
        sio.read_image(corrupt)
    truncated = tmp_path / "truncated.nrrd"
    sitk.WriteImage(make_volume(), str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:-200])
    with pytest.raises(InputError, match="truncated.nrrd"):
        sio.read_image(truncated)
    with pytest.raises(InputError, match="unsupported file type .xyz"):
        (tmp_path / "thing.xyz").write_text("x")
        sio.read_image(tmp_path / "thing.xyz")


def _write_frames(folder: Path, count: int, rgb: bool = False, fmt: str = "png") -> list[np.ndarray]:
    folder.mkdir()
    rng = np.random.default_rng(2)
    frames = []
    for t in range(count):
        shape = (6, 8, 3) if rgb else (6, 8)
        frame = rng.integers(0, 255, size=shape, dtype=np.uint8)
        frame[0, 0] = t  # marks the frame's index
        Image.fromarray(frame).save(folder / f"frame_{t}.{fmt}")
        frames.append(frame)
    return frames


def test_read_folder_natural_sort(tmp_path):
    frames = _write_frames(tmp_path / "cine", 12)
    (tmp_path / "cine" / "notes.txt").write_text("ignored")
    (tmp_path / "cine" / ".hidden.png").write_bytes(b"ignored")
    array, geometry = sio.read_image(tmp_path / "cine")
    assert array.shape == (12, 6, 8) and array.dtype == np.uint8
    assert list(array[:, 0, 0]) == list(range(12))  # frame_2 before frame_10
    np.testing.assert_array_equal(array, np.stack(frames))
    assert geometry.is_identity()


def test_read_folder_rgb_and_gray_rgb(tmp_path):
    frames = _write_frames(tmp_path / "colour", 3, rgb=True)
    array, _ = sio.read_image(tmp_path / "colour")
    assert array.shape == (3, 6, 8, 3)
    np.testing.assert_array_equal(array, np.stack(frames))
    # RGB files whose channels are equal are gray: collapsed to (T, H, W)
    folder = tmp_path / "grayrgb"
    folder.mkdir()
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    for t in range(2):
        Image.fromarray(np.repeat(gray[..., None] + t, 3, axis=-1)).save(folder / f"f{t}.bmp")
    array, _ = sio.read_image(folder)
    assert array.shape == (2, 6, 8)
    np.testing.assert_array_equal(array[1], gray + 1)


def test_read_folder_errors(tmp_path):
    folder = tmp_path / "mixed"
    _write_frames(folder, 3)
    Image.fromarray(np.zeros((7, 8), np.uint8)).save(folder / "frame_3.png")
    with pytest.raises(InputError, match="frame_3.png.*same size"):
        sio.read_image(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no picture frames"):
        sio.read_image(tmp_path / "empty")
    broken = tmp_path / "broken"
    _write_frames(broken, 2)
    (broken / "frame_2.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="frame_2.png"):
        sio.read_image(broken)


def test_read_single_picture(tmp_path):
    frame = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(frame).save(tmp_path / "one.png")
    array, _ = sio.read_image(tmp_path / "one.png")
    np.testing.assert_array_equal(array, frame[None])


def test_read_16bit_and_multipage_tiff(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    frames = [np.full((6, 8), 1000 * (t + 1), np.uint16) for t in range(3)]
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"f{t}.tif")
    array, _ = sio.read_image(folder)
    assert array.dtype == np.uint16
    np.testing.assert_array_equal(array, np.stack(frames))
    pages = [Image.fromarray(np.full((6, 8), 10 * t, np.uint8)) for t in range(4)]
    pages[0].save(tmp_path / "cine.tif", save_all=True, append_images=pages[1:])
    array, _ = sio.read_image(tmp_path / "cine.tif")
    assert array.shape == (4, 6, 8) and list(array[:, 0, 0]) == [0, 10, 20, 30]
    (tmp_path / "pages").mkdir()
    pages[0].save(tmp_path / "pages" / "a.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(InputError, match="one frame per file"):
        sio.read_image(tmp_path / "pages")


def _gray_video(count: int = 6) -> np.ndarray:
    t, y, x = np.mgrid[0:count, 0:48, 0:64]
    return ((x * 3 + y * 2 + t * 20) % 256).astype(np.uint8)


def test_read_gif(tmp_path):
    import imageio.v3 as iio

    gray = _gray_video()
    path = tmp_path / "loop.gif"
    iio.imwrite(path, np.repeat(gray[..., None], 3, axis=-1), plugin="pillow", duration=100, loop=0)
    array, geometry = sio.read_image(path)
    assert array.shape == gray.shape
    np.testing.assert_array_equal(array, gray)
    assert geometry.is_identity()


def test_read_mp4(tmp_path):
    pytest.importorskip("av")
    import imageio.v3 as iio

    gray = _gray_video()
    path = tmp_path / "loop.mp4"
    iio.imwrite(path, np.repeat(gray[..., None], 3, axis=-1), plugin="pyav", codec="libx264", fps=10)
    array, _ = sio.read_image(path)
    assert array.shape == gray.shape and array.dtype == np.uint8  # gray video collapsed
    assert np.abs(array.astype(int) - gray).mean() < 3  # lossy codec
    colour = np.zeros((4, 48, 64, 3), np.uint8)
    colour[..., 0] = 200
    iio.imwrite(tmp_path / "red.avi", colour, plugin="pyav", codec="mpeg4", fps=10)
    array, _ = sio.read_image(tmp_path / "red.avi")
    assert array.shape == (4, 48, 64, 3)
    assert array[..., 0].mean() > 150 and array[..., 1].mean() < 60


def test_read_video_errors(tmp_path, monkeypatch):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputError, match="bad.mp4"):
        sio.read_image(bad)
    import builtins

    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    with pytest.raises(InputError, match="pip install av"):
        sio.read_image(bad)


# --------------------------------------------------------------------------- segmentation


def _reference(tmp_path) -> tuple[sitk.Image, np.ndarray, Geometry, Path]:
    image = make_volume(shape=(4, 6, 10))
    path = tmp_path / "reference.nrrd"
    sitk.WriteImage(image, str(path))
    array, geometry = sio.read_image(path)
    return image, array, geometry, path


def test_segmentation_round_trip_geometry(tmp_path):
    image, array, geometry, _ = _reference(tmp_path)
    mask = np.zeros(array.shape, bool)
    mask[1, 2, 7] = True  # one voxel, asymmetric in K, J, I
    mask[3, 5, 0] = True
    other = np.zeros(array.shape, np.uint8)
    other[0, 0:3, 1:4] = 1
    out = sio.write_segmentation(
        tmp_path / "result.seg.nrrd", {1: mask, 4: other}, geometry,
        names={1: "carotid", 4: "jugular"}, colors={1: (1.0, 0.0, 0.0), 4: (0.0, 0.5, 1.0)},
    )
    assert out == tmp_path / "result.seg.nrrd"

    masks, read_geometry, names = sio.read_segmentation(out)
    assert set(masks) == {1, 4}
    np.testing.assert_array_equal(masks[1], mask)
    np.testing.assert_array_equal(masks[4], other.astype(bool))
    assert names == {1: "carotid", 4: "jugular"}
    assert np.allclose(read_geometry.ijk_to_lps(), geometry.ijk_to_lps(), atol=1e-9)

    # The file itself, as SimpleITK reads it, sits on the reference grid: same geometry,
    # and each labelled voxel maps to the same physical point as the image voxel.
    seg = sitk.ReadImage(str(out))
    assert seg.GetSize() == image.GetSize()
    assert np.allclose(seg.GetSpacing(), image.GetSpacing())
    assert np.allclose(seg.GetOrigin(), image.GetOrigin())
    assert np.allclose(seg.GetDirection(), image.GetDirection())
    labels = sitk.GetArrayFromImage(seg)
    assert labels[1, 2, 7] == 1 and labels[3, 5, 0] == 1 and labels[0, 1, 2] == 4
    assert (labels > 0).sum() == mask.sum() + other.sum()
    for k, j, i in zip(*np.nonzero(mask)):
        index = (int(i), int(j), int(k))
        assert np.allclose(seg.TransformIndexToPhysicalPoint(index), image.TransformIndexToPhysicalPoint(index))

    # The header, read by pynrrd, carries the metadata Slicer needs.
    header = nrrd.read_header(str(out))
    assert header["space"] == "left-posterior-superior"
    assert list(header["sizes"]) == [10, 6, 4]  # I, J, K
    matrix = geometry.ijk_to_lps()
    np.testing.assert_allclose(header["space directions"], matrix[:3, :3].T, atol=1e-9)
    np.testing.assert_allclose(header["space origin"], ORIGIN, atol=1e-9)
    assert header["Segment0_Name"] == "carotid" and header["Segment0_LabelValue"] == "1"
    assert header["Segment1_LabelValue"] == "4" and header["Segment1_Layer"] == "0"
    assert [float(c) for c in header["Segment0_Color"].split()] == [1.0, 0.0, 0.0]
    assert header["Segment1_Extent"] == "0 9 0 5 0 3"
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert "Reference image geometry" in header["Segmentation_ConversionParameters"]

    import slicerio

    segmentation = slicerio.read_segmentation(str(out))
    colours = {s["labelValue"]: s["color"] for s in segmentation["segments"]}
    assert colours == {1: [1.0, 0.0, 0.0], 4: [0.0, 0.5, 1.0]}


def test_segmentation_overlapping_masks_use_layers(tmp_path):
    _, array, geometry, _ = _reference(tmp_path)
    a = np.zeros(array.shape, bool)
    a[:, 1:4, 2:6] = True
    b = np.zeros(array.shape, bool)
    b[:, 2:5, 4:8] = True  # overlaps a
    c = np.zeros(array.shape, bool)
    c[0, 0, 0] = True  # overlaps neither: shares layer 0
    out = sio.write_segmentation(tmp_path / "overlap.seg.nrrd", {1: a, 2: b, 3: c}, geometry)
    masks, read_geometry, names = sio.read_segmentation(out)
    for obj_id, mask in {1: a, 2: b, 3: c}.items():
        np.testing.assert_array_equal(masks[obj_id], mask)
    assert names == {1: "object 1", 2: "object 2", 3: "object 3"}
    header = nrrd.read_header(str(out))
    assert header["dimension"] == 4 and list(header["sizes"]) == [2, 10, 6, 4]
    assert header["kinds"] == ["list", "domain", "domain", "domain"]
    assert [header[f"Segment{n}_Layer"] for n in range(3)] == ["0", "1", "0"]
    np.testing.assert_allclose(header["space directions"][1:], geometry.ijk_to_lps()[:3, :3].T, atol=1e-9)
    assert np.allclose(read_geometry.ijk_to_lps(), geometry.ijk_to_lps(), atol=1e-9)
    # default colours are distinct
    import slicerio

    colours = [tuple(s["color"]) for s in slicerio.read_segmentation(str(out))["segments"]]
    assert len(set(colours)) == 3


def test_segmentation_large_ids_and_2d(tmp_path):
    mask = np.zeros((1, 5, 6), bool)
    mask[0, 1:3, 2:4] = True
    geometry = Geometry((0.2, 0.3, 1.0))
    out = sio.write_segmentation(tmp_path / "plane.seg.nrrd", {300: mask}, geometry)
    masks, read_geometry, _ = sio.read_segmentation(out)
    np.testing.assert_array_equal(masks[300], mask)
    assert read_geometry == geometry


def test_segmentation_atomic_write(tmp_path, monkeypatch):
    import slicerio

    _, array, geometry, _ = _reference(tmp_path)
    target = tmp_path / "result.seg.nrrd"
    target.write_bytes(b"previous good result")
    target.chmod(0o640)
    before = sorted(os.listdir(tmp_path))

    def broken_write(file, segmentation, *args, **kwargs):
        Path(file).write_bytes(b"half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(slicerio, "write_segmentation", broken_write)
    with pytest.raises(RuntimeError, match="disk on fire"):
        sio.write_segmentation(target, {1: np.ones(array.shape, bool)}, geometry)
    assert target.read_bytes() == b"previous good result"
    assert sorted(os.listdir(tmp_path)) == before  # no temporary file left

    def full_disk(file, segmentation, *args, **kwargs):
        Path(file).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(slicerio, "write_segmentation", full_disk)
    with pytest.raises(InputError, match="No space left"):
        sio.write_segmentation(target, {1: np.ones(array.shape, bool)}, geometry)
    assert target.read_bytes() == b"previous good result"
    assert sorted(os.listdir(tmp_path)) == before

    monkeypatch.undo()
    sio.write_segmentation(target, {1: np.ones(array.shape, bool)}, geometry)
    assert sio.read_segmentation(target)[0][1].all()
    assert sorted(os.listdir(tmp_path)) == before
    assert target.stat().st_mode & 0o777 == 0o640  # the replaced file keeps its permissions


def test_segmentation_bad_inputs(tmp_path):
    geometry = Geometry()
    mask = np.ones((2, 3, 4), bool)
    with pytest.raises(InputError, match="result.seg.nrrd"):
        sio.write_segmentation(tmp_path / "result.nrrd", {1: mask}, geometry)
    target = tmp_path / "ok.seg.nrrd"
    with pytest.raises(InputError, match="same|others have"):
        sio.write_segmentation(target, {1: mask, 2: np.ones((2, 3, 5), bool)}, geometry)
    with pytest.raises(InputError, match="3D"):
        sio.write_segmentation(target, {1: np.ones((3, 4), bool)}, geometry)
    with pytest.raises(InputError, match="positive integers"):
        sio.write_segmentation(target, {0: mask}, geometry)
    with pytest.raises(InputError, match="positive integers"):
        sio.write_segmentation(target, {"a": mask}, geometry)
    with pytest.raises(InputError, match="no masks"):
        sio.write_segmentation(target, {}, geometry)
    with pytest.raises(InputError, match="between 0 and 1"):
        sio.write_segmentation(target, {1: mask}, geometry, colors={1: (255, 0, 0)})
    with pytest.raises(InputError, match="threshold"):
        sio.write_segmentation(target, {1: mask * 0.7}, geometry)
    with pytest.raises(InputError, match="does not exist"):
        sio.write_segmentation(tmp_path / "missing" / "x.seg.nrrd", {1: mask}, geometry)
    assert not target.exists()
    with pytest.raises(InputError, match="no such file"):
        sio.read_segmentation(tmp_path / "absent.seg.nrrd")
    image = tmp_path / "image.nrrd"
    sitk.WriteImage(make_volume(), str(image))
    with pytest.raises(InputError, match="not a segmentation"):
        sio.read_segmentation(image)
    junk = tmp_path / "junk.seg.nrrd"
    junk.write_bytes(b"junk")
    with pytest.raises(InputError, match="junk.seg.nrrd"):
        sio.read_segmentation(junk)


def test_a_picture_with_an_exif_orientation_is_read_as_slicer_reads_it(tmp_path, caplog):
    """Turned by its EXIF tag, a PNG's .seg.nrrd came out 385 x 403 where Slicer (ITK) shows
    the picture 403 x 385, and the prompts landed on the turned frame."""
    import logging

    pixels = np.arange(10 * 24, dtype=np.uint8).reshape(10, 24)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    path = tmp_path / "tagged.png"
    Image.fromarray(pixels).save(path, exif=exif)
    with caplog.at_level(logging.WARNING, logger="samusa"):
        array, _ = sio.read_image(path)
    itk = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    np.testing.assert_array_equal(np.squeeze(array), pixels)
    np.testing.assert_array_equal(np.squeeze(array), np.squeeze(itk))
    assert "EXIF orientation (6)" in caplog.text and "stored pixel order" in caplog.text
