"""The `samusa` command: segment files, list models, run the demo.

Errors caused by the input are printed as one line naming the problem and the fix
(exit status 2); nothing is written unless the whole job succeeded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from .errors import InputError, SamusaError

log = logging.getLogger("samusa")

RESOURCES = Path(__file__).resolve().parent.parent / "Resources"
SAMPLE_DIR = RESOURCES / "Samples"
DEMO_INPUT = SAMPLE_DIR / "carotid_cine.nrrd"
DEMO_PROMPTS = SAMPLE_DIR / "carotid_cine_prompts.json"


DICOM_SEG_SUFFIXES = (".dcm", ".dicom")


def _check_output_path(out: Path) -> None:
    if not out.name.endswith(".seg.nrrd") and out.suffix.lower() not in DICOM_SEG_SUFFIXES:
        raise InputError(
            f"output {out} must end with .seg.nrrd (for example {out.stem}.seg.nrrd), or with .dcm for a DICOM SEG"
        )
    if not out.parent.exists():
        raise InputError(f"output folder {out.parent} does not exist; create it first")


def _check_outputs_spare_inputs(outputs: list[Path | None], inputs: list[Path]) -> None:
    """Refuse an output that would replace an input (the image, DICOM or prompts file) or
    land inside an input frames folder: `samusa segment` wrote its overlay over the very
    PNG it segmented, and a DICOM SEG over the source DICOM, and said it had done well."""
    for out in outputs:
        if out is None:
            continue
        if out.is_dir():
            raise InputError(f"output {out} is a folder; name a file in it (for example {out / 'result.seg.nrrd'})")
        for source in inputs:
            if out.exists() and source.exists() and out.samefile(source):
                raise InputError(f"output {out} is the input {source}; writing it would replace the input: choose another name")
            if source.is_dir() and out.resolve().is_relative_to(source.resolve()):
                raise InputError(f"output {out} lies inside the input frames folder {source}: write it elsewhere")


def _check_overlay_path(path: Path | None) -> None:
    if path is None:
        return
    if path.suffix.lower() not in (".png", ".gif"):
        raise InputError(f"overlay {path} must end with .png (contact sheet) or .gif (animation)")
    if not path.parent.exists():
        raise InputError(f"overlay folder {path.parent} does not exist; create it first")


def _progress_bar(total_hint: str, quiet: bool):
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, frame: int, obj_id: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=total_hint, unit="frame", file=sys.stderr)
        bar.update(done - bar.n)
        bar.set_postfix(object=obj_id, frame=frame, refresh=False)

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def run_segment(
    input_path: Path,
    prompts_path: Path,
    out: Path,
    *,
    model: str | None = None,
    device: str = "auto",
    axis: str = "K",
    overlay: Path | None = None,
    direction: str = "both",
    window: tuple[int, int] | None = None,
    quiet: bool = False,
) -> dict:
    """The work behind `samusa segment`; returns a summary for printing and tests."""
    from .batch.job import read_job_source
    from .models import default_model_id, load_model
    from .pipeline import segment

    _check_outputs_spare_inputs([out, overlay], [input_path, prompts_path])
    _check_output_path(out)
    _check_overlay_path(overlay)
    _check_dicom_output(input_path, out)
    frames, prompts, geometry, source = read_job_source(input_path, prompts_path, axis=axis, window=window)

    started = time.perf_counter()
    loaded = load_model(model or default_model_id(), device=device)
    if not loaded.spec.trained:
        log.warning(
            "model %s is UNTRAINED (random weights): the masks only show that the pipeline runs",
            loaded.spec.id,
        )
    load_seconds = time.perf_counter() - started
    update, close = _progress_bar("propagating", quiet)
    try:
        result = segment(frames, prompts, loaded, direction=direction, progress=update)
    finally:
        close()
    written = _write_outputs(out, overlay, geometry, frames, result, prompts, source)
    encoder = result.session.features.stats
    summary = {
        "output": str(written),
        "overlay": str(overlay) if overlay else None,
        "model": loaded.spec.id,
        "trained": loaded.spec.trained,
        "device": str(loaded.device),
        "frames": frames.num_frames,
        "frames_encoded": encoder.calls,
        "frames_propagated": result.report.total,
        "seconds_model_load": round(load_seconds, 2),
        "seconds_propagation": round(result.report.seconds, 2),
        "objects": {
            obj_id: {
                "name": result.names[obj_id],
                "frames_with_mask": int(masks.any(axis=(1, 2)).sum()),
            }
            for obj_id, masks in result.frame_masks.items()
        },
    }
    return summary


def _check_dicom_output(input_path: Path, out: Path) -> None:
    """A DICOM SEG references its DICOM source: refuse it for any other input, before reading."""
    from .dicom.reading import DICOM_SUFFIXES, is_dicom

    dicom = input_path.is_file() and (input_path.suffix.lower() in DICOM_SUFFIXES or is_dicom(input_path))
    if out.suffix.lower() in DICOM_SEG_SUFFIXES and not dicom and input_path.exists():
        raise InputError(
            f"a DICOM SEG output ({out.name}) references a DICOM source, but {input_path.name} is not DICOM; "
            f"write {out.stem}.seg.nrrd instead"
        )


def _write_outputs(out: Path, overlay: Path | None, geometry, frames, result, prompts, source=None) -> Path:
    """Write the .seg.nrrd and the optional overlay so that a failure changes neither.

    Each file is written atomically, but the pair is not: writing the segmentation and
    then failing on the overlay would replace the user's old .seg.nrrd and leave no overlay.
    So the overlay is rendered first into a hidden folder beside its target, then the
    segmentation is written, and only then is the overlay renamed into place.
    """
    from .io import write_segmentation

    def segmentation() -> Path:
        if out.suffix.lower() in DICOM_SEG_SUFFIXES:
            from .dicom.seg import write_dicom_seg

            return write_dicom_seg(out, result.volumes, source, names=result.names, colors=result.colors)
        metadata = source.nrrd_metadata() if source is not None else None
        return write_segmentation(out, result.volumes, geometry, names=result.names, colors=result.colors, metadata=metadata)

    if overlay is None:
        return segmentation()
    from .overlay import write_overlay

    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{overlay.name}.", dir=overlay.parent))
    except OSError as exc:
        raise InputError(f"cannot write into {overlay.parent}: {exc.strerror or exc}; check write permission") from exc
    try:
        points = {obj.id: obj.prompts for obj in prompts.objects}
        staged = write_overlay(
            staging / overlay.name, frames, result.frame_masks, colors=result.colors, names=result.names, points=points
        )
        written = segmentation()
        try:
            if overlay.exists():
                os.chmod(staged, overlay.stat().st_mode & 0o7777)
            os.replace(staged, overlay)
        except OSError as exc:
            raise InputError(
                f"wrote {written}, but could not move the overlay into {overlay}: {exc.strerror or exc}"
            ) from exc
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _print_summary(summary: dict) -> None:
    print(f"wrote {summary['output']}")
    if summary["overlay"]:
        print(f"wrote {summary['overlay']}")
    trained = "" if summary["trained"] else " (UNTRAINED: masks are not meaningful)"
    print(
        f"model {summary['model']}{trained} on {summary['device']}: "
        f"{summary['frames_encoded']} of {summary['frames']} frames encoded, "
        f"{summary['frames_propagated']} propagated in {summary['seconds_propagation']} s"
    )
    for obj_id, info in summary["objects"].items():
        print(f"  object {obj_id} ({info['name']}): mask on {info['frames_with_mask']} frames")


def cmd_segment(args: argparse.Namespace) -> int:
    from .batch.cases import is_batch

    if is_batch(args.input, args.out):
        from .batch.segment import cmd_batch
        from .models import default_model_id

        if args.overlay:  # it was ignored without a word
            raise InputError(
                "--overlay draws one run's masks; a batch writes one .seg.nrrd per case into its --out folder. "
                "Leave --overlay out, and run `samusa segment CASE --prompts P --out X.seg.nrrd --overlay X.png` "
                "on a case to see its overlay"
            )
        args.batch_started = True
        return cmd_batch(args, model=args.model or default_model_id())
    if not args.prompts or not args.out:
        raise InputError("segment needs --prompts FILE and --out FILE.seg.nrrd (or a folder, glob or manifest of many inputs)")
    window = tuple(args.window) if args.window else None
    summary = run_segment(
        Path(args.input[0]),
        Path(args.prompts),
        Path(args.out),
        model=args.model,
        device=args.device,
        axis=args.axis,
        overlay=Path(args.overlay) if args.overlay else None,
        direction=args.direction,
        window=window,  # type: ignore[arg-type]
        quiet=args.quiet,
    )
    _print_summary(summary)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not DEMO_INPUT.exists() or not DEMO_PROMPTS.exists():
        raise InputError(
            f"the bundled sample is missing ({DEMO_INPUT}); run samusa from a full checkout of the repository"
        )
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"SAMUSA demo: {DEMO_INPUT.name} with prompts {DEMO_PROMPTS.name} (see {SAMPLE_DIR / 'README.md'})")
    summary = run_segment(
        DEMO_INPUT,
        DEMO_PROMPTS,
        out_dir / "carotid_cine.seg.nrrd",
        model=args.model,
        device=args.device,
        overlay=out_dir / "carotid_cine_overlay.png",
        quiet=args.quiet,
    )
    _print_summary(summary)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import cache_dir, describe_checkpoint, list_models

    if args.show:
        print(json.dumps(describe_checkpoint(args.show), indent=2, default=str))
        return 0
    print(f"cache folder: {cache_dir()}  (set SAMUSA_CACHE_DIR to change it)")
    for info in list_models():
        where = info.get("cached") or ("built in memory" if not info.get("url") else "not downloaded")
        trained = "trained" if info.get("trained") else "UNTRAINED"
        prompts = ",".join(sorted(info.get("prompt_types", [])))
        print(f"{info['id']:<18} {trained:<9} prompts: {prompts:<22} {where}")
        if args.verbose:
            print(f"    {info.get('description', '')}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import markdown, memory_markdown, plot, run_bench, run_memory_bench

    if args.lengths is None:
        args.lengths = [8, 16] if args.quick else [30, 100, 300]
    if args.lite:  # the CPU default model against its FLOP floor (SAMUSALib/bench_lite.py)
        from .bench_lite import lite_markdown, run_lite_bench

        results = run_lite_bench(models=[args.model] if args.model else ("samusa-lite", "litemedsam"),
                                 frames=max(args.lengths), progress=lambda message: print(f"bench: {message}", file=sys.stderr))
        print(lite_markdown(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    if args.vanilla_init_only and not args.memory_only:
        print("samusa bench: --vanilla-init-only only applies with --memory-only", file=sys.stderr)
        return 2
    if args.memory_only:
        results = run_memory_bench(
            model=args.model or "test-tiny", device=args.device, frames=max(args.lengths),
            vanilla_propagates=not args.vanilla_init_only,
            progress=lambda message: print(f"bench: {message}", file=sys.stderr),
        )
        print(memory_markdown(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    if args.quick:
        lengths, height, width, volume = args.lengths, 240, 320, 16
    elif args.full:
        lengths, height, width, volume = [30, 100, 300], 480, 640, 128
    else:
        lengths, height, width, volume = args.lengths, 480, 640, 128
    if args.volume_slices is not None:
        volume = args.volume_slices
    models = [args.model] if args.model else (["random:sam2.1-tiny", "random:sam2.1-small", "random:sam2.1-base-plus"] if args.full else ["test-tiny"])
    everything = []
    for model in models:
        results = run_bench(
            model=model, device=args.device, lengths=lengths, height=height, width=width,
            volume_slices=volume, progress=lambda message: print(f"bench: {message}", file=sys.stderr),
            stage_frames=2 if args.quick else None,
        )
        everything.append(results)
        print(markdown(results))
        if args.plot:
            path = Path(args.plot if len(models) == 1 else f"{Path(args.plot).stem}_{model}{Path(args.plot).suffix}")
            if plot(results, path) is None:
                print("(no plot: matplotlib is not installed)", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(everything[0] if len(everything) == 1 else everything, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation.command import cmd_eval as run

    return run(args)


def cmd_train(args: argparse.Namespace) -> int:
    from .training.command import cmd_train as run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samusa", description="Interactive ultrasound segmentation with SAM2.")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment an image, cine or volume from prompts")
    seg.add_argument("input", nargs="+", help="NRRD/NIfTI/MHA image, ultrasound DICOM, a folder of PNG/JPEG frames, or a video file; "
                     "several inputs, a folder of them with --out FOLDER, a quoted glob or a manifest .csv/.json run as a batch on Dask")
    seg.add_argument("--prompts", help="prompts JSON or a Slicer .mrk.json markups file (batch: one for all, or a folder of <case>.json)")
    seg.add_argument("--out", help="output segmentation: .seg.nrrd, or .dcm for a DICOM SEG of a DICOM input (batch: the output folder)")
    seg.add_argument("--model", default=None, help="model id (see `samusa models`) or a checkpoint path")
    seg.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cuda, mps or cpu")
    seg.add_argument("--axis", default="K", type=str.upper, choices=["I", "J", "K"], help="frames along this image axis (K: a cine's frames)")
    seg.add_argument("--overlay", default=None, help="also write masks over frames as a .png contact sheet or .gif")
    seg.add_argument("--direction", default="both", choices=["both", "forward", "backward"])
    seg.add_argument("--window", nargs=2, type=int, metavar=("START", "END"), help="temporal window for every object (inclusive)")
    seg.add_argument("--quiet", action="store_true", help="no progress bar")
    from .batch.options import add_arguments as add_batch_arguments

    add_batch_arguments(seg, title="many inputs (a folder, a glob, several files or a manifest .csv/.json)",
                        workers_help="Dask LocalCluster workers, one model each (default: the CPUs, at most one per case)")
    seg.set_defaults(func=cmd_segment)

    demo = sub.add_parser("demo", help="segment the bundled ultrasound cine with its sample prompts")
    demo.add_argument("--out-dir", default="samusa-demo", help="folder for the .seg.nrrd and the overlay")
    demo.add_argument("--model", default=None)
    demo.add_argument("--device", default="auto")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="time the SAMUSA session against the official SAM2 video predictor")
    size = bench.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI size: test-tiny, 8 and 16 frames of 240x320")
    size.add_argument("--full", action="store_true", help="SAM2.1 tiny/small/base+ at 1024 px (random weights), for a GPU")
    bench.add_argument("--lengths", nargs="+", type=int, default=None,
                       help="loop lengths (frames of 480x640; default 30 100 300, with --quick 8 16)")
    bench.add_argument("--model", default=None, help="model id; default test-tiny (or the SAM2.1 sizes with --full)")
    bench.add_argument("--volume-slices", type=int, default=None, help="slices of the 3D volume case (0: none)")
    bench.add_argument("--memory-only", action="store_true", help="only peak memory, for the longest of --lengths")
    bench.add_argument("--lite", action="store_true", help="the CPU default model (and LiteMedSAM) against its FLOP floor, "
                       "fast engine and PyTorch baseline, one loop of the longest of --lengths")
    bench.add_argument(
        "--vanilla-init-only", action="store_true",
        help="with --memory-only: stop the official predictor after init_state (its peak is then a lower bound)",
    )
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--json", default=None, help="write all figures to this JSON file")
    bench.add_argument("--plot", default=None, help="PNG plot of time against loop length")
    bench.set_defaults(func=cmd_bench)

    from .evaluation.command import add_arguments as add_eval_arguments

    evaluate = sub.add_parser("eval", help="simulated-user evaluation (image, video or volume protocol) with a report")
    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    from .training.command import add_arguments as add_train_arguments

    train = sub.add_parser("train", help="fine-tune SAMUSA-Lite (CPU) or SAM2 from a YAML config")
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    models = sub.add_parser("models", help="list known models and where they are cached")
    models.add_argument("--verbose", action="store_true")
    models.add_argument("--show", metavar="CHECKPOINT", help="print what a checkpoint file says it was trained for and on")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except SamusaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if getattr(args, "batch_started", False):
            print("interrupted: the cases finished so far are kept; run the same command again to do the rest",
                  file=sys.stderr)
        elif args.func is cmd_train:
            print("interrupted: a state saved before (state.pt in the run's out folder) is kept; run the same "
                  "command again to continue from it (without one, the run starts again)", file=sys.stderr)
        else:
            print("interrupted: nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
