"""The SAMUSA boundary loss (paper eq. 1) and the models' own losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from SAMUSALib.training.losses import (
    BoundaryLossConfig,
    boundary_loss,
    dice_loss,
    litemedsam_model_loss,
    sam2_model_loss,
)


def numpy_boundary_loss(probabilities: np.ndarray, points: np.ndarray, normalisation: str = "mean",
                        kernel: int = 7, passes: int = 20, sigma: float = 2.0) -> float:
    """Equation 1 written directly: blur the mask N times with a k x k mean filter,
    sum Gaussians at the points, exp(-sum of the product)."""
    g_i = probabilities.astype(np.float64)
    for _ in range(passes):
        g_i = ndimage.uniform_filter(g_i, size=kernel, mode="constant", cval=0.0)
    yy, xx = np.mgrid[: g_i.shape[0], : g_i.shape[1]]
    g_p = np.zeros_like(g_i)
    for x, y in points:
        g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
        if normalisation != "peak":
            g = g / g.sum()
        g_p += g
    if normalisation == "mean":
        g_p /= len(points)
    return float(np.exp(-(g_i * g_p).sum()))


def disc_logits(size=48, centre=(24, 24), radius=12, sharpness=4.0) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(xx - centre[0], yy - centre[1])
    return torch.tensor(sharpness * (radius - distance), dtype=torch.float32)


@pytest.mark.parametrize("normalisation", ["mean", "sum"])
def test_loss_matches_equation_one_computed_with_numpy(normalisation):
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(0, 3, (2, 40, 36)), dtype=torch.float32)
    points = torch.tensor(rng.uniform(2, 34, (2, 3, 2)), dtype=torch.float32)
    config = BoundaryLossConfig(normalisation=normalisation)
    ours = boundary_loss(logits, points, config=config, reduction="none")
    for i in range(2):
        expected = numpy_boundary_loss(torch.sigmoid(logits[i]).numpy(), points[i].numpy(), normalisation)
        assert ours[i].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_paper_literal_normalisation_underflows_which_is_why_mean_is_the_default():
    logits = disc_logits()[None]
    on_edge = torch.tensor([[[36.0, 24.0]]])
    literal = boundary_loss(logits, on_edge, config=BoundaryLossConfig(normalisation="peak"))
    expected = numpy_boundary_loss(torch.sigmoid(logits[0]).numpy(), on_edge[0].numpy(), "peak")
    assert literal.item() == pytest.approx(expected, rel=1e-3, abs=1e-12)
    assert literal.item() < 1e-3  # exp(-8): one point already leaves almost no gradient
    three = torch.tensor([[[36.0, 24.0], [12.0, 24.0], [24.0, 12.0]]])
    assert boundary_loss(logits, three, config=BoundaryLossConfig(normalisation="peak")).item() < 1e-9
    default = boundary_loss(logits, on_edge)
    assert np.exp(-1) <= default.item() <= 1.0


def test_points_on_the_predicted_boundary_cost_less_than_points_away_from_it():
    logits = disc_logits()[None]
    angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    on = torch.tensor(np.stack([24 + 12 * np.cos(angles), 24 + 12 * np.sin(angles)], -1)[None], dtype=torch.float32)
    away = torch.tensor(np.stack([24 + 21 * np.cos(angles), 24 + 21 * np.sin(angles)], -1)[None], dtype=torch.float32)
    assert boundary_loss(logits, on).item() < boundary_loss(logits, away).item() - 0.05


def test_as_written_the_loss_prefers_masks_past_the_points_and_edge_does_not():
    """Eq. 1 as written is lower when the mask's edge lies beyond the points than when it
    passes through them; the `edge` target is lowest on the edge."""
    angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    points = torch.tensor(np.stack([80 + 40 * np.cos(angles), 80 + 40 * np.sin(angles)], -1)[None], dtype=torch.float32)
    disc = lambda radius: disc_logits(size=160, centre=(80, 80), radius=radius)[None]  # noqa: E731
    through, grown, shrunk = disc(40), disc(48), disc(32)
    assert boundary_loss(grown, points).item() < boundary_loss(through, points).item() - 0.1
    edge = BoundaryLossConfig(target="edge")
    assert boundary_loss(through, points, config=edge).item() < boundary_loss(grown, points, config=edge).item() - 0.1
    assert boundary_loss(through, points, config=edge).item() < boundary_loss(shrunk, points, config=edge).item() - 0.1
    with pytest.raises(ValueError, match="target"):
        BoundaryLossConfig(target="outside")


def test_gradients_flow_to_the_logits_near_the_points():
    logits = disc_logits()[None].clone().requires_grad_(True)
    points = torch.tensor([[[40.0, 24.0]]])  # just outside the disc's edge
    boundary_loss(logits, points).backward()
    grad = logits.grad[0].abs()
    assert torch.isfinite(grad).all() and grad.sum() > 0
    near = grad[14:34, 30:48].sum()
    far = grad[:, :10].sum()
    assert near > 10 * far
    # Growing the mask toward the point lowers the loss: the gradient there is negative.
    assert logits.grad[0, 24, 36] < 0


def test_images_without_points_add_nothing():
    logits = torch.stack([disc_logits(), disc_logits(radius=5)])
    points = torch.tensor([[[36.0, 24.0]], [[0.0, 0.0]]])
    valid = torch.tensor([[True], [False]])
    both = boundary_loss(logits, points, valid)
    alone = boundary_loss(logits[:1], points[:1])
    assert both.item() == pytest.approx(alone.item(), rel=1e-6)
    none = boundary_loss(logits.requires_grad_(True), points, torch.zeros_like(valid))
    assert none.item() == 0.0
    none.backward()  # still part of the graph


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="normalisation"):
        BoundaryLossConfig(normalisation="softmax")
    with pytest.raises(ValueError, match="odd"):
        BoundaryLossConfig(blur_kernel=6)


def test_model_losses_are_small_for_the_truth_and_large_for_its_opposite():
    target = torch.from_numpy(disc_logits().numpy() > 0)[None]
    good = torch.where(target, 10.0, -10.0)
    assert dice_loss(good, target).item() < 0.01
    assert dice_loss(-good, target).item() > 0.99
    lite_good = litemedsam_model_loss(good[:, None][:, 0], torch.ones(1), target)["model"]
    lite_bad = litemedsam_model_loss(-good, torch.ones(1), target)["model"]
    assert lite_good.item() < 0.05 < lite_bad.item()
    parts = sam2_model_loss(good, torch.ones(1), torch.tensor([5.0]), target)
    assert parts["model"].item() < 0.1
    absent = sam2_model_loss(good, torch.ones(1), torch.tensor([5.0]), torch.zeros_like(target))
    assert absent["object"].item() > 1.0  # "present" where nothing is: the object-score term objects
