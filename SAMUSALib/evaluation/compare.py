"""The runs behind docs/litemedsam_results.md: every boundary encoding against region
clicks and a box (image protocol), and the video protocol, with LiteMedSAM.

    python -m SAMUSALib.evaluation.compare --data ../shared/data --out docs/litemedsam

For each dataset (BUS-BRA, CAMUS, carotid frames) the image protocol of
`SAMUSALib.evaluation` runs once per variant: ``boundary/<encoding>`` for each boundary
encoding, ``region/<encoding>`` for each region encoding, ``box`` and ``box+region``;
then the video protocol on the carotid sequence (boundary, region, box; with and
without window). Each frame is encoded once for all variants (`shared_embeddings`),
so the variants cost decoder time only. Written under ``--out``:

- ``<dataset>/<variant>/results.json`` (the harness's records and summary),
- ``video/results.json``, ``video/summary.md`` and its plots,
- ``results.json`` (all tables), ``tables.md`` and ``dice_vs_clicks.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = ("busbra", "camus", "carotid")
CLICKS = (1, 3, 5, 10)


def variants(boundary: list[str], region: list[str]) -> list[tuple[str, str, str | None]]:
    """(name, prompt type, encoding) for every image-protocol run."""
    out = [(f"boundary/{e}", "boundary", e) for e in boundary]
    out += [(f"region/{e}", "region", e) for e in region]
    out += [("box", "box", None), ("box+region", "box+region", None)]
    return out


def _factory(model, prompt_type: str, encoding: str | None):
    from ..engine import Session

    def make(frames):
        session = Session(frames, model)
        if encoding == "native":  # the model reads every prompt itself (SAMUSA-Lite)
            return session
        if encoding is not None and prompt_type == "boundary":
            session.backend.boundary_encoding = encoding
        if encoding is not None and prompt_type == "region":
            session.backend.region_encoding = encoding
        return session

    return make


def _at(values: list, k: int):
    return values[min(k, len(values)) - 1] if values else None


def table_rows(records: list[dict], by: str | None = None) -> dict[str, dict]:
    """Mean Dice / IoU after 1, 3, 5, 10 clicks, per group (all records, or by `by`)."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        if record.get("skipped"):
            continue
        groups.setdefault("all" if by is None else str(record[by]), []).append(record)
    out = {}
    for name, group in groups.items():
        row: dict = {"n": len(group)}
        for k in CLICKS:
            row[f"dice@{k}"] = round(float(np.mean([_at(r["dice_by_clicks"], k) for r in group])), 4)
            row[f"iou@{k}"] = round(float(np.mean([_at(r["iou_by_clicks"], k) for r in group])), 4)
        out[name] = row
    return out


def click_seconds(records: list[dict]) -> float | None:
    """Mean seconds per click, decoding only (frames were encoded by an earlier variant or
    their encoding time is subtracted)."""
    seconds = sum(s["seconds"] for r in records for s in r.get("clicks", []) if s.get("seconds") is not None)
    clicks = sum(len(r.get("clicks", [])) for r in records)
    encoded = {r["case"]: r.get("encoder_seconds") or 0.0 for r in records}
    return round((seconds - sum(encoded.values())) / clicks, 3) if clicks else None


def run(args: argparse.Namespace) -> dict:
    from ..evaluation import load_cases, run_image_protocol, run_video_protocol
    from ..evaluation.report import summarize, to_json, write_json, write_report
    from ..models import load_model
    from ..backends.litemedsam.backend import shared_embeddings
    from ..backends.litemedsam.encodings import BOUNDARY_ENCODINGS, REGION_ENCODINGS

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device=args.device)
    model_info = {"id": model.spec.id, "trained": True, "device": str(model.device), "precision": model.resolved_precision}
    native = bool(model.metadata.get("boundary_native"))
    boundary = ["native"] if native else (args.boundary or list(BOUNDARY_ENCODINGS))
    region = ["native"] if native else (args.region or list(REGION_ENCODINGS))
    data = Path(args.data)
    tables: dict = {"model": model_info, "image": {}, "structures": {}, "seconds_per_click": {}, "seconds_per_frame": {}}
    previous = out / "results.json"
    if args.no_image and previous.is_file():  # keep the image tables of an earlier run
        tables.update({k: v for k, v in json.loads(previous.read_text()).items() if k != "video"})
    started = time.perf_counter()
    with shared_embeddings(args.cache_mb):
        for dataset in [] if args.no_image else args.datasets:
            cases = load_cases(data / dataset, "image", limit=args.limit)
            encoder_seconds, encoded = 0.0, 0
            for name, prompt_type, encoding in variants(boundary, region):
                print(f"[{time.perf_counter() - started:7.0f} s] {dataset}: {name} on {len(cases)} images", file=sys.stderr, flush=True)
                result = run_image_protocol(
                    cases, _factory(model, prompt_type, encoding), prompt_types=(prompt_type,),
                    max_clicks=args.max_clicks, seed=args.seed,
                )
                folder = out / dataset / name.replace("/", "-")
                doc = to_json(result, model=model_info, data=str(data / dataset), extra={"variant": name, "encoding": encoding})
                folder.mkdir(parents=True, exist_ok=True)
                write_json(folder / "results.json", doc)
                records = result.records
                tables["image"].setdefault(dataset, {})[name] = table_rows(records)["all"]
                kept = [r for r in records if not r.get("skipped")]
                tables.setdefault("curves", {}).setdefault(dataset, {})[name] = [
                    round(float(np.mean([_at(r["dice_by_clicks"], k) for r in kept])), 4) for k in range(1, args.max_clicks + 1)
                ] if kept else []
                if dataset == "camus":
                    tables["structures"].setdefault(dataset, {})[name] = table_rows(records, by="name")
                tables["seconds_per_click"].setdefault(dataset, {})[name] = click_seconds(records)
                for case_id in {r["case"] for r in records}:
                    first = next(r for r in records if r["case"] == case_id)
                    if first.get("frames_encoded"):
                        encoder_seconds += first.get("encoder_seconds") or 0.0
                        encoded += int(first["frames_encoded"])
            tables["seconds_per_frame"][dataset] = round(encoder_seconds / encoded, 3) if encoded else None
        if not args.no_video:
            print(f"[{time.perf_counter() - started:7.0f} s] video protocol on the carotid sequence", file=sys.stderr, flush=True)
            cases = load_cases(data / "carotid", "video")
            result = run_video_protocol(
                cases, _factory(model, "video", None), prompt_types=("boundary", "region", "box"),
                clicks=args.video_clicks, window="both", seed=args.seed,
            )
            write_report(result, out / "video", model=model_info, data=str(data / "carotid"))
            tables["video"] = summarize(result)
    tables["seconds_total" if not args.no_image else "seconds_video"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(tables, indent=2))
    (out / "tables.md").write_text("\n".join(markdown(tables)) + "\n")
    plot(tables, out / "dice_vs_clicks.png")
    return tables


