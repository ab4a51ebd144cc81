"""Fine-tuning SAM2 with SAMUSA's boundary points and loss (``samusa train``, model: a SAM2 id).

Meant for a GPU (bfloat16 or float16 autocast with gradient scaling, gradient
accumulation), and runnable on a CPU for small models and smoke runs. Steps alternate
between batches of still images (`train`) and cine clips (`train_videos`), in the ratio
`video_fraction`; `freeze` names the parts that stay fixed (the image encoder by default:
fine-tuning SAM2 for ultrasound usually adapts the decoder and memory, and a frozen
encoder saves most of the memory and time). Every `validate_every` steps the
evaluation's image protocol runs on `validate` folders through the real session, so the
figures are the ones `samusa eval` would give. The result is a checkpoint that
`samusa segment --model PATH` and the Slicer module load, with metadata saying what it
was trained for (base model, prompt types, boundary label, image size, data, validation).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from .losses import BoundaryLossConfig
from .runs import RunState, check_options, write_log
from .sam2_steps import StepSettings, clip_loss, image_batch_loss
from .sampling import MODES, choose_corrections, choose_mode, temporal_window

PARTS = {
    "image_encoder": ("image_encoder.",),
    "prompt_encoder": ("sam_prompt_encoder.",),
    "mask_decoder": ("sam_mask_decoder.", "obj_ptr_proj.", "obj_ptr_tpos_proj."),
    "memory": ("memory_attention.", "memory_encoder.", "maskmem_tpos_enc", "no_mem_embed", "no_mem_pos_enc",
               "no_obj_ptr", "no_obj_embed_spatial"),
}
"""What `freeze` may name, as prefixes of SAM2's parameter names."""


@dataclass
class Sam2TrainConfig:
    model: str = "sam2.1-tiny"
    train: list[str] = field(default_factory=list)  # image folders (images/ + masks/ or labels/), or "phantom:N"
    train_videos: list[str] = field(default_factory=list)  # sequence / volume folders, or "phantom:N"
    validate: list[str] = field(default_factory=list)  # image folders for the evaluation protocol
    out: str = "runs/sam2-samusa"
    steps: int = 2000
    batch: int = 4  # images per image step
    clip_frames: int = 8  # frames per video clip
    video_fraction: float = 0.5  # share of steps on clips when train_videos is given
    accumulate: int = 1  # gradient accumulation (steps count optimiser updates)
    lr: float = 5e-6
    weight_decay: float = 0.1
    warmup: int = 50
    freeze: list[str] = field(default_factory=lambda: ["image_encoder"])
    precision: str = "auto"  # auto: bf16 (or fp16 with scaling) on CUDA, fp32 elsewhere
    device: str = "auto"
    modes: dict = field(default_factory=lambda: {"boundary": 0.5, "region": 0.2, "box": 0.1, "box+region": 0.2})
    corrections: int = 2  # images per batch with iterative corrective clicks (paper: 2)
    min_points: int = 2
    max_points: int = 10
    box_noise: float = 0.1
    boundary_label: int = 1
    boundary_loss: dict = field(default_factory=dict)
    loss_weights: list[float] = field(default_factory=lambda: [20.0, 1.0, 1.0, 1.0])  # focal, dice, iou, object
    augment: str = "default"  # ultrasound augmentations: none, light, default, strong
    temporal_slack: int = 2  # frames a simulated user's window may overshoot
    validate_every: int = 200
    validate_images: int = 30
    validate_clicks: int = 5
    log_every: int = 10
    time_limit_minutes: float | None = None
    resume: bool = True
    tensorboard: bool = True
    progress_bar: bool = True
    limit: int | None = None  # first N images per folder (smoke runs)
    seed: int = 0
    threads: int | None = None

    @classmethod
    def from_dict(cls, values: dict) -> "Sam2TrainConfig":
        check_options(cls, values, "SAM2 training")
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        if not self.train and not self.train_videos:
            raise InputError("the training config needs `train:` (image folders) and/or `train_videos:` (cine folders)")
        bad = sorted(set(self.freeze) - set(PARTS))
        if bad:
            raise InputError(f"freeze: {bad} unknown; choose from {sorted(PARTS)}")
        if set(self.freeze) == set(PARTS):
            raise InputError("freeze names every part of SAM2: nothing would be trained")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise InputError(f"precision must be auto, fp32, bf16 or fp16; got {self.precision!r}")
        if not 0 <= self.boundary_label <= 1:
            raise InputError("boundary_label must be 1 (positive) or 0: SAM2's prompt encoder has no other point labels")
        if self.clip_frames < 2:
            raise InputError("clip_frames must be at least 2 (a prompted frame and one tracked from memory)")
        if len(self.loss_weights) != 4:
            raise InputError(f"loss_weights takes four numbers (focal, dice, iou, object); got {self.loss_weights!r}")
        if self.steps < 0 or self.batch < 1 or self.accumulate < 1:
            raise InputError("steps must be >= 0, batch and accumulate >= 1")

    def settings(self) -> StepSettings:
        return StepSettings(self.boundary_label, self.box_noise, self.min_points, self.max_points,
                            BoundaryLossConfig(**self.boundary_loss), tuple(self.loss_weights),
                            "image_encoder" not in self.freeze)


