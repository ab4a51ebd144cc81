#!/usr/bin/env python3
"""Long cines in the Slicer bridge, headless (PyPI slicer-core), measured not asserted
(issue 16): a 600-frame 480x640 cine, as a sequence of single-frame volumes (how Slicer
loads multi-frame ultrasound) and as one volume (frames along K).

- frame change: SAMUSA's work per change of the browser's frame
  (`mrml.show_points_of_current_frame`, what the module runs on every change), against
  Slicer's own cost of the change (`SetSelectedItemNumber`: the Sequences logic updates the
  proxies) and against what the module did before (fingerprinting every item,
  `mrml.input_fingerprint`);
- a click on the cine stored as one volume: time to write one frame's mask into the segment
  (in place, that slice only) against writing the whole segment (the old path,
  `targets._write_segment`), and to read one frame back;
- memory: the peak of Python/numpy allocations (tracemalloc) while the bridge reads each
  cine (`mrml.input_from_node`), as a multiple of the cine's own size in its dtype.

Usage: python scripts/bench_slicer_long_cine.py [--frames 600] [--height 480] [--width 640] [--out docs/bench/slicer_long_cine.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from SAMUSALib import mrml  # noqa: E402
from SAMUSALib.mrml import targets  # noqa: E402


def _ms(samples: list[float]) -> dict:
    return {"median_ms": round(1000 * statistics.median(samples), 3), "max_ms": round(1000 * max(samples), 3),
            "count": len(samples)}


def frame_changes(frames: np.ndarray, changes: int) -> dict:
    headless = mrml.headless_scene()
    browser, _, _ = mrml.sequence_from_array(headless.scene, frames, None, "long cine")
    target = mrml.target_for(mrml.input_from_node(browser))
    segment = target.ensure_segment()
    node = mrml.prompt_node(target, segment, "boundary")
    for frame in range(0, len(frames), 50):  # a dozen prompted frames, 4 points each
        for k in range(4):
            mrml.add_prompt_point(node, (10.0 + k, 20.0 + k, 0.0), frame=frame)
    slicer_cost, samusa_cost, old_cost = [], [], []
    for step in range(changes):
        frame = (7 * step) % len(frames)
        started = time.perf_counter()
        browser.SetSelectedItemNumber(frame)
        middle = time.perf_counter()
        mrml.show_points_of_current_frame(browser, target.node, segment)
        ended = time.perf_counter()
        slicer_cost.append(middle - started)
        samusa_cost.append(ended - middle)
        if step < 20:
            started = time.perf_counter()
            mrml.input_fingerprint(browser)
            old_cost.append(time.perf_counter() - started)
    headless.scene.Clear(1)
    return {"slicer_set_selected_item": _ms(slicer_cost), "samusa_per_frame_change": _ms(samusa_cost),
            "before_fix_fingerprint_per_change": _ms(old_cost)}


def one_volume_click(frames: np.ndarray, clicks: int) -> dict:
    headless = mrml.headless_scene()
    volume = mrml.volume_from_array(headless.scene, frames, None, "cine as one volume")
    target = mrml.target_for(mrml.input_from_node(volume, "K"))
    segment = target.ensure_segment()
    mask = np.zeros(frames.shape[1:3], bool)
    mask[100:220, 150:330] = True
    started = time.perf_counter()
    target.write(segment, {0: mask})  # the first write lays out the segment's labelmap on the grid
    first = time.perf_counter() - started
    writes, reads = [], []
    for click in range(clicks):
        frame = 1 + (37 * click) % (len(frames) - 1)
        started = time.perf_counter()
        target.write(segment, {frame: mask})
        middle = time.perf_counter()
        target.read(segment, [frame])
        reads.append(time.perf_counter() - middle)
        writes.append(middle - started)
    whole = []
    for _ in range(2):
        started = time.perf_counter()
        volume_mask = target.read_all(segment)
        targets._write_segment(target.node, segment, volume_mask, target._matrix)
        whole.append(time.perf_counter() - started)
    headless.scene.Clear(1)
    return {"first_write_s": round(first, 3), "one_slice_write": _ms(writes), "one_slice_read": _ms(reads),
            "before_fix_whole_segment_read_and_write": _ms(whole)}


def memory(frames: np.ndarray) -> dict:
    out = {"cine_bytes": int(frames.nbytes)}
    for kind in ("sequence", "volume"):
        headless = mrml.headless_scene()
        if kind == "sequence":
            node, _, _ = mrml.sequence_from_array(headless.scene, frames, None, "cine")
        else:
            node = mrml.volume_from_array(headless.scene, frames, None, "cine")
        tracemalloc.start()
        source = mrml.input_from_node(node)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[kind] = {"peak_python_bytes": int(peak), "peak_over_cine": round(peak / frames.nbytes, 3),
                     "frames_dtype": str(source.frames.array.dtype)}
        del source
        headless.scene.Clear(1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "slicer_long_cine.json")
    args = parser.parse_args(argv)
    frames = np.random.default_rng(0).integers(0, 255, (args.frames, args.height, args.width), dtype=np.uint8)
    report = {"cine": [args.frames, args.height, args.width], "dtype": "uint8"}
    report["frame_change"] = frame_changes(frames, args.changes)
    report["click_on_one_volume_cine"] = one_volume_click(frames, args.clicks)
    report["memory"] = memory(frames)
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
