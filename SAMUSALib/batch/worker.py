"""What runs on a Dask worker: one case of a batch segmentation or of an evaluation.

A worker keeps the models it loaded in this module (one per model id, device and seed),
so the model loads once per worker process, not once per case. Each case reports
``start``, ``loaded`` (a model was built in this process), ``written`` and ``done``
events on the topic :data:`TOPIC` with the worker's process id, which the driver
forwards to its caller (tests use them to kill the worker running a case).

A user error (`SamusaError`: unreadable input, prompts outside the image) is returned as
the case's status, not raised, so Dask does not retry a case that would fail again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import SamusaError
from .fingerprint import edited_since_written, fingerprint, model_identity, remove_stale_temporaries, up_to_date, write_sidecar

TOPIC = "samusa-batch"
_MODELS: dict[tuple, object] = {}


def emit(event: str, case: str, **details) -> None:
    """Tell the driver what this worker is doing (nothing when not on a Dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    worker.log_event(TOPIC, {"event": event, "case": case, "pid": os.getpid(), "worker": worker.address, **details})


def cached_model(model: str, device: str, seed: int, case: str = ""):
    """The loaded model for (model, device, seed), built on first use in this process."""
    key = (model, device, seed)
    if key not in _MODELS:
        from ..models import load_model

        started = time.perf_counter()
        _MODELS[key] = load_model(model, device=device, seed=seed)
        emit("loaded", case, model=model, seconds=round(time.perf_counter() - started, 2))
    return _MODELS[key]


def _fingerprint_options(options: dict) -> dict:
    return {
        "model": model_identity(str(options["model"])), "seed": options.get("seed", 0), "axis": options.get("axis", "K"),
        "direction": options.get("direction", "both"), "window": options.get("window"),
    }


def segment_case(case, options: dict) -> dict:
    """Segment one `BatchCase` and write its .seg.nrrd and sidecar atomically; returns
    {case, frames, seconds, status, message, pid}. `options`: model, device, seed, axis,
    direction, window, force."""
    from ..io import write_segmentation
    from ..pipeline import segment
    from .job import read_job_source

    started = time.perf_counter()
    emit("start", case.id)
    outcome = {"case": case.id, "output": str(case.output), "frames": None, "pid": os.getpid()}
    try:
        expected = fingerprint(case.input, case.prompts, _fingerprint_options(options))
        record = None if options.get("force") else up_to_date(case.output, expected)
        if record is not None:
            outcome.update(status="skipped", message="up to date", frames=record.get("frames"))
        elif not options.get("force") and edited_since_written(case.output):
            # a rerun replaced a segmentation the user had corrected, and said "ok"
            outcome.update(status="kept", message="edited since it was written, so kept as it is; --force segments it again")
        else:
            remove_stale_temporaries(case.output)
            window = tuple(options["window"]) if options.get("window") else None
            frames, prompts, geometry, source = read_job_source(case.input, case.prompts, axis=options.get("axis", "K"), window=window)
            model = cached_model(str(options["model"]), options.get("device", "auto"), int(options.get("seed", 0)), case.id)
            result = segment(frames, prompts, model, direction=options.get("direction", "both"))
            metadata = source.nrrd_metadata() if source is not None else None  # a DICOM's frame times and UIDs, as alone
            write_segmentation(case.output, result.volumes, geometry, names=result.names, colors=result.colors, metadata=metadata)
            write_sidecar(case.output, expected, case=case.id, input=str(case.input), prompts=str(case.prompts),
                          model=model.spec.id, frames=frames.num_frames)
            emit("written", case.id, output=str(case.output))
            outcome.update(status="ok", message="", frames=frames.num_frames)
    except SamusaError as error:
        outcome.update(status="failed", message=str(error))
    outcome["seconds"] = round(time.perf_counter() - started, 2)
    emit("done", case.id, status=outcome["status"])
    return outcome


def evaluate_case(case, settings: dict):
    """Run one evaluation protocol on one `Case`; returns (its `EvaluationResult` without
    the case itself, which the driver has; the model's id, trained flag and device), or
    {"case", "status": "failed", "message"}.
    `settings`: protocol, model, device, seed, and the protocol's keyword arguments."""
    from ..evaluation.protocols import run_image_protocol, run_video_protocol, run_volume_protocol, session_factory

    emit("start", case.id)
    runners = {"image": run_image_protocol, "video": run_video_protocol, "volume": run_volume_protocol}
    try:
        model = cached_model(settings["model"], settings.get("device", "auto"), int(settings.get("seed", 0)), case.id)
        result = runners[settings["protocol"]]([case], session_factory(model), **settings["arguments"])
    except SamusaError as error:
        emit("done", case.id, status="failed")
        return {"case": case.id, "status": "failed", "message": str(error)}
    result.cases = {}
    emit("done", case.id, status="ok")
    return result, {"id": model.spec.id, "trained": bool(model.spec.trained), "device": str(model.device)}


def loaded_models() -> list[tuple]:
    """The (model, device, seed) keys loaded in this process (for tests and diagnostics)."""
    return list(_MODELS)


