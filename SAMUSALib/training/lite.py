"""Training SAMUSA-Lite on a CPU: LiteMedSAM's prompt encoder and mask decoder learn
boundary points, with the image encoder frozen and its embeddings cached.

One step: a batch of cached images, each with a prompt mode (boundary points, region
clicks, box, box + region clicks) and its first interaction; `corrections` images of
the batch then receive corrective clicks one at a time from the model's own
prediction (no gradient), the previous logits fed back as the mask prompt, until their
budget of 2 to 10 points; finally the whole batch is decoded with gradient and the loss
L = L_model + lambda L_boundary (`losses`) is minimised. The pretrained weights stay the
starting point; the box prompt is kept in the mix so that it does not regress.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from .embeddings import EmbeddedImage, embed_cases, split_by_group
from .losses import BoundaryLossConfig, boundary_loss, litemedsam_model_loss
from .runs import RunState, check_options, write_log
from .sampling import (PromptState, choose_corrections, choose_layout, choose_mode, correct, layout_prompt, point_budget,
                       start_prompt)

DEFAULT_MODES = {"boundary": 0.4, "region": 0.3, "box": 0.1, "box+region": 0.2}
#: Decoding choices a config may set for the saved model (`inference:`) beyond how it was
#: trained: ``boundary_box: false`` gives boundary points no box at inference (a model
#: trained with ``boundary_box_drop`` can read them alone).
INFERENCE_KEYS = ("boundary_box",)


@dataclass
class LiteTrainConfig:
    train: list[str]
    out: str = "runs/samusa-lite"
    holdout: float = 0.1  # fraction of patients held out of `train` for our own validation
    steps: int = 600
    batch: int = 8
    lr: float = 1e-4
    boundary_embedding_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 30
    modes: dict = field(default_factory=lambda: dict(DEFAULT_MODES))
    corrections: int = 2
    min_points: int = 2
    max_points: int = 10
    box_noise: float = 0.1
    boundary_box: bool = False  # give boundary points (from two on) their extent as a box too
    boundary_box_drop: float = 0.0  # share of boundary prompts decoded without that box (bunched points)
    inference: dict = field(default_factory=dict)  # how the saved model decodes, if not as trained (INFERENCE_KEYS)
    pretrained_box: bool = False  # the saved model decodes box-only prompts and tracks with LiteMedSAM's heads
    # How users give clicks (SAMUSA-Lite 2; the defaults are SAMUSA-Lite 1's training):
    no_history: float = 0.0  # share of corrected images whose clicks are decoded without earlier logits
    sequence: float = 0.0  # share of corrected boundary images given a layout's points one by one, any order
    layouts: dict = field(default_factory=dict)  # {even, clustered, furthest}: boundary points given at once
    jitter: float = 0.0  # boundary points up to this many pixels (model square) off the border
    settle: float = 0.0  # share of images decoded as a settling model decodes (`settle_passes`)
    settle_passes: int = 3  # saved with the model when `settle` > 0 (backend `_native`)
    init: str | None = None  # start from these SAMUSA-Lite weights (a model id or a delta file)
    augmented_copies: int = 0  # ultrasound-augmented copies of each training image, encoded once
    augment: str = "default"  # their strength (training.augment.ultrasound_augmentations)
    boundary_loss: dict = field(default_factory=dict)
    seed: int = 0
    cache: str | None = None
    limit: int | None = None  # first N images per folder (tests, smoke runs)
    validate_every: int = 100
    validate_images: int = 40
    log_every: int = 10
    threads: int | None = None
    time_limit_minutes: float | None = None
    resume: bool = True
    # What the saved weights call themselves (a release's metadata, written by training, not by hand):
    weights_id: str = "samusa-lite"  # their id (the boundary heads: samusa-lite-boundary-heads)
    role: str | None = None  # what they are for, for whoever loads them
    config_file: str | None = None  # set by `samusa train`: paths are saved relative to its folder

    def loss_config(self) -> BoundaryLossConfig:
        return BoundaryLossConfig(**self.boundary_loss)

    def regimes(self) -> "PromptRegimes":
        return PromptRegimes(self.no_history, self.sequence, dict(self.layouts), self.jitter, self.max_points,
                             self.boundary_box_drop)

    @classmethod
    def from_dict(cls, values: dict) -> "LiteTrainConfig":
        check_options(cls, values, "training")
        unknown = sorted(set(values.get("inference") or {}) - set(INFERENCE_KEYS))
        if unknown:
            raise InputError(f"training config `inference:` does not take {', '.join(unknown)}; it takes {', '.join(INFERENCE_KEYS)}")
        if not values.get("train"):
            raise InputError("the training config needs `train:`, a list of data folders (images/ + masks/ or labels/)")
        return cls(**values)


@dataclass(frozen=True)
class PromptRegimes:
    """The ways a batch's prompts are given, beyond the paper's corrective clicks with the
    previous logits fed back (which stays the rest of the corrected images):

    - ``no_history``: corrected images whose clicks are chosen from the model's own
      prediction but decoded without earlier logits, as a prompts file, a markups node or
      a re-run scene gives them (all at once);
    - ``sequence``: corrected boundary images given a layout's points one at a time in a
      random order, previous logits fed back (users click in any order and spacing);
    - ``layouts``: the other boundary images get 1 to ``max_points`` points placed by one
      of these layouts, in one prompt (empty: 1 or 2 points, SAMUSA-Lite 1's start);
    - ``jitter``: every boundary point lands up to this many pixels off the border;
    - ``box_drop``: boundary prompts decoded without their points' extent as a box, so the
      model learns to read points bunched on one arc, whose extent cuts the object off.
    """

    no_history: float = 0.0
    sequence: float = 0.0
    layouts: dict = field(default_factory=dict)
    jitter: float = 0.0
    max_points: int = 10
    box_drop: float = 0.0


# ------------------------------------------------------------------ one batch
def tokens_of(state: PromptState, derive_box: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Token list for a simulated prompt; with `derive_box`, boundary points come with
    their extent as the box, as a `boundary_box` model is given them at inference."""
    from ..backends.litemedsam.lite import boundary_box, prompt_tokens

    points = np.array([(x, y) for x, y, _ in state.points], dtype=np.float32).reshape(-1, 2)
    labels = [label for _, _, label in state.points]
    box = boundary_box(points, labels, state.box) if derive_box else state.box
    return prompt_tokens(points, labels, box)


def _decode(net, embeddings: torch.Tensor, states: list[PromptState], masks: torch.Tensor, use_mask: torch.Tensor):
    """Decode every image's prompt. Images are batched only with images of as many
    tokens, so no prompt is padded: an image's output is then what inference gives it
    (one prompt, no padding tokens in the decoder's attention), whatever else is in the
    batch, and a batch split over processes decodes as it does in one."""
    from ..backends.litemedsam.lite import batch_tokens

    derive = bool(getattr(net, "boundary_box", False))
    tokens = [tokens_of(s, derive and not s.unboxed) for s in states]
    groups: dict[int, list[int]] = {}
    for index, (_, labels) in enumerate(tokens):
        groups.setdefault(len(labels), []).append(index)
    if len(groups) == 1:
        coords, labels = batch_tokens(tokens, embeddings.device)
        return net.decode_tokens(embeddings, coords, labels, masks, use_mask)
    order, logits, ious = [], [], []
    for members in groups.values():
        coords, labels = batch_tokens([tokens[i] for i in members], embeddings.device)
        index = torch.tensor(members, device=embeddings.device)
        group_logits, group_iou = net.decode_tokens(embeddings[index], coords, labels, masks[index], use_mask[index])
        order += members
        logits.append(group_logits)
        ious.append(group_iou)
    inverse = torch.argsort(torch.tensor(order, device=embeddings.device))
    return torch.cat(logits)[inverse], torch.cat(ious)[inverse]


def _regime(i: int, mode: str, rng: np.random.Generator, budgets: dict[int, int], regimes: PromptRegimes) -> str:
    """How image i's prompt is given: "feedback" (corrective clicks, previous logits fed
    back), "no-history", "sequence" (corrected images) or "once" (the others)."""
    if i not in budgets:
        return "once"
    if mode == "box" or not (regimes.no_history or regimes.sequence):
        return "feedback"
    draw = rng.random()
    if draw < regimes.no_history:
        return "no-history"
    if mode == "boundary" and regimes.layouts and draw < regimes.no_history + regimes.sequence:
        return "sequence"
    return "feedback"


def simulate(net, embeddings: torch.Tensor, references: list[np.ndarray], modes: list[str],
             rng: np.random.Generator | list[np.random.Generator], *, corrected: np.ndarray, budgets: dict[int, int],
             box_noise: float = 0.1, regimes: PromptRegimes | None = None):
    """Prompts for a batch: first interactions, then corrective clicks for the `corrected`
    images from the model's own predictions (no gradient), given as `regimes` says.
    Returns the prompt states, the mask prompts (previous logits) and which images use
    them. `rng`: one generator for the batch, or one per image (distributed training: an
    image's prompts then do not depend on the process that draws them)."""
    regimes = regimes or PromptRegimes()
    count = len(references)
    rngs = rng if isinstance(rng, list) else [rng] * count
    states, kinds, queued = [], [], {}
    for i, (reference, mode) in enumerate(zip(references, modes)):
        kind = _regime(i, mode, rngs[i], budgets, regimes)
        kinds.append(kind)
        if kind == "sequence":
            state = layout_prompt(reference, mode, rngs[i], budgets[i], choose_layout(rngs[i], regimes.layouts),
                                  jitter=regimes.jitter)
            queued[i], state.points = state.points[1:], state.points[:1]
        elif kind == "once" and mode == "boundary" and regimes.layouts:
            points = int(rngs[i].integers(1, regimes.max_points + 1))
            state = layout_prompt(reference, mode, rngs[i], points, choose_layout(rngs[i], regimes.layouts),
                                  jitter=regimes.jitter)
        else:
            # Corrected images start as the evaluation's user does (one point); others
            # get one or two boundary points.
            initial = 1 if i in budgets or mode != "boundary" else int(rngs[i].integers(1, 3))
            state = start_prompt(reference, mode, rngs[i], box_noise=box_noise, initial=initial, jitter=regimes.jitter)
        if mode == "boundary" and regimes.box_drop > 0:
            state.unboxed = bool(rngs[i].random() < regimes.box_drop)
        states.append(state)
    masks = torch.zeros((count, 1, 256, 256), device=embeddings.device)
    use_mask = torch.zeros(count, dtype=torch.bool, device=embeddings.device)
    active = [int(i) for i in corrected if modes[i] != "box" and (kinds[i] != "sequence" or queued[i])]
    with torch.no_grad():
        while active:
            index = torch.tensor(active, device=embeddings.device)
            logits, _ = _decode(net, embeddings[index], [states[i] for i in active], masks[index], use_mask[index])
            still = []
            for j, i in enumerate(active):
                if kinds[i] != "no-history":
                    masks[i] = logits[j]
                    use_mask[i] = True
                if kinds[i] == "sequence":
                    states[i].points.append(queued[i].pop(0))
                    if queued[i]:
                        still.append(i)
                elif correct(states[i], (logits[j, 0] > 0).cpu().numpy()) and len(states[i].points) < budgets[i]:
                    still.append(i)
            active = still
    return states, masks, use_mask


def batch_loss(net, samples: list[EmbeddedImage], rng: np.random.Generator | None, config: LiteTrainConfig, *,
               rngs: list[np.random.Generator] | None = None, corrected: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Simulate prompts for a batch and return its loss terms (with gradient), and
    ``with_points``, the number of images with boundary points (the boundary term's mean
    is over them). With `rngs` (one per image) and `corrected` (the images given
    corrective clicks) instead of `rng`, each image's draws are its own."""
    device = next(net.parameters()).device
    embeddings = torch.stack([s.embedding for s in samples]).to(device=device, dtype=torch.float32)
    references = [s.mask for s in samples]
    if rngs is None:
        modes = [choose_mode(rng, config.modes) for _ in samples]
        corrected = choose_corrections(len(samples), rng, config.corrections)
        budgets = {int(i): point_budget(rng, config.min_points, config.max_points) for i in corrected}
    else:
        modes = [choose_mode(r, config.modes) for r in rngs]
        corrected = np.asarray(corrected if corrected is not None else [], dtype=int)
        budgets = {int(i): point_budget(rngs[int(i)], config.min_points, config.max_points) for i in corrected}
    states, masks, use_mask = simulate(net, embeddings, references, modes, rngs if rngs is not None else rng,
                                       corrected=corrected, budgets=budgets, box_noise=config.box_noise,
                                       regimes=config.regimes())
    if config.settle > 0:
        draws = [r.random() for r in rngs] if rngs is not None else list(rng.random(len(states)))
        chosen = [i for i, d in enumerate(draws) if d < config.settle and modes[i] != "box"]
        if chosen:
            index = torch.tensor(chosen, device=device)
            masks[index] = settled_logits(net, embeddings[index], [states[i] for i in chosen], config.settle_passes - 1)
            use_mask[index] = config.settle_passes > 1
    logits, iou = _decode(net, embeddings, states, masks, use_mask)
    target = torch.from_numpy(np.stack(references)).to(device)
    parts = litemedsam_model_loss(logits[:, 0], iou[:, 0], target)
    longest = max(1, max(len(s.boundary_points) for s in states))
    points = torch.zeros((len(states), longest, 2), device=device)
    valid = torch.zeros((len(states), longest), dtype=torch.bool, device=device)
    for i, state in enumerate(states):
        b = state.boundary_points
        points[i, : len(b)] = torch.from_numpy(b)
        valid[i, : len(b)] = True
    loss_config = config.loss_config()
    parts["boundary"] = boundary_loss(logits, points, valid, loss_config)
    parts["loss"] = parts["model"] + loss_config.weight * parts["boundary"]
    parts["with_points"] = valid.any(dim=1).sum().detach()
    return parts


def _decode_as_used(net, embeddings: torch.Tensor, states: list[PromptState], masks: torch.Tensor, use: torch.Tensor):
    """Decode as the backend does at inference (`_native`): a settling network ignores the
    given mask prompt and settles; SAMUSA-Lite 1 takes it."""
    passes = int(getattr(net, "settle_passes", 0) or 0)
    if passes <= 0:
        return _decode(net, embeddings, states, masks, use)
    masks = settled_logits(net, embeddings, states, passes - 1)
    return _decode(net, embeddings, states, masks, torch.full_like(use, passes > 1))


def settled_logits(net, embeddings: torch.Tensor, states: list[PromptState], passes: int) -> torch.Tensor:
    """The mask prompt of a settling model's last pass: `passes` decodes of the same
    prompt without gradient, the first without a mask prompt, each next one fed the last
    one's logits (zeros when `passes` is 0)."""
    count = len(states)
    masks = torch.zeros((count, 1, 256, 256), device=embeddings.device)
    use = torch.zeros(count, dtype=torch.bool, device=embeddings.device)
    with torch.no_grad():
        for _ in range(passes):
            masks, _ = _decode(net, embeddings, states, masks, use)
            use = torch.ones(count, dtype=torch.bool, device=embeddings.device)
    return masks


# ------------------------------------------------------------------ validation in model space
def quick_validation(net, samples: list[EmbeddedImage], seed: int = 0, clicks: tuple[int, ...] = (1, 3, 5),
                     feedback: bool = True, at_once: bool = False) -> dict[str, float]:
    """Mean Dice in the model's 256 x 256 square after k clicks, per prompt type, with the
    evaluation's simulated users and the previous logits fed back, as at inference; with
    `at_once`, also boundary points spread evenly and region clicks decoded without
    earlier logits (``boundary-once@k``, ``region-once@k``), as from a prompts file."""
    from ..evaluation.clicks import case_rng
    from ..evaluation.metrics import dice

    device = next(net.parameters()).device
    out: dict[str, list[float]] = {}
    with torch.no_grad():
        for sample in samples:
            embedding = sample.embedding[None].to(device=device, dtype=torch.float32)
            for mode in ("boundary", "region", "box"):
                rng = case_rng(seed, sample.key, mode)
                state = start_prompt(sample.mask, mode, rng, box_noise=0.0, initial=1)
                masks = torch.zeros((1, 1, 256, 256), device=device)
                use = torch.zeros(1, dtype=torch.bool, device=device)
                for k in range(1, (1 if mode == "box" else max(clicks)) + 1):
                    logits, _ = _decode_as_used(net, embedding, [state], masks, use)
                    prediction = (logits[0, 0] > 0).cpu().numpy()
                    if k in clicks or mode == "box":
                        out.setdefault(f"{mode}@{k}", []).append(dice(prediction, sample.mask))
                    masks, use = logits, torch.full((1,), feedback, dtype=torch.bool, device=device)
                    if not correct(state, prediction):
                        for rest in clicks:
                            if rest > k:
                                out.setdefault(f"{mode}@{rest}", []).append(dice(prediction, sample.mask))
                        break
        for sample in samples if at_once else ():
            embedding = sample.embedding[None].to(device=device, dtype=torch.float32)
            none = torch.zeros(1, dtype=torch.bool, device=device)
            blank = torch.zeros((1, 1, 256, 256), device=device)
            for k in clicks:  # boundary points spread evenly, in one prompt
                state = layout_prompt(sample.mask, "boundary", case_rng(seed, sample.key, "even"), k, "even", shuffle=False)
                logits, _ = _decode_as_used(net, embedding, [state], blank, none)
                out.setdefault(f"boundary-once@{k}", []).append(dice((logits[0, 0] > 0).cpu().numpy(), sample.mask))
            state = start_prompt(sample.mask, "region", case_rng(seed, sample.key, "region"), box_noise=0.0, initial=1)
            for k in range(1, max(clicks) + 1):  # each run given every click so far, no logits
                logits, _ = _decode_as_used(net, embedding, [state], blank, none)
                prediction = (logits[0, 0] > 0).cpu().numpy()
                if k in clicks:
                    out.setdefault(f"region-once@{k}", []).append(dice(prediction, sample.mask))
                if k < max(clicks) and not correct(state, prediction):
                    for rest in clicks:
                        if rest > k:
                            out.setdefault(f"region-once@{rest}", []).append(dice(prediction, sample.mask))
                    break
    return {key: round(float(np.mean(values)), 4) for key, values in out.items()}


# ------------------------------------------------------------------ the loop
def load_samples(config: LiteTrainConfig, net, progress: Callable[[str], None] = print) -> list[EmbeddedImage]:
    from ..models import cache_dir
    from .data import training_items

    cache = Path(config.cache) if config.cache else cache_dir() / "training" / "litemedsam"
    encoder = _inference_encoder(net)
    samples: list[EmbeddedImage] = []
    for folder in config.train:
        items = list(training_items(folder, limit=config.limit))
        if not items:
            raise InputError(f"no image/mask pairs with an object in {folder}")
        started = time.perf_counter()
        samples += embed_cases(encoder, items, cache)
        for copy in range(1, config.augmented_copies + 1):
            name = f"us-{config.augment}-{copy}"
            augmented = embed_cases(encoder, items, cache, augmentation=name, augment=_augmenter(config.augment, copy))
            samples += [s for s in augmented if s.mask.any()]  # the object may have left the picture
        progress(f"{folder}: {len(items)} images, {config.augmented_copies} augmented copies "
                 f"({time.perf_counter() - started:.0f} s to embed or read)")
    return samples


class _inference_encoder:
    """Encodes training images at inference speed (`runtime.speed_up`: OpenVINO or the
    folded PyTorch encoder; the same embeddings to 4e-6) with a copy of `net`, made when
    the first image is not in the cache: a copy, so the training network's decoders never
    run through an export of stale weights."""

    def __init__(self, net) -> None:
        self.net, self.fast = net, None

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        if self.fast is None:
            import copy

            from ..backends.litemedsam.runtime import speed_up

            self.fast = copy.deepcopy(self.net).eval()
            speed_up(self.fast, torch.device("cpu"))
        return self.fast.embed(image)


def _augmenter(strength: str, copy: int) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Augmented copy number `copy` of an image: the ultrasound pipeline with a generator
    seeded by the image's content and the copy, so the cached embedding stays its own."""
    import zlib

    from .augment import Sample, ultrasound_augmentations

    pipeline = ultrasound_augmentations(strength)

    def augment(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seed = zlib.crc32(np.ascontiguousarray(image).tobytes())
        out = pipeline(Sample(image, np.asarray(mask, bool)), np.random.default_rng([copy, seed]))
        return np.asarray(out.image), np.asarray(out.masks, bool)

    return augment


def _initial_weights(net, base, init: str) -> None:
    """Load SAMUSA-Lite weights (a registry id or a delta file) into `net` to continue from."""
    from ..backends.litemedsam.lite import apply_delta, read_delta, shipped_weights
    from ..models.registry import get_spec

    path = Path(init)
    if not path.is_file():
        try:
            path = shipped_weights(get_spec(init))
        except Exception as exc:  # noqa: BLE001 - named below
            raise InputError(f"init: {init!r} is neither a SAMUSA-Lite weights file nor a model id ({exc})") from None
        if path is None:
            raise InputError(f"init: the weights of {init!r} are not in SAMUSALib/weights/")
    trained = apply_delta(base, read_delta(path)).state_dict()
    net.load_state_dict({key: trained[key] for key in net.state_dict()})  # not the kept LiteMedSAM heads


def train_lite(config: LiteTrainConfig, progress: Callable[[str], None] = print) -> dict:
    """Train SAMUSA-Lite; writes `out/samusa_lite.pt` (the delta weights), `out/log.csv`,
    `out/validation.json`, `out/curves.png` and `out/state.pt` (for resuming)."""
    from ..backends.litemedsam.lite import from_litemedsam, save_delta
    from ..backends.litemedsam.network import build_litemedsam
    from . import distributed as dist

    if config.threads:
        torch.set_num_threads(int(config.threads))
    context = dist.start("cpu")
    if not context.is_main:
        progress = _quiet
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    base, _ = build_litemedsam()
    net = from_litemedsam(base)
    if config.init:
        _initial_weights(net, base, config.init)
    net.boundary_box = bool(config.boundary_box)
    net.settle_passes = int(config.settle_passes) if config.settle > 0 else 0
    if not context.is_main:  # rank 0 fills the embedding cache first; the others read it
        dist.barrier(context)
    samples = load_samples(config, base, progress)
    if context.is_main:
        dist.barrier(context)
    train, held = split_by_group(samples, config.holdout, config.seed)
    held = [s for s in held if s.augmentation == "none"]  # validate on the images as they are
    if not train:
        raise InputError("no training images left after the hold-out split; lower `holdout`")
    if len(held) > config.validate_images:  # a fixed random subset, all sources mixed
        keep = np.random.default_rng(config.seed).choice(len(held), size=config.validate_images, replace=False)
        held = [held[i] for i in sorted(keep)]
    progress(f"{len(train)} training images, {len(held)} held out ({len({s.group for s in held})} patients)")
    for p in net.image_encoder.parameters():
        p.requires_grad_(False)
    decoder = [p for n, p in net.named_parameters() if n.startswith(("prompt_encoder.", "mask_decoder."))]
    optimizer = torch.optim.AdamW(
        [{"params": decoder, "lr": config.lr}, {"params": [net.boundary_embed.weight], "lr": config.boundary_embedding_lr}],
        weight_decay=config.weight_decay,
    )
    run = RunState(out, optimizer, config)
    if config.resume:
        run.resume({"net": net, "optimizer": optimizer}, progress)
    start, history, validations, scheduler = run.start, run.history, run.validations, run.scheduler
    global_batch = min(config.batch, len(train))
    dist.check_batch(context, global_batch)
    model = dist.wrap(context, net)
    weight = config.loss_config().weight
    at_once = bool(config.no_history or config.layouts)  # validate the at-once regimes it trains
    if not validations and held and context.is_main:
        validations.append({"step": 0, **quick_validation(net, held, config.seed, at_once=at_once)})
        progress(f"step 0 validation: {validations[-1]}")
    run.restart_clock()
    net.train()
    step = start
    for step in range(start, config.steps):
        t0 = time.perf_counter()
        # The step's plan is the same on every process; each takes its share of the batch.
        plan = dist.step_rng(config.seed, step)
        chosen = plan.choice(len(train), size=global_batch, replace=False)
        corrected = choose_corrections(global_batch, plan, config.corrections)
        rngs = dist.sample_rngs(config.seed, step, global_batch)
        mine = dist.shard(context, global_batch)
        parts = model(batch_loss, [train[int(chosen[p])] for p in mine], None, config, rngs=[rngs[p] for p in mine],
                      corrected=np.array([p - mine.start for p in corrected if p in mine], dtype=int))
        with_points = int(parts.pop("with_points"))
        loss, logged = dist.shard_loss(context, parts, local=len(mine), total=global_batch, with_points=with_points,
                                       weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder, 1.0)
        optimizer.step()
        scheduler.step()
        row = {"step": step + 1, **{k: round(v, 5) for k, v in logged.items()},
               "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 3)}
        history.append(row)
        if (step + 1) % config.log_every == 0:
            recent = history[-config.log_every:]
            progress(f"step {step + 1}/{config.steps} loss {np.mean([r['loss'] for r in recent]):.4f} "
                     f"boundary {np.mean([r['boundary'] for r in recent]):.4f} {np.mean([r['seconds'] for r in recent]):.2f} s/step")
        last = step + 1 == config.steps
        out_of_time = config.time_limit_minutes is not None and run.elapsed() > 60 * config.time_limit_minutes
        out_of_time = dist.agree(context, out_of_time)
        if held and context.is_main and ((step + 1) % config.validate_every == 0 or last or out_of_time):
            net.eval()
            validations.append({"step": step + 1, **quick_validation(net, held, config.seed, at_once=at_once)})
            net.train()
            progress(f"step {step + 1} validation: {validations[-1]}")
        if context.is_main and ((step + 1) % config.validate_every == 0 or last or out_of_time):
            run.save(step + 1, {"net": net, "optimizer": optimizer})
        if out_of_time:
            progress(f"time limit reached after step {step + 1}")
            break
    net.eval()
    steps_done = len(history)
    metadata = {
        "id": config.weights_id, "family": "litemedsam", "base_model": "litemedsam", "image_size": 256,
        "prompt_types": ["boundary", "region", "box"], "boundary_native": True,
        "boundary_box": bool(config.boundary_box), "pretrained_box": bool(config.pretrained_box),
        "settle_passes": int(config.settle_passes) if config.settle > 0 else 0,
        "data": [str(Path(f)) for f in config.train], "train_images": len(train), "holdout_images": len(held),
        "steps": steps_done, "config": asdict(config), "validation": validations[-1] if validations else None,
        "seconds_per_step": round(float(np.mean([r["seconds"] for r in history])), 3) if history else None,
        **dict(config.inference),
    }
    if config.role:
        metadata["role"] = config.role
    if config.config_file:
        metadata = _portable_paths(metadata, Path(config.config_file))
    weights = out / "samusa_lite.pt"
    if context.is_main:
        save_delta(weights, net, base, metadata)
        write_log(out / "log.csv", history)
        (out / "validation.json").write_text(json.dumps(validations, indent=2))
        plot_curves(history, validations, out / "curves.png")
        progress(f"wrote {weights}")
    dist.barrier(context)
    dist.stop(context)
    return {"weights": str(weights), "history": history, "validations": validations, "metadata": metadata}


def _portable_paths(metadata: dict, config_file: Path) -> dict:
    """The metadata with its paths (data, output, cache, init weights) written relative to
    the config file's folder, as the config names them, and the config file relative to
    where `samusa train` ran (its name alone if it lies elsewhere): weights meant to ship
    then carry no machine's folders and say how they were made. A path with no relative
    form (another drive, on Windows) stays absolute rather than failing a finished run."""
    folder = config_file.resolve().parent

    def relative(value):  # model ids and phantoms stay as they are; paths found here are resolved first
        if not isinstance(value, str) or value.startswith("phantom") or not (Path(value).is_absolute() or Path(value).exists()):
            return value
        resolved = Path(value).resolve()
        try:
            return Path(os.path.relpath(resolved, folder)).as_posix()
        except ValueError:  # on another drive (Windows): no relative path exists
            return resolved.as_posix()

    config = dict(metadata["config"])
    config["train"] = [relative(v) for v in config["train"]]
    for key in ("out", "cache", "init"):
        config[key] = relative(config.get(key))
    named = config_file.resolve()  # where `samusa train` ran from, when the config is under it (the repository)
    config["config_file"] = named.relative_to(Path.cwd()).as_posix() if named.is_relative_to(Path.cwd()) else config_file.name
    return {**metadata, "data": config["train"], "config": config, "config_file": config["config_file"]}


def _quiet(message: str) -> None:
    """Progress of ranks other than 0: they say nothing."""


def plot_curves(history: list[dict], validations: list[dict], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not history:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.array([r["step"] for r in history])
    window = max(1, len(history) // 50)
    for key in ("loss", "model", "boundary"):
        values = np.convolve([r[key] for r in history], np.ones(window) / window, mode="valid")
        left.plot(steps[window - 1:], values, label=key)
    left.set_xlabel("step")
    left.set_title(f"training loss (moving mean of {window})")
    left.legend()
    left.grid(alpha=0.3)
    if validations:
        vsteps = [v["step"] for v in validations]
        for key in sorted(k for k in validations[0] if k != "step"):
            right.plot(vsteps, [v.get(key) for v in validations], "-o", markersize=3, label=key)
        right.set_ylim(0, 1)
        right.legend(fontsize=7, ncol=2, loc="lower right")
    right.set_xlabel("step")
    right.set_title("held-out patients: Dice after k clicks (model space)")
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
