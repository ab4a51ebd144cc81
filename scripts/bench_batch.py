"""Measure `samusa segment` on a batch of cases with 1 and with 2 Dask workers (issue 22).

    PYTHONPATH=. .venv/bin/python scripts/bench_batch.py --cases 8 --frames 12 --json batch_bench.json

Writes `cases` phantom cines (frames of 128 x 160, a box prompt each) into a temporary
folder, then runs the batch on a fresh LocalCluster of 1 worker and of 2 workers (one
thread each, --force so every case is segmented), with the given model (default
test-tiny, 256 px). Reports the whole run (cluster start and shutdown included) and the
work span (first case started to last case done, from the workers' events), and the
ratio 1 worker / 2 workers of each. The load average is printed with the figures: on a
shared machine other processes take cores too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_cases(root: Path, count: int, frames: int) -> None:
    import SimpleITK as sitk

    from SAMUSALib.phantoms import cine_phantom

    for name in ("in", "prompts"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        phantom = cine_phantom(num_frames=frames, height=128, width=160, seed=i, visible={1: (0, frames - 1)})
        sitk.WriteImage(sitk.GetImageFromArray(phantom.frames), str(root / "in" / f"case{i:03d}.nrrd"))
        rows, cols = np.nonzero(phantom.masks[1][0])
        box = [float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())]
        prompts = {"objects": [{"id": 1, "prompts": [{"frame": 0, "box": box}]}]}
        (root / "prompts" / f"case{i:03d}.json").write_text(json.dumps(prompts))


def run(root: Path, workers: int, model: str) -> dict:
    from SAMUSALib.batch.segment import run_batch

    out = root / f"out{workers}"
    out.mkdir(exist_ok=True)
    moments: list[tuple[float, str]] = []
    started = time.perf_counter()
    outcomes = run_batch([str(root / "in")], str(root / "prompts"), str(out), model=model, device="cpu",
                         workers=workers, force=True, quiet=True,
                         on_event=lambda e: moments.append((time.perf_counter(), e["event"])))
    total = time.perf_counter() - started
    assert all(o["status"] == "ok" for o in outcomes), outcomes
    begins = [t for t, kind in moments if kind == "start"]
    ends = [t for t, kind in moments if kind == "done"]
    return {"workers": workers, "seconds_total": round(total, 2), "seconds_work": round(max(ends) - min(begins), 2),
            "frames": int(sum(o["frames"] for o in outcomes)), "cases": len(outcomes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--model", default="test-tiny")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="samusa-batch-bench-") as folder:
        root = Path(folder)
        make_cases(root, args.cases, args.frames)
        load_before = os.getloadavg()
        one = run(root, 1, args.model)
        two = run(root, 2, args.model)
        load_after = os.getloadavg()
    result = {
        "cpus": os.cpu_count(), "model": args.model, "cases": args.cases, "frames_per_case": args.frames,
        "one_worker": one, "two_workers": two,
        "ratio_total": round(one["seconds_total"] / two["seconds_total"], 2),
        "ratio_work": round(one["seconds_work"] / two["seconds_work"], 2),
        "load_average_before": [round(v, 2) for v in load_before], "load_average_after": [round(v, 2) for v in load_after],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
