"""`samusa eval`: run a simulated-user protocol on a dataset and write the report; with
several ``--model`` (or encodings), compare them side by side (`.compare`).

Kept free of heavy imports at module level: ``samusa --help`` builds this parser.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ..errors import InputError

log = logging.getLogger("samusa")

PROTOCOLS = ("image", "video", "volume")
DEFAULT_PROMPTS = {
    "image": "boundary,region,box,box+region",
    "video": "boundary,region",
    "volume": "box",
}
PROMPT_ALIASES = {"box+clicks": "box+region", "points": "region", "region-points": "region"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS, help="image: clicks on single frames; video: propagate and correct; volume: prompt the middle slice, propagate both ways")
    parser.add_argument("--data", required=True, help="dataset folder (images/+masks/, images/+labels/, a sequence folder, volumes with labels) or 'phantom[:N]', or for the video protocol 'pseudo-cine:[N:]FOLDER' (loops made from N real images with masks)")
    parser.add_argument("--model", action="append", default=None, metavar="MODEL", help="model id (see `samusa models`) or a checkpoint path (default: the best model here without a download, as for `samusa segment`: SAMUSA-Lite unless a SAM2.1 checkpoint is cached); repeat to compare models side by side")
    parser.add_argument("--boundary-encoding", action="append", default=None, metavar="E", help="compare these encodings of boundary clicks, for models that need one (LiteMedSAM: extent-box, curve-mask, curve, fit, fit+curve); repeat or comma-separate")
    parser.add_argument("--region-encoding", action="append", default=None, metavar="E", help="compare these encodings of region clicks (LiteMedSAM: points, search); repeat or comma-separate")
    parser.add_argument("--prompt", action="append", default=None, metavar="TYPE", help="prompt type(s): boundary, region, box, box+region, box+boundary; repeat or comma-separate (default per protocol: image %s; video %s; volume %s)" % tuple(DEFAULT_PROMPTS[p] for p in PROTOCOLS))
    parser.add_argument("--out", required=True, help="output folder for results.json, summary.md and the PNG plots")
    parser.add_argument("--force", action="store_true", help="replace the report an earlier run left in --out")
    parser.add_argument("--max-clicks", type=int, default=10, help="image protocol: clicks per case (default 10)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.85, 0.90], help="image protocol: IoU targets for clicks-to-reach (default 0.85 0.90)")
    parser.add_argument("--clicks", type=int, default=5, help="video/volume protocols: clicks per prompted frame (default 5; a box is one)")
    parser.add_argument("--clicks-at-once", choices=["off", "on", "both"], default="off", help="image and video protocols: give a frame's clicks in one prompt with no earlier prediction on it, as a prompts file or markups node does (on), one at a time with the previous mask fed back (off, default), or both")
    parser.add_argument("--boundary-layout", choices=["even", "clustered", "furthest"], default="even", help="image protocol, boundary points given at once: spread evenly along the border (default), bunched on one arc of it, or each furthest from the others")
    parser.add_argument("--boundary-jitter", type=float, default=0.0, metavar="PX", help="image protocol: every boundary click lands up to PX pixels off the border point it aims at, as a hand does (default 0)")
    parser.add_argument("--iou-threshold", type=float, default=0.75, help="video protocol: IoU below which a frame is corrected (default 0.75)")
    parser.add_argument("--max-interventions", type=int, default=7, help="video protocol: corrections per loop (default 7)")
    parser.add_argument("--window", choices=["off", "on", "both"], default=None, help="temporal window from the reference's visible frames (default: both for video, off for volume)")
    parser.add_argument("--direction", choices=["forward", "both"], default="forward", help="video protocol: propagation direction (default forward)")
    parser.add_argument("--start", choices=["middle", "largest"], default="middle", help="volume protocol: slice to prompt (default middle)")
    parser.add_argument("--axis", default="K", type=str.upper, choices=["I", "J", "K"], help="volume protocol: slice along this image axis")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N cases (in name order)")
    parser.add_argument("--cases", nargs="+", default=None, metavar="ID", help="use only these cases")
    parser.add_argument("--objects", nargs="+", type=int, default=None, metavar="N", help="evaluate only these object ids / label values (default: every object)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated users (boundary user's first click) and of test-tiny's weights")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    parser.add_argument("--no-plots", action="store_true", help="write JSON and markdown only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    from ..batch.options import add_arguments as add_batch_arguments

    add_batch_arguments(parser, title="cases on Dask (distributed evaluation)", resume=False,
                        workers_help="run the cases on a Dask LocalCluster of N workers (default 1: in this process)")


def _prompt_types(values: list[str] | None, protocol: str) -> list[str]:
    from .clicks import PROMPT_TYPES

    raw = values or [DEFAULT_PROMPTS[protocol]]
    out: list[str] = []
    for value in raw:
        for name in value.split(","):
            name = PROMPT_ALIASES.get(name.strip().lower(), name.strip().lower())
            if not name:
                continue
            if name not in PROMPT_TYPES:
                raise InputError(f"unknown prompt type {name!r}; use {', '.join(PROMPT_TYPES)}")
            if name not in out:
                out.append(name)
    return out


def _progress(quiet: bool, description: str):
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, label: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="case", file=sys.stderr)
        bar.set_postfix_str(label[:40], refresh=False)
        bar.update(done - bar.n)
        if done == 0:
            bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def _names(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated option values, in order, without repeats."""
    return list(dict.fromkeys(v.strip() for value in values or [] for v in value.split(",") if v.strip()))


