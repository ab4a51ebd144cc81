"""`samusa bench`: the SAMUSA session against the official SAM2VideoPredictor, same run.

Both engines get the same model object, the same frames (an in-memory uint8 loop of
480x640 by default) and the same box prompt. The vanilla path is what a user of the
official predictor does with an array: write a JPEG folder, `init_state`,
`add_new_points_or_box`, `propagate_in_video` forward then in reverse, and, after a
correction, the whole propagation again. Every measurement runs in a fresh worker
process so peak resident memory is each engine's own.

Figures are ratios ours/vanilla (or ours/our-own-baseline) from the same run, with the
raw seconds beside them; nothing here is a pass/fail timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {
    "loop_speedup": ("whole loop, array to masks: vanilla / ours", ">=", 1.3),
    "memory_ratio": ("peak memory above the loaded model, ours / vanilla (longest loop)", "<=", 0.5),
    "repropagation_ratio": ("re-propagation after a mid-loop correction: ours / vanilla full re-run", "<=", 0.3),
    "window_ratio": ("10% window / our full-loop propagation", "<=", 0.15),
    "frame_vs_encoder": ("our propagation s/frame / encoder s/frame", "<=", 1.2),
    "click_vs_encoder": ("click on a seen frame / encoder s/frame", "<=", 0.2),
}


#: Negative clicks, one after another, on a frame both engines have already computed;
#: the latency reported is their median (the first one alone is a noisy single sample).
CLICKS = ([2.0, 2.0], [6.0, 2.0], [2.0, 6.0], [10.0, 2.0], [2.0, 10.0])


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_loop(num_frames: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A phantom loop at (height, width): generated small and scaled up, so it is fast."""
    from .phantoms import cine_phantom

    scale = 4
    phantom = cine_phantom(
        num_frames, max(16, height // scale), max(16, width // scale), seed=seed,
        visible={1: (0, num_frames - 1), 2: (0, max(0, num_frames // 2 - 1))},
    )
    frames = np.repeat(np.repeat(phantom.frames, scale, axis=1), scale, axis=2)[:, :height, :width]
    masks = np.repeat(np.repeat(phantom.masks[1], scale, axis=1), scale, axis=2)[:, :height, :width]
    return np.ascontiguousarray(frames), np.ascontiguousarray(masks)


def _box(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())]


def _sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------ workers
def _samusa_loop(model, frames: np.ndarray, masks: np.ndarray, prompt: int):
    """What a SAMUSA user does with an array: a box on one frame, propagate, masks."""
    from .engine import Session
    from .frames import FrameSource

    session = Session(FrameSource(frames), model)
    session.add_prompt(1, prompt, box=_box(masks[prompt]))
    report = session.propagate()
    return session, report, session.masks(1)


def _vanilla_start(predictor, frames: np.ndarray, masks: np.ndarray, prompt: int, folder: str):
    """What the official predictor's user does with an array: a JPEG folder, init_state, a box."""
    from PIL import Image

    for index, frame in enumerate(frames):
        Image.fromarray(frame).convert("RGB").save(Path(folder) / f"{index:05d}.jpg", quality=95)
    state = predictor.init_state(video_path=folder)
    predictor.add_new_points_or_box(state, frame_idx=prompt, obj_id=1, box=np.array(_box(masks[prompt])))
    return state


def _vanilla_propagate(predictor, state) -> tuple[dict[int, np.ndarray], int]:
    """Forward then in reverse, as the predictor's users propagate from a middle frame;
    returns the masks and how many frames the predictor computed (the prompt's twice)."""
    result: dict[int, np.ndarray] = {}
    computed = 0
    for reverse in (False, True):
        for frame, _, logits in predictor.propagate_in_video(state, reverse=reverse):
            result[frame] = (logits[0, 0] > 0).cpu().numpy()
            computed += 1
    return result, computed


def worker_ours(config: dict) -> dict:
    import torch

    from .engine import Session
    from .frames import FrameSource
    from .models import load_model

    torch.set_grad_enabled(False)
    frames, masks = make_loop(config["frames"], config["height"], config["width"])
    model = load_model(config["model"], device=config["device"])
    model.precision = config.get("precision", "auto")
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    T = len(frames)
    prompt = T // 3
    base_rss = _rss_mb()
    out: dict[str, Any] = {"engine": "samusa", "frames": T, "base_rss_mb": base_rss, "precision": model.resolved_precision}

    start = time.perf_counter()
    session, report, result = _samusa_loop(model, frames, masks, prompt)
    _sync(model.device)
    out["loop_s"] = time.perf_counter() - start
    out["propagation_s"] = report.seconds
    out["propagation_s_per_frame"] = report.seconds / max(1, report.total)
    out["encoder_s_per_frame"] = session.features.stats.seconds / max(1, session.features.stats.calls)
    out["mask_frames"] = int(result.any(axis=(1, 2)).sum())

    mid = (prompt + T) // 2
    times = []
    for point in CLICKS:
        start = time.perf_counter()
        session.add_prompt(1, mid, negative=[point])
        _sync(model.device)
        times.append(time.perf_counter() - start)
    out["click_seen_s"], out["click_seen_all_s"] = float(np.median(times)), times

    start = time.perf_counter()
    report = session.propagate()
    session.masks(1)
    _sync(model.device)
    out["repropagation_s"] = time.perf_counter() - start
    out["repropagation_frames"] = report.total
    out["peak_rss_mb"] = _peak_mb()
    if model.device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20

    # a window of 10% of the loop around the prompted frame, on a fresh session
    length = max(1, round(T / 10))
    first = max(0, prompt - length // 2)
    window = (first, min(T - 1, first + length - 1))
    session = Session(FrameSource(frames), model)
    start = time.perf_counter()
    session.set_window(1, window)
    session.add_prompt(1, prompt, box=_box(masks[prompt]))
    session.propagate()
    session.masks(1)
    _sync(model.device)
    out["window_s"] = time.perf_counter() - start
    out["window_frames_encoded"] = session.features.stats.calls
    return out


def worker_vanilla(config: dict) -> dict:
    import torch

    from .models import load_model

    torch.set_grad_enabled(False)
    frames, masks = make_loop(config["frames"], config["height"], config["width"])
    model = load_model(config["model"], device=config["device"])
    # The official predictor's own habits: bf16 autocast on CUDA (its README), float32 elsewhere.
    model.precision = "auto" if model.device.type == "cuda" else "fp32"
    predictor = model.sam
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    T = len(frames)
    prompt = T // 3
    base_rss = _rss_mb()
    out: dict[str, Any] = {"engine": "sam2-video-predictor", "frames": T, "base_rss_mb": base_rss, "precision": model.resolved_precision}

    with tempfile.TemporaryDirectory() as folder, torch.inference_mode(), model.autocast():
        start = time.perf_counter()
        state = _vanilla_start(predictor, frames, masks, prompt, folder)
        result, _ = _vanilla_propagate(predictor, state)
        _sync(model.device)
        out["loop_s"] = time.perf_counter() - start
        out["mask_frames"] = int(sum(m.any() for m in result.values()))

        mid = (prompt + T) // 2
        times = []
        for point in CLICKS:
            start = time.perf_counter()
            predictor.add_new_points_or_box(
                state, frame_idx=mid, obj_id=1, points=np.array([point]), labels=np.array([0]), clear_old_points=False
            )
            _sync(model.device)
            times.append(time.perf_counter() - start)
        out["click_seen_s"], out["click_seen_all_s"] = float(np.median(times)), times

        start = time.perf_counter()
        _, computed = _vanilla_propagate(predictor, state)
        _sync(model.device)
        out["repropagation_s"] = time.perf_counter() - start
        out["repropagation_frames"] = computed
    out["peak_rss_mb"] = _peak_mb()
    if model.device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def worker_encoder(config: dict) -> dict:
    """The floor: the image encoder alone, per frame, as the session feeds it."""
    import torch

    from .features import FeatureCache
    from .frames import FrameSource
    from .models import load_model

    frames, _ = make_loop(min(config["frames"], 12), config["height"], config["width"])
    model = load_model(config["model"], device=config["device"])
    model.precision = config.get("precision", "auto")
    source = FrameSource(frames)
    cache = FeatureCache(model.sam, source.frame, model.device, 0, model.autocast, model.cache_dtype())
    with torch.inference_mode():
        cache.get(0)  # warm-up
        start = time.perf_counter()
        for index in range(1, len(frames)):
            cache.get(index)
        _sync(model.device)
    return {
        "encoder_s_per_frame": (time.perf_counter() - start) / (len(frames) - 1),
        "precision": model.resolved_precision,
    }


def worker_memory(config: dict) -> dict:
    """Peak resident memory of one engine over a whole loop, and nothing else.

    SAMUSA: prompt, propagate both ways, masks. The official predictor with
    `"propagate": false` stops after `init_state` and the prompt, before it propagates
    anything: its peak is then a lower bound of the whole loop's (it already holds every
    frame resized to the model's input), cheap to measure at sizes where propagating
    300 frames on a CPU would take an hour."""
    import torch

    from .models import load_model

    torch.set_grad_enabled(False)
    frames, masks = make_loop(config["frames"], config["height"], config["width"])
    model = load_model(config["model"], device=config["device"])
    T = len(frames)
    prompt = T // 3
    base_rss = _rss_mb()
    out: dict[str, Any] = {"engine": config["engine"], "frames": T, "base_rss_mb": base_rss}
    start = time.perf_counter()
    if config["engine"] == "samusa":
        model.precision = config.get("precision", "auto")
        _, _, result = _samusa_loop(model, frames, masks, prompt)
        out["mask_frames"] = int(result.any(axis=(1, 2)).sum())
        out["propagated"] = True
    else:
        model.precision = "auto" if model.device.type == "cuda" else "fp32"
        with tempfile.TemporaryDirectory() as folder, torch.inference_mode(), model.autocast():
            state = _vanilla_start(model.sam, frames, masks, prompt, folder)
            out["propagated"] = bool(config.get("propagate", True))
            if out["propagated"]:
                vanilla, _ = _vanilla_propagate(model.sam, state)
                out["mask_frames"] = int(sum(m.any() for m in vanilla.values()))
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = _peak_mb()
    out["precision"] = model.resolved_precision
    return out


def run_memory_bench(*, model: str, device: str, frames: int, height: int = 480, width: int = 640,
                     vanilla_propagates: bool = True, progress=print) -> dict:
    """Peak memory above the loaded model, SAMUSA's whole loop against the official predictor."""
    config = {"model": model, "device": device, "frames": frames, "height": height, "width": width}
    progress(f"memory, {frames} x {height}x{width}: samusa")
    ours = _run_worker("memory", {**config, "engine": "samusa"})
    progress(f"memory, {frames} x {height}x{width}: sam2 video predictor" + ("" if vanilla_propagates else " (init_state only)"))
    vanilla = _run_worker("memory", {**config, "engine": "sam2-video-predictor", "propagate": vanilla_propagates})
    above = lambda r: max(r["peak_rss_mb"] - r["base_rss_mb"], 1e-6)  # noqa: E731
    ratio = above(ours) / above(vanilla)
    return {
        "machine": machine_description(device), "model": model, "frames": frames, "frame_size": [height, width],
        "ours": ours, "vanilla": vanilla, "memory_ratio": ratio,
        # with the vanilla stopped before propagating, its true peak is higher: the ratio is an upper bound
        "memory_ratio_is_upper_bound": not vanilla_propagates,
    }


def memory_markdown(results: dict) -> str:
    ours, vanilla = results["ours"], results["vanilla"]
    bound = results["memory_ratio_is_upper_bound"]
    lines = [
        f"Peak memory, {results['model']}, {results['frames']} frames of {results['frame_size'][0]}x{results['frame_size'][1]} "
        f"({results['machine']['cpu']}, {results['machine']['cores']} cores, {results['machine']['device']}):",
        "",
        "| engine | what ran | seconds | peak RSS (MB, above model) |",
        "|---|---|---|---|",
        f"| SAMUSA ({ours['precision']}) | prompt, propagation both ways, masks | {ours['seconds']:.0f} | {ours['peak_rss_mb']:.0f} ({ours['peak_rss_mb'] - ours['base_rss_mb']:.0f}) |",
        f"| SAM2VideoPredictor ({vanilla['precision']}) | {'JPEG folder, init_state, prompt (no propagation: a lower bound)' if bound else 'whole loop'} "
        f"| {vanilla['seconds']:.0f} | {vanilla['peak_rss_mb']:.0f} ({vanilla['peak_rss_mb'] - vanilla['base_rss_mb']:.0f}) |",
        "",
        f"ours / vanilla, above the model: {'at most ' if bound else ''}{results['memory_ratio']:.3f} (target <= 0.5)",
    ]
    return "\n".join(lines) + "\n"


def _attention_flops(query, key, value, *args, **kwargs) -> int:
    """FLOPs of scaled-dot-product attention (QK^T and AV), which torch's counter skips on CPUs."""
    import math

    batch = math.prod(query[:-2])
    return 2 * batch * query[-2] * key[-2] * (query[-1] + value[-1])


def _flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                 "_scaled_dot_product_efficient_attention"):
        op = getattr(torch.ops.aten, name, None)
        if op is not None:
            mapping[op] = _attention_flops
    return FlopCounterMode(display=False, custom_mapping=mapping)


def worker_flops(config: dict) -> dict:
    """Work per frame: the encoder's FLOPs against one propagation step's other stages
    (memory attention over a full memory bank, mask decoder, memory encoder). Their
    ratio bounds propagation s/frame / encoder s/frame from below on hardware that runs
    every stage at the same FLOP rate."""
    import torch

    from .engine import Session
    from .frames import FrameSource
    from .models import load_model

    torch.set_grad_enabled(False)
    model = load_model(config["model"], device=config["device"])
    model.precision = config.get("precision", "auto")
    bank = int(getattr(model.sam, "num_maskmem", 7)) + 2  # enough frames to fill the memory bank
    frames, masks = make_loop(bank + 2, config["height"], config["width"])
    session = Session(FrameSource(frames), model)
    session.set_window(1, (0, bank))
    session.add_prompt(1, 0, box=_box(masks[0]))
    session.propagate()
    session.set_window(1, (0, bank + 1))
    session.features.get(bank + 1)
    with _flop_counter() as step:
        session.propagate()
    with _flop_counter() as encoder:
        session.features._encode(bank + 1)
    by_module = _by_module(step)
    encoder_gflop = encoder.get_total_flops() / 1e9
    step_gflop = step.get_total_flops() / 1e9
    return {
        "encoder_gflop": encoder_gflop,
        "step_gflop": step_gflop,
        "step_by_module_gflop": by_module,
        "frame_vs_encoder_floor": 1.0 + step_gflop / encoder_gflop,
        **stage_floors(model, frames[: config.get("stage_frames") or len(frames)], masks),
    }


def _by_module(counter) -> dict[str, float]:
    """GFLOP per top-level module (the session calls SAM2's stages one by one)."""
    return {name: sum(ops.values()) / 1e9 for name, ops in counter.get_flop_counts().items() if "." not in name and name != "Global"}


def matmul_gflops(device, n: int = 2048, repeats: int = 5) -> float:
    """The device's float32 matmul rate over one short burst (best of `repeats`), for the
    record: the floors are timed with `floor_seconds`, at the length of the work they bound."""
    one = 2 * n**3 / 1e9
    return one / floor_seconds(one, device, repeats)


def matmul_floor(gflop: float, device="cpu", n: int = 2048):
    """A callable doing about `gflop` GFLOP of float32 n x n matmuls, and the GFLOP it does.

    Why the same amount of work, not one short burst's rate times the FLOPs: the floor then
    runs as long as the stage it bounds, under the same clock and load (one 60 ms burst
    read anywhere from 246 to 318 GFLOPS between runs on the build machine)."""
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    reps = max(1, round(gflop * 1e9 / (2 * n**3)))
    return (lambda: [a @ b for _ in range(reps)]), reps * 2 * n**3 / 1e9


def floor_seconds(gflop: float, device="cpu", repeats: int = 3) -> float:
    """Seconds a float32 matmul of `gflop` GFLOP takes on `device` (best of `repeats`)."""
    run, done = matmul_floor(gflop, device)
    run()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best * gflop / done


def stage_seconds(model, run) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds and calls per top-level stage of `model.sam` (image encoder, memory
    attention, mask decoder, memory encoder, ...) while `run()` runs, by forward hooks."""
    from collections import defaultdict

    seconds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    started: dict[str, float] = {}
    device = model.device
    handles = []

    def before(name):
        def hook(module, args):
            _sync(device)
            started[name] = time.perf_counter()
        return hook

    def after(name):
        def hook(module, args, output):
            _sync(device)
            seconds[name] += time.perf_counter() - started.pop(name)
            calls[name] += 1
        return hook

    for child in model.sam.children():
        name = type(child).__name__
        handles += [child.register_forward_pre_hook(before(name)), child.register_forward_hook(after(name))]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return dict(seconds), dict(calls)


def stage_floors(model, frames: np.ndarray, masks: np.ndarray) -> dict:
    """Each stage's seconds per call against its own floor (a float32 matmul of the
    stage's FLOPs per call, timed in this process after the loop), over one propagation
    through `frames` with a box on frame 0: the loop runs once under the FLOP counter and
    once timed."""
    from .engine import Session
    from .frames import FrameSource

    def loop() -> None:
        session = Session(FrameSource(frames), model)
        session.set_window(1, (0, len(frames) - 1))
        session.add_prompt(1, 0, box=_box(masks[0]))
        session.propagate()

    with _flop_counter() as counter:
        loop()
    gflop = _by_module(counter)
    rate = matmul_gflops(model.device)
    seconds, calls = stage_seconds(model, loop)
    stages = {}
    for name, work in sorted(gflop.items(), key=lambda kv: -kv[1]):
        if work <= 0 or not calls.get(name):
            continue
        per_call = work / calls[name]
        floor = floor_seconds(per_call, model.device)
        took = seconds[name] / calls[name]
        stages[name] = {"calls": calls[name], "gflop_per_call": per_call, "s_per_call": took,
                        "floor_s_per_call": floor, "vs_floor": took / floor}
    return {"matmul_gflops": rate, "stages": stages}


WORKERS = {"ours": worker_ours, "vanilla": worker_vanilla, "encoder": worker_encoder, "flops": worker_flops,
           "memory": worker_memory}


def _run_worker(kind: str, config: dict) -> dict:
    command = [sys.executable, "-m", "SAMUSALib.bench", "--worker", kind, "--config", json.dumps(config)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ driver
def machine_description(device: str) -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_bench(
    *,
    model: str = "test-tiny",
    device: str = "cpu",
    lengths: list[int] | None = None,
    height: int = 480,
    width: int = 640,
    volume_slices: int | None = 128,
    progress=print,
    stage_frames: int | None = None,
) -> dict:
    """`stage_frames`: frames of the loop that times each stage against its floor (default:
    enough to fill the memory bank, as in a long loop; fewer is quicker and fills it less)."""
    lengths = lengths or [30, 100, 300]
    results: dict[str, Any] = {
        "machine": machine_description(device),
        "model": model,
        "frame_size": [height, width],
        "runs": [],
    }
    base = {"model": model, "device": device, "height": height, "width": width}
    progress(f"encoder floor ({model}, {device})")
    results["encoder"] = _run_worker("encoder", {**base, "frames": 12})
    progress(f"work per frame in FLOPs ({model})")
    results["flops"] = _run_worker("flops", {**base, "stage_frames": stage_frames})
    cases = [("cine", n, height, width) for n in lengths]
    if volume_slices:
        cases.append(("volume", volume_slices, 128, 128))
    for kind, frames, h, w in cases:
        config = {**base, "frames": frames, "height": h, "width": w}
        progress(f"{kind} {frames} x {h}x{w}: samusa")
        ours = _run_worker("ours", config)
        progress(f"{kind} {frames} x {h}x{w}: sam2 video predictor")
        vanilla = _run_worker("vanilla", config)
        run = {"kind": kind, "frames": frames, "height": h, "width": w, "ours": ours, "vanilla": vanilla}
        if ours.get("precision") != vanilla.get("precision"):
            progress(f"{kind} {frames} x {h}x{w}: samusa at the vanilla precision ({vanilla.get('precision')})")
            run["ours_same_precision"] = _run_worker("ours", {**config, "precision": vanilla.get("precision")})
        results["runs"].append(run)
    results["ratios"] = ratios(results)
    return results


def ratios(results: dict) -> dict:
    cines = [r for r in results["runs"] if r["kind"] == "cine"] or results["runs"]
    longest = max(cines, key=lambda r: r["frames"])
    ours, vanilla = longest["ours"], longest["vanilla"]
    encoder = results["encoder"]["encoder_s_per_frame"]
    values = {
        "loop_speedup": vanilla["loop_s"] / ours["loop_s"],
        "memory_ratio": max(ours["peak_rss_mb"] - ours["base_rss_mb"], 1e-6)
        / max(vanilla["peak_rss_mb"] - vanilla["base_rss_mb"], 1e-6),
        "memory_ratio_total": ours["peak_rss_mb"] / vanilla["peak_rss_mb"],
        "repropagation_ratio": ours["repropagation_s"] / vanilla["repropagation_s"],
        "window_ratio": ours["window_s"] / ours["loop_s"],
        "frame_vs_encoder": ours["propagation_s_per_frame"] / encoder,
        "loop_speedup_same_precision": vanilla["loop_s"] / longest.get("ours_same_precision", ours)["loop_s"],
        "click_vs_encoder": ours["click_seen_s"] / encoder,
    }
    if "peak_gpu_mb" in ours and "peak_gpu_mb" in vanilla:
        values["memory_ratio_gpu"] = ours["peak_gpu_mb"] / max(vanilla["peak_gpu_mb"], 1e-6)
    met = {}
    for key, (_, op, target) in TARGETS.items():
        met[key] = values[key] >= target if op == ">=" else values[key] <= target
    return {"at_frames": longest["frames"], "values": values, "met": met}


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, device {m['device']}"
        + (f" ({m['gpu']})" if "gpu" in m else "")
        + f"; model `{results['model']}`; frames {results['frame_size'][0]}x{results['frame_size'][1]}.",
        "",
        "| loop | engine | array to masks (s) | s/frame | click on seen frame (s, median of 5) | re-propagation (s, frames) | 10% window (s) | peak RSS (MB, above model) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        engines = [("SAMUSA", run["ours"]), ("SAM2VideoPredictor", run["vanilla"])]
        if "ours_same_precision" in run:
            engines.insert(1, ("SAMUSA (same precision)", run["ours_same_precision"]))
        for name, r in engines:
            per_frame = r["loop_s"] / run["frames"]
            window = f"{r['window_s']:.2f}" if "window_s" in r else "n/a"
            lines.append(
                f"| {run['kind']} {run['frames']} x {run['height']}x{run['width']} | {name} ({r.get('precision', '?')}) | {r['loop_s']:.2f} | {per_frame:.3f} | "
                f"{r['click_seen_s']:.3f} | {r['repropagation_s']:.2f} ({r['repropagation_frames']}) | {window} | "
                f"{r['peak_rss_mb']:.0f} ({r['peak_rss_mb'] - r['base_rss_mb']:.0f}) |"
            )
    lines += ["", f"Encoder alone: {results['encoder']['encoder_s_per_frame']:.3f} s/frame.", ""]
    lines += ["| ratio (longest cine) | value | target | met |", "|---|---|---|---|"]
    values, met = results["ratios"]["values"], results["ratios"]["met"]
    for key, (label, op, target) in TARGETS.items():
        lines.append(f"| {label} | {values[key]:.3f} | {op} {target} | {'yes' if met[key] else 'no'} |")
    lines.append(f"| peak RSS total, ours / vanilla | {values['memory_ratio_total']:.3f} | | |")
    lines.append(f"| whole loop, vanilla / ours at the vanilla's precision | {values['loop_speedup_same_precision']:.3f} | | |")
    if "memory_ratio_gpu" in values:
        lines.append(f"| peak GPU memory, ours / vanilla | {values['memory_ratio_gpu']:.3f} | | |")
    flops = results.get("flops")
    if flops:
        modules = ", ".join(f"{name} {gflop:.2f}" for name, gflop in sorted(flops["step_by_module_gflop"].items(), key=lambda kv: -kv[1]))
        lines += [
            "",
            f"Work per frame (FLOPs, torch's counter plus attention): encoder {flops['encoder_gflop']:.2f} GFLOP; "
            f"the rest of a propagation step {flops['step_gflop']:.2f} GFLOP ({modules}). "
            f"So propagation s/frame / encoder s/frame cannot fall below {flops['frame_vs_encoder_floor']:.2f} "
            "where every stage runs at the same FLOP rate.",
        ]
        if flops.get("stages"):
            lines += ["", f"Each stage against its own floor (its FLOPs at this device's float32 matmul rate, "
                      f"{flops['matmul_gflops']:.0f} GFLOPS, measured in the same process; one call per frame it works on):", "",
                      "| stage | calls | GFLOP per call | s per call | floor s per call | / floor |", "|---|---|---|---|---|---|"]
            for name, stage in flops["stages"].items():
                lines.append(f"| {name} | {stage['calls']} | {stage['gflop_per_call']:.3f} | {stage['s_per_call']:.4f} | "
                             f"{stage['floor_s_per_call']:.4f} | {stage['vs_floor']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = sorted((r for r in results["runs"] if r["kind"] == "cine"), key=lambda r: r["frames"])
    if not runs:
        return None
    x = [r["frames"] for r in runs]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, [r["ours"]["loop_s"] for r in runs], "o-", label="SAMUSA session")
    ax.plot(x, [r["vanilla"]["loop_s"] for r in runs], "s-", label="SAM2VideoPredictor (JPEG folder)")
    ax.plot(x, [r["ours"]["repropagation_s"] for r in runs], "o--", label="SAMUSA re-propagation after an edit")
    ax.plot(x, [r["vanilla"]["repropagation_s"] for r in runs], "s--", label="vanilla re-run after an edit")
    ax.set_xlabel("frames in the loop")
    ax.set_ylabel("seconds")
    ax.set_title(f"{results['model']} on {results['machine']['device']}, {results['frame_size'][0]}x{results['frame_size'][1]}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="samusa bench")
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    result = WORKERS[args.worker](json.loads(args.config))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
