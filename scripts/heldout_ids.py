"""The images a training config holds out, as `samusa eval --cases` takes them.

Every SAMUSA-Lite config holds out the same share of patients (`holdout`, `seed`;
`training.embeddings.split_by_group`): images no SAMUSA-Lite model was trained on and no
click rule was tuned on, so evaluating on them checks the evaluation sets' in-sample
figures (docs/samusa_lite2.md, "Held-out check of every prompt type"):

    ids=$(.venv/bin/python scripts/heldout_ids.py configs/samusa_lite2.yaml busbra_train)
    .venv/bin/samusa eval --protocol image --data ../shared/data/busbra_train --cases $ids \\
        --model samusa-lite --max-clicks 5 --clicks-at-once both --out heldout_busbra
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from SAMUSALib.training.command import read_config  # noqa: E402
from SAMUSALib.training.data import group_of, group_table  # noqa: E402
from SAMUSALib.training.embeddings import held_out_groups  # noqa: E402
from SAMUSALib.evaluation.datasets import load_cases  # noqa: E402


def held_out_ids(config_path: str) -> dict[str, list[str]]:
    """{data folder name: held-out case ids} for a training config."""
    config = read_config(config_path)
    cases = {}  # folder name -> [(case id, group)]
    for folder in map(Path, config["train"]):
        table = group_table(folder)
        cases[folder.name] = [(case.id, group_of(case.id, table)) for case in load_cases(folder, "image", limit=config.get("limit"))
                              if any(reference[0].any() for reference in case.references.values())]  # as training reads them
    held = held_out_groups({group for pairs in cases.values() for _, group in pairs},
                           float(config.get("holdout", 0.1)), int(config.get("seed", 0)))
    return {name: [case for case, group in pairs if group in held] for name, pairs in cases.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a SAMUSA-Lite training config (configs/samusa_lite2.yaml)")
    parser.add_argument("folder", nargs="?", help="print only this data folder's ids (busbra_train), space-separated")
    args = parser.parse_args(argv)
    ids = held_out_ids(args.config)
    if args.folder:
        if args.folder not in ids:
            parser.error(f"{args.folder} is not among the config's training folders: {', '.join(ids)}")
        print(" ".join(ids[args.folder]))
    else:
        for name, cases in ids.items():
            print(f"{name} ({len(cases)}): {' '.join(cases)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
