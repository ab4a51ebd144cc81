"""Weights on disk: the cache, SHA256-verified downloads, hash sidecars, reading and
writing checkpoint files, and what a file says about itself.

Weights are never trusted unless their SHA256 matches a pinned value: downloads land in a
temporary file and are moved into the cache only after the hash matched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..errors import ModelError
from ..permissions import new_file_mode
from .cache_folder import CACHE_ENV, cache_dir
from .loaded import LoadedModel
from .registry import PROMPT_TYPES, REGISTRY, ModelSpec, families, get_spec, override_key, size_overrides

ALLOW_UNVERIFIED_ENV = "SAMUSA_ALLOW_UNVERIFIED"
_CHUNK = 1 << 20
_DISK_ERRNOS = {getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EACCES", "EROFS") if hasattr(errno, n)}


def cached_path(spec: ModelSpec | str) -> Path | None:
    """Where the checkpoint of `spec` lies (its family may keep it elsewhere than the
    cache), or None if it is not there.

    Only checks presence; `download_checkpoint` / `load_model` verify the hash before use.
    """
    spec = get_spec(spec)
    for fam in families():
        if fam.name == spec.family and fam.cached_path is not None:
            return fam.cached_path(spec)
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


def manual_hint(spec: ModelSpec, url: str | None, dest: Path) -> str:
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
        raise ModelError(f"Model {spec.id!r} has no download URL. " + manual_hint(spec, None, dest))

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
                f"{exc.code} {exc.reason}. " + manual_hint(spec, url, dest)
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
                "to be offline or the server is unreachable. " + manual_hint(spec, url, dest)
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
        os.chmod(tmp, new_file_mode(dest))
        os.replace(tmp, dest)
        _write_stamp(dest, digest)
        return dest
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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
        extra = [o for o in spec.hydra_overrides if override_key(o) not in {override_key(s) for s in size_overrides(16)}]
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
        os.chmod(tmp_name, new_file_mode(path))
        os.replace(tmp_name, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
    return path


def describe_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a local checkpoint says about itself (base model, prompt types, training data,
    validation figures), read without building the model."""
    path = Path(path).expanduser()
    meta = None
    if path.is_file():
        for fam in families():
            if fam.describe is not None and (meta := fam.describe(path)) is not None:
                meta = dict(meta)
                meta.setdefault("family", fam.name)
                break
    if meta is None:
        _, meta = read_checkpoint(path)
        meta.setdefault("family", next(f.name for f in families() if f.fallback))
    meta.setdefault("id", path.stem)
    meta["file"] = str(path)
    meta["sha256"] = sha256_of(path)
    return meta
