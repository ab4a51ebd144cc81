"""Device and precision policy: which device runs a model, and at which precision per stage."""

from __future__ import annotations

import contextlib
import functools
import os
import re
from typing import Any, ContextManager

import torch

from ..errors import DeviceError


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
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


#: A measured bf16 speed-up must beat this to choose bf16 (on the build machine it
#: measures 0.55-0.65; a margin keeps a timing disturbed by other load from flipping it).
BF16_MIN_SPEEDUP = 1.25
PRECISION_RECORD = "cpu-precision-{key}.json"


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True where this CPU multiplies bfloat16 matrices faster than float32: with AMX
    always; with AVX512-BF16 alone only if a matmul measured here says so. Why measure:
    on the build machine (Xeon, AVX512-BF16, no AMX, torch 2.13) a bf16 matmul ran at 166
    GFLOPS against 278 in float32 on 2026-12-02, and SAM2 was slower in bf16 at every size
    (test-tiny 256 px: image encoder 0.155 against 0.106 s, memory attention 45 against
    31 ms; SAM2.1-tiny 1024 px: memory attention 3.1 against 2.1 s a frame), while the same
    flag on other CPUs is fast.

    The measurement is made once per machine and torch version and kept in the cache
    folder (`PRECISION_RECORD`), so every process on the machine (a Dask worker, the
    Slicer module, a later run) computes at the same precision and gives the same masks,
    whatever the load when it started."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return True
    if "avx512_bf16" not in flags:
        return False
    return _recorded_bf16_decision(lambda: bf16_matmul_speedup() > BF16_MIN_SPEEDUP)


@functools.lru_cache(maxsize=1)
def _machine_key() -> str:
    import hashlib
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    text = "|".join([platform.machine(), model, " ".join(sorted(cpu_flags())), torch.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _recorded_bf16_decision(measure) -> bool:
    """The machine's recorded bf16 decision, measured and recorded on first use. One file
    per machine key, created exclusively: the first process to record wins, so processes
    that measured at the same time still agree. An unwritable cache folder or a damaged
    record falls back to this process's measurement."""
    import json

    from ..errors import ModelError
    from .cache_folder import cache_dir

    try:
        path = cache_dir() / PRECISION_RECORD.format(key=_machine_key())
    except ModelError:
        return bool(measure())

    def recorded() -> bool | None:
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, bool) else None

    known = recorded()
    if known is not None:
        return known
    decision = bool(measure())
    try:
        with open(path, "x") as handle:
            json.dump(decision, handle)
    except OSError:  # FileExistsError included: another process recorded first
        pass
    known = recorded()
    return decision if known is None else known


def bf16_matmul_speedup(n: int = 1024, repeats: int = 3) -> float:
    """float32 seconds / bfloat16 seconds for an n x n matmul on this CPU (best of `repeats`)."""
    import time

    def best(dtype: torch.dtype) -> float:
        a = torch.randn(n, n).to(dtype)
        a @ a
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - start)
        return min(times)

    return best(torch.float32) / best(torch.bfloat16)


def asked_precision(precision: str | None = None) -> str:
    """What was asked for: `precision` unless it is None or "auto", else $SAMUSA_PRECISION,
    else "auto" (lower case, not yet checked)."""
    if precision and precision.lower() != "auto":
        return precision.lower()
    return (os.environ.get("SAMUSA_PRECISION") or "auto").lower()


def resolve_precision(device: torch.device | str, precision: str | None = None) -> str:
    """The inference precision for a device: `precision`, else $SAMUSA_PRECISION, else auto.

    auto: bf16 (fp16 where bf16 is unsupported) on CUDA, bf16 on CPUs with bf16 matrix
    units (`cpu_has_native_bf16`), fp32 otherwise (MPS included: its reduced-precision
    support is patchy). A `precision` of "auto" (a model's default) defers to the variable.
    """
    device = torch.device(device)
    choice = asked_precision(precision)
    if choice not in PRECISIONS:
        raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}; got {choice!r}")
    if choice != "auto":
        return choice
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


#: SAM2 stages kept in float32 on a CPU even when the rest runs in bfloat16 (a CPU with
#: AMX, or SAMUSA_PRECISION=bf16). CPU autocast casts every weight on every call, which
#: the small prompt encoder / mask decoder and memory encoder do not earn back (test-tiny,
#: 256 px: decoder 6.8 ms per frame in float32 against 9.9 ms in bfloat16, memory encoder
#: 8.2 against 13.2 ms). On CUDA every stage uses the chosen precision (SAM2's own
#: autocast habit).
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


def cache_dtype(device: torch.device | str, precision: str | None = None) -> torch.dtype:
    """The dtype a session keeps its per-frame tensors in (image features, conditioned
    features, memories): the computing precision where that is half; bfloat16 where a CPU
    computes in float32 because `auto` chose it (half the bytes of every cached frame, and
    what these caches held when CPUs computed in bf16); float32 where fp32 was asked for."""
    device = torch.device(device)
    chosen = resolve_precision(device, precision)
    if chosen != "fp32":
        return stage_dtype(device, precision, "encoder")
    if device.type == "cpu" and asked_precision(precision) == "auto":
        return torch.bfloat16
    return torch.float32


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
