"""`samusa bench --quick` runs both engines and reports every figure the issue asks for.

No timing is asserted: the figures are for reading, not for passing.
"""

from __future__ import annotations

import json

import pytest

from SAMUSALib.bench import TARGETS, markdown
from SAMUSALib.cli import main


def test_quick_bench_writes_ratios_and_raw_times_for_both_engines(tmp_path, capsys):
    out = tmp_path / "bench.json"
    plot = tmp_path / "bench.png"
    # CI size, trimmed to one cine of 8 frames to keep the suite short (the volume case is
    # the same workers on other frames)
    assert main(["bench", "--quick", "--lengths", "8", "--volume-slices", "0", "--json", str(out), "--plot", str(plot)]) == 0
    results = json.loads(out.read_text())

    assert {"cpu", "cores", "torch", "device"} <= set(results["machine"])
    assert results["encoder"]["encoder_s_per_frame"] > 0
    kinds = [(run["kind"], run["frames"]) for run in results["runs"]]
    assert kinds == [("cine", 8)]
    for run in results["runs"]:
        ours, vanilla = run["ours"], run["vanilla"]
        for figures in (ours, vanilla):
            for key in ("loop_s", "click_seen_s", "repropagation_s", "repropagation_frames", "peak_rss_mb", "base_rss_mb"):
                assert figures[key] > 0, key
            assert figures["mask_frames"] == run["frames"], "both engines produce a mask on every frame"
            assert len(figures["click_seen_all_s"]) == 5  # the latency is a median of clicks
        assert ours["window_frames_encoded"] <= max(1, run["frames"] // 10) + 1
        assert ours["repropagation_frames"] < vanilla["repropagation_frames"]
    flops = results["flops"]
    assert flops["encoder_gflop"] > 1 and flops["step_gflop"] > 0.1
    assert "MemoryAttention" in flops["step_by_module_gflop"]
    assert flops["frame_vs_encoder_floor"] == 1 + flops["step_gflop"] / flops["encoder_gflop"]
    # each stage against its own FLOP floor, timed over one propagation in the same process
    stages = flops["stages"]
    assert {"ImageEncoder", "MemoryAttention", "MaskDecoder", "MemoryEncoder"} <= set(stages), stages
    assert flops["matmul_gflops"] > 0
    for name, stage in stages.items():
        assert stage["calls"] >= 1 and stage["s_per_call"] > 0 and stage["gflop_per_call"] > 0, name
        # the floor is a float32 matmul of the stage's FLOPs timed here: a rate of this machine
        assert 0.2 < stage["gflop_per_call"] / stage["floor_s_per_call"] / flops["matmul_gflops"] < 5, name
        assert stage["vs_floor"] == stage["s_per_call"] / stage["floor_s_per_call"]
    assert stages["MemoryAttention"]["calls"] == stages["ImageEncoder"]["calls"] - 1  # not on the prompted frame
    assert set(TARGETS) <= set(results["ratios"]["values"]) and set(TARGETS) == set(results["ratios"]["met"])
    table = capsys.readouterr().out
    assert "SAM2VideoPredictor" in table and "| whole loop" in table
    assert markdown(results) in table


def test_memory_only_bench_reports_peak_memory_and_says_when_the_ratio_is_a_bound():
    """`samusa bench --memory-only [--vanilla-init-only]`: the cheap way to measure memory
    at real model sizes, where the official predictor's peak after init_state bounds its
    whole loop's from below."""
    from SAMUSALib.bench import memory_markdown, run_memory_bench

    results = run_memory_bench(model="test-tiny", device="cpu", frames=8, height=240, width=320,
                               vanilla_propagates=False, progress=lambda message: None)
    ours, vanilla = results["ours"], results["vanilla"]
    assert ours["propagated"] and ours["mask_frames"] == 8
    assert not vanilla["propagated"] and "mask_frames" not in vanilla
    above = [(r["peak_rss_mb"] - r["base_rss_mb"]) for r in (ours, vanilla)]
    assert above[1] >= 8 * 3 * 256 * 256 * 4 / 2**20, "after init_state the predictor holds every resized frame"
    assert above[0] > 0
    assert results["memory_ratio"] == above[0] / above[1]
    assert results["memory_ratio_is_upper_bound"]
    assert "at most" in memory_markdown(results) and "lower bound" in memory_markdown(results)


def test_vanilla_init_only_without_memory_only_is_refused(capsys):
    assert main(["bench", "--vanilla-init-only"]) == 2
    assert "--memory-only" in capsys.readouterr().err


def test_a_stage_floor_is_a_matmul_of_the_stage_own_work():
    """The floor a stage is held to does the stage's FLOPs (to one 2048x2048 matmul), so a
    long stage meets a long matmul, not a short burst scaled up."""
    from SAMUSALib.bench import matmul_floor

    one = 2 * 2048**3 / 1e9
    for gflop in (0.001, one, 10 * one + 3, 458.0):
        run, done = matmul_floor(gflop)
        assert abs(done - gflop) <= one / 2 + 1e-9 or (gflop < one and done == one)
    run, done = matmul_floor(3.2 * one)
    assert len(run()) == 3 and done == pytest.approx(3 * one)
