"""The `samusa` command line: inputs of every kind, outputs Slicer opens, and bad input.

`SAMUSALib.cli.main` runs in-process (fast); one test runs the installed console script.
Every successful run uses short temporal windows, so the untrained test-tiny model computes
only a few frames. Bad input must give exit status 2, one line on stderr naming the
problem, no traceback, and leave the output folder exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from conftest import centroid_points
from SAMUSALib import cli
from SAMUSALib.frames import FrameSource, Geometry
from SAMUSALib.io import read_segmentation
from SAMUSALib.markups import write_markups
from SAMUSALib.phantoms import cine_phantom, rotation_matrix, volume_phantom
from SAMUSALib.prompts import DEFAULT_COLORS, FramePrompt, ObjectPrompts, PromptSet

SPACING = (0.3, 0.45, 1.7)
ORIGIN = (12.5, -30.25, 101.0)
DIRECTION = tuple((rotation_matrix("z", -40.0) @ rotation_matrix("x", 25.0)).ravel())
NUM_FRAMES, HEIGHT, WIDTH = 12, 64, 80
FAST = ["--model", "test-tiny", "--device", "cpu", "--quiet"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _shared_model(shared_tiny_model):
    """Every in-process run gets the session's test-tiny (conftest.shared_tiny_model)."""


@pytest.fixture(scope="module")
def phantom():
    return cine_phantom(num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH, seed=1, visible={1: (2, 9), 2: (0, 6)})


@pytest.fixture(scope="module")
def cine_nrrd(phantom, tmp_path_factory) -> Path:
    """The phantom as an NRRD with non-identity spacing, origin and an oblique direction."""
    path = tmp_path_factory.mktemp("cine") / "cine.nrrd"
    image = sitk.GetImageFromArray(phantom.frames)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    sitk.WriteImage(image, str(path))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def boundary(phantom, obj_id: int, frame: int) -> list:
    return centroid_points(phantom.masks[obj_id][frame]).tolist()


def bbox(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())]


def assert_empty_outside(mask: np.ndarray, window: tuple[int, int], axis: int = 0) -> None:
    outside = [i for i in range(mask.shape[axis]) if not window[0] <= i <= window[1]]
    assert not np.take(mask, outside, axis=axis).any(), f"mask outside the window {window}"


