"""Record, for every boundary-point prompt of a `samusa eval` run, the candidate masks the
click rules choose between, so that a new gate can be replayed on the records before it is
run end to end (docs/samusa_lite2.md: each rule of `click_rules` was found this way).

    .venv/bin/python scripts/record_boundary_candidates.py OUT.json --points 3 -- \
        --protocol image --data ../shared/data/busbra --model samusa-lite --prompt boundary \
        --max-clicks 3 --clicks-at-once both --out /tmp/eval --force --no-plots --quiet

Per prompt with ``--points`` boundary points (alone: no box, no region clicks), one record:
how the shipped mask was made, the simulated user's regime (``one``: one at a time,
``once``: at once), and for each candidate (``own``: the model's mask of all the points,
``pair``: its mask of the outer two, ``fit``: LiteMedSAM's fit, ``shown``: what the user
got) its Dice against the reference, area, border contrast, mean contour distance to all
the points and to the points between the outer two, and the widest empty angle round its
centroid (degrees). A research aid: it wraps the evaluation and the backend from outside,
so the rules themselves stay untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Callable

import numpy as np
import torch

from SAMUSALib import engine
from SAMUSALib.backends.litemedsam import encodings
from SAMUSALib.backends.litemedsam.click_rules import ClickRules, outer_pair
from SAMUSALib.evaluation import protocols
from SAMUSALib.evaluation.metrics import dice

CANDIDATES = ("own", "pair", "fit", "shown")


def widest_gap(points: np.ndarray, mask: np.ndarray) -> float:
    """The widest angle (degrees) between neighbouring points seen from the mask's centroid."""
    if not mask.any():
        return 0.0
    rows, cols = np.nonzero(mask)
    angles = np.sort(np.arctan2(points[:, 1] - rows.mean(), points[:, 0] - cols.mean()) % (2 * np.pi))
    return float(np.degrees(np.diff(np.append(angles, angles[0] + 2 * np.pi)).max()))


def install(records: list[dict], points_wanted: int) -> Callable[[], None]:
    """Wrap the simulated user (to know the reference), `Session.add_prompt` (to know the
    regime) and `ClickRules._arbitrate` (to record the candidates); returns what undoes it."""
    context: dict = {}
    originals = (protocols.SimulatedUser, engine.Session.add_prompt, ClickRules._arbitrate)

    def restore() -> None:
        protocols.SimulatedUser, engine.Session.add_prompt, ClickRules._arbitrate = originals

    class RecordingUser(protocols.SimulatedUser):
        def __init__(self, prompt_type, reference, *args, **kwargs):
            context["reference"] = np.asarray(reference, dtype=bool)
            super().__init__(prompt_type, reference, *args, **kwargs)

    protocols.SimulatedUser = RecordingUser
    add_prompt = engine.Session.add_prompt

    def recording_add_prompt(self, *args, **kwargs):
        context["regime"] = "once" if kwargs.get("replace") else "one"
        return add_prompt(self, *args, **kwargs)

    engine.Session.add_prompt = recording_add_prompt
    arbitrate = ClickRules._arbitrate

    def recording_arbitrate(self, prompt, decoded, decoder):
        shown = arbitrate(self, prompt, decoded, decoder)
        if (len(prompt.boundary) != points_wanted or len(prompt.positive) or len(prompt.negative)
                or prompt.box is not None or "reference" not in context):
            return shown
        points = np.asarray(prompt.boundary, dtype=float).reshape(-1, 2)
        outer = outer_pair(points)
        inner = points[~(points[:, None] == outer[None]).all(-1).any(-1)]
        fit = encodings.encode_boundary(decoder, prompt.boundary, "fit", box=None)
        pair = self._native(dataclasses.replace(prompt, boundary=outer), None)
        masks = decoder.masks(torch.cat([decoded.logits[0], pair.logits[0], fit.logits[0], shown.logits[0].float()]))
        contrasts = self._contrasts(prompt.frame, masks)
        near_all = encodings.contour_distances(masks, points)
        near_inner = encodings.contour_distances(masks, inner) if len(inner) else [None] * len(masks)
        record = {"regime": context.get("regime"), "how": shown.how, "reference_area": int(context["reference"].sum())}
        for name, mask, contrast, d_all, d_inner in zip(CANDIDATES, masks, contrasts, near_all, near_inner):
            record[name] = {
                "dice": float(dice(mask, context["reference"])),
                "area": int(mask.sum()),
                "contrast": float(contrast),
                "distance": float(d_all),
                "distance_inner": None if d_inner is None else float(d_inner),
                "widest_gap": widest_gap(points, mask),
            }
        records.append(record)
        return shown

    ClickRules._arbitrate = recording_arbitrate
    return restore


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, eval_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="JSON file for the records")
    parser.add_argument("--points", type=int, default=3, help="record prompts with this many boundary points (default 3)")
    args = parser.parse_args(ours)
    if args.points < 2:
        parser.error("--points must be at least 2 (arbitration needs two points)")
    records: list[dict] = []
    restore = install(records, args.points)
    from SAMUSALib.cli import main as samusa

    try:
        return samusa(["eval", *eval_args])
    finally:
        restore()
        with open(args.out, "w") as handle:
            json.dump(records, handle)
        print(f"{len(records)} prompts recorded in {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
