"""The SAMUSA boundary loss (paper, section 2.2, equation 1) and the models' own losses.

    G_I = the predicted mask blurred N = 20 times by a 7 x 7 mean filter
    G_P = sum over boundary points p of exp(-|x - p|^2 / (2 sigma^2)),  sigma = 2
    L_boundary = exp(-sum_x G_I(x) G_P(x))
    L = L_model + lambda L_boundary,  lambda = 2

The blurred mask is about 0.5 on the predicted contour, near 1 deep inside and near 0
far outside, so the loss rewards masks whose (blurred) edge reaches the points: a point
outside the prediction costs most, one on its contour less. The paper leaves open:

- *G_P's normalisation.* Taken literally (unit-peak Gaussians, summed), one point already
  contributes about 2 pi sigma^2 = 25 times G_I, so exp(-sum) underflows to 0 and gives
  no gradient whatever the prediction. Default ``"mean"``: each Gaussian is normalised
  to sum 1 and the sum is divided by the number of points, so sum G_I G_P is the
  (Gaussian-weighted) mean of G_I at the points, in [0, 1], and the loss lies in
  [exp(-1), 1] with a useful gradient. ``"sum"`` (normalised Gaussians, not divided by the
  point count) and ``"peak"`` (the literal reading) are available.
- *The mask.* G_I blurs sigmoid probabilities (a hard mask has no gradient); the filter
  pads with zeros (outside the image is background), like
  ``scipy.ndimage.uniform_filter(mode="constant")``.
- *Batching.* The loss is computed per image and averaged over the images that have
  boundary points; images without points add nothing (``reduction="mean"``), or the
  per-image values are returned (``"none"``).
- *Where the loss is smallest* (``target``). Taken as written (``"inside"``, the
  default), exp(-sum G_I G_P) keeps falling as G_I at the points rises towards 1, i.e.
  as the mask grows past the points: with G_I blurred over about 9 px, a mask whose edge
  lies 10 px beyond the points scores better than one whose edge passes through them
  (measured in the first SAMUSA-Lite run, docs/samusa_lite.md). ``"edge"`` replaces G_I by
  4 G_I (1 - G_I), which is 1 exactly on the blurred mask's edge and falls to 0 deep
  inside or far outside, so the loss is smallest when the predicted boundary passes
  through the points: what a boundary click means.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

NORMALISATIONS = ("mean", "sum", "peak")
TARGETS = ("inside", "edge")


@dataclass(frozen=True)
class BoundaryLossConfig:
    blur_kernel: int = 7
    blur_passes: int = 20
    sigma: float = 2.0
    weight: float = 2.0  # lambda
    normalisation: str = "mean"
    target: str = "inside"  # "inside": eq. 1 as written; "edge": smallest on the predicted boundary

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"boundary loss target must be one of {TARGETS}; got {self.target!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"boundary loss normalisation must be one of {NORMALISATIONS}; got {self.normalisation!r}")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd and positive; got {self.blur_kernel}")
        if self.blur_passes < 0 or self.sigma <= 0:
            raise ValueError("blur_passes must be >= 0 and sigma > 0")


def blurred_mask(probabilities: torch.Tensor, kernel: int = 7, passes: int = 20) -> torch.Tensor:
    """G_I: (B, H, W) probabilities mean-filtered `passes` times (zero padding)."""
    out = probabilities[:, None]
    for _ in range(passes):
        out = F.avg_pool2d(out, kernel, stride=1, padding=kernel // 2, count_include_pad=True)
    return out[:, 0]


def point_heatmap(points: torch.Tensor, valid: torch.Tensor, shape: tuple[int, int], sigma: float = 2.0,
                  normalisation: str = "mean") -> torch.Tensor:
    """G_P: (B, H, W) sum of Gaussians at the valid (x, y) `points` (B, P, 2)."""
    height, width = shape
    ys = torch.arange(height, dtype=points.dtype, device=points.device)
    xs = torch.arange(width, dtype=points.dtype, device=points.device)
    # Separable Gaussians: (B, P, H) x (B, P, W).
    gy = torch.exp(-((ys[None, None] - points[..., 1:2]) ** 2) / (2 * sigma**2))
    gx = torch.exp(-((xs[None, None] - points[..., 0:1]) ** 2) / (2 * sigma**2))
    weight = valid.to(points.dtype)
    if normalisation != "peak":
        mass = gy.sum(-1) * gx.sum(-1)  # each Gaussian's sum over the image
        weight = weight / mass.clamp_min(1e-12)
        if normalisation == "mean":
            weight = weight / valid.sum(-1, keepdim=True).clamp_min(1).to(points.dtype)
    return torch.einsum("bp,bph,bpw->bhw", weight, gy, gx)


def boundary_loss(
    logits: torch.Tensor,
    points: torch.Tensor,
    valid: torch.Tensor | None = None,
    config: BoundaryLossConfig = BoundaryLossConfig(),
    reduction: str = "mean",
) -> torch.Tensor:
    """L_boundary (unweighted) for mask logits (B, H, W) or (B, 1, H, W) and boundary
    points (B, P, 2) as x, y in the logits' pixel coordinates; `valid` (B, P) marks real
    points (padding False)."""
    if logits.ndim == 4:
        logits = logits[:, 0]
    if valid is None:
        valid = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
    g_i = blurred_mask(torch.sigmoid(logits.float()), config.blur_kernel, config.blur_passes)
    if config.target == "edge":
        g_i = 4 * g_i * (1 - g_i)
    g_p = point_heatmap(points.float(), valid, tuple(logits.shape[-2:]), config.sigma, config.normalisation)
    per_image = torch.exp(-(g_i * g_p).flatten(1).sum(-1))
    if reduction == "none":
        return per_image
    has = valid.any(-1)
    if not bool(has.any()):
        return logits.sum() * 0.0  # keeps the graph; no image had points
    return per_image[has].mean()


# ------------------------------------------------------------------ the models' own losses
def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per mask: logits and target (N, H, W) -> (N,)."""
    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    return 1 - (2 * (p * t).sum(-1) + eps) / (p.sum(-1) + t.sum(-1) + eps)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss per mask (mean over pixels): (N, H, W) -> (N,)."""
    t = target.float()
    ce = F.binary_cross_entropy_with_logits(logits.float(), t, reduction="none")
    p = torch.sigmoid(logits.float())
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.flatten(1).mean(-1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded prediction with the target, per mask (no gradient)."""
    with torch.no_grad():
        p = logits.detach() > 0
        t = target.bool()
        inter = (p & t).flatten(1).sum(-1).float()
        union = (p | t).flatten(1).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def litemedsam_model_loss(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """LiteMedSAM's own training loss (MedSAM: Dice + BCE, plus the IoU head's MSE)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none").flatten(1).mean(-1)
    dice = dice_loss(logits, target)
    iou = F.mse_loss(iou_pred.float(), mask_iou(logits, target), reduction="none")
    return {"dice": dice.mean(), "bce": bce.mean(), "iou": iou.mean(), "model": (dice + bce + iou).mean()}


def sam2_model_loss(
    logits: torch.Tensor,
    iou_pred: torch.Tensor,
    object_score: torch.Tensor | None,
    target: torch.Tensor,
    weights: tuple[float, float, float, float] = (20.0, 1.0, 1.0, 1.0),
) -> dict[str, torch.Tensor]:
    """SAM2's training loss: focal (20), Dice (1), IoU regression (1, L1 as SAM2) and the
    object-score BCE (1); mask terms only where the object is present."""
    w_focal, w_dice, w_iou, w_obj = weights
    present = target.flatten(1).any(-1).float()
    focal = focal_loss(logits, target)
    dice = dice_loss(logits, target)
    iou = (iou_pred.float() - mask_iou(logits, target)).abs()
    denom = present.sum().clamp_min(1)
    parts = {
        "focal": (focal * present).sum() / denom,
        "dice": (dice * present).sum() / denom,
        "iou": (iou * present).sum() / denom,
    }
    if object_score is not None:
        parts["object"] = F.binary_cross_entropy_with_logits(object_score.float().reshape(-1), present)
    else:
        parts["object"] = logits.sum() * 0.0
    parts["model"] = w_focal * parts["focal"] + w_dice * parts["dice"] + w_iou * parts["iou"] + w_obj * parts["object"]
    return parts


def total_loss(model_loss: torch.Tensor, boundary: torch.Tensor, config: BoundaryLossConfig = BoundaryLossConfig()) -> torch.Tensor:
    """L = L_model + lambda L_boundary."""
    return model_loss + config.weight * boundary
