"""SAMUSA-Lite: LiteMedSAM whose prompt encoder knows boundary points.

LiteMedSAM's prompt encoder has SAM's point labels: 0 negative, 1 positive, 2 and 3
the corners of a box, -1 "not a point" (padding). SAMUSA-Lite adds label 4, a
*boundary point* (a click on the structure's border), with its own learned embedding,
so the model can tell "the edge is here" from "this is inside" (SAMUSA paper, 2.2).
Everything else is LiteMedSAM's architecture; training (`SAMUSALib.training.lite`)
changes the prompt encoder and the mask decoder only.

Prompts travel as one token list per mask: points, then one padding token when there
is no box (SAM's convention), then the box as its two corner tokens; batches pad with
-1. The previous prediction's 256 x 256 logits may come as the dense (mask) prompt,
as in SAM's interactive refinement.

Weights ship as a *delta* on the pinned LiteMedSAM checkpoint (`DELTA_FORMAT`): the
difference of every trained tensor, in float16, plus the boundary embedding, so the
repository carries megabytes instead of LiteMedSAM's 39 MB, and nothing of it
without the original package.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn as nn

from ...errors import ModelError
from .network import EMBED_DIM, LiteMedSAM, decode_with

BOUNDARY_LABEL = 4
PAD_LABEL = -1
DELTA_FORMAT = "samusa-lite-delta/1"
TRAINED_PREFIXES = ("prompt_encoder.", "mask_decoder.")


class Heads(NamedTuple):
    """The trained parts that read a prompt: which set decodes it (`SAMUSALite.heads`)."""

    prompt_encoder: nn.Module
    mask_decoder: nn.Module
    boundary_embed: nn.Embedding
    boundary_box: bool  # boundary points (from two on) come with their extent as a box


class SAMUSALite(LiteMedSAM):
    """LiteMedSAM with a boundary-point embedding and batched mixed prompts."""

    boundary_native = True
    boundary_box = False  # trained with the points' extent added as a box (`boundary_box`)
    settle_passes = 0  # >0: a frame's prompt is decoded from scratch, its own mask fed back this many times in all
    pretrained_box = False  # box-only prompts and box tracking through LiteMedSAM's own heads
    boundary_heads_box = False  # the boundary heads' own `boundary_box` (`attach_boundary_heads`)

    def attach_boundary_heads(self, other: "SAMUSALite") -> None:
        """Decode boundary points given alone (no clicks, no box) with `other`'s trained
        heads: a model trained to read them without their extent as a box
        (`boundary_box_drop`), which reads points bunched on one arc of the border and
        three spread points better, and region clicks worse, than the main heads
        (docs/samusa_lite2.md, "Boundary points alone"). Not part of the saved delta."""
        self.boundary_heads = nn.ModuleDict(
            {"prompt_encoder": other.prompt_encoder, "mask_decoder": other.mask_decoder, "boundary_embed": other.boundary_embed}
        ).requires_grad_(False)
        self.boundary_heads_box = bool(other.boundary_box)

    def heads(self, boundary_alone: bool = False) -> Heads:
        """The heads that decode a prompt: the boundary heads for boundary points alone,
        where attached; the main heads otherwise."""
        extra = self._modules.get("boundary_heads") if boundary_alone else None
        if extra is None:
            return Heads(self.prompt_encoder, self.mask_decoder, self.boundary_embed, bool(self.boundary_box))
        return Heads(extra["prompt_encoder"], extra["mask_decoder"], extra["boundary_embed"], bool(self.boundary_heads_box))

    def keep_pretrained_heads(self, base: LiteMedSAM) -> None:
        """Keep LiteMedSAM's original prompt encoder and mask decoder for `decode` (box
        prompts and the box tracker): it is the box model it was trained to be, so a
        plain box gives exactly LiteMedSAM's mask, while every prompt with points goes
        through the trained heads (`decode_tokens`). Not part of the saved delta."""
        import copy

        self.pretrained_heads = nn.ModuleDict(
            {"prompt_encoder": copy.deepcopy(base.prompt_encoder), "mask_decoder": copy.deepcopy(base.mask_decoder)}
        ).requires_grad_(False)
        self.pretrained_box = True

    def decode(self, embedding, *, boxes=None, points=None, masks=None, multimask=False):
        heads = getattr(self, "pretrained_heads", None)
        if heads is None:
            return super().decode(embedding, boxes=boxes, points=points, masks=masks, multimask=multimask)
        return decode_with(heads["prompt_encoder"], heads["mask_decoder"], embedding, boxes, points, masks, multimask)

    def __init__(self) -> None:
        super().__init__()
        self.boundary_embed = nn.Embedding(1, EMBED_DIM)

    def init_boundary_embedding(self) -> None:
        """Start the new embedding from the mean of the box-corner embeddings: like a
        corner, a boundary point lies on the object's edge."""
        pe = self.prompt_encoder.point_embeddings
        with torch.no_grad():
            self.boundary_embed.weight.copy_((pe[2].weight + pe[3].weight) / 2)

    def sparse_embeddings(self, coords: torch.Tensor, labels: torch.Tensor, heads: Heads | None = None) -> torch.Tensor:
        """(K, N, 2) model x, y and (K, N) labels in {-1, 0, 1, 2, 3, 4} -> (K, N, 256)."""
        heads = heads or self.heads()
        pe = heads.prompt_encoder
        embedding = pe.pe_layer.forward_with_coords(coords + 0.5, pe.input_image_size)
        labels = labels.unsqueeze(-1)
        embedding = torch.where(labels == PAD_LABEL, torch.zeros_like(embedding) + pe.not_a_point_embed.weight, embedding)
        for value in range(4):
            embedding = torch.where(labels == value, embedding + pe.point_embeddings[value].weight, embedding)
        embedding = torch.where(labels == BOUNDARY_LABEL, embedding + heads.boundary_embed.weight, embedding)
        return embedding

    def decode_tokens(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor | None = None,
        use_mask: torch.Tensor | None = None,
        heads: Heads | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode K token lists. `embedding` (1 or K, 256, 64, 64); `masks` (K, 1, 256, 256)
        logits used where `use_mask` (K,) is True (all, when None); `heads` (`heads()`)
        the main heads when None. Returns logits (K, 1, 256, 256) and predicted IoU (K, 1)."""
        from .runtime import dense_pe, fast_decode

        heads = heads or self.heads()
        pe, decoder = heads.prompt_encoder, heads.mask_decoder
        sparse = self.sparse_embeddings(coords, labels, heads)
        count = coords.shape[0]
        dense = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(count, -1, *pe.image_embedding_size)
        if masks is not None and use_mask is not None and not bool(use_mask.any()):
            masks = None  # no prompt uses its mask: the dense embedding stays one shared vector
        if masks is not None:
            from_masks = pe._embed_masks(masks)
            if use_mask is None:
                dense = from_masks
            else:
                dense = torch.where(use_mask.reshape(-1, 1, 1, 1), from_masks, dense)
        if embedding.shape[0] == 1:
            fast = fast_decode(decoder, embedding, dense_pe(pe), sparse, dense, False)
            if fast is not None:
                return fast
        logits, iou, _, _ = decoder(
            image_embeddings=embedding,
            image_pe=dense_pe(pe),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
            repeat_image=embedding.shape[0] != count,
        )
        return logits, iou


def prompt_tokens(points: np.ndarray, labels: Sequence[int], box: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """One mask's token list (model coordinates): points, a pad if no box, the box."""
    coords = [np.asarray(points, dtype=np.float32).reshape(-1, 2)]
    kinds = [np.asarray(labels, dtype=np.int64).reshape(-1)]
    if box is None:
        coords.append(np.zeros((1, 2), dtype=np.float32))
        kinds.append(np.array([PAD_LABEL]))
    else:
        x0, y0, x1, y1 = (float(v) for v in box)
        coords.append(np.array([[x0, y0], [x1, y1]], dtype=np.float32))
        kinds.append(np.array([2, 3]))
    return np.concatenate(coords), np.concatenate(kinds)


def boundary_box(points: np.ndarray, labels: Sequence[int], box=None, size: int = 256):
    """The box a `boundary_box` model is given with its boundary points when the user gave
    none: the points' extent (two points: the square on their chord), clipped to the
    square. Boundary points lie on the border, so their extent is the part of the
    object's box the user has shown; the labels-4 tokens then say where the edge is."""
    if box is not None:
        return box
    points = np.asarray(points, dtype=float).reshape(-1, 2)[np.asarray(labels, dtype=int).reshape(-1) == BOUNDARY_LABEL]
    if len(points) < 2:
        return None
    from .encodings import clip_boxes, extent_box

    return clip_boxes(extent_box(points)[None], (size, size))[0]


def batch_tokens(lists: Sequence[tuple[np.ndarray, np.ndarray]], device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token lists to one (K, N, 2) / (K, N) batch with -1 labels."""
    longest = max(len(labels) for _, labels in lists)
    coords = np.zeros((len(lists), longest, 2), dtype=np.float32)
    labels = np.full((len(lists), longest), PAD_LABEL, dtype=np.int64)
    for i, (c, l) in enumerate(lists):
        coords[i, : len(l)] = c
        labels[i, : len(l)] = l
    return torch.from_numpy(coords).to(device), torch.from_numpy(labels).to(device)


# ------------------------------------------------------------------ weights as a delta
def from_litemedsam(base: LiteMedSAM) -> SAMUSALite:
    """A SAMUSA-Lite network holding `base`'s weights and a fresh boundary embedding."""
    net = SAMUSALite()
    net.load_state_dict(base.state_dict(), strict=False)
    net.init_boundary_embedding()
    return net.eval()


def delta_state(net: SAMUSALite, base: LiteMedSAM) -> dict[str, torch.Tensor]:
    """float16 differences of the trained tensors, and the boundary embedding."""
    own, reference = net.state_dict(), base.state_dict()
    delta = {k: (own[k].float() - reference[k].float()).half() for k in own if k.startswith(TRAINED_PREFIXES)}
    delta["boundary_embed.weight"] = own["boundary_embed.weight"].float().clone()
    return delta


def save_delta(path: str | Path, net: SAMUSALite, base: LiteMedSAM, metadata: dict) -> Path:
    """Write the delta file (atomically)."""
    from .network import CHECKPOINT_SHA256

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": DELTA_FORMAT, "base_sha256": CHECKPOINT_SHA256, "delta": delta_state(net, base), "metadata": dict(metadata)}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_delta(path: str | Path) -> dict:
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path} could not be read as a SAMUSA-Lite weights file ({type(exc).__name__}: {exc}).") from None
    if not isinstance(payload, dict) or payload.get("format") != DELTA_FORMAT:
        raise ModelError(f"{path} is not a SAMUSA-Lite weights file (format {DELTA_FORMAT!r} expected).")
    return payload


WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"


def shipped_weights(spec) -> Path | None:
    """The delta file a registry spec names (or a file name), in SAMUSALib/weights/ (None if absent)."""
    path = WEIGHTS_DIR / str(spec if isinstance(spec, str) else spec.filename)
    return path if path.is_file() else None


def is_delta_file(path: str | Path) -> bool:
    try:
        return read_delta(path) is not None
    except ModelError:
        return False


def apply_delta(base: LiteMedSAM, payload: dict) -> SAMUSALite:
    """SAMUSA-Lite from the pinned LiteMedSAM and a delta payload."""
    from .network import CHECKPOINT_SHA256

    if payload.get("base_sha256") != CHECKPOINT_SHA256:
        raise ModelError(
            f"these SAMUSA-Lite weights were trained on LiteMedSAM {payload.get('base_sha256')}, "
            f"not the installed {CHECKPOINT_SHA256}."
        )
    net = from_litemedsam(base)
    state = net.state_dict()
    delta = payload["delta"]
    unknown = sorted(set(delta) - set(state))
    if unknown:
        raise ModelError(f"SAMUSA-Lite weights name tensors this network lacks: {unknown[:3]}")
    for key, value in delta.items():
        if key == "boundary_embed.weight":
            state[key] = value.float()
        else:
            state[key] = state[key].float() + value.float()
    net.load_state_dict(state, strict=True)
    metadata = payload.get("metadata") or {}
    net.boundary_box = bool(metadata.get("boundary_box", False))
    net.settle_passes = int(metadata.get("settle_passes", 0) or 0)
    if metadata.get("pretrained_box", False):
        net.keep_pretrained_heads(base)
    return net.eval()
