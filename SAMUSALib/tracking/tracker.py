"""Propagation for image-only promptable models: memory, motion and shape around a decoder.

An image-only model (LiteMedSAM, SAMUSA-Lite) segments one frame from a prompt and
remembers nothing. `ImageOnlyTracker.track` gives it what the user already said:

- **motion**: the neighbour's mask is moved by each candidate shift (`motion`), and its
  moved contour gives boundary points (a boundary-native model reads them as "the edge
  is about here"), the moved logits the dense mask prompt, its extent the box: no margin,
  so nothing compounds from frame to frame;
- **shape and size**: a candidate whose area leaves [1 / max_growth, max_growth] of the
  neighbour's, or of the prompted frames', is rejected; the rest are scored by the
  decoder's predicted IoU, their overlap with the moved neighbour and their appearance;
- **appearance memory** (`appearance`): prototypes of the object's features from every
  prompted frame score candidates, and localise the object when it comes back into view.

All candidates of a frame go through the decoder in one batched call. The model is seen
through `SquareModel` (its input square: embeddings, grey images, a batched decoder), so
the tracker names no family. Results are dicts holding 256 x 256 logits like the
backend's, plus the frame's `Prototype` (memory travels with the result, so when the
session drops a result its memory goes too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import torch

from . import appearance, motion, shape

__all__ = ["SquareModel", "TrackerConfig", "ImageOnlyTracker", "Candidate", "DESIGNS"]


class SquareModel(Protocol):
    """What the tracker needs of a model, in its square input grid."""

    size: int  # side of the square (256)
    valid: tuple[int, int]  # rows, cols of the square holding the frame (the rest is padding)

    def embedding(self, frame: int) -> torch.Tensor: ...

    def grey(self, frame: int) -> np.ndarray: ...

    def view(self) -> np.ndarray | None:
        """(S, S) bool: where the probe images (`view.field_of_view`); None: everywhere."""
        ...

    def decode_batch(
        self, frame: int, prompts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, torch.Tensor | None]]
    ) -> tuple[torch.Tensor, np.ndarray]:
        """[(points (N, 2) square x, y, labels (N,), box (4,) or None, mask logits (1, 1, S, S)
        or None)] -> logits (K, 1, S, S), predicted IoU (K,)."""
        ...


BOUNDARY_LABEL = 4


@dataclass(frozen=True)
class TrackerConfig:
    """One propagation design. `DESIGNS` names the ones measured in docs/tracking.md."""

    points: int = 6  # boundary points sampled on the moved contour (0: none)
    mask_prompt: bool = True  # the moved neighbour logits as the dense prompt
    box: bool = True  # the moved neighbour's box (no margin)
    shifts: bool = True  # candidate shifts by phase correlation (else: no motion)
    appearance_weight: float = 0.5  # weight of the appearance score (0: no memory)
    prior_weight: float = 1.0  # weight of IoU with the moved neighbour
    max_growth: float = 1.5  # area bound against the neighbour's area (and its inverse)
    prompt_growth: float = 2.0  # area bound against the prompted frames' mean area
    logit_clamp: float = 8.0  # mask prompt logits clamped to +/- this
    support: float = 0.75  # edge contrast (of the neighbour's) that lets the area change beyond max_growth
    reentry: float = 0.5  # re-detection: a candidate needs this fraction of the prompted frame's appearance score


DESIGNS: dict[str, TrackerConfig] = {
    # shape/size: dense mask prompt + tight box, area bound, no motion, no memory
    "shape": TrackerConfig(points=0, shifts=False, appearance_weight=0.0),
    # motion, SonoSAMTrack-style: the moved contour as 6 boundary points + mask + box
    "motion-points": TrackerConfig(points=6, shifts=True, appearance_weight=0.0),
    # motion: the moved mask as the dense prompt + its box, candidates per shift
    "motion": TrackerConfig(points=0, shifts=True, appearance_weight=0.0),
    # motion + appearance memory of the prompted frames in the candidates' score
    "memory": TrackerConfig(points=0, shifts=True, appearance_weight=0.5),
    # for box-only models: candidates per shift, each prompted by the moved mask's tight box
    # alone (no dense logits, no points: a box-trained decoder does not read them), area bound
    "box": TrackerConfig(points=0, mask_prompt=False, shifts=True, appearance_weight=0.0),
}


@dataclass
class Candidate:
    logits: torch.Tensor  # (1, 1, S, S)
    iou: float
    mask: np.ndarray
    score: float
    how: str
    rejected: str | None = None
    details: dict = field(default_factory=dict)


def _view_of(model: SquareModel) -> np.ndarray | None:
    """The model's field of view in its square (None: everywhere, or a model that cannot say)."""
    return model.view() if hasattr(model, "view") else None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


