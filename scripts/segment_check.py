"""The check issue 20 says it will run: `samusa segment` on single images, one prompts file
per image and prompt, no earlier clicks, Dice against the reference.

    .venv/bin/python scripts/segment_check.py ../shared/data/busbra_train --out /tmp/check \
        --cases $(.venv/bin/python scripts/heldout_ids.py configs/samusa_lite2.yaml busbra_train)

Per object of every case: N boundary points (`--points`) placed on the reference's border
as the evaluation's at-once user places them (`--layout`, same seed and start, so the Dice
is the evaluation's "boundary at once" at k = N); the reference's box; and region clicks
as the issue gives them (`--region K`): the first in the object's deepest point, each
next one in the largest error of the previous run's mask, every run given all the clicks
so far (the evaluation's "region at once" at k = 1..K). Each is written as a prompts JSON and run through `samusa segment IMAGE --prompts P.json --out X.seg.nrrd`
in a fresh process, the way a user runs it. `--orientation stored` (default) runs the
image file as it is stored; where the evaluation transposes it (CAMUS's PNGs, stored with
the apex on the left, `shared/data/PROVENANCE.md`) the prompts and the reference are
transposed with it. `--orientation evaluated` writes the frame the evaluation reads
(apex up for CAMUS) to an NRRD and runs that. Prints mean Dice per prompt and writes
``rows.json`` (case, object, prompt, Dice) to `--out`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SAMUSALib.evaluation.clicks import LAYOUTS, SimulatedUser, boundary_layout, box_click, case_rng  # noqa: E402
from SAMUSALib.evaluation.datasets import load_cases  # noqa: E402
from SAMUSALib.evaluation.giving import merged_kwargs  # noqa: E402
from SAMUSALib.evaluation.metrics import dice  # noqa: E402
from SAMUSALib.io import read_segmentation  # noqa: E402

SAMUSA = str(Path(sys.executable).with_name("samusa"))


def prompts_for(reference: np.ndarray, key: str, points: int, layout: str) -> dict[str, dict]:
    """The frame-0 prompt of each kind, in the evaluated frame's (x, y)."""
    placed = boundary_layout(reference, points, layout, np.random.default_rng(case_rng(0, key).integers(2**32)))
    return {
        f"boundary{points}": {"frame": 0, "boundary": [[float(x), float(y)] for x, y in placed]},
        "box": {"frame": 0, "box": [float(v) for v in box_click(reference).box]},
    }


def transposed(prompt: dict) -> dict:
    """A prompt in the transposed frame's (x, y): x and y swap."""
    out = {"frame": prompt["frame"]}
    for kind in ("boundary", "positive", "negative"):
        if kind in prompt:
            out[kind] = [[y, x] for x, y in prompt[kind]]
    if "box" in prompt:
        x0, y0, x1, y1 = prompt["box"]
        out["box"] = [y0, x0, y1, x1]
    return out


def segment(image: str, prompt: dict, stem: Path, model: str | None) -> np.ndarray:
    """`samusa segment` in its own process; the mask as (rows, columns) of the image."""
    prompts, seg = stem.with_suffix(".json"), stem.with_suffix(".seg.nrrd")
    prompts.write_text(json.dumps({"objects": [{"id": 1, "name": "object", "prompts": [prompt]}]}))
    command = [SAMUSA, "segment", image, "--prompts", str(prompts), "--out", str(seg), "--quiet"]
    if model:
        command += ["--model", model]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"samusa segment failed on {image}:\n{done.stderr[-2000:]}")
    masks, _, _ = read_segmentation(seg)
    return masks[1][0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="an image dataset folder the evaluation reads (images/ with masks/ or labels/)")
    parser.add_argument("--out", required=True, help="folder for the prompts files, the segmentations and rows.json")
    parser.add_argument("--cases", nargs="*", help="case ids (default: all)")
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--layout", choices=LAYOUTS, default="even")
    parser.add_argument("--region", type=int, default=3, help="region clicks, 0 for none (default 3)")
    parser.add_argument("--orientation", choices=["stored", "evaluated"], default="stored")
    parser.add_argument("--model", help="model id (default: the default model)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in load_cases(args.data, "image", ids=args.cases):
        swap = bool(case.meta.get("transposed")) and args.orientation == "stored"
        if args.orientation == "stored":
            image = case.meta["image"]
        else:
            image = str(out / f"{case.id}.nrrd")
            frame = np.asarray(case.array[0])
            sitk.WriteImage(sitk.GetImageFromArray(frame, isVector=frame.ndim == 3), image)
        for obj in case.objects:
            reference = case.reference_frames(obj)[0]
            if not reference.any():  # a structure this frame lacks (as the evaluation skips it)
                continue
            for name, prompt in prompts_for(reference, f"{case.id}|{obj}|boundary at once", args.points, args.layout).items():
                mask = segment(image, transposed(prompt) if swap else prompt, out / f"{case.id}_{obj}_{name}", args.model)
                rows.append((case.id, obj, name, float(dice(mask, reference.T if swap else reference))))
            user = SimulatedUser("region", reference, case_rng(0, case.id, obj, "region", 0))
            mask = None
            for k in range(1, args.region + 1):
                if user.next(mask if user.clicks else None) is None:
                    break
                prompt = {"frame": 0, **merged_kwargs(user.clicks)}
                mask = segment(image, transposed(prompt) if swap else prompt, out / f"{case.id}_{obj}_region{k}", args.model)
                mask = mask.T if swap else mask  # the next click is chosen in the evaluated frame
                rows.append((case.id, obj, f"region{k}", float(dice(mask, reference))))
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    for name in dict.fromkeys(r[2] for r in rows):
        values = [r[3] for r in rows if r[2] == name]
        print(f"{name}: mean Dice {np.mean(values):.4f} over {len(values)} objects")


if __name__ == "__main__":
    main()
