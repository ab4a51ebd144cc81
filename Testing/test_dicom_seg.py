"""DICOM SEG out (SAMUSALib.dicom.seg) and `samusa segment loop.dcm` end to end (issue 21).

The end-to-end case is the issue's own check: an RGB multi-frame ultrasound DICOM whose
spacing is only in its ultrasound region gives a .seg.nrrd with that spacing and a DICOM
SEG that highdicom reads back with the segment on the frames that were segmented.
"""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicom_samples import region, write_us
from SAMUSALib import cli
from SAMUSALib.dicom.reading import read_dicom
from SAMUSALib.dicom.seg import read_dicom_seg, write_dicom_seg
from SAMUSALib.errors import InputError
from SAMUSALib.io import read_segmentation
from SAMUSALib.phantoms import cine_phantom

FAST = ["--model", "test-tiny", "--device", "cpu", "--quiet"]
NUM_FRAMES, HEIGHT, WIDTH = 8, 64, 80


@pytest.fixture(autouse=True)
def _shared_model(shared_tiny_model):
    """Every in-process run gets the session's test-tiny (conftest.shared_tiny_model)."""


@pytest.fixture(scope="module")
def phantom():
    return cine_phantom(num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH, seed=1, visible={1: (1, 6)})


def scanner_cine(phantom, path: Path, regions, *, frame_time=40.0) -> Path:
    """The phantom as a scanner's RGB cine: a yellow burned-in label above the image, spacing only in `regions`."""
    rgb = np.repeat(phantom.frames[..., None], 3, axis=-1)
    rgb[:, :6, :30] = [255, 255, 0]
    return write_us(path, rgb, regions=regions, frame_time=frame_time)