class ImageOnlyTracker:
    """Computes one propagated frame from its neighbour's result and the object's memory."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or DESIGNS["motion"]

    def mask_of(self, model: SquareModel, logits: torch.Tensor) -> np.ndarray:
        mask = (logits[0, 0] > 0).cpu().numpy()
        h, w = model.valid
        mask[h:, :] = False
        mask[:, w:] = False
        return mask

    def in_view(self, model: SquareModel, logits: torch.Tensor) -> torch.Tensor:
        """Logits with everything outside the probe's field of view set to "background":
        the black corners of a fan look like a dark lumen to an image-only model, and an
        object leaving through the fan's side would be tracked onto them (view.py)."""
        view = _view_of(model)
        if view is None:
            return logits
        outside = torch.from_numpy(~view).to(logits.device)
        return logits.masked_fill(outside, -self.config.logit_clamp)

    def remember(self, model: SquareModel, frame: int, out: dict) -> None:
        """Attach the frame's appearance prototype to a result (prompted or accepted)."""
        if out.get("vanished"):
            return
        mask = self.mask_of(model, out["logits"])
        embedding = model.embedding(frame)
        proto = appearance.prototype(embedding, mask, model.valid)
        out["prototype"] = proto
        if proto is not None:  # how well the object matches itself: the scale for re-entry
            out["appearance_self"] = appearance.match(proto, [proto])

    def redetect(self, model: SquareModel, frame: int, memory: Sequence[dict]) -> dict | None:
        """After the object left the view: look for it by appearance alone. The best matching
        feature cell (object minus background similarity) becomes a positive click with a
        box of the prompted size; the result is kept only if its area and appearance score
        are close to the prompted frames' (`reentry`). None: still absent."""
        cfg = self.config
        remembered = [m for m in memory if m.get("prototype") is not None]
        if not remembered:
            return None
        protos = [m["prototype"] for m in remembered]
        embedding = model.embedding(frame)
        sim = np.mean([appearance.similarity_map(embedding, p) for p in protos], axis=0)
        stride = model.size / sim.shape[0]
        h, w = model.valid
        sim[int(np.ceil(h / stride)):, :] = -np.inf
        sim[:, int(np.ceil(w / stride)):] = -np.inf
        view = _view_of(model)
        if view is not None:  # look for it where the probe images
            g = sim.shape[0]
            cells = view[: g * int(stride), : g * int(stride)].reshape(g, int(stride), g, int(stride)).mean(axis=(1, 3))
            sim[cells < 0.5] = -np.inf
        row, col = np.unravel_index(int(np.argmax(sim)), sim.shape)
        x, y = (col + 0.5) * stride - 0.5, (row + 0.5) * stride - 0.5
        area = float(np.mean([p.area for p in protos]))
        half = 0.5 * np.sqrt(area)
        box = np.array([max(0, x - half), max(0, y - half), min(w, x + half), min(h, y + half)])
        logits, ious = model.decode_batch(frame, [(np.array([[x, y]]), np.array([1]), box, None)])
        logits = self.in_view(model, logits)
        mask = self.mask_of(model, logits[:1])
        if not mask.any() or not 1 / cfg.prompt_growth <= mask.sum() / area <= cfg.prompt_growth:
            return None
        look = appearance.appearance_score(embedding, mask, protos, model.valid)
        reference = float(np.mean([m.get("appearance_self", 0.0) for m in remembered]))
        if reference <= 0 or look < cfg.reentry * reference:
            return None
        return {"logits": logits[:1].float(), "iou": float(ious[0]), "how": "redetected", "appearance": look}

    def candidates(
        self, model: SquareModel, frame: int, neighbour: int, source: dict, memory: Sequence[dict]
    ) -> list[Candidate]:
        """Every scored candidate for `frame` (rejected ones marked), best first."""
        cfg = self.config
        source_logits = source["logits"].float().clamp(-cfg.logit_clamp, cfg.logit_clamp)
        source_mask = self.mask_of(model, source_logits)
        source_area = max(int(source_mask.sum()), 1)
        if cfg.shifts:
            shifts = motion.estimate_shifts(model.grey(neighbour), model.grey(frame), source_mask, model.valid)
        else:
            shifts = [np.zeros(2)]
        view = _view_of(model)
        priors, prompts = [], []
        base = source_logits[0, 0].cpu().numpy()
        for shift in shifts:
            moved = motion.shift_array(base, shift, fill=-cfg.logit_clamp)
            moved_mask = moved > 0
            if view is not None:  # what moves out of the view is not there to be seen
                moved_mask &= view
            if not moved_mask.any():
                continue
            logits_t = torch.from_numpy(moved.astype(np.float32))[None, None]
            points = motion.contour_samples(moved_mask, cfg.points)
            labels = np.full(len(points), BOUNDARY_LABEL, dtype=np.int64)
            box = np.asarray(motion.box_of(moved_mask), dtype=float) if cfg.box else None
            priors.append((shift, moved_mask))
            prompts.append((points, labels, box, logits_t if cfg.mask_prompt else None))
        if not prompts:
            return []
        logits, ious = model.decode_batch(frame, prompts)
        logits = self.in_view(model, logits)
        protos = [m["prototype"] for m in memory if m.get("prototype") is not None]
        prompted_area = np.mean([p.area for p in protos]) if protos else None
        embedding = model.embedding(frame) if cfg.appearance_weight > 0 and protos else None
        source_contrast = None
        out = []
        for k, (shift, moved_mask) in enumerate(priors):
            lg = logits[k : k + 1].float()
            mask = self.mask_of(model, lg)
            area = int(mask.sum())
            prior = _iou(mask, moved_mask)
            look = appearance.appearance_score(embedding, mask, protos, model.valid) if embedding is not None else 0.0
            score = float(ious[k]) + cfg.prior_weight * prior + cfg.appearance_weight * look
            rejected = None
            # against the neighbour's area, or, where the probe's view cuts the object, the
            # part of the moved neighbour still inside it (an object leaving the view shrinks)
            ratio = area / (source_area if view is None else max(int(moved_mask.sum()), 1))
            if area == 0:
                rejected = "empty"
            else:
                outside = not 1 / cfg.max_growth <= ratio <= cfg.max_growth
                if prompted_area and not 1 / cfg.prompt_growth <= area / prompted_area <= cfg.prompt_growth:
                    outside, ratio = True, area / prompted_area
                if outside:
                    if source_contrast is None:
                        source_contrast = shape.edge_contrast(model.grey(neighbour), source_mask, view=view)
                    contrast = shape.edge_contrast(model.grey(frame), mask, view=view)
                    rejected = shape.area_verdict(ratio, 1.0, contrast, source_contrast, cfg.support)
            details = {"shift": [float(v) for v in shift], "prior_iou": prior, "appearance": look, "area_ratio": ratio}
            out.append(Candidate(lg, float(ious[k]), mask, score, "track", rejected, details))
        out.sort(key=lambda c: (c.rejected is not None, -c.score))
        return out

    def track(self, model: SquareModel, frame: int, neighbour: int, source: dict, memory: Sequence[dict]) -> dict:
        """The frame's result: the best accepted candidate; if every candidate is rejected,
        the neighbour's mask moved by the first shift ("held": the last resort)."""
        found = self.candidates(model, frame, neighbour, source, memory)
        accepted = [c for c in found if c.rejected is None]
        if accepted:
            best = accepted[0]
            result = {"logits": best.logits, "iou": best.iou, "how": "track", "score": best.score, "details": best.details}
        else:
            held = source["logits"].float().clamp(-self.config.logit_clamp, self.config.logit_clamp)
            why = found[0].rejected if found else "no candidate"
            result = {"logits": held, "iou": float(source.get("iou", 0.0)), "how": "held", "why": why}
        self.remember_accepted(model, frame, result)
        return result

    def remember_accepted(self, model: SquareModel, frame: int, result: dict) -> None:
        """Accepted frames do not join the appearance memory: only what the user prompted
        does, so drift cannot teach the memory a wrong object (measured: docs/tracking.md)."""
        return None