def _run_protocol(args: argparse.Namespace, cases, factory, prompt_types: list[str], progress):
    from .protocols import run_image_protocol, run_video_protocol, run_volume_protocol

    window = args.window or ("both" if args.protocol == "video" else "off")
    runner = {"image": run_image_protocol, "video": run_video_protocol, "volume": run_volume_protocol}[args.protocol]
    return runner(cases, factory, progress=progress, **_protocol_arguments(args, args.protocol, prompt_types, window))


def run_eval(args: argparse.Namespace) -> dict:
    """The work behind `samusa eval`; returns the written paths and the summary."""
    from ..models import default_model_id
    from .datasets import load_cases
    from .report import write_report

    protocol = args.protocol
    models = _names(args.model) or [default_model_id()]
    prompt_types = _prompt_types(args.prompt, protocol)
    for name in ("max_clicks", "clicks", "max_interventions"):
        value = getattr(args, name)
        if value < (0 if name == "max_interventions" else 1):
            raise InputError(f"--{name.replace('_', '-')} must be at least {0 if name == 'max_interventions' else 1}; got {value}")
    if not getattr(args, "boundary_jitter", 0.0) >= 0:
        raise InputError(f"--boundary-jitter must be 0 or more pixels; got {args.boundary_jitter}")
    if not 0.0 < args.iou_threshold <= 1.0 or not all(0.0 < t <= 1.0 for t in args.thresholds):
        raise InputError("IoU thresholds must lie in (0, 1]")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    earlier = _earlier_report(out, getattr(args, "force", False))
    cases = load_cases(args.data, protocol, ids=args.cases, limit=args.limit, axis=args.axis, seed=args.seed)
    if args.objects:
        wanted = set(args.objects)
        for case in cases:
            case.references = {k: v for k, v in case.references.items() if k in wanted}
        cases = [case for case in cases if case.references]
    if not cases:
        raise InputError(f"no cases (with the objects asked for) found in {args.data}")
    for path in earlier:  # --force, and the data read: the earlier report goes
        path.unlink()

    if len(models) > 1 or args.boundary_encoding or args.region_encoding:
        return run_comparison(args, models, cases, prompt_types)

    started = time.perf_counter()
    window = args.window or ("both" if protocol == "video" else "off")
    arguments = _protocol_arguments(args, protocol, prompt_types, window)
    extra: dict = {}
    if (getattr(args, "workers", None) or 1) > 1 or getattr(args, "scheduler", None):
        from ..batch.evaluate import evaluate_distributed

        result, model_info, failures = evaluate_distributed(
            cases, protocol=protocol, model=models[0], device=args.device, seed=args.seed, arguments=arguments,
            workers=args.workers, scheduler=args.scheduler, quiet=args.quiet, timeout=args.timeout,
        )
        for failure in failures:
            log.error("case %s failed: %s", failure["case"], failure["message"])
        if model_info is None:
            raise InputError(f"every case failed; the first: {failures[0]['case']}: {failures[0]['message']}")
        model_info["seed"] = args.seed
        extra["failed_cases"] = failures
    else:
        from ..models import load_model
        from .protocols import session_factory

        model = load_model(models[0], device=args.device, seed=args.seed)
        update, close = _progress(args.quiet, f"eval {protocol}")
        try:
            result = _run_protocol(args, cases, session_factory(model), prompt_types, update)
        finally:
            close()
        model_info = {"id": model.spec.id, "trained": bool(model.spec.trained), "device": str(model.device), "seed": args.seed}
    if not model_info["trained"]:
        log.warning("model %s is UNTRAINED (random weights): the scores only show that the harness runs", model_info["id"])
    written = write_report(
        result, out, model=model_info, data=str(args.data), plots=not args.no_plots,
        extra={"seconds_total": round(time.perf_counter() - started, 2), **extra},
    )
    return {"written": written, "result": result, "cases": len(cases), "failed": extra.get("failed_cases", [])}


