"""Evaluation harness: simulated users, protocols, metrics, datasets and reports.

- :mod:`.metrics`: Dice, IoU, HD95, ASSD (spacing-aware, empty masks explicit), STAPLE.
- :mod:`.clicks`: simulated region / boundary / box users (SAMUSA paper, section 3.2).
- :mod:`.datasets`: image/mask pairs, CAMUS label maps, sequences, volumes, phantoms.
- :mod:`.protocols`: image, video and volume protocols over any Session-like object.
- :mod:`.report`: results.json, summary.md and PNG plots.

- :mod:`.compare`: several models (and encodings) side by side.

Command line: ``samusa eval --protocol image --data DIR --out OUT``; with ``--model A
--model B`` (and ``--boundary-encoding`` / ``--region-encoding``) a comparison.
"""

from importlib import import_module
from typing import Any

# Imported on first use, so `samusa --help` (which builds the eval parser from
# .command) does not pay for scipy / scikit-image.
_WHERE = {
    "PROMPT_TYPES": "clicks",
    "Click": "clicks",
    "SimulatedUser": "clicks",
    "Case": "datasets",
    "load_cases": "datasets",
    "all_metrics": "metrics",
    "assd": "metrics",
    "dice": "metrics",
    "hd95": "metrics",
    "iou": "metrics",
    "staple": "metrics",
    "EvaluationResult": "protocols",
    "image_case": "protocols",
    "video_case": "protocols",
    "volume_case": "protocols",
    "run_image_protocol": "protocols",
    "run_video_protocol": "protocols",
    "run_volume_protocol": "protocols",
    "session_factory": "protocols",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PROMPT_TYPES",
    "Click",
    "SimulatedUser",
    "Case",
    "load_cases",
    "all_metrics",
    "assd",
    "dice",
    "hd95",
    "iou",
    "staple",
    "EvaluationResult",
    "image_case",
    "video_case",
    "volume_case",
    "run_image_protocol",
    "run_video_protocol",
    "run_volume_protocol",
    "session_factory",
    "write_report",
]