# ------------------------------------------------------------------ data
@dataclass
class ImageItem:
    key: str
    group: str
    frame: np.ndarray
    mask: np.ndarray


@dataclass
class VideoItem:
    key: str
    frames: np.ndarray
    mask: np.ndarray  # (T, H, W) one object
    annotated: np.ndarray


def _phantom(source: str) -> bool:
    return source == "phantom" or source.startswith("phantom:")


def load_images(sources: list[str], limit: int | None) -> list[ImageItem]:
    from ..evaluation.datasets import load_cases
    from .data import training_items

    items: list[ImageItem] = []
    for source in sources:
        if _phantom(source):
            for case in load_cases(source, "image", limit=limit):
                for obj, reference in case.references.items():
                    items.append(ImageItem(f"{case.id}#{obj}", case.id, case.frame_source().frame(0), reference[0]))
            continue
        found = [ImageItem(k, g, f, m) for k, g, f, m in training_items(source, limit=limit)]
        if not found:
            raise InputError(f"no image/mask pairs with an object in {source}")
        items += found
    return items


def load_videos(sources: list[str], limit: int | None) -> list[VideoItem]:
    from ..evaluation.datasets import load_cases

    items: list[VideoItem] = []
    for source in sources:
        if not _phantom(source) and not Path(source).is_dir():
            raise InputError(f"training video folder {source} does not exist")
        for case in load_cases(source, "video", limit=limit):
            frames = case.frame_source()
            array = np.stack([frames.frame(t) for t in range(frames.num_frames)])
            annotated = case.annotated_frames().copy()
            for obj in case.objects:
                mask = case.reference_frames(obj).astype(bool)
                if mask[annotated].any():
                    items.append(VideoItem(f"{case.id}#{obj}", array, mask, annotated))
    return items


def sample_clip(item: VideoItem, length: int, rng: np.random.Generator, slack: int, augment: str):
    """A clip inside the object's (loosely marked) temporal window, as a user marks it, with
    temporal and ultrasound augmentations; starts on an annotated frame with the object."""
    from .augment import ApplyToFrames, TemporalCrop, VideoSample, temporal_augmentations, ultrasound_augmentations

    visible = item.mask.any(axis=(1, 2)) & item.annotated
    window = temporal_window(visible, rng, slack)
    start, end = window if window is not None else (0, len(item.frames) - 1)
    video = VideoSample(item.frames[start : end + 1], item.mask[start : end + 1], item.annotated[start : end + 1])
    if augment != "none":
        video = temporal_augmentations(augment)(video, rng)
    video = TemporalCrop((length, length))(video, rng) if len(video.frames) > length else video
    masks = np.asarray(video.masks)
    first = np.flatnonzero(video.annotated & masks.any(axis=(1, 2)))
    if first.size == 0:
        return None
    video = video.select(np.arange(first[0], len(video.frames)))
    if augment != "none":
        moved = ApplyToFrames(ultrasound_augmentations(augment))(video, rng)
        if np.asarray(moved.masks)[0].any():  # else the geometry moved the object out of the prompted frame
            video = moved
    return np.asarray(video.frames, dtype=np.float32), np.asarray(video.masks, dtype=bool), video.annotated


def augmented_image(item: ImageItem, rng: np.random.Generator, augment: str) -> tuple[np.ndarray, np.ndarray]:
    if augment == "none":
        return item.frame, item.mask
    from .augment import Sample, ultrasound_augmentations

    out = ultrasound_augmentations(augment)(Sample(item.frame, item.mask), rng)
    if not np.asarray(out.masks).any():  # augmented out of view: use the original
        return item.frame, item.mask
    return np.asarray(out.image, dtype=np.float32), np.asarray(out.masks, dtype=bool)


# ------------------------------------------------------------------ precision, freezing, schedule
def precision_for(device: torch.device, requested: str) -> str:
    """Training precision: float32 on CPU/MPS unless asked, bf16 (fp16 without bf16) on CUDA."""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def trainable_parameters(sam: torch.nn.Module, freeze: list[str]) -> list[torch.nn.Parameter]:
    frozen = tuple(prefix for part in freeze for prefix in PARTS[part])
    params = []
    for name, param in sam.named_parameters():
        keep = not name.startswith(frozen)
        param.requires_grad_(keep)
        if keep:
            params.append(param)
    return params