def markdown(tables: dict) -> list[str]:
    lines = []
    for dataset, rows in tables["image"].items():
        lines += [f"### {dataset}", "", "| prompt | n | " + " | ".join(f"Dice@{k}" for k in CLICKS) + " | "
                  + " | ".join(f"IoU@{k}" for k in CLICKS) + " | s/click |",
                  "|---|---|" + "---|" * (2 * len(CLICKS) + 1)]
        for name, row in rows.items():
            seconds = tables["seconds_per_click"].get(dataset, {}).get(name)
            lines.append(f"| {name} | {row['n']} | " + " | ".join(f"{row[f'dice@{k}']:.3f}" for k in CLICKS) + " | "
                         + " | ".join(f"{row[f'iou@{k}']:.3f}" for k in CLICKS) + f" | {seconds} |")
        lines.append("")
    for dataset, by_variant in tables.get("structures", {}).items():
        names = sorted({n for rows in by_variant.values() for n in rows})
        lines += [f"### {dataset} per structure (Dice@1 / @3 / @5 / @10)", "",
                  "| prompt | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for variant, rows in by_variant.items():
            cells = [" / ".join(f"{rows[n][f'dice@{k}']:.2f}" for k in CLICKS) if n in rows else "-" for n in names]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    if "video" in tables:
        lines += ["### video protocol, carotid sequence", "",
                  "| variant | mean Dice | mean IoU | interventions | clicks per frame | s/frame |", "|---|---|---|---|---|---|"]
        for variant, row in tables["video"].items():
            lines.append(f"| {variant} | {row['mean_dice']['mean']} | {row['mean_iou']['mean']} | {row['interventions']['mean']} "
                         f"| {row['clicks_per_frame']['mean']} | {row['seconds_per_frame']} |")
        lines.append("")
    lines.append(f"Seconds per encoded frame: {tables['seconds_per_frame']}")
    return lines


def plot(tables: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    datasets = list(tables["image"])
    if not datasets:  # video only: nothing to plot here
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), sharey=True, squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for name, row in tables["image"][dataset].items():
            ks = [k for k in CLICKS]
            style = "-o" if name.startswith("boundary") else ("--s" if name.startswith("region") else ":^")
            ax.plot(ks, [row[f"dice@{k}"] for k in ks], style, label=name, markersize=4)
        ax.set_title(dataset)
        ax.set_xlabel("clicks")
        ax.set_xticks(list(CLICKS))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean Dice")
    axes[0][0].set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{tables['model']['id']}, image protocol: Dice after k clicks")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m SAMUSALib.evaluation.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="litemedsam", help="litemedsam, samusa-lite or a SAMUSA-Lite weights file")
    parser.add_argument("--data", default="../shared/data", help="folder holding busbra/, camus/, carotid/")
    parser.add_argument("--out", default="docs/litemedsam", help="output folder")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--boundary", nargs="+", default=None, help="boundary encodings (default: all)")
    parser.add_argument("--region", nargs="+", default=None, help="region encodings (default: all)")
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--video-clicks", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="first N images per dataset")
    parser.add_argument("--no-video", action="store_true", help="skip the video protocol")
    parser.add_argument("--no-image", action="store_true", help="skip the image protocol (keeps the image tables of an earlier run in --out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-mb", type=int, default=1024, help="embeddings kept across variants")
    args = parser.parse_args(argv)
    tables = run(args)
    print("\n".join(markdown(tables)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
