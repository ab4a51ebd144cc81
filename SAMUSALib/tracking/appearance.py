"""Appearance memory: what the object looks like in the image encoder's feature space.

PerSAM's idea without training: average the image embedding over the object's mask on
frames the user prompted (and frames the tracker accepted) to get a prototype, and the
ring around the mask to get the background's. A candidate mask on a new frame is scored
by how much more its inside resembles the object than the background, and the best
matching feature cell localises the object when nothing else does (re-entry).

Embeddings are (1, C, G, G) tensors over the model square; masks are (S, S) bool over
the same square (S = G * stride).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = ["Prototype", "prototype", "similarity_map", "appearance_score", "match"]


@dataclass
class Prototype:
    """Unit feature vectors of the object and of its surroundings on one frame."""

    object: torch.Tensor  # (C,)
    background: torch.Tensor  # (C,)
    area: int  # object pixels in the square


def _grid_mask(mask: np.ndarray, grid: int) -> np.ndarray:
    """(S, S) bool -> (G, G) fraction of each cell inside the mask."""
    s = mask.shape[0] // grid
    return mask[: grid * s, : grid * s].reshape(grid, s, grid, s).mean(axis=(1, 3))


def _ring(mask: np.ndarray, valid: tuple[int, int]) -> np.ndarray:
    width = max(4, int(round(0.25 * np.sqrt(max(mask.sum(), 1)))))
    ring = ndimage.binary_dilation(mask, iterations=width) & ~mask
    ring[valid[0]:, :] = False
    ring[:, valid[1]:] = False
    return ring


def _pool(embedding: torch.Tensor, weights: np.ndarray) -> torch.Tensor | None:
    if weights.sum() < 1e-6:
        return None
    w = torch.as_tensor(weights, dtype=embedding.dtype, device=embedding.device)
    vector = (embedding[0] * w).sum(dim=(1, 2)) / w.sum()
    return F.normalize(vector.float(), dim=0)


def prototype(embedding: torch.Tensor, mask: np.ndarray, valid: tuple[int, int]) -> Prototype | None:
    """The object's and its ring's mean embedding; None for an empty mask."""
    grid = embedding.shape[-1]
    inside = _pool(embedding, _grid_mask(mask, grid) ** 2)
    outside = _pool(embedding, _grid_mask(_ring(mask, valid), grid))
    if inside is None:
        return None
    if outside is None:
        outside = torch.zeros_like(inside)
    return Prototype(inside, outside, int(mask.sum()))


def similarity_map(embedding: torch.Tensor, proto: Prototype) -> np.ndarray:
    """(G, G) cosine similarity to the object minus that to the background."""
    feats = F.normalize(embedding[0].float(), dim=0)
    fg = torch.einsum("chw,c->hw", feats, proto.object)
    bg = torch.einsum("chw,c->hw", feats, proto.background)
    return (fg - bg).cpu().numpy()


def appearance_score(embedding: torch.Tensor, mask: np.ndarray, protos: list[Prototype], valid: tuple[int, int]) -> float:
    """How much a candidate's inside looks like the remembered object and its ring like the
    remembered surroundings: mean over memories of cos(in, object) - cos(in, background)
    + cos(ring, background) - cos(ring, object), in [-4, 4]; 0 without memory."""
    if not protos or not mask.any():
        return 0.0
    return match(prototype(embedding, mask, valid), protos)


def match(here: Prototype | None, protos: list[Prototype]) -> float:
    """`appearance_score` of a prototype already computed (0 for none, or without memory)."""
    if here is None or not protos:
        return 0.0
    scores = []
    for p in protos:
        scores.append(
            float(here.object @ p.object - here.object @ p.background + here.background @ p.background - here.background @ p.object)
        )
    return float(np.mean(scores))
