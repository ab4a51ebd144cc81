"""Training images from the dataset layouts the evaluation reads, grouped by patient.

Splits must keep every image of a patient (BUS-BRA's `Case` column) or acquisition
(the carotid `frames.csv`) on one side, or held-out figures measure memory of the
patient rather than segmentation. Without such a table, CAMUS-style names
(`patient0027_2CH_ED`) give the patient; anything else is its own group.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError

_PATIENT = re.compile(r"^(patient\d+)", re.IGNORECASE)


def group_table(folder: Path) -> dict[str, str]:
    """Image stem -> group, from the CSV tables the shared datasets carry."""
    table: dict[str, str] = {}
    busbra = folder / "bus_data.csv"
    if busbra.is_file():
        with busbra.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("ID") and row.get("Case"):
                    table[row["ID"]] = f"patient{row['Case']}"
    frames = folder / "frames.csv"
    if frames.is_file():
        with frames.open(newline="") as handle:
            for row in csv.DictReader(handle):
                name = row.get("file") or row.get("index")
                group = row.get("acquisition")
                if name and group:
                    table[Path(name).stem] = group
    return table


def group_of(case_id: str, table: dict[str, str]) -> str:
    if case_id in table:
        return table[case_id]
    match = _PATIENT.match(case_id)
    return match.group(1).lower() if match else case_id


def training_items(folder: str | Path, *, limit: int | None = None) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """(item id, group, frame, mask) for every object of every image in `folder`
    (images/ with masks/ or labels/); frames as the session sees them (FrameSource)."""
    from ..evaluation.datasets import load_cases

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"training data folder {folder} does not exist")
    table = group_table(folder)
    for case in load_cases(folder, "image", limit=limit):
        frame = case.frame_source().frame(0)
        for obj_id, reference in case.references.items():
            mask = reference[0]
            if not mask.any():
                continue
            suffix = "" if len(case.references) == 1 else f"#{obj_id}"
            yield f"{folder.name}/{case.id}{suffix}", group_of(case.id, table), frame, mask
