"""Loading the LiteMedSAM family: LiteMedSAM's verified weights, and SAMUSA-Lite's delta
on top of them, as a `LoadedModel`."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...errors import ModelError
from ...models.loaded import LoadedModel
from ...models.weights import sha256_of
from .lite import apply_delta, read_delta, shipped_weights
from .network import CHECKPOINT_SHA256, IMAGE_SIZE, INSTALL_HINT, PACKAGE_PIN, LiteMedSAM, build_litemedsam, checkpoint_path


def _shipped(spec, filename: str, sha256: str | None) -> Path:
    """A shipped delta file of `spec`, hash-checked."""
    path = shipped_weights(filename)
    if path is None:
        role = "boundary heads' weights" if filename == getattr(spec, "boundary_weights", None) else "weights"
        raise ModelError(f"Model {spec.id!r}: its {role} file {filename} is missing from SAMUSALib/weights/; "
                         "reinstall SAMUSA or restore it from the repository (git checkout SAMUSALib/weights).")
    if sha256 is not None:
        digest = sha256_of(path)
        if digest != sha256:
            raise ModelError(f"{path} is not the SAMUSA-Lite release: SHA256 expected {sha256}, actual {digest}. "
                             "Restore it from the repository (git checkout SAMUSALib/weights).")
    return path


def _with_delta(spec, base: LiteMedSAM, checkpoint) -> tuple[LiteMedSAM, dict, Path]:
    """SAMUSA-Lite: the delta file (shipped, hash-checked; or a local `checkpoint`)
    applied to the verified LiteMedSAM weights, with the shipped boundary heads where the
    spec names them (a local checkpoint is the whole model: no boundary heads)."""
    path = Path(checkpoint) if checkpoint is not None else _shipped(spec, spec.filename, spec.sha256)
    payload = read_delta(path)
    net = apply_delta(base, payload)
    if checkpoint is None and getattr(spec, "boundary_weights", None):
        heads = _shipped(spec, spec.boundary_weights, spec.boundary_sha256)
        net.attach_boundary_heads(apply_delta(base, read_delta(heads)))
    return net, dict(payload.get("metadata") or {}), path


def load(spec, device: torch.device, checkpoint: str | os.PathLike[str] | None = None):
    """A `LoadedModel` for a "litemedsam" registry spec: the pinned, installed weights, or
    `checkpoint` (a local file, not verified against the pin, like any local checkpoint)."""
    lite_meta: dict = {}
    if spec.boundary_native or checkpoint is None:
        path = checkpoint_path()
        if path is None:
            raise ModelError(
                f"Model {spec.id!r} needs the LiteMedSAM weights, which are not installed. " + INSTALL_HINT
            )
        net, path = build_litemedsam(path, verify=True)
    else:
        net, path = build_litemedsam(checkpoint, verify=False)
    if spec.boundary_native:
        net, lite_meta, path = _with_delta(spec, net, checkpoint)
    net = net.to(device).eval()
    from .runtime import speed_up

    speed = speed_up(net, device)  # folded encoder copy, OpenVINO encoder and decoders (runtime.py)
    metadata = {
        "model_id": spec.id,
        "family": "litemedsam",
        "checkpoint": str(path),
        "sha256": (spec.sha256 if spec.boundary_native else CHECKPOINT_SHA256) if checkpoint is None else None,
        "source": "package" if checkpoint is None else "file",
        "package": PACKAGE_PIN,
        "image_size": IMAGE_SIZE,
        "prompt_types": sorted(spec.prompt_types),
        "boundary_native": bool(spec.boundary_native),
        "boundary_label": 4 if spec.boundary_native else 1,
        "trained": True,
        "base_model": "litemedsam",
        "config": None,
        "hydra_overrides": [],
        "encoder_runtime": speed["runtime"],
        "runtime_precision": speed.get("precision"),  # OpenVINO's, per stage (runtime.stage_precision)
        "tracker": spec.tracker,
    }
    if "boundary_heads" in net._modules:  # provenance of the second weights file
        metadata["boundary_heads"] = {"file": spec.boundary_weights, "sha256": spec.boundary_sha256}
    if lite_meta:
        metadata.update({k: v for k, v in lite_meta.items() if k in ("steps", "validation", "data", "train_images")})
        metadata["base_model"] = "litemedsam"
    # bfloat16 autocast (SAMUSA's "auto" on CPUs with AVX512-BF16) runs this small model no
    # faster on the CPU and moves its embeddings by up to 0.07: float32 there.
    precision = "auto" if device.type == "cuda" else "fp32"
    return LoadedModel(spec=spec, sam=net, device=device, image_size=IMAGE_SIZE, metadata=metadata, precision=precision)
