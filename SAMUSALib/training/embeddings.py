"""Image embeddings of training images, computed once and cached on disk.

Training LiteMedSAM's prompt encoder and mask decoder with the image encoder frozen
costs decoder time only if every image is encoded once: on a 2-core CPU the TinyViT
encoder takes about 1 s per image, the decoder 0.2 s per forward and backward pass.
An `EmbeddedImage` holds what a training step needs in the model's padded 256 x 256
square: the (256, 64, 64) embedding (float16 on disk and in memory: 2 MB), the reference
mask letterboxed to 256 x 256 (the resolution of the decoder's logits), and where the
frame lies inside the square. Files are keyed by the image's content and the
augmentation applied before encoding, so a changed image is never served a stale
embedding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..backends.litemedsam.network import IMAGE_SIZE, Letterbox

FORMAT = 1


@dataclass
class EmbeddedImage:
    """One training sample in model space (see the module docstring)."""

    key: str
    case: str
    group: str  # patient / acquisition: splits never separate a group
    embedding: torch.Tensor  # (256, 64, 64) float16
    mask: np.ndarray  # (256, 256) bool, letterboxed reference
    inner: tuple[int, int]  # (h, w) of the frame inside the square
    augmentation: str = "none"


def letterboxed_mask(mask: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Reference (H, W) -> (256, 256) bool in the padded square (area-weighted, > 0.5)."""
    tensor = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    h, w = letterbox.inner
    small = F.interpolate(tensor, size=(h, w), mode="area" if h <= mask.shape[0] else "bilinear")
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    out[:h, :w] = small[0, 0].numpy() > 0.5
    return out


def content_key(image: np.ndarray, augmentation: str) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
    digest.update(f"{image.shape}|{image.dtype}|{augmentation}|v{FORMAT}".encode())
    return digest.hexdigest()[:24]


def embed_cases(
    net,
    items: Iterable[tuple[str, str, np.ndarray, np.ndarray]],
    cache: Path,
    *,
    augmentation: str = "none",
    augment: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> list[EmbeddedImage]:
    """Embed (case id, group, image, mask) items, reading and writing `cache`.

    `augment(image, mask) -> (image, mask)` is applied before encoding (under the name
    `augmentation`, which is part of the cache key); it must be deterministic for a given
    image, as the cache is keyed on the un-augmented image.
    """
    cache.mkdir(parents=True, exist_ok=True)
    out: list[EmbeddedImage] = []
    for index, (case_id, group, image, mask) in enumerate(items):
        key = content_key(image, augmentation)
        path = cache / f"{key}.pt"
        if augment is not None:
            image, mask = augment(image, mask)
        letterbox = Letterbox(image.shape[:2])
        if path.is_file():
            stored = torch.load(path, map_location="cpu", weights_only=True)
            embedding = stored["embedding"]
        else:
            with torch.inference_mode():
                embedding = net.embed(letterbox.image(image))[0].to(torch.float16).clone()
            tmp = path.with_suffix(".tmp")
            torch.save({"embedding": embedding, "format": FORMAT}, tmp)
            tmp.replace(path)
        out.append(EmbeddedImage(key, case_id, group, embedding, letterboxed_mask(mask, letterbox), letterbox.inner, augmentation))
        if progress is not None:
            progress(index + 1, case_id)
    return out


def split_by_group(samples: Sequence[EmbeddedImage], fraction: float, seed: int = 0) -> tuple[list[EmbeddedImage], list[EmbeddedImage]]:
    """(train, held out): about `fraction` of the groups (patients, acquisitions) held out,
    every image of a group on the same side."""
    held = held_out_groups({s.group for s in samples}, fraction, seed)
    return [s for s in samples if s.group not in held], [s for s in samples if s.group in held]


def held_out_groups(groups: Iterable[str], fraction: float, seed: int = 0) -> set[str]:
    """The groups `split_by_group` holds out: about `fraction` of them, drawn with `seed`
    (`scripts/heldout_ids.py` lists their images, for evaluating on them)."""
    groups = sorted(set(groups))
    rng = np.random.default_rng(seed)
    count = int(round(fraction * len(groups)))
    return set(rng.choice(groups, size=count, replace=False).tolist()) if count else set()
