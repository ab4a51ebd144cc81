"""Reports of an evaluation run: JSON (every case, every click), a markdown summary and
PNG plots.

Files written into the output folder:

- ``results.json``: format tag, protocol, model, data, settings, the summary per prompt
  type / variant, and one record per (case, object, variant) with every click. Numbers
  that are not finite (a surface distance to an empty mask is infinite) are written as
  ``null``, so the file is strict JSON.
- ``summary.md``: the summary table(s), the settings and a per-case table.
- ``iou_vs_clicks.png`` (image protocol): mean IoU against the number of clicks for each
  prompt type, as the SAMUSA paper's Figure 2.
- ``iou_per_frame.png`` (video) / ``iou_per_slice.png`` (volume): IoU over frames for
  each case, each variant a line, interventions marked.
- ``overlays.png``: the best and worst cases, reference and prediction contours and the
  simulated clicks drawn on the image.

Plots need matplotlib; without it JSON and markdown are still written (and a note says
why there are no pictures).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .protocols import EvaluationResult

__all__ = ["summarize", "to_json", "write_json", "write_markdown", "write_plots", "write_report", "FORMAT"]

log = logging.getLogger("samusa.eval")
FORMAT = "samusa-eval/1"
MAX_PANELS = 12
REFERENCE_COLOR = "#00e5ff"
PREDICTION_COLOR = "#ff8c00"
VARIANT_COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
PROMPT_COLORS = {
    "boundary": "#d62728",
    "region": "#1f77b4",
    "box": "#7f7f7f",
    "box+region": "#2ca02c",
    "box+boundary": "#9467bd",
}


# ----------------------------------------------------------------------- summaries
def _stats(values: Iterable[float | None]) -> dict:
    values = list(values)
    kept = [float(v) for v in values if v is not None and math.isfinite(v)]
    missing = len(values) - len(kept)
    if not kept:
        return {"mean": None, "sd": None, "median": None, "n": 0, "undefined": missing}
    arr = np.asarray(kept)
    return {
        "mean": round(float(arr.mean()), 4),
        "sd": round(float(arr.std(ddof=1)), 4) if arr.size > 1 else 0.0,
        "median": round(float(np.median(arr)), 4),
        "n": int(arr.size),
        "undefined": missing,
    }


def _groups(records: Sequence[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for record in records:
        if record.get("skipped"):
            continue
        # image records written before clicks could be given at once have no "group"
        out.setdefault(record[key] if key in record else record["prompt"], []).append(record)
    return out


def _summary_image(result: EvaluationResult) -> dict:
    thresholds = result.settings.get("thresholds", [0.85, 0.90])
    max_clicks = int(result.settings.get("max_clicks", 10))
    summary = {}
    for prompt, records in _groups(result.records, "group").items():
        length = max(len(r["iou_by_clicks"]) for r in records)
        by_k_iou = [_stats([r["iou_by_clicks"][k] for r in records if k < len(r["iou_by_clicks"])]) for k in range(length)]
        by_k_dice = [_stats([r["dice_by_clicks"][k] for r in records if k < len(r["dice_by_clicks"])]) for k in range(length)]
        finals = [r["clicks"][-1] if r["clicks"] else {} for r in records]
        noc = {}
        for t in thresholds:
            name = f"{t:.2f}"
            reached = [r["clicks_to"][name] for r in records]
            cap = 1 if prompt == "box" else max_clicks
            noc[name] = {
                "mean": round(float(np.mean([v if v is not None else cap for v in reached])), 3),
                "reached": sum(v is not None for v in reached),
                "of": len(reached),
                "failures_counted_as": cap,
            }
        seconds = [s["seconds"] for r in records for s in r["clicks"] if s.get("seconds") is not None]
        summary[prompt] = {
            "records": len(records),
            "iou_by_clicks": by_k_iou,
            "dice_by_clicks": by_k_dice,
            "final_iou": _stats([r["final_iou"] for r in records]),
            "final_dice": _stats([r["final_dice"] for r in records]),
            "final_hd95": _stats([f.get("hd95") for f in finals]),
            "final_assd": _stats([f.get("assd") for f in finals]),
            "clicks_to": noc,
            "seconds_per_click": round(float(np.mean(seconds)), 3) if seconds else None,
        }
    return summary


def _summary_video(result: EvaluationResult) -> dict:
    summary = {}
    for variant, records in _groups(result.records, "variant").items():
        frames = sum(r["frames_computed"] for r in records)
        seconds = sum(r["propagation_seconds"] or 0.0 for r in records)
        summary[variant] = {
            "records": len(records),
            "mean_dice": _stats([r["mean_dice"] for r in records]),
            "mean_iou": _stats([r["mean_iou"] for r in records]),
            "mean_iou_visible": _stats([r["mean_iou_visible"] for r in records]),
            "interventions": _stats([r["interventions"] for r in records]),
            "clicks_per_loop": _stats([r["clicks_total"] for r in records]),
            "clicks_per_frame": _stats([r["clicks_per_frame"] for r in records]),
            "iou_drop_at_interventions": _stats([r["iou_drop_at_interventions"] for r in records]),
            "false_positive_frames": _stats([r["false_positive_frames"] for r in records]),
            "frames_computed": _stats([r["frames_computed"] for r in records]),
            "seconds_per_frame": round(seconds / frames, 4) if frames else None,
        }
    return summary


def _summary_volume(result: EvaluationResult) -> dict:
    summary = {}
    for variant, records in _groups(result.records, "variant").items():
        frames = sum(r["frames_computed"] for r in records)
        seconds = sum(r["propagation_seconds"] or 0.0 for r in records)
        summary[variant] = {
            "records": len(records),
            "dice": _stats([r["dice"] for r in records]),
            "iou": _stats([r["iou"] for r in records]),
            "hd95": _stats([r["hd95"] for r in records]),
            "assd": _stats([r["assd"] for r in records]),
            "frames_computed": _stats([r["frames_computed"] for r in records]),
            "seconds_per_frame": round(seconds / frames, 4) if frames else None,
            "units": sorted({r["units"] for r in records}),
        }
    return summary


def summarize(result: EvaluationResult) -> dict:
    """Aggregates per prompt type (image) or variant (video, volume)."""
    return {"image": _summary_image, "video": _summary_video, "volume": _summary_volume}[result.protocol](result)


# ----------------------------------------------------------------------- JSON
def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    return value


def to_json(result: EvaluationResult, *, model: dict | None = None, data: str | None = None, extra: dict | None = None) -> dict:
    doc = {
        "format": FORMAT,
        "protocol": result.protocol,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model or {},
        "data": data,
        "settings": result.settings,
        "summary": summarize(result),
        "cases": result.records,
    }
    if extra:
        doc.update(extra)
    return _clean(doc)


def write_json(path: str | Path, doc: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1, allow_nan=False))
    return path


# ----------------------------------------------------------------------- markdown
def _fmt(stats: dict | None, digits: int = 3) -> str:
    if not stats or stats.get("mean") is None:
        return "n/a"
    text = f"{stats['mean']:.{digits}f}"
    if stats.get("n", 0) > 1 and stats.get("sd") is not None:
        text += f" ± {stats['sd']:.{digits}f}"
    if stats.get("undefined"):
        text += f" ({stats['undefined']} undefined)"
    return text


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return lines


def _markdown_image(doc: dict) -> list[str]:
    summary = doc["summary"]
    max_clicks = int(doc["settings"].get("max_clicks", 10))
    ks = [k for k in (1, 2, 3, 5, max_clicks) if k <= max_clicks]
    ks = sorted(set(ks))
    thresholds = [f"{t:.2f}" for t in doc["settings"].get("thresholds", [0.85, 0.90])]
    header = ["prompt", "n"] + [f"IoU@{k}" for k in ks] + [f"Dice@{max_clicks}"]
    header += [f"NoC@{t} (reached)" for t in thresholds] + ["HD95 final", "ASSD final", "s/click"]
    rows = []
    for prompt, s in summary.items():
        row = [prompt, s["records"]]
        for k in ks:
            row.append(_fmt(s["iou_by_clicks"][k - 1]) if k - 1 < len(s["iou_by_clicks"]) else "–")
        row.append(_fmt(s["final_dice"]))
        for t in thresholds:
            noc = s["clicks_to"][t]
            row.append(f"{noc['mean']:.2f} ({noc['reached']}/{noc['of']})")
        row += [_fmt(s["final_hd95"], 1), _fmt(s["final_assd"], 1), s["seconds_per_click"]]
        rows.append(row)
    lines = ["## Summary", ""]
    lines += _table(header, rows)
    lines += [
        "",
        f"IoU@k: mean ± sd over cases after k interactions (a box counts as one; box only has "
        f"k = 1 alone). NoC@t: mean number of clicks to reach IoU t, cases that never reach it "
        f"counted as {max_clicks} (1 for box only); in brackets how many reached it. "
        "Distances after the last click, in the data's units (px for PNG data, mm for volumes "
        "and phantoms); 'undefined' counts empty predictions.",
        "",
        "## Cases",
        "",
    ]
    rows = []
    for r in doc["cases"][:400]:
        if r.get("skipped"):
            rows.append([r["case"], r["name"], r.get("group", r["prompt"]), "skipped: " + r["skipped"], "", "", "", ""])
            continue
        noc = " / ".join("–" if r["clicks_to"][t] is None else str(r["clicks_to"][t]) for t in thresholds)
        first = r["iou_by_clicks"][0] if r["iou_by_clicks"] else None
        rows.append([r["case"], r["name"], r.get("group", r["prompt"]), first, r["final_iou"], r["final_dice"], noc, len(r["clicks"])])
    lines += _table(["case", "object", "prompt", "IoU@1", "IoU final", "Dice final", f"NoC {'/'.join(thresholds)}", "clicks"], rows)
    if len(doc["cases"]) > 400:
        lines.append(f"\n({len(doc['cases']) - 400} more in results.json)")
    return lines


def _markdown_video(doc: dict) -> list[str]:
    header = [
        "variant", "n", "Dice (frames)", "IoU (frames)", "IoU (object frames)", "interventions",
        "clicks per cine loop", "clicks per frame", "frames computed", "s/frame",
    ]
    rows = []
    for variant, s in doc["summary"].items():
        rows.append(
            [
                variant, s["records"], _fmt(s["mean_dice"]), _fmt(s["mean_iou"]), _fmt(s["mean_iou_visible"]),
                _fmt(s["interventions"], 2), _fmt(s["clicks_per_loop"], 1), _fmt(s["clicks_per_frame"], 2),
                _fmt(s["frames_computed"], 1), s["seconds_per_frame"],
            ]
        )
    settings = doc["settings"]
    lines = ["## Summary", ""] + _table(header, rows)
    lines += [
        "",
        f"Each loop (a video or cine, one object) starts with {settings.get('clicks')} clicks on the first "
        f"frame holding the object; propagation ({settings.get('direction')}) is corrected with the same "
        f"number of clicks on the first frame whose IoU falls below {settings.get('iou_threshold')}, at most "
        f"{settings.get('max_interventions')} times. '+window': temporal window = the reference's visible "
        "frames. IoU (frames): mean over annotated frames (a frame where both masks are empty scores 1); "
        "IoU (object frames): over frames holding the object. Clicks per cine loop: all clicks given on "
        "one video (SonoSAMTrack's clicks per loop); interventions: corrections after the first prompt. Frames computed: frames propagated (PropagationReport totals); s/frame: propagation time "
        "per computed frame.",
        "",
        "## Cases",
        "",
    ]
    rows = []
    for r in doc["cases"]:
        if r.get("skipped"):
            rows.append([r["case"], r["name"], r["variant"], "skipped: " + r["skipped"], "", "", "", "", "", ""])
            continue
        rows.append(
            [
                r["case"], r["name"], r["variant"], r["mean_dice"], r.get("worst_dice"), r["mean_iou"], r["interventions"],
                ", ".join(str(f) for f in r["intervention_frames"]) or "–", r["clicks_total"], r["frames_computed"],
            ]
        )
    lines += _table(["case", "object", "variant", "Dice", "worst-frame Dice", "IoU", "interventions", "at frames", "clicks", "frames computed"], rows)
    return lines


def _markdown_volume(doc: dict) -> list[str]:
    header = ["variant", "n", "Dice", "IoU", "HD95", "ASSD", "units", "frames computed", "s/frame"]
    rows = []
    for variant, s in doc["summary"].items():
        rows.append(
            [
                variant, s["records"], _fmt(s["dice"]), _fmt(s["iou"]), _fmt(s["hd95"], 2), _fmt(s["assd"], 2),
                ", ".join(s["units"]), _fmt(s["frames_computed"], 1), s["seconds_per_frame"],
            ]
        )
    settings = doc["settings"]
    lines = ["## Summary", ""] + _table(header, rows)
    lines += [
        "",
        f"The object's {settings.get('start')} slice is prompted ({settings.get('clicks')} clicks, or one box), "
        "then propagated both ways; '+window' limits propagation to the reference's slice range. Dice, IoU and "
        "the surface distances (HD95: max of the directed 95th percentiles; ASSD: both directions pooled) are "
        "computed on the whole volume with its spacing.",
        "",
        "## Cases",
        "",
    ]
    rows = []
    for r in doc["cases"]:
        if r.get("skipped"):
            rows.append([r["case"], r["name"], r["variant"], "skipped: " + r["skipped"], "", "", "", "", "", ""])
            continue
        rows.append(
            [r["case"], r["name"], r["variant"], r["prompt_slice"], r["dice"], r["iou"], r["hd95"], r["assd"], r["frames_computed"]]
        )
    lines += _table(["case", "object", "variant", "prompted slice", "Dice", "IoU", "HD95", "ASSD", "frames computed"], rows)
    return lines


def write_markdown(path: str | Path, doc: dict, pictures: Sequence[str] = (), note: str | None = None) -> Path:
    model = doc.get("model") or {}
    lines = [f"# SAMUSA evaluation: {doc['protocol']} protocol", ""]
    if model and model.get("trained") is False:
        lines += [
            f"> **Model `{model.get('id')}` is UNTRAINED (random weights): these numbers only show that "
            "the harness runs; they say nothing about segmentation quality.**",
            "",
        ]
    lines += [
        f"- model: `{model.get('id', '?')}`" + (f" on {model['device']}" if model.get("device") else ""),
        f"- data: `{doc.get('data')}` ({len({r['case'] for r in doc['cases']})} cases, {len(doc['cases'])} records)",
        "- settings: " + ", ".join(f"{k}={v}" for k, v in doc["settings"].items()),
        f"- created: {doc['created']}",
        "",
    ]
    lines += {"image": _markdown_image, "video": _markdown_video, "volume": _markdown_volume}[doc["protocol"]](doc)
    if pictures:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pictures]
    if note:
        lines += ["", note]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _plot_iou_vs_clicks(plt, doc: dict, path: Path) -> Path:
    summary = doc["summary"]
    max_clicks = int(doc["settings"].get("max_clicks", 10))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for prompt, s in summary.items():
        color = PROMPT_COLORS.get(prompt, None)
        means = np.array([np.nan if st["mean"] is None else st["mean"] for st in s["iou_by_clicks"]])
        sds = np.array([0.0 if st["sd"] is None else st["sd"] for st in s["iou_by_clicks"]])
        label = f"{prompt} (n={s['records']})"
        if prompt == "box":
            ax.plot([1], means[:1], "s", color=color, label=label, markersize=7)
            ax.axhline(means[0], color=color, linestyle=":", linewidth=1)
            continue
        ks = np.arange(1, len(means) + 1)
        ax.plot(ks, means, "-o", color=color, label=label, markersize=4)
        ax.fill_between(ks, np.clip(means - sds, 0, 1), np.clip(means + sds, 0, 1), color=color, alpha=0.12, linewidth=0)
    for t in doc["settings"].get("thresholds", []):
        ax.axhline(t, color="black", linestyle="--", linewidth=0.6, alpha=0.5)
    ax.set_xlabel("number of clicks (a box counts as one)")
    ax.set_ylabel("mean IoU (band: ± sd over cases)")
    ax.set_xlim(0.5, max_clicks + 0.5)
    ax.set_xticks(range(1, max_clicks + 1))
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    title = f"IoU against clicks — {doc['model'].get('id', '')}"
    if doc["model"].get("trained") is False:
        title += " (UNTRAINED)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _per_frame_plot(plt, doc: dict, path: Path, *, what: str) -> Path:
    by_target: dict[tuple, list[dict]] = {}
    for r in doc["cases"]:
        if not r.get("skipped"):
            by_target.setdefault((r["case"], r["object"], r["name"]), []).append(r)
    targets = list(by_target)[:MAX_PANELS]
    cols = min(3, max(1, len(targets)))
    rows = max(1, math.ceil(len(targets) / cols))
    width = max(4.6 * cols, 8.0)
    fig, axes = plt.subplots(rows, cols, figsize=(width, 2.9 * rows + 1.0), dpi=110, squeeze=False)
    prompts = sorted({r.get("group", r["prompt"]) for r in doc["cases"]})
    colors = {p: PROMPT_COLORS.get(p, VARIANT_COLORS[i % len(VARIANT_COLORS)]) for i, p in enumerate(prompts)}
    threshold = doc["settings"].get("iou_threshold")
    for ax, target in zip(axes.ravel(), targets):
        for r in by_target[target]:
            values = np.array([np.nan if v is None else v for v in r["iou_per_frame"]], dtype=float)
            color = colors[r.get("group", r["prompt"])]
            frames = np.arange(values.size)
            style = "--" if r.get("window") else "-"
            ax.plot(frames, values, style, color=color, linewidth=1.3, label=r["variant"])
            ax.plot(frames, values, ".", color=color, markersize=3)
            first = r.get("first_frame", r.get("prompt_slice"))
            if first is not None:
                ax.plot([first], [values[first]], "*", color=color, markersize=11, markeredgecolor="black", markeredgewidth=0.5)
            for f in r.get("intervention_frames", []):
                ax.axvline(f, color=color, linestyle=":", linewidth=1)
                ax.plot([f], [values[f]], "v", color=color, markersize=7, markeredgecolor="black", markeredgewidth=0.5)
            if r.get("window"):
                ax.axvspan(r["window"][0] - 0.5, r["window"][1] + 0.5, color=color, alpha=0.06)
        if threshold is not None:
            ax.axhline(threshold, color="black", linestyle="--", linewidth=0.6, alpha=0.6)
        visible = by_target[target][0].get("visible")
        if visible:
            ax.axvline(visible[0] - 0.5, color="grey", linewidth=0.6)
            ax.axvline(visible[1] + 0.5, color="grey", linewidth=0.6)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{target[0]} — {target[2]}", fontsize=8)
        ax.set_xlabel(what, fontsize=8)
        ax.set_ylabel("IoU", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(targets):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    fig.legend(uniq.values(), uniq.keys(), loc="upper center", ncol=min(4, len(uniq)) or 1, fontsize=8, frameon=False)
    marks = "★ prompted frame, ▼ intervention (dotted line)" if what == "frame" else "★ prompted slice"
    marks = "colour: prompt type, dashed: with window; " + marks
    extra = "; thin dashed: IoU threshold" if threshold is not None else ""
    import textwrap

    note = f"{marks}; grey lines: first/last {what} holding the object; shaded: window{extra}"
    note = "\n".join(textwrap.wrap(note, width=int(width * 15)))
    fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=7)
    height = 2.9 * rows + 1.0
    fig.tight_layout(rect=(0, (0.15 + 0.13 * note.count("\n") + 0.15) / height, 1, 1.0 - 0.45 / height))
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw_clicks(ax, clicks: Sequence[dict]) -> None:
    import matplotlib.patches as patches

    for step in clicks:
        click = step.get("click") or step
        kind = click.get("kind")
        if kind == "box":
            x0, y0, x1, y1 = click["box"]
            ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linestyle="--", linewidth=1.0))
        elif kind == "positive":
            ax.plot(click["x"], click["y"], "P", color="#39ff14", markersize=7, markeredgecolor="black", markeredgewidth=0.6)
        elif kind == "negative":
            ax.plot(click["x"], click["y"], "X", color="#ff1744", markersize=7, markeredgecolor="black", markeredgewidth=0.6)
        elif kind == "boundary":
            ax.plot(click["x"], click["y"], "o", color="#ffea00", markersize=5, markeredgecolor="black", markeredgewidth=0.6)


def _show(ax, image: np.ndarray, reference: np.ndarray, prediction: np.ndarray | None, clicks, title: str) -> None:
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    if prediction is not None and prediction.any():
        tint = np.zeros((*prediction.shape, 4))
        tint[prediction] = (1.0, 0.55, 0.0, 0.28)
        ax.imshow(tint, interpolation="nearest")
        ax.contour(prediction.astype(float), levels=[0.5], colors=PREDICTION_COLOR, linewidths=1.1)
    if reference.any():
        ax.contour(reference.astype(float), levels=[0.5], colors=REFERENCE_COLOR, linewidths=1.1, linestyles="dashed")
    _draw_clicks(ax, clicks)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay_image(plt, result: EvaluationResult, doc: dict, path: Path, per_side: int = 2) -> Path | None:
    rows = []
    for prompt, records in _groups(doc["cases"], "prompt").items():
        ranked = sorted((r for r in records if r["final_iou"] is not None), key=lambda r: -r["final_iou"])
        if not ranked:
            continue
        best = ranked[:per_side]
        worst = [r for r in ranked[::-1][:per_side] if r not in best][::-1]  # the very worst last
        rows.append((prompt, [("best", r) for r in best] + [("worst", r) for r in worst]))
    if not rows:
        return None
    cols = max(len(items) for _, items in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.0 * cols, 3.4 * len(rows)), dpi=110, squeeze=False)
    for row_axes, (prompt, items) in zip(axes, rows):
        for ax, (tag, r) in zip(row_axes, items):
            case = result.cases[r["case"]]
            frames = case.frame_source()
            image = frames.frame(r["frame"])
            reference = case.reference_frames(r["object"])[r["frame"]]
            prediction = result.mask(r["key"])
            what = f" ({r['name']})" if len(case.objects) > 1 else ""
            title = f"{tag}: {r['case']}{what}\n{r['prompt']}, {len(r['clicks'])} clicks, IoU {r['final_iou']:.2f}"
            _show(ax, image, reference, prediction, r["clicks"], title)
        for ax in row_axes[len(items):]:
            ax.axis("off")
    _legend(fig)
    fig.tight_layout(rect=(0, 0.04, 1, 1), h_pad=1.6)
    fig.savefig(path)
    plt.close(fig)
    return path


def _legend(fig) -> None:
    fig.text(
        0.5,
        0.008,
        "dashed cyan: reference   orange: prediction   + positive   x negative   o boundary   dashed box: box prompt",
        ha="center",
        fontsize=7,
    )


def _overlay_frames(plt, result: EvaluationResult, doc: dict, path: Path) -> Path | None:
    records = [r for r in doc["cases"] if not r.get("skipped")]
    score = "mean_iou_visible" if result.protocol == "video" else "iou"
    ranked = sorted((r for r in records if r.get(score) is not None), key=lambda r: -r[score])
    if not ranked:
        return None
    chosen = [("best", ranked[0])]
    if len(ranked) > 1:
        chosen.append(("worst", ranked[-1]))
    cols = 4
    fig, axes = plt.subplots(len(chosen), cols, figsize=(3.0 * cols, 3.4 * len(chosen)), dpi=110, squeeze=False)
    for row_axes, (tag, r) in zip(axes, chosen):
        case = result.cases[r["case"]]
        frames = case.frame_source()
        reference = case.reference_frames(r["object"])
        masks = result.mask(r["key"])
        ious = r["iou_per_frame"]
        first = r.get("first_frame", r.get("prompt_slice"))
        lo, hi = r["visible"]
        candidates = [first]
        visible_ious = [(ious[f], f) for f in range(lo, hi + 1) if ious[f] is not None and f != first]
        if visible_ious:
            candidates.append(min(visible_ious)[1])
        candidates += list(r.get("intervention_frames", []))[:1]
        candidates += [lo + (hi - lo) // 4, hi - (hi - lo) // 4, hi]
        picked: list[int] = []
        for f in candidates:
            if f not in picked:
                picked.append(f)
        picked = sorted(picked[:cols])
        clicks_by_frame: dict[int, list] = {}
        for loop in r.get("loops", []):
            clicks_by_frame.setdefault(loop["frame"], []).extend(loop["clicks"])
        if "prompt_slice" in r:
            clicks_by_frame[r["prompt_slice"]] = r["clicks"]
        for ax, f in zip(row_axes, picked):
            value = ious[f]
            label = "frame" if result.protocol == "video" else "slice"
            note = " (prompted)" if f in clicks_by_frame else ""
            what = f" ({r['name']})" if len(case.objects) > 1 else ""
            title = f"{tag}: {r['case']}{what} {r['variant']}\n{label} {f}{note}, IoU {'n/a' if value is None else f'{value:.2f}'}"
            _show(ax, frames.frame(f), reference[f], None if masks is None else masks[f], clicks_by_frame.get(f, []), title)
        for ax in row_axes[len(picked):]:
            ax.axis("off")
    _legend(fig)
    fig.tight_layout(rect=(0, 0.04, 1, 1), h_pad=1.6)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_plots(result: EvaluationResult, doc: dict, out_dir: str | Path) -> list[Path]:
    """The PNG plots for the protocol; [] (with a log message) when matplotlib is missing."""
    try:
        plt = _pyplot()
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    out_dir = Path(out_dir)
    written: list[Path] = []
    if not any(not r.get("skipped") for r in doc["cases"]):
        return written
    if result.protocol == "image":
        written.append(_plot_iou_vs_clicks(plt, doc, out_dir / "iou_vs_clicks.png"))
        overlay = _overlay_image(plt, result, doc, out_dir / "overlays.png")
    else:
        name, what = ("iou_per_frame.png", "frame") if result.protocol == "video" else ("iou_per_slice.png", "slice")
        written.append(_per_frame_plot(plt, doc, out_dir / name, what=what))
        overlay = _overlay_frames(plt, result, doc, out_dir / "overlays.png")
    if overlay is not None:
        written.append(overlay)
    return written


def write_report(
    result: EvaluationResult,
    out_dir: str | Path,
    *,
    model: dict | None = None,
    data: str | None = None,
    plots: bool = True,
    extra: dict | None = None,
) -> dict[str, Path | list[Path]]:
    """results.json, summary.md and the plots into ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = to_json(result, model=model, data=data, extra=extra)
    json_path = write_json(out_dir / "results.json", doc)
    pictures = write_plots(result, doc, out_dir) if plots else []
    note = None
    if plots and not pictures:
        note = "_No plots: matplotlib is not installed (pip install matplotlib)._"
    md_path = write_markdown(out_dir / "summary.md", doc, [p.name for p in pictures], note)
    return {"json": json_path, "markdown": md_path, "plots": pictures}