def box_of(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def folder_state(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- the writer


@pytest.fixture
def source_and_masks(tmp_path, phantom):
    path = scanner_cine(phantom, tmp_path / "loop.dcm", [region(0, 6, 79, 63, 0.02, 0.03)])
    source = read_dicom(path)
    one = np.zeros((NUM_FRAMES, HEIGHT, WIDTH), bool)
    one[2:5] = phantom.masks[1][2:5]
    three = np.zeros_like(one)
    three[4, 10:20, 10:30] = True  # overlaps nothing; frame 4 has both objects
    three[4, 30:40, 30:50] = one[4, 30:40, 30:50]  # and some pixels of both (SEG segments may overlap)
    return source, {1: one, 3: three}


def test_seg_round_trip_segments_frames_and_references(tmp_path, source_and_masks):
    source, masks = source_and_masks
    out = write_dicom_seg(tmp_path / "result.dcm", masks, source, names={1: "plaque", 3: "lumen"},
                          colors={1: (1.0, 0.0, 0.0)})
    seg = hd.seg.segread(out)
    original = pydicom.dcmread(source.path)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.Modality == "SEG"
    assert seg.StudyInstanceUID == original.StudyInstanceUID and seg.PatientID == original.PatientID
    assert [(s.SegmentNumber, s.SegmentLabel, s.TrackingID) for s in seg.SegmentSequence] == [
        (1, "plaque", "SAMUSA object 1"), (2, "lumen", "SAMUSA object 3")]
    assert all(s.SegmentAlgorithmType == "SEMIAUTOMATIC" for s in seg.SegmentSequence)
    red = hd.color.CIELabColor.from_dicom_value(list(seg.SegmentSequence[0].RecommendedDisplayCIELabValue)).to_rgb()
    assert np.abs(np.array(red, int) - [255, 0, 0]).max() <= 2

    # Every SEG frame references the source instance and the frame it segments; empty frames are left out.
    pairs = set()
    for frame in seg.PerFrameFunctionalGroupsSequence:
        (item,) = frame.DerivationImageSequence[0].SourceImageSequence
        assert item.ReferencedSOPInstanceUID == original.SOPInstanceUID
        pairs.add((int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber), int(item.ReferencedFrameNumber)))
    expected = {(1, t + 1) for t in range(NUM_FRAMES) if masks[1][t].any()} | {(2, 5)}
    assert pairs == expected and seg.NumberOfFrames == len(expected)

    pixels = seg.get_pixels_by_source_frame(original.SOPInstanceUID, source_frame_numbers=list(range(1, NUM_FRAMES + 1)),
                                           assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(pixels[..., 0] != 0, masks[1])
    np.testing.assert_array_equal(pixels[..., 1] != 0, masks[3])
    back, names, colors = read_dicom_seg(out, NUM_FRAMES)
    assert sorted(back) == [1, 3] and names == {1: "plaque", 3: "lumen"}
    for obj_id in masks:
        np.testing.assert_array_equal(back[obj_id], masks[obj_id])
    assert colors[1] == pytest.approx((1.0, 0.0, 0.0), abs=0.01)

    # What dcmqi (Slicer's QuantitativeReporting) needs: a frame of reference, plane positions
    # and pixel measures on the region's calibrated grid (row spacing 0.3 mm, column 0.2 mm).
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == pytest.approx([0.3, 0.2])
    assert "FrameOfReferenceUID" in seg
    assert all("PlanePositionSequence" in f for f in seg.PerFrameFunctionalGroupsSequence)


def test_seg_of_a_single_frame_ultrasound_image_round_trips(tmp_path, phantom):
    """A single-frame US Image Storage export (the commonest) ran the whole segmentation and
    then failed: "'FileDataset' object has no attribute 'PixelSpacing'"; highdicom reads a
    single-frame source's plane from its top-level attributes."""
    path = write_us(tmp_path / "still.dcm", phantom.frames[3:4], regions=[region(0, 0, 79, 63, 0.02, 0.03)])
    source = read_dicom(path)
    mask = phantom.masks[1][3:4].copy()
    assert mask.any()
    out = write_dicom_seg(tmp_path / "still_seg.dcm", {1: mask}, source, names={1: "lesion"})
    seg = hd.seg.segread(out)
    (frame,) = seg.PerFrameFunctionalGroupsSequence
    (item,) = frame.DerivationImageSequence[0].SourceImageSequence
    assert item.ReferencedSOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == pytest.approx([0.3, 0.2])
    back, names, _ = read_dicom_seg(out, 1)
    assert names == {1: "lesion"}
    np.testing.assert_array_equal(back[1], mask)
    assert "PixelSpacing" not in pydicom.dcmread(path)  # the source file is left as it was


def test_seg_is_read_by_dcmqi_as_quantitative_reporting_does(tmp_path, source_and_masks):
    """Slicer's QuantitativeReporting loads DICOM SEG with dcmqi's segimage2itkimage (PyPI dcmqi):
    each segment must come out on the .seg.nrrd grid (region spacing, frame k at k mm)."""
    import shutil
    import subprocess
    import sys

    import nrrd

    tool = Path(sys.executable).with_name("segimage2itkimage")
    if not tool.exists():
        found = shutil.which("segimage2itkimage")
        if found is None:
            pytest.skip("dcmqi's segimage2itkimage is not installed (pip install dcmqi)")
        tool = Path(found)
    source, masks = source_and_masks
    seg = write_dicom_seg(tmp_path / "result.dcm", masks, source, names={1: "plaque", 3: "lumen"})
    out = tmp_path / "dcmqi"
    out.mkdir()
    done = subprocess.run([tool, "--inputDICOM", seg, "--outputDirectory", out, "--outputType", "nrrd"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "W:" not in done.stdout + done.stderr
    meta = json.loads((out / "meta.json").read_text())
    labels = {a["labelID"]: a["SegmentLabel"] for group in meta["segmentAttributes"] for a in group}
    assert labels == {1: "plaque", 2: "lumen"}
    found = {}
    for path in out.glob("*.nrrd"):
        voxels, header = nrrd.read(str(path))  # (I, J, K)
        np.testing.assert_allclose(header["space directions"], np.diag([0.2, 0.3, 1.0]), atol=1e-9)
        first = int(round(header["space origin"][2]))  # frame k lies at k mm
        for label in set(np.unique(voxels)) - {0}:
            volume = np.zeros((NUM_FRAMES, HEIGHT, WIDTH), bool)
            volume[first: first + voxels.shape[2]] = (voxels == label).transpose(2, 1, 0)
            found[int(label)] = volume
    np.testing.assert_array_equal(found[1], masks[1])
    np.testing.assert_array_equal(found[2], masks[3])


def test_seg_of_an_enhanced_us_volume_keeps_its_3d_grid(tmp_path):
    from dicom_samples import write_enhanced_volume
    from SAMUSALib.phantoms import rotation_matrix

    volume = np.random.default_rng(3).integers(0, 256, size=(6, 10, 12), dtype=np.uint8)
    source = read_dicom(write_enhanced_volume(tmp_path / "vol.dcm", volume, direction=rotation_matrix("z", 30.0)))
    mask = np.zeros(volume.shape, bool)
    mask[2:4, 3:6, 4:8] = True
    seg = hd.seg.segread(write_dicom_seg(tmp_path / "vol_seg.dcm", {1: mask}, source))
    back, _, _ = read_dicom_seg(tmp_path / "vol_seg.dcm", volume.shape[0])
    np.testing.assert_array_equal(back[1], mask)
    matrix = source.geometry.ijk_to_lps()
    for frame in seg.PerFrameFunctionalGroupsSequence:  # each plane where the volume's slice lies
        number = int(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, (matrix @ [0, 0, number - 1, 1])[:3], atol=1e-6)


def test_seg_nrrd_metadata_fields(tmp_path):
    from SAMUSALib.frames import Geometry
    from SAMUSALib.io import write_segmentation

    mask = np.zeros((3, 4, 5), bool)
    mask[1, 1:3, 1:4] = True
    out = write_segmentation(tmp_path / "m.seg.nrrd", {1: mask}, Geometry(), metadata={"SAMUSA_FrameTimes": "0 40 80"})
    import nrrd

    assert nrrd.read_header(str(out))["SAMUSA_FrameTimes"] == "0 40 80"
    np.testing.assert_array_equal(read_segmentation(out)[0][1], mask)
    for bad in ("Segment0_Name", "space", ""):
        with pytest.raises(InputError, match="not allowed in a .seg.nrrd"):
            write_segmentation(tmp_path / "n.seg.nrrd", {1: mask}, Geometry(), metadata={bad: "x"})
    assert not (tmp_path / "n.seg.nrrd").exists()


def test_seg_write_failure_keeps_the_old_file(tmp_path, monkeypatch, source_and_masks):
    source, masks = source_and_masks
    out = tmp_path / "result.dcm"
    out.write_bytes(b"the user's earlier SEG")
    before = folder_state(tmp_path)

    def full_disk(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"DICM half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hd.seg.Segmentation, "save_as", full_disk)
    with pytest.raises(InputError, match="No space left on device"):
        write_dicom_seg(out, masks, source)
    assert folder_state(tmp_path) == before


def test_seg_bad_inputs(tmp_path, source_and_masks):
    source, masks = source_and_masks
    with pytest.raises(InputError, match="must end with .dcm"):
        write_dicom_seg(tmp_path / "r.seg.nrrd", masks, source)
    with pytest.raises(InputError, match=r"shape \(8, 64, 79\).*\(8, 64, 80\)"):
        write_dicom_seg(tmp_path / "r.dcm", {1: masks[1][..., :-1]}, source)
    with pytest.raises(InputError, match="no masks"):
        write_dicom_seg(tmp_path / "r.dcm", {}, source)
    assert [p.name for p in tmp_path.iterdir()] == ["loop.dcm"]  # nothing written


# --------------------------------------------------------------------------- samusa segment loop.dcm


def test_cli_rgb_cine_gives_seg_nrrd_with_region_spacing_and_a_dicom_seg(capsys, tmp_path, phantom):
    loop = scanner_cine(phantom, tmp_path / "loop.dcm", [region(0, 6, 79, 63, 0.02, 0.03)], frame_time=40.0)
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [
        {"id": 1, "name": "lesion", "window": [3, 3], "prompts": [{"frame": 3, "box": box_of(phantom.masks[1][3])}]}]}))
    nrrd_out, seg_out = tmp_path / "result.seg.nrrd", tmp_path / "result.dcm"
    for out in (nrrd_out, seg_out):
        code, stdout, stderr = run(capsys, "segment", loop, "--prompts", prompts, "--out", out, *FAST)
        assert code == 0, stderr
        assert f"wrote {out}" in stdout

    masks, geometry, names = read_segmentation(nrrd_out)
    assert names == {1: "lesion"} and masks[1].shape == (NUM_FRAMES, HEIGHT, WIDTH)
    assert geometry.spacing == pytest.approx((0.2, 0.3, 1.0))  # from the region, cm -> mm
    import nrrd

    header = nrrd.read_header(str(nrrd_out))
    assert header["SAMUSA_FrameTimes"] == " ".join(str(40 * k) for k in range(NUM_FRAMES))
    assert header["SAMUSA_TimeAxis"] == "K" and header["SAMUSA_TimeUnit"] == "ms"

    segmented = [t for t in range(NUM_FRAMES) if masks[1][t].any()]
    assert segmented == [3]  # the one-frame window (kept short: test-tiny on a shared CPU)
    seg = hd.seg.segread(seg_out)
    source_uid = pydicom.dcmread(loop).SOPInstanceUID
    referenced = sorted(int(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
                        for f in seg.PerFrameFunctionalGroupsSequence)
    assert referenced == [t + 1 for t in segmented]  # DICOM frame numbers start at 1
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["lesion"]
    pixels = seg.get_pixels_by_source_frame(source_uid, source_frame_numbers=list(range(1, NUM_FRAMES + 1)),
                                           assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(pixels[..., 0] != 0, masks[1])  # the same masks as the .seg.nrrd
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.dcm", "p.json", "result.dcm", "result.seg.nrrd"]


def test_cli_prompts_choose_the_region_and_text_stays_out_of_normalisation(capsys, tmp_path, monkeypatch):
    """Two B-mode panels (dual view) with different calibrations: the one holding the prompts
    gives the spacing; the 16-bit window comes from that region, not from the burned-in text."""
    from SAMUSALib import pipeline

    rng = np.random.default_rng(4)
    frames = rng.integers(200, 1201, size=(4, 48, 80)).astype(np.uint16)
    frames[:, :4] = 65535  # annotation bar above both panels
    loop = write_us(tmp_path / "dual.dcm", frames, frame_time=25.0, regions=[
        region(0, 4, 39, 47, 0.05, 0.05),   # left panel, 0.5 mm
        region(40, 4, 79, 47, 0.01, 0.02),  # right panel, 0.1 x 0.2 mm
    ])
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [
        {"id": 1, "window": [2, 2], "prompts": [{"frame": 2, "box": [50, 15, 70, 35]}]}]}))
    seen = {}
    real = pipeline.segment

    def spy(frames, *args, **kwargs):
        seen["window"] = frames.window
        return real(frames, *args, **kwargs)

    monkeypatch.setattr(pipeline, "segment", spy)
    out = tmp_path / "dual.seg.nrrd"
    code, stdout, stderr = run(capsys, "segment", loop, "--prompts", prompts, "--out", out, *FAST)
    assert code == 0, stderr
    _, geometry, _ = read_segmentation(out)
    assert geometry.spacing == pytest.approx((0.1, 0.2, 1.0))
    assert seen["window"].high <= 1200 and seen["window"].low >= 200


def test_cli_dicom_errors_are_one_line_and_write_nothing(capsys, tmp_path, phantom):
    import SimpleITK as sitk
    from pydicom.data import get_testdata_file

    work = tmp_path / "work"
    work.mkdir()
    prompts = work / "p.json"
    prompts.write_text(json.dumps({"objects": [{"id": 1, "window": [1, 1], "prompts": [{"frame": 1, "positive": [[10, 10]]}]}]}))
    nrrd_in = work / "cine.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(phantom.frames), str(nrrd_in))
    report = work / "report.dcm"
    report.write_bytes(Path(get_testdata_file("reportsi.dcm", download=False)).read_bytes())
    junk = work / "junk.dcm"
    junk.write_bytes(np.random.default_rng(0).bytes(1000))
    dual = write_us(work / "dual.dcm", phantom.frames, regions=[region(0, 0, 39, 63, 0.01, 0.01),
                                                                 region(40, 0, 79, 63, 0.02, 0.02)])
    both = work / "both.json"  # an object in each panel: one grid cannot hold both spacings
    both.write_text(json.dumps({"objects": [{"id": 1, "prompts": [{"frame": 1, "positive": [[10, 10]]}]},
                                            {"id": 2, "prompts": [{"frame": 1, "positive": [[60, 10]]}]}]}))
    cases = [
        (nrrd_in, "out.dcm", ["DICOM SEG output", "cine.nrrd is not DICOM", "out.seg.nrrd"], prompts),
        (report, "out.seg.nrrd", ["structured report", "not an image"], prompts),
        (junk, "out.dcm", ["not a DICOM file"], prompts),
        (dual, "out.seg.nrrd", ["two calibrated ultrasound regions", "0.1 x 0.1 mm", "0.2 x 0.2 mm"], both),
    ]
    for image, out_name, words, prompts in cases:
        out = work / out_name
        for existing in (None, b"earlier result"):
            if existing is not None:
                out.write_bytes(existing)
            before = folder_state(work)
            code, stdout, stderr = run(capsys, "segment", image, "--prompts", prompts, "--out", out, *FAST)
            assert code == 2 and stdout == ""
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), stderr
            for word in words:
                assert word in lines[0], lines[0]
            assert folder_state(work) == before
        out.unlink()
