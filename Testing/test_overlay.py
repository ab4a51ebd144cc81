"""Overlay pictures for checking results by eye (SAMUSALib.overlay)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from SAMUSALib import overlay
from SAMUSALib.errors import InputError
from SAMUSALib.frames import FrameSource
from SAMUSALib.overlay import choose_frames, sheet_grid, tile_size, write_overlay

T, H, W = 20, 40, 50


def gray_frames(value: int = 128, count: int = T) -> FrameSource:
    return FrameSource(np.full((count, H, W), value, np.uint8))


def box_mask(frames=range(T), rows=slice(10, 30), cols=slice(10, 40)) -> np.ndarray:
    mask = np.zeros((T, H, W), bool)
    for t in frames:
        mask[t, rows, cols] = True
    return mask


def test_choose_frames_prefers_masked_frames():
    assert choose_frames(5, [[]], 12) == [0, 1, 2, 3, 4]
    assert choose_frames(100, [[]], 5) == [0, 25, 50, 74, 99]  # evenly
    picked = choose_frames(100, [[40], [10, 11, 12]], 6)
    assert {40, 10, 11, 12} <= set(picked) and len(picked) == 6
    picked = choose_frames(100, [[], list(range(30, 60))], 4)
    assert picked == [30, 40, 49, 59]  # all from the masked frames, spread over them


def test_png_contact_sheet_layout_and_tint(tmp_path):
    mask = box_mask()
    path = write_overlay(
        tmp_path / "check.png", gray_frames(), {1: mask}, colors={1: (1.0, 0.0, 0.0)},
        names={1: "carotid"}, max_frames=6,
    )
    assert path == tmp_path / "check.png" and path.exists()
    sheet = np.asarray(Image.open(path).convert("RGB")).astype(int)

    rows, columns = sheet_grid(6)
    assert (rows, columns) == (2, 3)
    width, height = tile_size(H, W, overlay.SHEET_LONGEST)
    assert (width, height) == (200, 160)  # small frames enlarged 4x
    assert sheet.shape[1] == columns * width + (columns + 1) * overlay.PAD
    tiles_height = overlay.PAD + rows * (overlay.LABEL_HEIGHT + height + overlay.PAD)
    assert tiles_height < sheet.shape[0] <= tiles_height + 40  # plus a one-row legend

    scale = width / W
    for n in range(6):
        row, column = divmod(n, columns)
        x0 = overlay.PAD + column * (width + overlay.PAD)
        y0 = overlay.PAD + row * (overlay.LABEL_HEIGHT + height + overlay.PAD) + overlay.LABEL_HEIGHT
        inside = sheet[y0 + int(20 * scale), x0 + int(25 * scale)]  # mask centre
        outside = sheet[y0 + int(3 * scale), x0 + int(3 * scale)]
        assert inside[0] > inside[1] + 60 and inside[1] == inside[2]  # red tint over gray
        assert abs(inside[1] - 128) > 20  # the tint is visible ...
        assert inside[1] > 40  # ... but the anatomy shows through
        assert outside[0] == outside[1] == outside[2] == 128  # untouched outside
        # a solid contour in the object colour on the mask border
        edge = sheet[y0 + int(20 * scale), x0 + int(10 * scale)]
        assert tuple(edge) == (255, 0, 0)
    # legend square in the object colour below the tiles
    legend = sheet[tiles_height:]
    assert ((legend == (255, 0, 0)).all(axis=-1)).sum() > 50


def test_png_prefers_masked_frames_and_labels(tmp_path):
    from SAMUSALib.prompts import FramePrompt

    mask = box_mask(frames=[15, 16, 17])
    prompt = FramePrompt(frame=16, boundary=[[10, 10], [40, 10], [40, 30]], positive=[[25, 20]], negative=[[2, 2]])
    path = write_overlay(tmp_path / "sheet.png", gray_frames(), {2: mask}, max_frames=4, points={2: [prompt]})
    sheet = np.asarray(Image.open(path).convert("RGB")).astype(int)
    rows, columns = sheet_grid(4)
    width, height = tile_size(H, W, overlay.SHEET_LONGEST)
    tinted = 0
    for n in range(4):
        row, column = divmod(n, columns)
        x0 = overlay.PAD + column * (width + overlay.PAD)
        y0 = overlay.PAD + row * (overlay.LABEL_HEIGHT + height + overlay.PAD) + overlay.LABEL_HEIGHT
        pixel = sheet[y0 + 80, x0 + 60]
        tinted += int(not (pixel[0] == pixel[1] == pixel[2]))
    assert tinted == 3  # frames 15, 16, 17 are all on the sheet


def test_rgb_frames(tmp_path):
    frames = np.zeros((3, H, W, 3), np.uint8)
    frames[..., 2] = 200
    mask = np.zeros((3, H, W), bool)
    mask[:, 5:20, 5:20] = True
    path = write_overlay(tmp_path / "rgb.png", FrameSource(frames), {1: mask})
    assert Image.open(path).size[0] > 0


def test_gif_has_every_frame(tmp_path):
    rng = np.random.default_rng(0)
    frames = FrameSource(rng.integers(0, 255, (T, H, W), dtype=np.uint8))
    path = write_overlay(tmp_path / "loop.gif", frames, {1: box_mask(), 3: box_mask(frames=[4], cols=slice(0, 8))}, fps=20)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.is_animated
        assert gif.n_frames == T
        assert gif.info.get("duration") == 50
    assert os.path.getsize(path) < 5_000_000


def test_gif_downscales_long_large_loops():
    assert tile_size(600, 800, overlay.GIF_LONGEST) == (512, 384)
    assert tile_size(100, 100, 384) == (200, 200)


def test_bad_inputs(tmp_path):
    frames = gray_frames()
    with pytest.raises(InputError, match=r"\.png.*\.gif"):
        write_overlay(tmp_path / "result.jpg", frames, {1: box_mask()})
    with pytest.raises(InputError, match="shape"):
        write_overlay(tmp_path / "a.png", frames, {1: np.zeros((T, H, W + 1), bool)})
    with pytest.raises(InputError, match="positive integers"):
        write_overlay(tmp_path / "a.png", frames, {0: box_mask()})
    with pytest.raises(InputError, match="between 0 and 1"):
        write_overlay(tmp_path / "a.png", frames, {1: box_mask()}, colors={1: (255, 0, 0)})
    with pytest.raises(InputError, match="max_frames"):
        write_overlay(tmp_path / "a.png", frames, {1: box_mask()}, max_frames=0)
    with pytest.raises(InputError, match="FrameSource"):
        write_overlay(tmp_path / "a.png", np.zeros((T, H, W)), {1: box_mask()})
    assert not (tmp_path / "a.png").exists()


def test_atomic_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "check.png"
    target.write_bytes(b"old picture")

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as handle:
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(InputError, match="No space left"):
        write_overlay(target, gray_frames(), {1: box_mask()})
    assert target.read_bytes() == b"old picture"
    assert os.listdir(tmp_path) == ["check.png"]