def _protocol_arguments(args: argparse.Namespace, protocol: str, prompt_types: list[str], window: str) -> dict:
    """The protocol function's keyword arguments (the same for a serial and a distributed run)."""
    at_once = {"off": False, "on": True, "both": "both"}[getattr(args, "clicks_at_once", None) or "off"]
    if protocol == "image":
        return {"prompt_types": prompt_types, "max_clicks": args.max_clicks, "thresholds": args.thresholds, "seed": args.seed,
                "at_once": at_once, "boundary_layout": getattr(args, "boundary_layout", None) or "even",
                "boundary_jitter": float(getattr(args, "boundary_jitter", 0.0) or 0.0)}
    if protocol == "video":
        return {"prompt_types": prompt_types, "clicks": args.clicks, "iou_threshold": args.iou_threshold,
                "max_interventions": args.max_interventions, "window": window, "direction": args.direction, "seed": args.seed,
                "at_once": at_once}
    return {"prompt_types": prompt_types, "clicks": args.clicks, "window": window, "start": args.start, "seed": args.seed}


def run_comparison(args: argparse.Namespace, models: list[str], cases, prompt_types: list[str]) -> dict:
    """Every model (and encoding) on the same cases: a full report per variant in its own
    folder, and comparison.json / comparison.md / dice_vs_clicks.png side by side."""
    from ..models import load_model
    from . import compare
    from .protocols import session_factory
    from .report import summarize, write_json, write_report

    out = Path(args.out)
    boundary, region = _names(args.boundary_encoding), _names(args.region_encoding)
    compare.check_encoding_names(boundary, region)
    started = time.perf_counter()
    summaries: dict[str, dict] = {}
    variants: list[dict] = []
    written: dict = {"plots": [], "variants": {}}
    records = 0
    untrained: list[str] = []
    for name in models:
        model = load_model(name, device=args.device, seed=args.seed)
        model_info = {"id": model.spec.id, "trained": bool(model.spec.trained), "device": str(model.device), "seed": args.seed}
        if not model.spec.trained:
            untrained.append(model.spec.id)
            log.warning("model %s is UNTRAINED (random weights): the scores only show that the harness runs", model.spec.id)
        with compare.frames_encoded_once(model):
            for variant in compare.variants_for(name, model, boundary, region):
                if variant.name in summaries:
                    raise InputError(f"{variant.name} is asked for twice")
                update, close = _progress(args.quiet, f"eval {variant.name}")
                try:
                    result = _run_protocol(args, cases, compare.factory_for(model, variant, session_factory(model)),
                                           prompt_types, update)
                finally:
                    close()
                encodings = {"boundary": variant.boundary_encoding, "region": variant.region_encoding}
                paths = write_report(result, out / variant.folder, model=model_info, data=str(args.data),
                                     plots=not args.no_plots, extra={"variant": variant.name, "encodings": encodings})
                written["variants"][variant.name] = paths
                summaries[variant.name] = summarize(result)
                variants.append({"name": variant.name, "folder": variant.folder, "model": model_info, "encodings": encodings})
                records += len(result.records)
    table = compare.rows(args.protocol, summaries)
    doc = {"protocol": args.protocol, "data": str(args.data), "cases": len(cases), "prompt_types": prompt_types,
           "variants": variants, "rows": table, "summaries": summaries,
           "seconds_total": round(time.perf_counter() - started, 2)}
    out.mkdir(parents=True, exist_ok=True)
    written["json"] = write_json(out / "comparison.json", doc)
    written["markdown"] = out / "comparison.md"
    written["markdown"].write_text(compare.markdown(args.protocol, table, str(args.data), untrained))
    if args.protocol == "image" and not args.no_plots:
        picture = compare.plot(summaries, out / "dice_vs_clicks.png")
        written["plots"] = [picture] if picture is not None else []
    return {"written": written, "records": records, "cases": len(cases), "variants": [v["name"] for v in variants]}


