"""`load_model`: a registry id, "random:<id>" or a checkpoint file -> `LoadedModel`,
through the loader its family registered; and `list_models` for `samusa models`."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from .device import resolve_device
from .loaded import LoadedModel
from .registry import REGISTRY, families, family, get_spec
from .weights import cached_path, read_checkpoint


def load_model(
    model: str | os.PathLike[str] = "test-tiny",
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    allow_download: bool = True,
    progress: Callable[[int, int], None] | None = None,
    allow_unverified: bool | None = None,
) -> LoadedModel:
    """Build a model from a registry id or a local checkpoint file.

    - registry id: the verified cached checkpoint (downloaded when missing and allowed);
    - "test-tiny": random hiera-tiny at 256 px, initialised from `seed` (same seed, same
      weights) without touching the caller's global RNG state;
    - "random:<id>": the architecture of <id> with random weights (benchmarks);
    - a path: the first family that claims the file loads it (SAM2 takes the rest: a dict
      {"model": state_dict, "samusa": metadata}; without metadata its Hiera variant is
      inferred from the weights and its input size from the name, else 1024 px).
    """
    dev = resolve_device(device)
    options = dict(seed=seed, allow_download=allow_download, progress=progress, allow_unverified=allow_unverified)
    if isinstance(model, str) and model.startswith("random:"):
        # Full-size architecture with random weights: for timing on machines without weights.
        base = get_spec(model.split(":", 1)[1])
        spec = dataclasses.replace(
            base, id=model, url=None, sha256=None, filename=None, trained=False,
            description=f"UNTRAINED random weights in the {base.id} architecture, for benchmarks only",
        )
        return family(spec.family).load(spec, dev, **options)
    if isinstance(model, str) and model in REGISTRY:
        spec = REGISTRY[model]
        return family(spec.family).load(spec, dev, **options)
    if isinstance(model, str) and not re.search(r"[\\/]|\.pth?$", model) and not Path(model).exists():
        get_spec(model)  # raises: unknown id, lists the known ones
    checkpoint = Path(model).expanduser()
    read_once: list[tuple[dict, dict]] = []

    def read() -> tuple[dict, dict]:
        if not read_once:
            read_once.append(read_checkpoint(checkpoint))
        return read_once[0]

    for fam in families():
        if fam.fallback or not checkpoint.is_file():
            continue
        loaded = fam.load_file(checkpoint, dev, read)
        if loaded is not None:
            return loaded
    fallback = [f for f in families() if f.fallback]
    return fallback[0].load_file(checkpoint, dev, read)


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def list_models() -> list[dict[str, Any]]:
    """One row per registry model, for `samusa models` and GUIs (no network access)."""
    rows = []
    for spec in REGISTRY.values():
        cached = cached_path(spec)
        size = cached.stat().st_size if cached else spec.size_bytes
        rows.append(
            {
                "id": spec.id,
                "description": spec.description,
                "trained": spec.trained,
                "prompt_types": sorted(spec.prompt_types),
                "boundary_native": spec.boundary_native,
                "image_size": spec.image_size,
                "licence": spec.licence,
                "url": spec.url,
                "sha256": spec.sha256,
                "cached": str(cached) if cached else None,
                "size_bytes": size,
                "size": _human_size(size) if spec.filename else "built in memory",
            }
        )
    return rows


def default_model_id() -> str:
    """The best model usable without a download: a cached SAM2.1 checkpoint, else the
    shipped SAMUSA-Lite (LiteMedSAM trained for boundary points, CPU-sized), else the
    installed LiteMedSAM, else the untrained test-tiny. What `samusa segment`, `batch`
    and `eval` run when no ``--model`` is given."""
    from ..errors import SamusaError

    for model_id in ("sam2.1-base-plus", "sam2.1-small", "sam2.1-tiny", "sam2.1-large", "samusa-lite", "litemedsam"):
        try:
            if cached_path(get_spec(model_id)) is not None:
                return model_id
        except SamusaError:
            continue
    return "test-tiny"
