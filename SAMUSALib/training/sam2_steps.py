"""One SAM2 training step on images or on a cine clip: simulated prompts, forward, loss.

SAM2 is trained the way it is used in SAMUSA: the image encoder's features, the prompt
on a frame (boundary points, region clicks, a box, or a box with clicks, with corrective
clicks from the model's own prediction fed back with the previous logits), and, for a
clip, the frames after the prompted one tracked from memory as the session does. The
loss is SAM2's own (focal, Dice, IoU regression, object score; for a multi-mask output
the best of the three masks, as SAM2's trainer does) plus lambda times the SAMUSA
boundary loss on the prompted frame.

Everything runs in the model's low-resolution mask space (image_size / 4: 256 x 256 for
the released 1024 px models, as LiteMedSAM's), where the simulated users click and the
losses are computed; point coordinates are scaled to the model's input square.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..features import preprocess_frame
from .losses import BoundaryLossConfig, boundary_loss, dice_loss, focal_loss, sam2_model_loss
from .sampling import KIND_LABELS, PromptState, correct, point_budget, start_prompt


@dataclass
class StepSettings:
    """What a step needs from the training config."""

    boundary_label: int = 1  # SAM2's prompt encoder embeds labels 0..3 only: boundary points as 1
    box_noise: float = 0.1
    min_points: int = 2
    max_points: int = 10
    loss: BoundaryLossConfig = BoundaryLossConfig()
    loss_weights: tuple[float, float, float, float] = (20.0, 1.0, 1.0, 1.0)
    train_encoder: bool = False


def low_res_size(sam) -> int:
    return int(sam.image_size) // 4


def target_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Reference (H, W) -> (size, size) bool, resized as the frame is (no letterbox)."""
    tensor = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(size, size), mode="area" if mask.shape[0] >= size else "bilinear")[0, 0].numpy() > 0.5


def point_inputs(state: PromptState, sam, device: torch.device, boundary_label: int) -> dict | None:
    """SAM2 point inputs from a prompt simulated in the low-res square."""
    scale = int(sam.image_size) / low_res_size(sam)
    coords, labels = [], []
    if state.box is not None:
        x0, y0, x1, y1 = state.box
        coords += [[x0, y0], [x1, y1]]
        labels += [2, 3]
    for x, y, label in state.points:
        coords.append([x, y])
        labels.append(boundary_label if label == KIND_LABELS["boundary"] else label)
    if not coords:
        return None
    xy = (torch.tensor(coords, dtype=torch.float32, device=device) + 0.5) * scale - 0.5
    return {"point_coords": xy[None], "point_labels": torch.tensor(labels, dtype=torch.int32, device=device)[None]}


def encode(sam, frames: Sequence[np.ndarray], device: torch.device, train_encoder: bool):
    """Backbone features for a batch of [0, 1] frames; no graph when the encoder is frozen."""
    images = torch.cat([preprocess_frame(f, int(sam.image_size), device) for f in frames])
    with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
        backbone = sam.forward_image(images)
        _, feats, pos, sizes = sam._prepare_backbone_features(backbone)
    return feats, pos, sizes


def _select(feats: list[torch.Tensor], index: int) -> list[torch.Tensor]:
    return [f[:, index : index + 1] for f in feats]  # (HW, B, C) -> one image


def _heads(sam, frame: int, feats, pos, sizes, prompt: dict | None, mask_logits, output_dict, num_frames: int,
           is_init: bool):
    """SAM2's _track_step outputs (multimasks, ious, best mask, object pointer, score)."""
    _, outputs, _, _ = sam._track_step(
        frame, is_init, feats, pos, sizes, prompt, None, output_dict, num_frames, False,
        mask_logits if prompt is not None else None,
    )
    return outputs


def _choose(multimasks: torch.Tensor, target: torch.Tensor, weights) -> int:
    """SAM2's rule for a multi-mask output: train on the candidate with the lowest loss."""
    with torch.no_grad():
        t = target.expand(multimasks.shape[1], -1, -1)
        cost = weights[0] * focal_loss(multimasks[0], t) + weights[1] * dice_loss(multimasks[0], t)
    return int(torch.argmin(cost))


def prompt_frame(sam, frame: int, feats, pos, sizes, reference: np.ndarray, mode: str, rng: np.random.Generator,
                 settings: StepSettings, *, corrected: bool, output_dict: dict, num_frames: int):
    """Simulate the user on one frame (corrections without gradient), then decode it with
    gradient. Returns (outputs of the last decode, prompt state, chosen mask index)."""
    device = feats[-1].device
    state = start_prompt(reference, mode, rng, box_noise=settings.box_noise, initial=1 if corrected else 2)
    logits = None
    if corrected and mode != "box":
        budget = point_budget(rng, settings.min_points, settings.max_points)
        with torch.no_grad():
            while True:
                prompt = point_inputs(state, sam, device, settings.boundary_label)
                out = _heads(sam, frame, feats, pos, sizes, prompt, logits, output_dict, num_frames, True)
                logits = out[3].detach()
                if len(state.points) >= budget or not correct(state, (logits[0, 0] > 0).cpu().numpy()):
                    break
    prompt = point_inputs(state, sam, device, settings.boundary_label)
    out = _heads(sam, frame, feats, pos, sizes, prompt, logits, output_dict, num_frames, True)
    return out, state, prompt


