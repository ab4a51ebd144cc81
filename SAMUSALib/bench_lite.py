"""`samusa bench --lite`: the CPU default model (SAMUSA-Lite) and LiteMedSAM against their
arithmetic floor, in one run.

Per model and per engine (each in a fresh process, so peak memory is its own):

- encoder seconds per frame against the floor: a float32 matmul doing the encoder's
  FLOPs (torch's counter on the PyTorch encoder), timed in the same process, alternating
  with the encoder, several times; both minimum and median are kept;
- propagation seconds per frame through the public `Session` (a box on frame T/3,
  propagation both ways, on an in-memory 480x640 phantom loop), against the encoder's
  mean seconds per frame inside that same propagation;
- click latency: the median of 5 negative clicks on a frame already computed;
- peak resident memory over that loop, above the loaded model.

Engines: "fast" is the model as `load_model` gives it (OpenVINO encoder where
installed; `runtime.speed_up`), "baseline" the same network without any of it
(PyTorch eager float32, as before issue 18). Nothing here is a pass/fail timing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from .bench import CLICKS, _box, _peak_mb, _rss_mb, machine_description, make_loop, matmul_floor

TARGETS = {
    "encoder_vs_floor": ("encoder s/frame / matmul of the same FLOPs (minima)", "<=", 1.5),
    "frame_vs_encoder": ("propagation s/frame / encoder s/frame (same loop)", "<=", 1.3),
    "click_s": ("click on a seen frame (s, median of 5)", "<=", 0.030),
}
MODELS = ("samusa-lite", "litemedsam")
ENGINES = ("fast", "baseline")


def worker_lite(config: dict) -> dict:
    """One model's figures. Runs without autograd, and gives the caller's grad mode back
    (it also runs in-process, where a global switch would leak into later work)."""
    import torch

    with torch.no_grad():
        return _worker_lite(config)


def _worker_lite(config: dict) -> dict:
    import torch

    from .backends.litemedsam import runtime
    from .engine import Session
    from .frames import FrameSource
    from .models import load_model

    if config["engine"] == "baseline":
        runtime.speed_up = lambda net, device, choice=None: {"runtime": "baseline (PyTorch eager, unfolded)"}
    frames, masks = make_loop(config["frames"], config["height"], config["width"])
    start = time.perf_counter()
    model = load_model(config["model"], device="cpu")
    out: dict[str, Any] = {"model": config["model"], "engine": config["engine"], "frames": len(frames),
                           "runtime": model.metadata.get("encoder_runtime", "baseline"), "load_s": time.perf_counter() - start}
    net = model.sam
    from .backends.litemedsam.network import Letterbox

    letterbox = Letterbox(frames.shape[1:3])
    images = [letterbox.image(frames[i]) for i in range(min(len(frames), config["repeats"] + 1))]
    from .bench import _flop_counter

    with torch.inference_mode():
        with _flop_counter() as counter:
            net.image_encoder(images[0])
        gflop = counter.get_total_flops() / 1e9
        matmul, floor_gflop = matmul_floor(gflop)
        start = time.perf_counter()
        net.embed(images[0])  # first call: export or read the cached export, compile
        out["first_encode_s"] = time.perf_counter() - start
        matmul()
        encoder_s, floor_s = [], []
        for image in images[1:]:
            start = time.perf_counter()
            net.embed(image)
            encoder_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            matmul()
            floor_s.append((time.perf_counter() - start) * gflop / floor_gflop)
    out.update(encoder_gflop=gflop, encoder_s=encoder_s, floor_s=floor_s,
               encoder_min_s=min(encoder_s), floor_min_s=min(floor_s),
               encoder_median_s=statistics.median(encoder_s), floor_median_s=statistics.median(floor_s))
    runtime_state = getattr(net, "encoder_runtime", None)
    if runtime_state is not None and runtime_state.failed:
        out["runtime"] = f"eager (OpenVINO failed: {runtime_state.failed})"

    # The decoders' graphs are exported and compiled on first use (then read from the model
    # cache): done here, on two frames, so that the timed loop is the steady state a user
    # gets from the second session on.
    start = time.perf_counter()
    warm = Session(FrameSource(frames[:2]), model)
    warm.add_prompt(1, 0, box=_box(masks[0]))
    warm.propagate()
    warm.add_prompt(1, 1, negative=[CLICKS[0]])
    del warm
    out["warm_up_s"] = time.perf_counter() - start

    T = len(frames)
    prompt = T // 3
    base_rss = _rss_mb()
    session = Session(FrameSource(frames), model)
    start = time.perf_counter()
    session.add_prompt(1, prompt, box=_box(masks[prompt]))
    report = session.propagate()
    session.masks(1)
    out["loop_s"] = time.perf_counter() - start
    out["propagation_s_per_frame"] = report.seconds / max(1, report.total)
    stats = session.features.stats
    out["session_encoder_s_per_frame"] = stats.seconds / max(1, stats.calls)
    mid = (prompt + T) // 2
    clicks = []
    for point in CLICKS:
        start = time.perf_counter()
        session.add_prompt(1, mid, negative=[point])
        clicks.append(time.perf_counter() - start)
    out["click_s"], out["click_all_s"] = float(np.median(clicks)), clicks
    out["base_rss_mb"], out["peak_rss_mb"] = base_rss, _peak_mb()  # before the counted click, in PyTorch
    out.update(_click_floor(session, mid, CLICKS[-1] + np.array([3.0, 3.0])))
    return out


def _click_floor(session, frame: int, point) -> dict:
    """What a click cannot go below: the FLOPs of one more click of the same kind (torch's
    counter, with the decoders in PyTorch for that click only), at the rate of a float32
    matmul timed here. Why: a settling model decodes a click several times
    (`LiteMedSAMBackend._native`), so a latency target below this floor cannot be met by
    any runtime on this CPU."""
    from .bench import _flop_counter, floor_seconds

    decoders = [m for m in session.backend.net.modules() if getattr(m, "samusa_runtime", None) is not None]
    runtimes = [m.samusa_runtime for m in decoders]
    steps = session.backend.decoder_steps
    try:
        for m in decoders:
            m.samusa_runtime = None
        with _flop_counter() as counter:
            session.add_prompt(1, frame, negative=[point])
    finally:
        for m, r in zip(decoders, runtimes):
            m.samusa_runtime = r
    gflop = counter.get_total_flops() / 1e9
    return {"click_passes": session.backend.decoder_steps - steps, "click_gflop": gflop,
            "click_floor_s": floor_seconds(gflop) if gflop else 0.0}


def _run_worker(config: dict) -> dict:
    command = [sys.executable, "-m", "SAMUSALib.bench_lite", json.dumps(config)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_lite_bench(*, models=MODELS, engines=ENGINES, frames: int = 300, height: int = 480, width: int = 640,
                   repeats: int = 5, progress=print) -> dict:
    results: dict[str, Any] = {"machine": machine_description("cpu"), "frames": frames, "frame_size": [height, width],
                               "runs": []}
    for model in models:
        for engine in engines:
            progress(f"{model}, {engine}: encoder against its floor, then {frames} x {height}x{width}")
            run = _run_worker({"model": model, "engine": engine, "frames": frames, "height": height,
                               "width": width, "repeats": repeats})
            run["ratios"] = {
                "encoder_vs_floor": run["encoder_min_s"] / run["floor_min_s"],
                "encoder_vs_floor_median": run["encoder_median_s"] / run["floor_median_s"],
                "frame_vs_encoder": run["propagation_s_per_frame"] / run["session_encoder_s_per_frame"],
                "click_s": run["click_s"],
                "click_vs_floor": run["click_s"] / run["click_floor_s"] if run.get("click_floor_s") else None,
            }
            results["runs"].append(run)
    return results


def lite_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; loop {results['frames']} frames of "
        f"{results['frame_size'][0]}x{results['frame_size'][1]}; each row a fresh process.",
        "",
        "| model | engine | encoder s/frame (min / median) | floor s/frame (min / median) | encoder / floor (min, median) "
        "| propagation s/frame | / encoder in the loop | click (s, median of 5) | click / encoder in the loop "
        "| click floor (s: one click's FLOPs at the matmul rate) | click / floor | peak RSS (MB, above model) | first encode (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        q = r["ratios"]
        lines.append(
            f"| {r['model']} | {r['engine']}: {r['runtime']} | {r['encoder_min_s']:.3f} / {r['encoder_median_s']:.3f} "
            f"| {r['floor_min_s']:.3f} / {r['floor_median_s']:.3f} | {q['encoder_vs_floor']:.2f}, {q['encoder_vs_floor_median']:.2f} "
            f"| {r['propagation_s_per_frame']:.3f} | {q['frame_vs_encoder']:.2f} | {r['click_s']:.3f} "
            f"| {r['click_s'] / r['session_encoder_s_per_frame']:.3f} "
            f"| {_click_floor_text(r)} "
            f"| {r['peak_rss_mb']:.0f} ({r['peak_rss_mb'] - r['base_rss_mb']:.0f}) | {r['first_encode_s']:.1f} |"
        )
    gflop = results["runs"][0]["encoder_gflop"] if results["runs"] else 0.0
    lines += ["", f"Encoder work: {gflop:.1f} GFLOP per frame (torch's FLOP counter). Targets: "
              + "; ".join(f"{label} {op} {target}" for label, op, target in TARGETS.values()) + "."]
    return "\n".join(lines) + "\n"


def _click_floor_text(run: dict) -> str:
    if not run.get("click_floor_s"):
        return "- | -"
    return (f"{run['click_floor_s']:.3f} ({run['click_gflop']:.1f} GFLOP, {run['click_passes']} decoder calls) "
            f"| {run['click_s'] / run['click_floor_s']:.2f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(json.dumps(worker_lite(json.loads(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