# ------------------------------------------------------------------ validation
def validate(loaded, folders: list[str], images: int, clicks: int, modes: dict, seed: int) -> dict[str, float]:
    """Mean Dice after k clicks with the evaluation's image protocol, through the session."""
    from ..evaluation.datasets import load_cases
    from ..evaluation.protocols import run_image_protocol, session_factory
    from ..evaluation.report import summarize

    prompts = [m for m in MODES if modes.get(m, 0) > 0]
    out: dict[str, float] = {}
    for folder in folders:
        cases = load_cases(folder, "image", limit=images)
        result = run_image_protocol(cases, session_factory(loaded), prompt_types=prompts, max_clicks=clicks, seed=seed)
        name = Path(folder).name if not _phantom(folder) else "phantom"
        for prompt, summary in summarize(result).items():
            for k in sorted({1, min(3, clicks), clicks}):
                values = summary["dice_by_clicks"]
                if k <= len(values) and values[k - 1]:
                    out[f"{name}/{prompt}@{k}"] = values[k - 1]["mean"]
                if prompt == "box":
                    break
    return out


# ------------------------------------------------------------------ the loop
def train_sam2(config: Sam2TrainConfig, progress: Callable[[str], None] = print) -> dict:
    """Fine-tune; writes out/checkpoint.pt (loadable by the engine), out/state.pt (resume),
    out/log.csv, out/validation.json and TensorBoard events when tensorboard is installed."""
    from ..models import LoadedModel, autocast_context, load_model, save_checkpoint
    from . import distributed as dist

    if config.threads:
        torch.set_num_threads(int(config.threads))
    context = dist.start(config.device)
    if not context.is_main:
        progress = _quiet
    loaded = load_model(config.model, device=dist.device_for(context, config.device), seed=config.seed)
    sam, device = loaded.sam, loaded.device
    precision = precision_for(device, config.precision)
    progress(f"fine-tuning {loaded.spec.id} ({loaded.image_size} px) on {device}, {precision}, frozen: {config.freeze or 'nothing'}")
    images = load_images(config.train, config.limit)
    videos = load_videos(config.train_videos, config.limit)
    progress(f"{len(images)} training images, {len(videos)} training clips' sources")
    if images:
        dist.check_batch(context, min(config.batch, len(images)))
    params = trainable_parameters(sam, config.freeze)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    run = RunState(out, optimizer, config)
    stateful = {"model": sam, "optimizer": optimizer, "scaler": scaler}
    if config.resume:
        run.resume(stateful, progress)
    start, history, validations, scheduler = run.start, run.history, run.validations, run.scheduler
    trained_spec = dataclasses.replace(
        loaded.spec, id=f"{loaded.spec.id}-samusa", boundary_native="boundary" in config.modes,
        boundary_label=config.boundary_label, trained=True,
        prompt_types=frozenset(loaded.spec.prompt_types) | ({"boundary"} if "boundary" in config.modes else set()))
    evaluated = LoadedModel(trained_spec, sam, device, loaded.image_size, dict(loaded.metadata), loaded.precision)

    def run_validation(step: int) -> None:
        if not config.validate or not context.is_main:
            return
        sam.eval()
        validations.append({"step": step, **validate(evaluated, config.validate, config.validate_images,
                                                      config.validate_clicks, config.modes, config.seed)})
        sam.train()
        progress(f"step {step} validation: {validations[-1]}")

    writer = _tensorboard(out, config.tensorboard and context.is_main, progress)
    if not validations:
        run_validation(0)
    settings = config.settings()
    model = dist.wrap(context, sam)
    bar = _bar(config, start) if context.is_main else None
    run.restart_clock()
    sam.train()
    for step in range(start, config.steps):
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        kind = "image"
        plan = dist.step_rng(config.seed, step)  # the same on every process
        for micro in range(config.accumulate):
            kind = "video" if videos and (not images or plan.random() < config.video_fraction) else "image"
            with autocast_context(device, precision):
                parts, local, total = _micro_batch(model, context, kind, images, videos, config, settings, plan,
                                                   (config.seed, step, micro))
            with_points = int(parts.pop("with_points"))
            loss, logged = dist.shard_loss(context, parts, local=local, total=total, with_points=with_points,
                                           weight=settings.loss.weight)
            scaler.scale(loss / config.accumulate).backward()
            for key, value in logged.items():
                totals[key] = totals.get(key, 0.0) + value / config.accumulate
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 0.1)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        row = {"step": step + 1, "kind": kind, **{k: round(v, 5) for k, v in totals.items()},
               "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 3)}
        history.append(row)
        if writer is not None:
            for key, value in totals.items():
                writer.add_scalar(f"train/{key}", value, step + 1)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", boundary=f"{row['boundary']:.3f}")
        elif (step + 1) % config.log_every == 0:
            recent = history[-config.log_every:]
            progress(f"step {step + 1}/{config.steps} loss {np.mean([r['loss'] for r in recent]):.4f} "
                     f"{np.mean([r['seconds'] for r in recent]):.2f} s/step")
        out_of_time = config.time_limit_minutes is not None and run.elapsed() > 60 * config.time_limit_minutes
        out_of_time = dist.agree(context, out_of_time)
        last = step + 1 == config.steps or out_of_time
        if ((step + 1) % config.validate_every == 0 or last) and context.is_main:
            run_validation(step + 1)
            if writer is not None and validations:
                for key, value in validations[-1].items():
                    if key != "step":
                        writer.add_scalar(f"validation/{key}", value, step + 1)
            run.save(step + 1, stateful)
        if out_of_time:
            progress(f"time limit reached after step {step + 1}")
            break
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    sam.eval()
    metadata = {
        "id": trained_spec.id, "base_model": loaded.spec.id, "description":
            f"{loaded.spec.id} fine-tuned with SAMUSA boundary points ({len(history)} steps)",
        "prompt_types": sorted(trained_spec.prompt_types), "boundary_native": trained_spec.boundary_native,
        "boundary_label": config.boundary_label, "trained": True, "image_size": loaded.image_size,
        "data": {"images": config.train, "videos": config.train_videos, "validate": config.validate},
        "steps": len(history), "frozen": list(config.freeze), "precision": precision,
        "validation": validations[-1] if validations else None,
        "seconds_per_step": round(float(np.mean([r["seconds"] for r in history])), 3) if history else None,
    }
    checkpoint = out / "checkpoint.pt"
    if context.is_main:
        save_checkpoint(checkpoint, dataclasses.replace(loaded, spec=trained_spec), metadata)
        write_log(out / "log.csv", history)
        (out / "validation.json").write_text(json.dumps(validations, indent=2))
        progress(f"wrote {checkpoint}")
    dist.barrier(context)
    dist.stop(context)
    return {"checkpoint": str(checkpoint), "history": history, "validations": validations, "metadata": metadata}


def _micro_batch(model, context, kind: str, images: list[ImageItem], videos: list[VideoItem], config: Sam2TrainConfig,
                 settings: StepSettings, plan: np.random.Generator, where: tuple[int, int, int]):
    """(loss terms, this process's images, the global batch's) for one micro-batch.

    Images: the global batch and its corrected images come from `plan` (the same on every
    process), each image's augmentation and prompts from its own generator, and this
    process decodes its share. Clips: each process draws its own clip (N processes train
    on N clips per micro-batch)."""
    from . import distributed as dist

    seed, step, micro = where
    if kind == "video":
        rng = np.random.default_rng([seed, step, micro, context.rank, 2])
        for _ in range(10):  # a clip may come out without a visible annotated frame: draw again
            item = videos[int(rng.integers(len(videos)))]
            clip = sample_clip(item, config.clip_frames, rng, config.temporal_slack, config.augment)
            if clip is not None:
                frames, masks, annotated = clip
                parts = model(clip_loss, frames, masks, annotated, choose_mode(rng, config.modes), rng, settings)
                return parts, 1, context.world
        raise InputError("could not draw a training clip with an annotated, visible frame from train_videos")
    count = min(config.batch, len(images))
    chosen = plan.choice(len(images), size=count, replace=False)
    corrected = {int(i) for i in choose_corrections(count, plan, config.corrections)}
    rngs = dist.sample_rngs(seed, step * 1000 + micro, count)
    mine = dist.shard(context, count)
    pairs = [augmented_image(images[int(chosen[p])], rngs[p], config.augment) for p in mine]
    modes = [choose_mode(rngs[p], config.modes) for p in mine]
    local_corrected = {p - mine.start for p in mine if p in corrected}
    parts = model(image_batch_loss, [p[0] for p in pairs], [p[1] for p in pairs], modes, local_corrected,
                  [rngs[p] for p in mine], settings)
    return parts, len(mine), count


def _quiet(message: str) -> None:
    """Progress of ranks other than 0: they say nothing."""


def _bar(config: Sam2TrainConfig, start: int):
    if not config.progress_bar:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=config.steps, initial=start, unit="step", desc="samusa train", dynamic_ncols=True)


def _tensorboard(out: Path, wanted: bool, progress: Callable[[str], None]):
    if not wanted:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        progress("tensorboard is not installed: logging to log.csv only (pip install tensorboard for event files)")
        return None
    return SummaryWriter(str(out / "tensorboard"))
