"""Image embeddings kept on disk across processes (`SAMUSA_EMBEDDING_STORE`).

`backend.shared_embeddings()` keeps embeddings in memory for one process; an evaluation
re-run, a second `samusa eval` on the same data, or the test suite's worker processes
encode the same images again, about a second each on a CPU core. Given a folder, the
embeddings `shared_embeddings()` computes are also written there and read back by any
later block, in this process or another. Files are keyed by the image's content, the
stored dtype, and the encoder that made them (its weights and runtime), so a changed
encoder never reads another's embeddings; a file that cannot be read is encoded again
and rewritten, never an error.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

#: A folder: `shared_embeddings()` blocks keep their embeddings there too (unset: memory only).
EMBEDDING_STORE_ENV = "SAMUSA_EMBEDDING_STORE"


def store_folder(folder: str | os.PathLike | None = None) -> Path | None:
    """The folder given, else `EMBEDDING_STORE_ENV`'s, else None."""
    folder = folder or os.environ.get(EMBEDDING_STORE_ENV, "").strip()
    return Path(folder).expanduser() if folder else None


def encoder_key(net) -> str:
    """Which encoder makes a network's embeddings: its weights' SHA256 and the runtime that
    runs it (OpenVINO at a precision, or PyTorch). Computed once per network."""
    key = net.__dict__.get("_embedding_store_key")
    if key is None:
        from .runtime import weights_key

        runtime = getattr(net, "encoder_runtime", None)
        kind = "torch" if runtime is None else f"{type(runtime).__name__}-{getattr(runtime, 'precision', '')}"
        key = f"{weights_key(net.image_encoder)[:20]}-{kind}"
        net.__dict__["_embedding_store_key"] = key
    return key


def file_for(folder: Path, image_key: str, net) -> Path:
    name = hashlib.sha1(f"{image_key}|{encoder_key(net)}".encode()).hexdigest()
    return folder / name[:2] / f"{name}.pt"


def load(path: Path) -> torch.Tensor | None:
    """The stored embedding, or None (absent, or unreadable: it is encoded again)."""
    if not path.is_file():
        return None
    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged or half-copied file is re-encoded and rewritten
        return None
    return tensor if isinstance(tensor, torch.Tensor) else None


def save(path: Path, tensor: torch.Tensor) -> None:
    """Write atomically (a concurrent writer of the same key writes the same values);
    a folder that cannot be written leaves the embedding in memory only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{os.getpid()}.{path.name}")
        torch.save(tensor.detach().cpu().contiguous(), tmp)
        tmp.replace(path)
    except OSError as exc:
        import warnings

        warnings.warn(f"embeddings could not be kept in {path.parent.parent} ({exc}); they stay in memory only.", RuntimeWarning, stacklevel=3)
