"""Which model to run, where its weights come from, and on which device.

The rest of SAMUSALib talks to a `LoadedModel`: a built network in eval mode plus what is
known about it (which prompts it was trained for, its input size, whether its weights are
trained at all). Everything that can go wrong on the way there (unknown model, no network,
a corrupted or tampered download, a file that is not a checkpoint, a device that does not
exist) is raised as a `ModelError` / `DeviceError` whose message says what to do.

- `registry`: the known models as data (`ModelSpec`, `REGISTRY`) and the families'
  loaders (`Family`, `register_family`);
- `weights`: cache, SHA256-verified download, hash sidecars, reading/saving checkpoints;
- `device`: device and precision policy (per SAM2 stage);
- `loaded`: `LoadedModel`; `loading`: `load_model`, `list_models`.

The families live in SAMUSALib/backends/ and register themselves when imported; this
package imports them last, so `load_model` finds every family.
"""

from __future__ import annotations

from .device import (
    PRECISIONS,
    STAGES,
    autocast_context,
    cache_dtype,
    cpu_has_native_bf16,
    resolve_device,
    resolve_precision,
    stage_dtype,
    stage_precision,
)
from .loaded import LoadedModel
from .loading import default_model_id, list_models, load_model
from .registry import PROMPT_TYPES, REGISTRY, Family, ModelSpec, get_spec, register_family
from .weights import (
    ALLOW_UNVERIFIED_ENV,
    CACHE_ENV,
    cache_dir,
    cached_path,
    describe_checkpoint,
    download_checkpoint,
    save_checkpoint,
    sha256_of,
)

from .. import backends  # noqa: E402,F401  (last: the families register their loaders)

__all__ = [
    "PROMPT_TYPES",
    "PRECISIONS",
    "STAGES",
    "ALLOW_UNVERIFIED_ENV",
    "CACHE_ENV",
    "cpu_has_native_bf16",
    "ModelSpec",
    "REGISTRY",
    "Family",
    "register_family",
    "get_spec",
    "cache_dir",
    "cached_path",
    "sha256_of",
    "download_checkpoint",
    "describe_checkpoint",
    "resolve_device",
    "resolve_precision",
    "stage_precision",
    "stage_dtype",
    "autocast_context",
    "cache_dtype",
    "LoadedModel",
    "load_model",
    "default_model_id",
    "save_checkpoint",
    "list_models",
]
