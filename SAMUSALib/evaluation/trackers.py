"""The video protocol with several propagation designs side by side (issue 19).

    python -m SAMUSALib.evaluation.trackers --data ../shared/data/carotid --model samusa-lite \\
        --designs legacy,default --clicks-at-once both --out docs/tracking

For each design (``SAMUSA_TRACKER``; "default": the model's own design) the video
protocol runs on every loop with the window on, the clicks given one at a time and/or
all at once. Every frame is encoded once for all designs (`shared_embeddings`), so the
designs cost decoder time only. Written under ``--out``:

- ``results.json``: per design, the protocol's records (per loop: interventions, the
  frames corrected, Dice per frame);
- ``tables.md``: per loop and design: interventions, mean and worst-frame Dice, and the
  frames where each correction happened;
- ``dice_per_frame.png``: Dice per frame, one panel per loop and way of clicking, one
  line per design, a triangle on each corrected frame.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

#: environment variable that names the propagation design (the backends read it)
TRACKER_ENV = "SAMUSA_TRACKER"


@contextmanager
def _design(name: str) -> Iterator[None]:
    before = os.environ.get(TRACKER_ENV)
    if name == "default":
        os.environ.pop(TRACKER_ENV, None)
    else:
        os.environ[TRACKER_ENV] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TRACKER_ENV, None)
        else:
            os.environ[TRACKER_ENV] = before


def _rows(runs: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for design, records in runs.items():
        for r in records:
            if r.get("skipped"):
                continue
            rows.append(
                {
                    "case": r["case"], "design": design, "clicks": r.get("clicks_given", "one at a time"),
                    "interventions": r["interventions"], "mean_dice": r["mean_dice"], "worst_dice": r.get("worst_dice"),
                    "intervention_frames": r["intervention_frames"],
                }
            )
    return rows


def markdown(rows: Sequence[dict]) -> str:
    lines = [
        "| loop | clicks | design | interventions | mean Dice | worst-frame Dice | corrected frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["case"], r["clicks"])):
        frames = ", ".join(str(f) for f in r["intervention_frames"]) or "–"
        lines.append(
            f"| {r['case']} | {r['clicks']} | {r['design']} | {r['interventions']} | {r['mean_dice']:.3f} | "
            f"{r['worst_dice']:.3f} | {frames} |"
        )
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, list[dict]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = sorted({(r["case"], r.get("clicks_given", "one at a time")) for rs in runs.values() for r in rs if not r.get("skipped")})
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.0, 2.8 * len(panels) + 0.6), dpi=110, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (case, clicks) in zip(axes[:, 0], panels):
        for k, (design, records) in enumerate(runs.items()):
            for r in records:
                if r.get("skipped") or r["case"] != case or r.get("clicks_given", "one at a time") != clicks:
                    continue
                values = r["dice_per_frame"]
                frames = [f for f, v in enumerate(values) if v is not None]
                ys = [values[f] for f in frames]
                color = colors[k % len(colors)]
                label = f"{design}: {r['interventions']} corrections, mean {r['mean_dice']:.3f}, worst {r['worst_dice']:.3f}"
                ax.plot(frames, ys, "-", color=color, linewidth=1.4, label=label)
                first = r.get("first_frame")
                if first is not None and values[first] is not None:
                    ax.plot([first], [values[first]], "*", color=color, markersize=11, markeredgecolor="black", markeredgewidth=0.5)
                for f in r["intervention_frames"]:
                    ax.plot([f], [values[f]], "v", color=color, markersize=8, markeredgecolor="black", markeredgewidth=0.5)
        ax.set_ylim(0.0, 1.02)
        ax.set_ylabel("Dice")
        ax.set_title(f"{case}: 5 boundary clicks {clicks}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[-1, 0].set_xlabel("frame (star: first prompt; triangles: corrections)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run(data: str, model_id: str, designs: Sequence[str], out: Path, *, at_once: bool | str = "both",
        prompt: str = "boundary", seed: int = 0, cases: Sequence[str] | None = None) -> dict:
    from ..backends.litemedsam.backend import shared_embeddings
    from ..models import load_model
    from .datasets import load_cases
    from .protocols import run_video_protocol, session_factory

    loops = load_cases(data, "video", ids=cases, seed=seed)
    model = load_model(model_id, device="cpu", seed=seed)
    runs: dict[str, list[dict]] = {}
    with shared_embeddings():
        for design in designs:
            with _design(design):
                result = run_video_protocol(
                    loops, session_factory(model), prompt_types=(prompt,), window="on", seed=seed, at_once=at_once,
                )
            runs[design] = result.records
            print(f"{design}: " + "; ".join(
                f"{r['case']} {r.get('clicks_given')}: {r['interventions']} int. {r['intervention_frames']} "
                f"mean {r['mean_dice']:.3f} worst {r['worst_dice']:.3f}" for r in result.records if not r.get("skipped")
            ), file=sys.stderr, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    rows = _rows(runs)
    doc = {"model": model_id, "data": data, "prompt": prompt, "designs": list(designs), "rows": rows,
           "records": {d: [{k: v for k, v in r.items() if k != "iou_history"} for r in rs] for d, rs in runs.items()}}
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=float))
    (out / "tables.md").write_text(markdown(rows))
    plot(runs, out / "dice_per_frame.png")
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="samusa-lite")
    parser.add_argument("--designs", default="legacy,default", help="comma-separated: legacy, default, or a tracking.DESIGNS name")
    parser.add_argument("--clicks-at-once", choices=["off", "on", "both"], default="both")
    parser.add_argument("--prompt", default="boundary")
    parser.add_argument("--cases", nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    at_once = {"off": False, "on": True, "both": "both"}[args.clicks_at_once]
    doc = run(args.data, args.model, args.designs.split(","), Path(args.out), at_once=at_once,
              prompt=args.prompt, seed=args.seed, cases=args.cases)
    print(markdown(doc["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