def cmd_eval(args: argparse.Namespace) -> int:
    outcome = run_eval(args)
    written = outcome["written"]
    if "variants" in outcome:
        print(f"compared {len(outcome['variants'])} variants ({', '.join(outcome['variants'])}) "
              f"on {outcome['cases']} cases ({outcome['records']} records)")
    else:
        print(f"evaluated {outcome['cases']} cases ({len(outcome['result'].records)} records)")
    for failure in outcome.get("failed", []):
        print(f"case {failure['case']} failed: {failure['message']}")
    print(f"wrote {written['json']}")
    print(f"wrote {written['markdown']}")
    for path in written["plots"]:
        print(f"wrote {path}")
    return 1 if outcome.get("failed") else 0


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (``python -m SAMUSALib.evaluation.command``); `samusa eval` adds
    the same arguments to the main command."""
    parser = argparse.ArgumentParser(prog="samusa eval", description="Simulated-user evaluation of SAMUSA.")
    add_arguments(parser)
    return parser


def main(argv=None) -> int:
    from ..errors import SamusaError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return cmd_eval(args)
    except SamusaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


#: What an evaluation writes into --out (report.py, compare.py, trackers.py).
REPORT_FILES = ("results.json", "summary.md", "comparison.json", "comparison.md", "tables.md", "iou_vs_clicks.png",
                "overlays.png", "iou_per_frame.png", "iou_per_slice.png", "dice_vs_clicks.png", "dice_per_frame.png")


def _earlier_report(out: Path, force: bool) -> list[Path]:
    """The files of a report an earlier run left in --out (and in its variants' folders,
    where it compared models). Refused without --force: the earlier report was replaced
    without a word, and the plots the new run did not draw stayed beside its results
    (BUS-BRA overlays under CAMUS figures). The caller removes them once the data is read."""
    folders = [out, *(sub for sub in sorted(out.iterdir()) if (sub / "results.json").is_file())] if out.is_dir() else []
    earlier = [folder / name for folder in folders for name in REPORT_FILES if (folder / name).is_file()]
    if earlier and not force:
        names = ", ".join(str(path.relative_to(out)) for path in earlier[:4]) + (", ..." if len(earlier) > 4 else "")
        raise InputError(f"{out} already holds an evaluation report ({names}): give another --out, "
                         "or add --force to replace it")
    return earlier
