"""``samusa segment`` over many cases on Dask, and the summary table that ends the run.

Each case is one task (`.worker.segment_case`): the worker loads the model once, reads
the case, segments it, and writes its .seg.nrrd and its sidecar atomically; cases already
done with the same inputs are skipped (see `.fingerprint`). The run prints a table of
case, frames, seconds and status (ok, skipped, kept: edited since it was written, failed
with its message) and exits 0 when no case failed, 1 when some did (the others are written).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

from .cases import discover
from .cluster import TaskFailure, open_client, run_tasks
from .options import default_workers
from .worker import segment_case


def run_batch(
    inputs: list[str],
    prompts: str | None,
    out: str | None,
    *,
    model: str,
    device: str = "auto",
    seed: int = 0,
    axis: str = "K",
    direction: str = "both",
    window: tuple[int, int] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    quiet: bool = False,
    timeout: float | None = None,
    on_event: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Segment every case; one outcome dict per case, in case order: case, output,
    frames, seconds, status ("ok", "skipped", "kept", "failed"), message, pid."""
    cases = discover(inputs, prompts, out)
    options = {"model": model, "device": device, "seed": seed, "axis": axis.upper(), "direction": direction,
               "window": list(window) if window else None, "force": force}
    started = time.perf_counter()
    with open_client(scheduler, workers or default_workers(len(cases))) as client:
        results = run_tasks(client, segment_case, cases, options, labels=[c.id for c in cases],
                            description="segment", quiet=quiet, on_event=on_event, timeout=timeout)
    outcomes = []
    for case, result in zip(cases, results):
        if isinstance(result, TaskFailure):
            result = {"case": case.id, "output": str(case.output), "frames": None, "seconds": None,
                      "status": "failed", "message": result.message, "pid": None}
        outcomes.append(result)
    log_total = round(time.perf_counter() - started, 2)
    for outcome in outcomes:
        outcome.setdefault("batch_seconds", log_total)
    return outcomes


def summary_table(outcomes: list[dict]) -> str:
    """A plain-text table: case, frames, seconds, status (failed cases with their message)."""
    rows = [("case", "frames", "seconds", "status")]
    for o in outcomes:
        status = o["status"] if not o.get("message") or o["status"] == "skipped" else f"{o['status']}: {o['message']}"
        rows.append((o["case"], "" if o.get("frames") is None else str(o["frames"]),
                     "" if o.get("seconds") is None else f"{o['seconds']:.2f}", status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def cmd_batch(args: argparse.Namespace, model: str) -> int:
    """``samusa segment`` with many inputs; `model` already resolved by the caller."""
    outcomes = run_batch(
        list(args.input), args.prompts, args.out, model=model, device=args.device, axis=args.axis,
        direction=args.direction, window=tuple(args.window) if args.window else None, workers=args.workers,
        scheduler=args.scheduler, force=args.force, quiet=args.quiet, timeout=args.timeout,
    )
    print(summary_table(outcomes))
    counts = {status: sum(o["status"] == status for o in outcomes) for status in ("ok", "skipped", "kept", "failed")}
    seconds = outcomes[0]["batch_seconds"] if outcomes else 0.0
    kept = f"{counts['kept']} edited since written and kept, " if counts["kept"] else ""
    print(f"{len(outcomes)} cases in {seconds:.1f} s: {counts['ok']} segmented, {counts['skipped']} up to date, "
          f"{kept}{counts['failed']} failed (model {model})")
    return 1 if counts["failed"] else 0
