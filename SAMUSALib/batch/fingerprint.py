"""What a finished case leaves beside its output, so that a rerun can skip it.

``case.seg.nrrd`` gets ``case.seg.nrrd.samusa.json``: the SHA256 of everything the
result depends on (the input's bytes, every file of a frame folder, the prompts file,
the model and the options) and the SHA256 of the output written. A case is up to date
when both still match: a changed input, prompt file, model or option, a missing
sidecar, or an output edited or replaced since, makes it run again. The sidecar is
written after the output, each atomically, so a run killed in between leaves a case that
simply runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..io import atomic_output

FORMAT = "samusa-batch/1"
SIDECAR_SUFFIX = ".samusa.json"
_CHUNK = 1 << 20


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + SIDECAR_SUFFIX)


def _hash_file(digest, path: Path) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    _hash_file(digest, path)
    return digest.hexdigest()


def _hash_input(digest, path: Path) -> None:
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            digest.update(str(item.relative_to(path)).encode() + b"\0")
            _hash_file(digest, item)
    else:
        _hash_file(digest, path)


def model_identity(model: str) -> str:
    """A model id as given; a checkpoint file also by size and modification time."""
    path = Path(model)
    if path.is_file():
        stat = path.stat()
        return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return model


def fingerprint(input_path: Path, prompts: Path, options: dict) -> str:
    """SHA256 over the input's bytes, the prompts' bytes and the options (JSON, sorted)."""
    digest = hashlib.sha256()
    digest.update(FORMAT.encode() + b"\0")
    _hash_input(digest, Path(input_path))
    digest.update(b"\0prompts\0")
    _hash_file(digest, Path(prompts))
    digest.update(b"\0options\0" + json.dumps(options, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def read_sidecar(output: Path) -> dict | None:
    try:
        data = json.loads(sidecar_path(output).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def up_to_date(output: Path, expected: str) -> dict | None:
    """The sidecar if ``output`` exists and was made from the inputs with this fingerprint."""
    record = read_sidecar(output)
    if record is None or record.get("fingerprint") != expected or not output.is_file():
        return None
    if record.get("output_sha256") != sha256_of(output):
        return None
    return record


def edited_since_written(output: Path) -> bool:
    """Whether ``output`` has changed since SAMUSA wrote it (its sidecar records another
    SHA256): edited by hand, in Slicer or another tool, and not to be replaced unasked."""
    record = read_sidecar(output)
    return record is not None and output.is_file() and record.get("output_sha256") != sha256_of(output)


def write_sidecar(output: Path, expected: str, **details) -> Path:
    record = {"format": FORMAT, "fingerprint": expected, "output_sha256": sha256_of(output), **details}
    target = sidecar_path(output)
    with atomic_output(target) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, default=str))
    return target


def remove_stale_temporaries(output: Path) -> list[Path]:
    """Temporary files a killed attempt left beside ``output`` (atomic writes name them
    ``.<name>.*.tmp``); removed before the case runs again."""
    removed = []
    for name in (output.name, sidecar_path(output).name):
        for stale in output.parent.glob(f".{name}.*.tmp"):
            try:
                os.unlink(stale)
                removed.append(stale)
            except OSError:
                pass
    return removed
