"""Loading SAM2-family models: build the network from a packaged config (hydra), load
and check the weights, and infer the configuration of a bare checkpoint from its weights.

Registered with `SAMUSALib.models.registry` as the fallback family: any checkpoint no other
family claims is read as a SAM2 one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from ...errors import ModelError
from ...models.loaded import LoadedModel
from ...models.registry import PROMPT_TYPES, REGISTRY, ModelSpec, override_key, size_overrides
from ...models.weights import cache_dir, cached_path, download_checkpoint, manual_hint, read_checkpoint

# t [1,2,7,2]=12, s [1,2,11,2]=16, b+ Hiera default (2,3,16,3)=24, l [2,6,36,4]=48.
_CONFIG_BY_DEPTH: dict[int, str] = {
    12: "configs/sam2.1/sam2.1_hiera_t.yaml",
    16: "configs/sam2.1/sam2.1_hiera_s.yaml",
    24: "configs/sam2.1/sam2.1_hiera_b+.yaml",
    48: "configs/sam2.1/sam2.1_hiera_l.yaml",
}
_BASE_BY_CONFIG: dict[str, str] = {
    "configs/sam2.1/sam2.1_hiera_t.yaml": "sam2.1-tiny",
    "configs/sam2.1/sam2.1_hiera_s.yaml": "sam2.1-small",
    "configs/sam2.1/sam2.1_hiera_b+.yaml": "sam2.1-base-plus",
    "configs/sam2.1/sam2.1_hiera_l.yaml": "sam2.1-large",
}


def _postprocessing_overrides() -> list[str]:
    """The official video predictor's post-processing, minus what needs the CUDA extension.

    `build_sam2_video_predictor(apply_postprocessing=True)` also sets fill_hole_area=8,
    which needs `sam2._C`; without it SAM2 warns on every frame and skips the step, so
    hole filling is only switched on when the extension is importable.
    """
    overrides = [
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
        "++model.binarize_mask_from_pts_for_mem_enc=true",
    ]
    try:
        import sam2._C  # noqa: F401

        overrides.append("++model.fill_hole_area=8")
    except Exception:
        pass
    return overrides



def _merge_overrides(*groups: Iterable[str]) -> list[str]:
    """Later groups win; hydra rejects two overrides of the same key."""
    merged: dict[str, str] = {}
    for group in groups:
        for item in group:
            merged[override_key(item)] = item
    return list(merged.values())


def _build_sam(config: str, overrides: Iterable[str]) -> torch.nn.Module:
    """Instantiate a randomly initialised SAM2VideoPredictor on the CPU from a packaged config."""
    try:
        from hydra import compose
        from hydra.core.global_hydra import GlobalHydra
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        import sam2  # noqa: F401  (registers the packaged configs with hydra)
    except ImportError as exc:
        raise ModelError(
            f"SAM2 is not installed or incomplete ({exc}). Install it with "
            "`SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps sam2==1.1.0` "
            "plus hydra-core, iopath, pillow, tqdm."
        ) from None
    if not GlobalHydra.instance().is_initialized():
        from hydra import initialize_config_module

        initialize_config_module("sam2", version_base="1.2")
    all_overrides = _merge_overrides(
        ["++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor"],
        _postprocessing_overrides(),
        overrides,
    )
    try:
        cfg = compose(config_name=config, overrides=all_overrides)
        OmegaConf.resolve(cfg)
        return instantiate(cfg.model, _recursive_=True)
    except Exception as exc:
        raise ModelError(
            f"Cannot build SAM2 from config {config!r} with overrides {list(overrides)}: "
            f"{type(exc).__name__}: {exc}"
        ) from None


_VARIANT_BY_DEPTH = {12: "tiny", 16: "small", 24: "base+", 48: "large"}
_EMBED_DIM_BY_DEPTH = {12: 96, 16: 96, 24: 112, 48: 144}

# MedSAM2's released checkpoints (MedSAM2_latest.pt, MedSAM2_US_Heart.pt, ...) are
# hiera-tiny at 512 px: bowang-lab/MedSAM2 sam2/configs/sam2.1_hiera_t512.yaml, which is
# sam2.1_hiera_t.yaml with image_size 512 and memory-attention feat_sizes [32, 32].
_SIZE_BY_NAME = ((re.compile(r"^medsam2", re.I), 512, "MedSAM2 release (sam2.1_hiera_t512.yaml)"),)
_SIZE_IN_NAME = re.compile(r"(?<![0-9])(256|384|512|640|768|1024)(?:px)?(?![0-9])")


def infer_architecture(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """The config (Hiera variant) and input size of a checkpoint that carries no metadata.

    The variant comes from the weights: the trunk's block count (tiny/small/base+/large have
    12/16/24/48), checked against the patch embedding's width (96/96/112/144). SAM2's
    weights hold nothing sized by the input (positional embeddings are interpolated, the
    RoPE tables are not saved), so the input size comes from the file's name: a size in
    it ("..._512.pt"), MedSAM2's release names (512 px), else SAM2's 1024 px.
    """
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    depth = max(blocks) + 1 if blocks else 0
    try:
        config = _CONFIG_BY_DEPTH[depth]
    except KeyError:
        raise ModelError(
            f"{path} carries no SAMUSA metadata and its weights do not look like a SAM 2.1 "
            f"Hiera model (found {depth} trunk blocks; tiny/small/base+/large have 12/16/24/48). "
            "Save it with SAMUSALib.models.save_checkpoint, giving its 'config'."
        ) from None
    patch = state.get("image_encoder.trunk.patch_embed.proj.weight")
    embed_dim = int(patch.shape[0]) if patch is not None else None
    if embed_dim is not None and embed_dim != _EMBED_DIM_BY_DEPTH[depth]:
        raise ModelError(
            f"{path}: {depth} trunk blocks mean hiera-{_VARIANT_BY_DEPTH[depth]}, whose width is "
            f"{_EMBED_DIM_BY_DEPTH[depth]}, but the patch embedding is {embed_dim} wide; give its 'config' in its metadata."
        )
    image_size, size_from = 1024, "SAM2's default (nothing in the weights or the name says otherwise)"
    for pattern, size, why in _SIZE_BY_NAME:
        if pattern.search(path.stem):
            image_size, size_from = size, f"the file name: {why}"
            break
    else:
        if m := _SIZE_IN_NAME.search(path.stem):
            image_size, size_from = int(m.group(1)), f"the file name ({m.group(0)!r})"
    return {
        "config": config,
        "variant": _VARIANT_BY_DEPTH[depth],
        "trunk_blocks": depth,
        "embed_dim": embed_dim,
        "image_size": image_size,
        "image_size_from": size_from,
        "memory_feat_sizes": [image_size // 16, image_size // 16],
    }


def _load_state(sam: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, config: str) -> None:
    """load_state_dict with a readable error instead of a 100-line torch message."""
    own = sam.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:4]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:4]}")
        if shape:
            parts.append(f"{len(shape)} shape mismatch(es), e.g. {shape[:3]}")
        raise ModelError(
            f"The weights in {source} do not match the model built from {config}: "
            + "; ".join(parts)
            + ". Is it a different model size or family? Give the right 'config' in its metadata."
        )
    sam.load_state_dict(state, strict=True)


def _spec_from_metadata(path: Path, meta: Mapping[str, Any], config: str, image_size: int) -> ModelSpec:
    base_id = meta.get("base_model") or _BASE_BY_CONFIG.get(config)
    base = REGISTRY.get(base_id) if isinstance(base_id, str) else None
    prompt_types = meta.get("prompt_types")
    if prompt_types is None:
        prompt_types = base.prompt_types if base else frozenset({"region", "box", "mask"})
    prompt_types = frozenset(prompt_types)
    unknown = prompt_types - PROMPT_TYPES
    if unknown:
        raise ModelError(
            f"{path}: metadata names unknown prompt types {sorted(unknown)}; allowed are {sorted(PROMPT_TYPES)}."
        )
    return ModelSpec(
        id=str(meta.get("id") or path.stem),
        family=str(meta.get("family", "sam2")),
        config=config,
        image_size=image_size,
        url=None,
        sha256=None,
        filename=path.name,
        licence=str(meta.get("licence") or (base.licence if base else "unknown")),
        description=str(meta.get("description") or f"Local checkpoint {path.name}"
                        + (f" (based on {base_id})" if base_id else "")),
        prompt_types=prompt_types,
        boundary_native=bool(meta.get("boundary_native", False)),
        boundary_label=int(meta.get("boundary_label", 1)),
        trained=bool(meta.get("trained", True)),
        hydra_overrides=tuple(meta.get("hydra_overrides") or ()),
    )


def _build_random(spec: ModelSpec, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build_sam(spec.config, list(spec.hydra_overrides))


def load(
    spec: ModelSpec,
    device: torch.device,
    *,
    seed: int = 0,
    allow_download: bool = True,
    progress: Callable[[int, int], None] | None = None,
    allow_unverified: bool | None = None,
) -> LoadedModel:
    """A registry model: random weights built in memory (test-tiny, "random:<id>") or the
    verified cached checkpoint (downloaded when missing and allowed)."""
    overrides = list(spec.hydra_overrides)
    if spec.id.startswith("random:"):
        sam = _build_random(spec, seed)
        checkpoint = None
        meta: dict[str, Any] = {"seed": seed, "source": "random", "base_model": None}
    else:
        if spec.filename is None:
            sam = _build_random(spec, seed)
            checkpoint = None
            meta = {"seed": seed}
        else:
            if not allow_download and cached_path(spec) is None:
                dest = cache_dir() / spec.filename
                raise ModelError(
                    f"Model {spec.id!r} is not in the cache and downloads are disabled. "
                    + manual_hint(spec, spec.url, dest)
                )
            checkpoint = download_checkpoint(spec, progress=progress, allow_unverified=allow_unverified)
            state, _ = read_checkpoint(checkpoint)
            sam = _build_sam(spec.config, overrides)
            _load_state(sam, state, str(checkpoint), spec.config)
            meta = {"sha256": spec.sha256}
        meta.update(source="registry", base_model=spec.id if spec.trained else None)
    return _finish(spec, sam, device, checkpoint, overrides, meta)


def load_file(path: Path, device: torch.device, read: Callable[[], tuple[dict, dict]]) -> LoadedModel:
    """A local SAM2 checkpoint; without metadata its config and size are inferred (see
    `infer_architecture`) and recorded under metadata["architecture"]."""
    state, file_meta = read()
    guess = None if file_meta.get("config") else infer_architecture(state, path)
    config = str(file_meta.get("config") or guess["config"])
    try:
        image_size = int(file_meta.get("image_size") or (guess["image_size"] if guess else 1024))
    except (TypeError, ValueError):
        raise ModelError(f"{path}: metadata image_size {file_meta.get('image_size')!r} is not an integer.") from None
    spec = _spec_from_metadata(path, file_meta, config, image_size)
    overrides = _merge_overrides(spec.hydra_overrides, size_overrides(image_size) if image_size != 1024 else ())
    sam = _build_sam(config, overrides)
    _load_state(sam, state, str(path), config)
    meta = dict(file_meta)
    meta.setdefault("base_model", _BASE_BY_CONFIG.get(config))
    meta["source"] = "file"
    meta["inferred"] = not file_meta
    if guess is not None:
        meta["architecture"] = guess
    return _finish(spec, sam, device, path, overrides, meta)


def describe(path: Path) -> dict[str, Any]:
    """A SAM2 checkpoint's metadata; for a bare one, what `infer_architecture` makes of it."""
    state, meta = read_checkpoint(path)
    if not meta.get("config"):
        meta["architecture"] = infer_architecture(state, path)
    return meta


def _finish(spec: ModelSpec, sam: torch.nn.Module, device: torch.device, checkpoint, overrides, meta: dict) -> LoadedModel:
    sam = sam.to(device).eval()
    actual_size = int(getattr(sam, "image_size", spec.image_size))
    meta.update(
        model_id=spec.id,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        config=spec.config,
        image_size=actual_size,
        prompt_types=sorted(spec.prompt_types),
        boundary_native=spec.boundary_native,
        boundary_label=spec.boundary_label,
        trained=spec.trained,
        hydra_overrides=list(overrides),
    )
    return LoadedModel(spec=spec, sam=sam, device=device, image_size=actual_size, metadata=meta)
