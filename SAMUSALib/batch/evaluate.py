"""``samusa eval`` with its cases spread over Dask workers, and the results merged.

Each case runs the same protocol function as the serial run (`run_*_protocol` on a
one-case list) with a model loaded once per worker from the same id and seed, and every
simulated user draws from ``case_rng(seed, case, ...)``, so a case's records do not depend
on the worker or on the other cases. The merged result lists the records case by case in
the cases' order, as the serial run does; only timings differ. A case that fails with a
user error is left out of the records and listed under ``failed_cases``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .cluster import TaskFailure, open_client, run_tasks
from .options import default_workers
from .worker import evaluate_case


def runner(protocol: str):
    from ..evaluation.protocols import run_image_protocol, run_video_protocol, run_volume_protocol

    return {"image": run_image_protocol, "video": run_video_protocol, "volume": run_volume_protocol}[protocol]


def evaluate_distributed(
    cases: Sequence,
    *,
    protocol: str,
    model: str,
    device: str,
    seed: int,
    arguments: dict,
    workers: int | None = None,
    scheduler: str | None = None,
    quiet: bool = False,
    timeout: float | None = None,
    on_event: Callable[[dict], None] | None = None,
):
    """(merged EvaluationResult, model info or None, failures [{case, message}]) for `cases`;
    `arguments` are the protocol function's keyword arguments (seed included)."""
    merged = runner(protocol)([], None, **arguments)  # no cases: just the settings, as the serial run records them
    settings = {"protocol": protocol, "model": model, "device": device, "seed": seed, "arguments": arguments}
    with open_client(scheduler, workers or default_workers(len(cases))) as client:
        results = run_tasks(client, evaluate_case, cases, settings, labels=[c.id for c in cases],
                            description=f"eval {protocol}", quiet=quiet, scatter=True, on_event=on_event,
                            timeout=timeout)
    failures = []
    model_info = None
    for case, result in zip(cases, results):
        if isinstance(result, TaskFailure):
            failures.append({"case": case.id, "message": result.message})
        elif isinstance(result, dict):
            failures.append({"case": case.id, "message": result["message"]})
        else:
            result, model_info = result
            merged.cases[case.id] = case
            merged.records += result.records
            merged._masks.update(result._masks)
    return merged, model_info, failures