def assert_same_geometry(geometry: Geometry, image: sitk.Image) -> None:
    np.testing.assert_allclose(geometry.spacing, image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(geometry.origin, image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(geometry.direction, image.GetDirection(), atol=1e-9)


def folder_state(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} | {
        str(p.relative_to(folder)) + "/": b"" for p in sorted(folder.rglob("*")) if p.is_dir()
    }


# --------------------------------------------------------------------------- segment: inputs


def test_nrrd_cine_keeps_geometry_names_and_windows(capsys, tmp_path, phantom, cine_nrrd):
    prompts = write_json(tmp_path / "prompts.json", {"objects": [
        {"id": 1, "name": "lesion", "window": [3, 5], "prompts": [{"frame": 4, "boundary": boundary(phantom, 1, 4)}]},
        {"id": 2, "name": "calcification", "window": [1, 2], "prompts": [
            {"frame": 1, "box": bbox(phantom.masks[2][1])},
            {"frame": 2, "positive": [phantom.centers[2][2].tolist()], "negative": [[2, 2]]},
        ]},
    ]})
    out, overlay = tmp_path / "result.seg.nrrd", tmp_path / "result.png"
    code, stdout, stderr = run(capsys, "segment", cine_nrrd, "--prompts", prompts, "--out", out,
                               "--overlay", overlay, "--model", "test-tiny", "--device", "cpu")
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and f"wrote {overlay}" in stdout
    assert "UNTRAINED" in stdout
    assert "propagating" in stderr  # the progress bar goes to stderr, never to stdout

    masks, geometry, names = read_segmentation(out)
    reference = sitk.ReadImage(str(cine_nrrd))
    assert_same_geometry(geometry, reference)
    assert names == {1: "lesion", 2: "calcification"}
    assert masks[1].shape == masks[2].shape == (NUM_FRAMES, HEIGHT, WIDTH)
    assert_empty_outside(masks[1], (3, 5))
    assert_empty_outside(masks[2], (1, 2))
    for obj_id, name in names.items():
        frames_with_mask = int(masks[obj_id].any(axis=(1, 2)).sum())
        assert f"object {obj_id} ({name}): mask on {frames_with_mask} frames" in stdout

    # What Slicer sees: SimpleITK reads the same grid, slicerio the segment names and colours.
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == reference.GetSize()
    assert_same_geometry(geometry, image)
    import slicerio

    segments = {s["labelValue"]: s for s in slicerio.read_segmentation(str(out), skip_voxels=True)["segments"]}
    assert segments[1]["name"] == "lesion" and segments[2]["name"] == "calcification"
    np.testing.assert_allclose(segments[1]["color"], DEFAULT_COLORS[0], atol=1e-3)
    np.testing.assert_allclose(segments[2]["color"], DEFAULT_COLORS[1], atol=1e-3)

    with Image.open(overlay) as picture:
        assert picture.format == "PNG" and picture.width > WIDTH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.json", "result.png", "result.seg.nrrd"]


@pytest.mark.parametrize("axis", ["I", "J"])
def test_volume_sliced_along_an_axis(capsys, tmp_path, axis):
    vp = volume_phantom(shape=(14, 24, 22), radii_mm=(3.0, 3.0, 3.0), seed=2)
    path = tmp_path / "volume.nrrd"
    image = sitk.GetImageFromArray(vp.volume)
    image.SetSpacing(vp.geometry.spacing)
    image.SetOrigin(vp.geometry.origin)
    image.SetDirection(vp.geometry.direction)
    sitk.WriteImage(image, str(path))
    np_axis = {"J": 1, "I": 2}[axis]
    first, last = vp.ranges[axis]
    middle = (first + last) // 2
    window = (middle, middle + 1)
    slice_mask = np.take(vp.mask, middle, axis=np_axis)  # (K, I) for J, (K, J) for I: rows are K
    prompts = write_json(tmp_path / "p.json", {"objects": [
        {"id": 1, "name": "cyst", "window": list(window), "prompts": [{"frame": middle, "box": bbox(slice_mask)}]},
    ]})
    out = tmp_path / "volume.seg.nrrd"
    code, stdout, stderr = run(capsys, "segment", path, "--prompts", prompts, "--out", out, "--axis", axis.lower(), *FAST)
    assert code == 0, stderr
    masks, geometry, names = read_segmentation(out)
    assert names == {1: "cyst"}
    assert masks[1].shape == vp.volume.shape  # (K, J, I), whatever the slicing axis
    assert_empty_outside(masks[1], window, axis=np_axis)
    assert_same_geometry(geometry, sitk.ReadImage(str(path)))


def test_folder_of_png_frames_with_gif_overlay(capsys, tmp_path, phantom):
    folder = tmp_path / "frames"
    folder.mkdir()
    count = 10
    for index in range(count):  # frame_2 before frame_10: natural order
        Image.fromarray(phantom.frames[index]).save(folder / f"frame_{index}.png")
    prompts = write_json(tmp_path / "p.json", {"objects": [
        {"id": 1, "name": "lesion", "window": [2, 3], "prompts": [{"frame": 3, "boundary": boundary(phantom, 1, 3)}]},
    ]})
    out, overlay = tmp_path / "frames.seg.nrrd", tmp_path / "frames.gif"
    code, stdout, stderr = run(capsys, "segment", folder, "--prompts", prompts, "--out", out, "--overlay", overlay, *FAST)
    assert code == 0, stderr
    masks, geometry, _ = read_segmentation(out)
    assert geometry.is_identity()
    assert masks[1].shape == (count, HEIGHT, WIDTH)
    assert_empty_outside(masks[1], (2, 3))
    with Image.open(overlay) as gif:
        assert gif.format == "GIF" and gif.n_frames == count


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_input_with_window_option(capsys, tmp_path, phantom, suffix):
    count = 10
    path = tmp_path / f"loop{suffix}"
    if suffix == ".gif":
        pictures = [Image.fromarray(f) for f in phantom.frames[:count]]
        pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    else:
        pytest.importorskip("av")
        import imageio.v3 as iio

        rgb = np.repeat(phantom.frames[:count, ..., None], 3, axis=-1)
        iio.imwrite(path, rgb, plugin="pyav", codec="libx264", fps=10)
    # the JSON's window [0, 9] is replaced by --window 4 4
    prompts = write_json(tmp_path / "p.json", {"objects": [
        {"id": 1, "window": [0, 9], "prompts": [{"frame": 4, "boundary": boundary(phantom, 1, 4)}]},
    ]})
    out = tmp_path / "loop.seg.nrrd"
    code, stdout, stderr = run(capsys, "segment", path, "--prompts", prompts, "--out", out, "--window", 4, 4, *FAST)
    assert code == 0, stderr
    assert "1 of 10 frames encoded, 0 propagated" in stdout
    masks, geometry, names = read_segmentation(out)
    assert names == {1: "object 1"}
    assert masks[1].shape == (count, HEIGHT, WIDTH)
    assert geometry.is_identity()
    assert_empty_outside(masks[1], (4, 4))


def test_slicer_markups_prompts(capsys, tmp_path, phantom, cine_nrrd):
    geometry = Geometry(SPACING, ORIGIN, DIRECTION)
    prompts = PromptSet([ObjectPrompts(1, "plaque", prompts=[
        FramePrompt(4, boundary=boundary(phantom, 1, 4), negative=[[3.0, 60.0]]),
    ])])
    markups = tmp_path / "clicks.mrk.json"
    write_markups(prompts, markups, FrameSource(phantom.frames, geometry=geometry))
    out = tmp_path / "plaque.seg.nrrd"
    out.write_bytes(b"an older result, to be replaced")
    code, stdout, stderr = run(capsys, "segment", cine_nrrd, "--prompts", markups, "--out", out, "--window", 3, 4, *FAST)
    assert code == 0, stderr
    masks, seg_geometry, names = read_segmentation(out)
    assert names == {1: "plaque"}
    assert_empty_outside(masks[1], (3, 4))
    assert_same_geometry(seg_geometry, sitk.ReadImage(str(cine_nrrd)))
    assert "2 of 12 frames encoded, 1 propagated" in stdout  # the prompt landed on frame 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clicks.mrk.json", "plaque.seg.nrrd"]


def test_demo_writes_segmentation_and_overlay(capsys, tmp_path):
    out_dir = tmp_path / "demo" / "nested"
    code, stdout, stderr = run(capsys, "demo", "--out-dir", out_dir, *FAST)
    assert code == 0, stderr
    seg, overlay = out_dir / "carotid_cine.seg.nrrd", out_dir / "carotid_cine_overlay.png"
    assert f"wrote {seg}" in stdout and f"wrote {overlay}" in stdout
    masks, geometry, names = read_segmentation(seg)
    sample = sitk.ReadImage(str(cli.DEMO_INPUT))
    assert_same_geometry(geometry, sample)
    assert names == {1: "carotid lumen"}
    assert masks[1].shape == sitk.GetArrayViewFromImage(sample).shape
    with Image.open(overlay) as picture:
        assert picture.format == "PNG"


def test_models_lists_ids(capsys):
    code, stdout, stderr = run(capsys, "models")
    assert code == 0, stderr
    for model_id in ("test-tiny", "sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus", "sam2.1-large"):
        assert model_id in stdout
    assert "UNTRAINED" in stdout and "built in memory" in stdout


def test_console_script(tmp_path):
    script = Path(sys.executable).with_name("samusa")
    if not script.exists():
        found = shutil.which("samusa")
        if found is None:
            pytest.skip("the samusa console script is not installed (pip install -e .)")
        script = Path(found)
    env = dict(os.environ, SAMUSA_CACHE_DIR=str(tmp_path / "cache"))
    models = subprocess.run([script, "models"], capture_output=True, text=True, env=env, timeout=120)
    assert models.returncode == 0, models.stderr
    assert "test-tiny" in models.stdout and "sam2.1-large" in models.stdout
    helped = subprocess.run([script, "segment", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert helped.returncode == 0
    for option in ("--prompts", "--out", "--model", "--device", "--axis", "--overlay", "--window"):
        assert option in helped.stdout
    failed = subprocess.run(
        [script, "segment", tmp_path / "missing.nrrd", "--prompts", tmp_path / "p.json", "--out", tmp_path / "o.seg.nrrd"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: ") and "Traceback" not in failed.stderr
    assert not (tmp_path / "o.seg.nrrd").exists()


# --------------------------------------------------------------------------- bad input


def _prompts(tmp: Path, phantom, **changes) -> Path:
    obj = {"id": 1, "name": "lesion", "window": [3, 6], "prompts": [{"frame": 4, "boundary": boundary(phantom, 1, 4)}]}
    obj.update(changes)
    return write_json(tmp / "prompts.json", {"objects": [obj]})


def _image(tmp: Path, array: np.ndarray, name: str) -> Path:
    path = tmp / name
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=False), str(path))
    return path


def _segmentation_file(tmp: Path, name: str) -> Path:
    """Three overlapping segments as layers: read as an image, it was an RGB picture."""
    import nrrd

    path = tmp / name
    layers = np.zeros((3, NUM_FRAMES, HEIGHT, WIDTH), np.uint8)
    layers[:, :, 10:30, 10:30] = 1
    nrrd.write(str(path), layers, {"Segment0_ID": "lesion", "Segment0_Layer": "0", "kinds": ["list", "domain", "domain", "domain"]})
    return path


def _blanked(frames: np.ndarray, *blank: int) -> np.ndarray:
    frames = frames.copy()
    frames[list(blank)] = 0
    return frames


def _case(words, *, out="result.seg.nrrd", image=None, prompts=None, extra=()):
    """A bad run: `image`/`prompts` build the input files (default: the good cine and prompts)."""
    return {"words": words, "out": out, "image": image, "prompts": prompts, "extra": list(extra)}


BAD = {
    "window start after end": _case(["window start 7", "after its end 3"], prompts=lambda t, ph: _prompts(t, ph, window=[7, 3])),
    "window past last frame": _case(["[3, 12]", "past the last frame (11)"], prompts=lambda t, ph: _prompts(t, ph, window=[3, 12])),
    "--window start after end": _case(["window start 5", "after its end 2"], extra=["--window", "5", "2"]),
    "--window past last frame": _case(["past the last frame (11)"], extra=["--window", "2", "40"]),
    "point outside the image": _case(
        ["boundary point (100, 10)", "outside the 80x64 frame"],
        prompts=lambda t, ph: _prompts(t, ph, prompts=[{"frame": 4, "boundary": [[30, 30], [100, 10]]}])),
    "box outside the image": _case(
        ["box", "outside the 80x64 frame"],
        prompts=lambda t, ph: _prompts(t, ph, prompts=[{"frame": 4, "box": [90, 70, 120, 90]}])),
    "box touching only the corner": _case(
        ["box", "outside the 80x64 frame"],
        prompts=lambda t, ph: _prompts(t, ph, prompts=[{"frame": 4, "box": [-500, -500, -0.5, -0.5]}])),
    "two boxes on one frame": _case(
        ["two boxes on frame 4", "one box per frame"],
        prompts=lambda t, ph: _prompts(t, ph, prompts=[{"frame": 4, "box": [10, 10, 30, 30]},
                                                       {"frame": 4, "box": [40, 20, 60, 50]}])),
    "inverted box": _case(["box", "inverted"], prompts=lambda t, ph: _prompts(t, ph, prompts=[{"frame": 4, "box": [50, 10, 20, 40]}])),
    "empty objects list": _case(["no objects"], prompts=lambda t, ph: write_json(t / "p.json", {"objects": []})),
    "object with no prompts": _case(["object 1 (lesion) has no prompts"], prompts=lambda t, ph: _prompts(t, ph, prompts=[])),
    "empty prompt": _case(["frame 4", "empty"], prompts=lambda t, ph: _prompts(t, ph, prompts=[{"frame": 4}])),
    "prompt frame outside its window": _case(
        ["frame 8", "outside its window [3, 6]"],
        prompts=lambda t, ph: _prompts(t, ph, prompts=[{"frame": 8, "boundary": boundary(ph, 1, 8)}])),
    "prompt frame outside the image": _case(
        ["frame 12", "0..11"],
        prompts=lambda t, ph: _prompts(t, ph, window=None, prompts=[{"frame": 12, "positive": [[5, 5]]}])),
    "malformed prompts JSON": _case(["not valid JSON"], prompts=lambda t, ph: (t / "p.json").write_text('{"objects": [{') and t / "p.json"),
    "unknown prompt key": _case(
        ["unknown keys", "boxes"], prompts=lambda t, ph: _prompts(t, ph, prompts=[{"frame": 4, "boxes": [1, 1, 9, 9]}])),
    "missing objects list": _case(['"objects" list'], prompts=lambda t, ph: write_json(t / "p.json", [{"id": 1}])),
    "missing prompts file": _case(["prompts file", "does not exist"], prompts=lambda t, ph: t / "nothing.json"),
    "markups point outside": _case(
        ["outside the image's frames 0..11"],
        prompts=lambda t, ph: write_json(t / "p.mrk.json", {"markups": [
            {"type": "Fiducial", "name": "lesion", "coordinateSystem": "LPS",
             "controlPoints": [{"position": [0.0, 0.0, 5000.0]}]}]})),
    "output not .seg.nrrd": _case(["must end with .seg.nrrd", "result.seg.nrrd"], out="result.nrrd"),
    "output folder missing": _case(["does not exist"], out="nowhere/result.seg.nrrd"),
    "overlay not png or gif": _case([".png", ".gif"], extra=["--overlay", "{tmp}/overlay.jpg"]),
    "missing input": _case(["no such file"], image=lambda t: t / "absent.nrrd"),
    "unsupported input type": _case(["unsupported file type .txt"], image=lambda t: (t / "x.txt").write_text("hello") and t / "x.txt"),
    "corrupt input": _case(["damaged"], image=lambda t: (t / "bad.nrrd").write_bytes(os.urandom(300)) and t / "bad.nrrd"),
    "2D image, prompts on later frames": _case(["[3, 6]", "past the last frame (0)"], image=lambda t: _image(t, np.zeros((HEIGHT, WIDTH), np.uint8), "flat.nrrd")),
    "2D image sliced along I": _case(["too small", "single 2D image", "--axis K"], image=lambda t: _image(t, np.zeros((HEIGHT, WIDTH), np.uint8), "flat.nrrd"),
                                     extra=["--axis", "I"]),
    "4D image": _case(["4D image", "only 2D images and 3D volumes"], image=lambda t: _image(t, np.zeros((2, 12, 64, 80), np.uint8), "4d.nrrd")),
    "5D image": _case(["5D image", "only 2D images and 3D volumes"], image=lambda t: _image(t, np.zeros((2, 2, 12, 64, 80), np.uint8), "5d.nrrd")),
    "image with NaN": _case(
        ["frame 5", "NaN"],
        image=lambda t: _image(t, np.where(np.arange(12)[:, None, None] == 5, np.nan, np.ones((12, 64, 80), np.float32)).astype(np.float32), "nan.nrrd")),
    "prompts on a blank frame": _case(
        ["frame(s) 4 are blank", "every pixel is 0", "nothing to segment"],
        image=lambda t: _image(t, _blanked(cine_phantom(num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH, seed=1).frames, 4),
                               "blank4.nrrd")),
    "a segmentation as the input": _case(
        ["is a segmentation", "give the image it was made from"],
        image=lambda t: _segmentation_file(t, "earlier.seg.nrrd")),
    "a segmentation renamed .nrrd as the input": _case(
        ["is a segmentation"], image=lambda t: _segmentation_file(t, "layers.nrrd")),
    "RGB input along I": _case(["RGB", "along K"], image=lambda t: (
        Image.fromarray(np.full((HEIGHT, WIDTH, 3), [200, 10, 10], np.uint8)).save(t / "red.png") or t / "red.png"), extra=["--axis", "I"]),
    "missing checkpoint": _case(["not found", "missing.pt"], extra=["--model", "{tmp}/missing.pt", "--device", "cpu"]),
    "corrupt checkpoint": _case(["not a valid checkpoint", "corrupt.pt"], extra=["--model", "{tmp}/corrupt.pt", "--device", "cpu"]),
    "unknown model id": _case(["Unknown model 'sam3'", "test-tiny"], extra=["--model", "sam3", "--device", "cpu"]),
    "unknown device": _case(["Unknown device", "tpu"], extra=["--model", "test-tiny", "--device", "tpu"]),
    "cuda without a GPU": _case(["CUDA was requested"], extra=["--model", "test-tiny", "--device", "cuda"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_fails_cleanly(capsys, tmp_path, phantom, cine_nrrd, name):
    case = BAD[name]
    if name == "cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    work = tmp_path / "work"
    work.mkdir()
    (work / "corrupt.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    image = case["image"](work) if case["image"] else cine_nrrd
    prompts = case["prompts"](work, phantom) if case["prompts"] else _prompts(work, phantom)
    out = work / case["out"]
    extra = [a.replace("{tmp}", str(work)) for a in case["extra"]]
    if not any(a == "--model" for a in extra):
        extra += ["--model", "test-tiny", "--device", "cpu"]
    argv = ["segment", image, "--prompts", prompts, "--out", out, "--quiet", *extra]

    for existing in (None, b"the user's earlier result\x00\x01"):
        if existing is not None and out.parent.exists():
            out.write_bytes(existing)
        before = folder_state(work)
        code, stdout, stderr = run(capsys, *argv)
        assert code == 2, (stdout, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert "Traceback" not in stderr
        for word in case["words"]:
            assert word in lines[0], lines[0]
        assert stdout == ""
        assert folder_state(work) == before  # no output, no temporary file, old output byte-identical


def test_a_prompts_file_saved_with_a_byte_order_mark_is_read(capsys, tmp_path, phantom, cine_nrrd):
    """Windows Notepad saves UTF-8 with a BOM: the file was refused as "not valid JSON"."""
    plain = _prompts(tmp_path, phantom)
    marked = tmp_path / "notepad.json"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    out = tmp_path / "result.seg.nrrd"
    code, _, stderr = run(capsys, "segment", cine_nrrd, "--prompts", marked, "--out", out, *FAST)
    assert code == 0, stderr
    masks, _, _ = read_segmentation(out)
    assert masks[1][4].any()


def test_blank_frames_crossed_by_propagation_are_named_in_a_warning(capsys, caplog, tmp_path, phantom):
    """A cine with black frames in its window got masks there without a word: they come from
    the model's memory, not from the picture."""
    image = _image(tmp_path, _blanked(phantom.frames, 5, 6), "blank56.nrrd")
    prompts = _prompts(tmp_path, phantom)  # frame 4, window 3-6
    out = tmp_path / "result.seg.nrrd"
    with caplog.at_level("WARNING", logger="samusa"):
        code, _, stderr = run(capsys, "segment", image, "--prompts", prompts, "--out", out, *FAST)
    assert code == 0, stderr
    warnings = [r.getMessage() for r in caplog.records if "blank" in r.getMessage()]
    assert len(warnings) == 1 and "frame(s) 5-6 are blank" in warnings[0], warnings
    assert out.exists()


def test_blank_frames_without_a_mask_are_not_named_in_the_warning(caplog, phantom):
    """Without a window the default model drops the object on black frames (measured on this
    phantom, frames 6-7 blanked, no window: no mask there), and the warning, given before
    propagation, still said their masks came from memory, sending the user looking for
    masks that were not there. It now names exactly the blank frames that got a mask."""
    from SAMUSALib.pipeline import _warn_blank_masks

    frames = FrameSource(_blanked(phantom.frames, 6, 7))
    masks = np.zeros((NUM_FRAMES, HEIGHT, WIDTH), bool)
    masks[:, 20:30, 20:30] = True
    masks[7] = False  # dropped on frame 7, held (from memory) on frame 6
    with caplog.at_level("WARNING", logger="samusa"):
        _warn_blank_masks(frames, {1: masks, 2: np.zeros_like(masks)})
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1 and warned[0].startswith("frame(s) 6 are blank"), warned
        caplog.clear()
        masks[6] = False
        _warn_blank_masks(frames, {1: masks})
        assert not caplog.records


# --------------------------------------------------------------------------- failures half way


@pytest.fixture
def one_frame_job(tmp_path, phantom, cine_nrrd):
    prompts = _prompts(tmp_path, phantom, window=[4, 4])
    out, overlay = tmp_path / "result.seg.nrrd", tmp_path / "result.png"
    argv = ["segment", cine_nrrd, "--prompts", prompts, "--out", out, "--overlay", overlay, *FAST]
    return argv, out, overlay


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing"])
def test_failing_segmentation_writer_leaves_outputs_alone(capsys, monkeypatch, tmp_path, one_frame_job, existing):
    import slicerio

    argv, out, overlay = one_frame_job
    if existing:
        out.write_bytes(b"old segmentation")
        overlay.write_bytes(b"old overlay")

    def full_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"NRRD0004\ntruncated")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(slicerio, "write_segmentation", full_disk)
    before = folder_state(tmp_path)
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2
    assert "No space left on device" in stderr and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: ")
    assert folder_state(tmp_path) == before  # old files intact, no partial or hidden file left


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing"])
@pytest.mark.parametrize("failure", ["disk full", "interrupted"])
def test_failing_overlay_writes_no_segmentation_either(capsys, monkeypatch, tmp_path, one_frame_job, existing, failure):
    """The overlay is drawn after the masks; if it fails, the .seg.nrrd must not have been replaced."""
    from SAMUSALib import overlay as overlay_module
    from SAMUSALib.errors import InputError

    argv, out, overlay = one_frame_job
    if existing:
        out.write_bytes(b"old segmentation")
        overlay.write_bytes(b"old overlay")

    def broken(path, *args, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        if failure == "interrupted":
            raise KeyboardInterrupt
        raise InputError(f"could not write {path}: No space left on device")

    monkeypatch.setattr(overlay_module, "write_overlay", broken)
    before = folder_state(tmp_path)
    code, stdout, stderr = run(capsys, *argv)
    if failure == "interrupted":
        assert code == 130 and "nothing was written" in stderr
    else:
        assert code == 2 and "No space left on device" in stderr
    assert "Traceback" not in stderr
    assert folder_state(tmp_path) == before


@pytest.mark.parametrize("clash", ["overlay is the image", "out is the prompts", "out is a folder", "overlay in the frames folder"])
def test_an_output_that_would_replace_an_input_is_refused_before_any_work(capsys, monkeypatch, tmp_path, clash):
    """`--overlay` naming the PNG being segmented wrote the contact sheet over it (and a
    DICOM SEG `--out` over the source DICOM), exit 0; an `--out` naming a folder failed only
    after the whole propagation."""
    from SAMUSALib import pipeline

    pixels = np.zeros((24, 32), np.uint8)
    pixels[6:18, 8:24] = 200
    image = tmp_path / "scan.png"
    Image.fromarray(pixels).save(image)
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(2):
        Image.fromarray(pixels).save(frames / f"{index:03d}.png")
    prompts = write_json(tmp_path / "prompts.json", {"objects": [{"id": 1, "prompts": [{"frame": 0, "box": [8, 6, 23, 17]}]}]})
    (tmp_path / "results.seg.nrrd").mkdir()
    source, out, overlay = {
        "overlay is the image": (image, tmp_path / "scan.seg.nrrd", image),
        "out is the prompts": (image, prompts, None),
        "out is a folder": (image, tmp_path / "results.seg.nrrd", None),
        "overlay in the frames folder": (frames, tmp_path / "frames.seg.nrrd", frames / "sheet.png"),
    }[clash]
    monkeypatch.setattr(pipeline, "segment", lambda *a, **k: pytest.fail("segmented before checking the outputs"))
    before = folder_state(tmp_path)
    code, stdout, stderr = run(capsys, "segment", source, "--prompts", prompts, "--out", out,
                               *(["--overlay", overlay] if overlay else []), *FAST)
    assert code == 2 and "Traceback" not in stderr
    assert any(words in stderr for words in ("would replace the input", "is a folder", "inside the input frames folder")), stderr
    assert folder_state(tmp_path) == before


def test_success_replaces_both_outputs_and_keeps_their_permissions(capsys, tmp_path, one_frame_job):
    argv, out, overlay = one_frame_job
    out.write_bytes(b"old segmentation")
    overlay.write_bytes(b"old overlay")
    os.chmod(out, 0o640)
    os.chmod(overlay, 0o604)
    code, stdout, stderr = run(capsys, *argv)
    assert code == 0, stderr
    assert read_segmentation(out)[2] == {1: "lesion"}
    with Image.open(overlay) as picture:
        assert picture.format == "PNG"
    assert out.stat().st_mode & 0o777 == 0o640
    assert overlay.stat().st_mode & 0o777 == 0o604
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
