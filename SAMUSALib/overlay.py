"""Pictures for checking a segmentation by eye: a PNG contact sheet or an animated GIF.

A user judges a result faster from a picture than from a .seg.nrrd: masks are drawn as
a light tint (the anatomy stays readable underneath) with a solid contour in the
object's colour, each frame is labelled with its index, and a legend maps colours to
names. The contact sheet prefers prompted frames and frames where something was
segmented, so the interesting part of a long loop is what the user sees.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.segmentation import find_boundaries

from .errors import InputError
from .frames import FrameSource
from .io import _mask_bool, atomic_output, check_color, check_object_id, default_color, default_name

PAD = 4  # pixels between tiles
LABEL_HEIGHT = 20  # bar above each tile with the frame index
SHEET_LONGEST = 384  # longest tile side on a contact sheet
MIN_LONGEST = 160  # smaller frames are enlarged by an integer factor so labels fit
GIF_LONGEST = 512
GIF_PIXEL_BUDGET = 5_000_000  # frame pixels summed over the GIF: keeps it to a few MB
GIF_MIN_LONGEST = 128
BACKGROUND = (24, 24, 24)
POSITIVE = (60, 220, 60)
NEGATIVE = (235, 50, 50)


def write_overlay(
    path: str | os.PathLike,
    frames: FrameSource,
    masks: Mapping[int, np.ndarray],
    colors: Mapping[int, Sequence[float]] | None = None,
    names: Mapping[int, str] | None = None,
    max_frames: int = 12,
    points: Mapping[int, Any] | None = None,
    *,
    alpha: float = 0.35,
    fps: float = 10.0,
) -> Path:
    """Draw masks over frames into ``path``: ``.png`` contact sheet or ``.gif`` animation.

    ``masks[obj_id]`` is a (T, H, W) mask over ``frames``. ``colors`` are 0..1 RGB.
    ``points`` maps object id -> that object's prompts (``FramePrompt``s, or an
    ``ObjectPrompts``); their boundary / positive / negative clicks and boxes are drawn on
    their frames, which the contact sheet always includes. ``max_frames`` limits the
    contact sheet; the GIF shows every frame, downscaled to stay a few MB.
    The file is written atomically.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".png", ".gif"):
        raise InputError(
            f"overlay file must end with .png (contact sheet) or .gif (animation); got "
            f"{path.name!r}, use for example {path.with_suffix('.png').name}"
        )
    if not isinstance(frames, FrameSource):
        raise InputError(f"frames must be a SAMUSALib FrameSource, got {type(frames).__name__}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise InputError(f"max_frames must be a positive integer, got {max_frames!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha (fill opacity) must be between 0 and 1, got {alpha}")
    if not float(fps) > 0:
        raise InputError(f"fps must be positive, got {fps}")

    expected = (frames.num_frames, frames.height, frames.width)
    checked: dict[int, np.ndarray] = {}
    for raw_id in sorted(masks):
        obj_id = check_object_id(raw_id)
        mask = _mask_bool(obj_id, masks[raw_id])
        if mask.shape != expected:
            raise InputError(
                f"mask of object {obj_id} has shape {mask.shape}; it must cover the frames "
                f"as (T, H, W) = {expected}"
            )
        checked[obj_id] = mask
    colors = dict(colors or {})
    names = dict(names or {})
    ids = sorted(set(checked) | {check_object_id(i) for i in (points or {})})
    rgb = {
        i: tuple(int(round(255 * c)) for c in (check_color(i, colors[i]) if i in colors else default_color(i)))
        for i in ids
    }
    labels = {i: str(names.get(i, default_name(i))) for i in ids}
    prompts = _prompts_by_frame(points or {}, frames.num_frames)

    font = _font(13)
    if kind == ".png":
        picture = _contact_sheet(frames, checked, rgb, labels, prompts, int(max_frames), float(alpha), font)
        with atomic_output(path) as tmp:
            picture.save(tmp, format="PNG")
    else:
        pictures = _animation(frames, checked, rgb, labels, prompts, float(alpha), font)
        with atomic_output(path) as tmp:
            pictures[0].save(
                tmp, format="GIF", save_all=True, append_images=pictures[1:],
                duration=max(20, int(round(1000 / float(fps)))), loop=0, disposal=1,
            )
    return path


# --------------------------------------------------------------------------- layout


def choose_frames(num_frames: int, tiers: Sequence[Iterable[int]], max_frames: int) -> list[int]:
    """Up to ``max_frames`` frame indices: earlier tiers first, evenly spread within a tier,
    the remaining frames evenly spread to fill what is left."""
    chosen: set[int] = set()
    tiers = [sorted(set(t)) for t in tiers] + [list(range(num_frames))]
    for tier in tiers:
        tier = [t for t in tier if t not in chosen and 0 <= t < num_frames]
        room = max_frames - len(chosen)
        if room <= 0:
            break
        if len(tier) > room:
            tier = [tier[i] for i in np.round(np.linspace(0, len(tier) - 1, room)).astype(int)]
        chosen.update(tier)
    return sorted(chosen)


def sheet_grid(count: int) -> tuple[int, int]:
    """(rows, columns) of a contact sheet with ``count`` tiles: as square as possible."""
    columns = max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def tile_size(height: int, width: int, longest: int) -> tuple[int, int]:
    """(width, height) of a tile: shrunk to ``longest``, small frames enlarged by an integer factor."""
    side = max(height, width)
    if side > longest:
        scale = longest / side
    elif side < MIN_LONGEST:
        scale = float(math.ceil(MIN_LONGEST / side))
    else:
        scale = 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


# --------------------------------------------------------------------------- drawing


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _prompts_by_frame(points: Mapping[int, Any], num_frames: int) -> dict[int, list[tuple[int, Any]]]:
    by_frame: dict[int, list[tuple[int, Any]]] = {}
    for obj_id, value in points.items():
        items = getattr(value, "prompts", value)
        if items is None:
            continue
        if not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
            raise InputError(
                f"points for object {obj_id} must be a list of FramePrompt (or an ObjectPrompts)"
            )
        for prompt in items:
            frame = getattr(prompt, "frame", None)
            if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
                raise InputError(
                    f"points for object {obj_id} must be FramePrompt objects with a frame index; got {prompt!r}"
                )
            if not 0 <= frame < num_frames:
                raise InputError(f"a prompt of object {obj_id} is on frame {frame}, outside 0..{num_frames - 1}")
            by_frame.setdefault(int(frame), []).append((int(obj_id), prompt))
    return by_frame


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape[::-1] == size:
        return mask
    picture = Image.fromarray(mask.astype(np.uint8) * 255)
    upscale = size[0] >= mask.shape[1]
    resized = picture.resize(size, Image.Resampling.NEAREST if upscale else Image.Resampling.BILINEAR)
    return np.asarray(resized) >= 128


def _render(
    frames: FrameSource,
    index: int,
    masks: Mapping[int, np.ndarray],
    rgb: Mapping[int, tuple[int, int, int]],
    prompts: Sequence[tuple[int, Any]],
    size: tuple[int, int],
    alpha: float,
) -> Image.Image:
    """One frame with tinted masks, contours and prompt marks, at ``size`` (width, height)."""
    frame = frames.frame(index)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    picture = Image.fromarray((frame * 255.0 + 0.5).astype(np.uint8), "RGB")
    if picture.size != size:
        upscale = size[0] >= picture.size[0]
        picture = picture.resize(size, Image.Resampling.NEAREST if upscale else Image.Resampling.LANCZOS)
    pixels = np.asarray(picture).astype(np.float32)
    small = {obj_id: _resize_mask(mask[index], size) for obj_id, mask in masks.items()}
    for obj_id, mask in small.items():
        if mask.any():
            pixels[mask] = pixels[mask] * (1.0 - alpha) + np.float32(rgb[obj_id]) * alpha
    mode = "thick" if max(size) >= 256 else "inner"
    for obj_id, mask in small.items():  # contours after all fills: none is tinted over
        if mask.any():
            pixels[find_boundaries(mask, mode=mode)] = rgb[obj_id]
    picture = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    if prompts:
        _draw_prompts(picture, prompts, rgb, size[0] / frames.width, size[1] / frames.height)
    return picture


def _draw_prompts(picture: Image.Image, prompts, rgb, sx: float, sy: float) -> None:
    draw = ImageDraw.Draw(picture)
    radius = max(2.5, min(picture.size) / 64)

    def at(point) -> tuple[float, float]:
        return (float(point[0]) + 0.5) * sx - 0.5, (float(point[1]) + 0.5) * sy - 0.5

    for obj_id, prompt in prompts:
        color = rgb[obj_id]
        box = getattr(prompt, "box", None)
        if box is not None:
            (x0, y0), (x1, y1) = at(box[:2]), at(box[2:])
            draw.rectangle((x0, y0, x1, y1), outline=color, width=1)
        for point in np.asarray(getattr(prompt, "boundary", ()), dtype=float).reshape(-1, 2):
            x, y = at(point)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color, outline=(255, 255, 255))
        for name, mark in (("positive", POSITIVE), ("negative", NEGATIVE)):
            for point in np.asarray(getattr(prompt, name, ()), dtype=float).reshape(-1, 2):
                x, y = at(point)
                r = radius + 1
                draw.ellipse((x - r, y - r, x + r, y + r), outline=(255, 255, 255), fill=mark)
                if name == "positive":
                    draw.line((x - r + 1, y, x + r - 1, y), fill=(255, 255, 255))
                    draw.line((x, y - r + 1, x, y + r - 1), fill=(255, 255, 255))
                else:
                    draw.line((x - r + 1, y, x + r - 1, y), fill=(255, 255, 255))


def _legend(width: int, labels: Mapping[int, str], rgb, font) -> Image.Image | None:
    """Colour squares with object names, wrapped into rows that fit ``width``."""
    if not labels:
        return None
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    entries = []
    for obj_id in sorted(labels):
        text = f"{labels[obj_id]} ({obj_id})" if labels[obj_id] else str(obj_id)
        entries.append((obj_id, text, 18 + int(math.ceil(probe.textlength(text, font=font)))))
    row_height = 20
    rows: list[list[tuple[int, str, int]]] = [[]]
    used = PAD
    for entry in entries:
        if rows[-1] and used + entry[2] > width - PAD:
            rows.append([])
            used = PAD
        rows[-1].append(entry)
        used += entry[2] + 12
    legend = Image.new("RGB", (width, len(rows) * row_height + PAD), BACKGROUND)
    draw = ImageDraw.Draw(legend)
    for r, row in enumerate(rows):
        x, y = PAD, PAD // 2 + r * row_height
        for obj_id, text, entry_width in row:
            draw.rectangle((x, y + 4, x + 12, y + 16), fill=rgb[obj_id], outline=(255, 255, 255))
            draw.text((x + 18, y + 3), text, fill=(235, 235, 235), font=font)
            x += entry_width + 12
    return legend


def _label(draw: ImageDraw.ImageDraw, x: int, y: int, index: int, total: int, prompted: bool, font) -> None:
    text = f"frame {index}" + (f" / {total - 1}" if total > 1 else "") + ("  (prompt)" if prompted else "")
    draw.text((x + 3, y + 3), text, fill=(235, 235, 235), font=font)


def _contact_sheet(frames, masks, rgb, labels, prompts, max_frames, alpha, font) -> Image.Image:
    masked = [t for t in range(frames.num_frames) if any(m[t].any() for m in masks.values())]
    chosen = choose_frames(frames.num_frames, [sorted(prompts), masked], max_frames)
    rows, columns = sheet_grid(len(chosen))
    width, height = tile_size(frames.height, frames.width, SHEET_LONGEST)
    sheet_width = columns * width + (columns + 1) * PAD
    tiles_height = PAD + rows * (LABEL_HEIGHT + height + PAD)
    legend = _legend(sheet_width, labels, rgb, font)
    sheet = Image.new("RGB", (sheet_width, tiles_height + (legend.height if legend else 0)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for n, index in enumerate(chosen):
        row, column = divmod(n, columns)
        x = PAD + column * (width + PAD)
        y = PAD + row * (LABEL_HEIGHT + height + PAD)
        _label(draw, x, y, index, frames.num_frames, index in prompts, font)
        sheet.paste(_render(frames, index, masks, rgb, prompts.get(index, ()), (width, height), alpha), (x, y + LABEL_HEIGHT))
    if legend:
        sheet.paste(legend, (0, tiles_height))
    return sheet


def _animation(frames, masks, rgb, labels, prompts, alpha, font) -> list[Image.Image]:
    scale = math.sqrt(GIF_PIXEL_BUDGET / frames.num_frames / (frames.height * frames.width))
    longest = int(max(GIF_MIN_LONGEST, min(GIF_LONGEST, scale * max(frames.height, frames.width))))
    width, height = tile_size(frames.height, frames.width, longest)
    legend = _legend(width + 2 * PAD, labels, rgb, font)
    total_height = LABEL_HEIGHT + height + PAD + (legend.height if legend else 0)
    pictures = []
    for index in range(frames.num_frames):
        canvas = Image.new("RGB", (width + 2 * PAD, total_height), BACKGROUND)
        _label(ImageDraw.Draw(canvas), PAD, 0, index, frames.num_frames, index in prompts, font)
        canvas.paste(_render(frames, index, masks, rgb, prompts.get(index, ()), (width, height), alpha), (PAD, LABEL_HEIGHT))
        if legend:
            canvas.paste(legend, (0, LABEL_HEIGHT + height + PAD))
        # One adaptive palette per frame, no dithering: smaller files, clean mask colours.
        pictures.append(canvas.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    return pictures