def frame_loss(outputs, reference: np.ndarray, settings: StepSettings, state: PromptState | None) -> dict[str, torch.Tensor]:
    """SAM2's loss on one decoded frame, plus the boundary term where there are boundary points."""
    multimasks, _, ious, *_rest, scores = outputs
    target = torch.from_numpy(reference).to(multimasks.device)[None]
    best = _choose(multimasks, target, settings.loss_weights) if multimasks.shape[1] > 1 else 0
    logits = multimasks[:, best]
    parts = sam2_model_loss(logits, ious[:, best], scores, target, settings.loss_weights)
    points = state.boundary_points if state is not None else np.zeros((0, 2), np.float32)
    if len(points):
        parts["boundary"] = boundary_loss(logits, torch.from_numpy(points).to(logits.device)[None], None, settings.loss)
    else:
        parts["boundary"] = logits.sum() * 0.0
    parts["has_boundary"] = torch.tensor(float(len(points) > 0))
    return parts


def _combine(parts: list[dict[str, torch.Tensor]], weight: float) -> dict[str, torch.Tensor]:
    keys = [k for k in parts[0] if k != "has_boundary"]
    out = {k: torch.stack([p[k] for p in parts]).mean() for k in keys if k != "boundary"}
    with_points = [p["boundary"] for p in parts if float(p["has_boundary"]) > 0]
    out["boundary"] = torch.stack(with_points).mean() if with_points else parts[0]["boundary"] * 0.0
    out["loss"] = out["model"] + weight * out["boundary"]
    out["with_points"] = torch.tensor(len(with_points))  # the boundary mean is over these (see training.distributed)
    return out


def image_batch_loss(sam, frames: Sequence[np.ndarray], masks: Sequence[np.ndarray], modes: Sequence[str],
                     corrected: set[int], rng: np.random.Generator | list[np.random.Generator],
                     settings: StepSettings) -> dict[str, torch.Tensor]:
    """Loss for a batch of still images (each its own prompt, no memory); `rng` is one
    generator for the batch or one per image."""
    rngs = rng if isinstance(rng, list) else [rng] * len(frames)
    device = next(sam.parameters()).device
    size = low_res_size(sam)
    feats, pos, sizes = encode(sam, frames, device, settings.train_encoder)
    parts = []
    for i, (mask, mode) in enumerate(zip(masks, modes)):
        reference = target_mask(mask, size)
        empty = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        out, state, _ = prompt_frame(sam, 0, _select(feats, i), _select(pos, i), sizes, reference, mode, rngs[i], settings,
                                     corrected=i in corrected, output_dict=empty, num_frames=1)
        parts.append(frame_loss(out, reference, settings, state))
    return _combine(parts, settings.loss.weight)


def clip_loss(sam, frames: np.ndarray, masks: np.ndarray, annotated: np.ndarray, mode: str, rng: np.random.Generator,
              settings: StepSettings, *, corrected: bool = True) -> dict[str, torch.Tensor]:
    """Loss for a cine clip: the prompt on frame 0, frames 1.. tracked from memory with
    gradient through the memory, SAM2's loss on every annotated frame."""
    device = next(sam.parameters()).device
    size = low_res_size(sam)
    count = len(frames)
    feats, pos, sizes = encode(sam, list(frames), device, settings.train_encoder)
    memory = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    parts = []
    for t in range(count):
        reference = target_mask(masks[t], size)
        f, p = _select(feats, t), _select(pos, t)
        if t == 0:
            out, state, prompt = prompt_frame(sam, 0, f, p, sizes, reference, mode, rng, settings, corrected=corrected,
                                              output_dict=memory, num_frames=count)
        else:
            state, prompt = None, None
            out = _heads(sam, t, f, p, sizes, None, None, memory, count, False)
        high_res, obj_ptr, scores = out[4], out[5], out[6]
        features, position = sam._encode_new_memory(f, sizes, high_res, scores, is_mask_from_pts=prompt is not None)
        entry = {"maskmem_features": features, "maskmem_pos_enc": position, "obj_ptr": obj_ptr,
                 "pred_masks": out[3], "object_score_logits": scores}
        memory["cond_frame_outputs" if t == 0 else "non_cond_frame_outputs"][t] = entry
        if annotated[t]:
            parts.append(frame_loss(out, reference, settings, state))
    if not parts:
        raise ValueError("a training clip needs at least one annotated frame")
    return _combine(parts, settings.loss.weight)

