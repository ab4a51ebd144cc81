"""LiteMedSAM at CPU speed: what the loader does to the inference network.

Measured on the build machine (2-core Xeon, AVX-512 + AVX512-BF16, torch 2.13 CPU; each
figure a ratio of minima taken in one process, interleaved; docs/bench/README.md):

- **OpenVINO** runs the TinyViT image encoder 3.1x faster than PyTorch eager in float32
  (2.1x its matmul floor against 6.5x), with the same embedding (max |diff| 4e-6). Chosen
  on CPUs when the `openvino` package is present: the encoder is converted once, saved
  as OpenVINO IR in the model cache folder under a key made of its weights' SHA256 and
  the OpenVINO version, and read back on later loads (about a second). Conversion or
  inference that fails warns once and falls back to PyTorch, never stops a session.
  OpenVINO's own bfloat16 (`INFERENCE_PRECISION_HINT`) was 1.2x slower than its float32
  here and moved embeddings by 0.03; on a CPU with AMX it is 2.5x faster but moves the
  masks beyond Dice 0.995 (`BF16_STAGES`): float32 unless `SAMUSA_LITE_PRECISION=bf16`.
- **Batch norm folded** into each convolution (`fold_batch_norms`): exact to 4e-6, a
  pass over the full-resolution maps less for the PyTorch fallback.
- **Attention's query, key and value projections split** into three linear layers
  (`split_attention`): the same arithmetic, but OpenVINO no longer splits one fused
  projection per head with its slow reference `VariadicSplit` plus a transpose (13 ms
  of data movement per frame): 0.90-0.93x the encoder's time, embedding unchanged.
- **channels-last** memory format for the PyTorch fallback: 0.85-0.9x of the
  contiguous encoder's time.
- **Row strips** (`row_strips.StripedEncoder`, CPUs): the stem and stage 0, which run at
  the full 256x256 with up to 256 channels, computed 32 rows at a time so that their
  intermediate maps stay in cache: 0.95-0.96x the encoder's time in OpenVINO, 0.80x in
  PyTorch eager, the same embedding.
- Not chosen: bfloat16 autocast (0.93x-1.0x of float32 eager time, embeddings moved by
  0.035: this CPU has AVX512-BF16 but no AMX, and its bf16 matmul is half the float32
  rate); `torch.compile` (see docs/bench/README.md).
- The **mask decoders** (SAMUSA-Lite's trained heads and LiteMedSAM's, kept for boxes) run
  in OpenVINO too, for any number of prompts and tokens on one embedding: 3.1x faster
  than PyTorch eager for one prompt, logits within 2e-5. Exported when first used, as
  `decoder_graph.ExportDecoder` (the same arithmetic without the gathers, transposes and
  reorders, and a batch of candidates without mask prompts sharing its image side:
  0.56-0.69x of SAM2's module in OpenVINO).
- The prompt encoder's dense positional encoding is a constant of the weights; it is
  computed once per network instead of on every click (`dense_pe`).

`SAMUSA_LITE_RUNTIME` chooses: ``auto`` (default: OpenVINO when importable, on CPUs),
``openvino`` (the same, warning when it is missing) or ``eager`` (PyTorch only).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import InputError
from .decoder_graph import ExportDecoder, shared_dense
from .row_strips import StripedEncoder

RUNTIME_ENV = "SAMUSA_LITE_RUNTIME"
RUNTIMES = ("auto", "openvino", "eager")
#: OpenVINO's arithmetic: ``auto`` (default) bfloat16 for `BF16_STAGES` where the CPU has
#: bfloat16 matrix units (`models.device.cpu_has_native_bf16`: AMX, or a faster bf16
#: matmul measured once per machine), float32 elsewhere; ``fp32`` or ``bf16`` for every
#: stage on any CPU (OpenVINO's own bfloat16 emulation where the CPU has no bf16 units).
PRECISION_ENV = "SAMUSA_LITE_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16")
#: Stages that run in bfloat16 under ``auto`` on such a CPU: none. On a 2-core Xeon with
#: AMX (2026-12-04) OpenVINO's bfloat16 encoder took 0.115 s against 0.283 s in float32
#: (0.6x the float32 matmul floor) and its decoder 16 against 27 ms a pass, but the masks
#: left the issue's bound of Dice 0.995 to float32 eager: over 36 objects of BUS-BRA,
#: carotid and CAMUS frames, box masks 0.994 on average (23 below 0.995), region clicks
#: down to 0.42 (a referee decision flipped); with stage 0 and 1 alone in bfloat16
#: (0.9x the time) still 17 of 36 box masks below 0.995; with the decoders alone in
#: bfloat16, box masks stay (0.9992, none below) but boundary points (6 below, worst 0.90)
#: and region clicks (3 below, worst 0.33) do not. ``SAMUSA_LITE_PRECISION=bf16`` opts in
#: (docs/bench/README.md).
BF16_STAGES: frozenset[str] = frozenset()
#: Bump when the exported graph changes for the same weights (invalidates cached IR).
EXPORT_FORMAT = 9

#: OpenVINO's names for the arithmetic a compiled graph runs in.
OV_PRECISIONS = ("f32", "bf16")

_compiled: dict[tuple[str, str], object] = {}  # compiled OpenVINO graphs of this process, by (cache key, precision)


def stage_precision(stage: str) -> str:
    """OpenVINO's inference precision ("f32" or "bf16") for a stage ("encoder", "decoder")."""
    choice = (os.environ.get(PRECISION_ENV) or "auto").strip().lower()
    if choice not in PRECISIONS:
        raise InputError(f"{PRECISION_ENV}={choice!r}: expected one of {', '.join(PRECISIONS)}")
    if choice != "auto":
        return "f32" if choice == "fp32" else "bf16"
    from ...models.device import cpu_has_native_bf16

    return "bf16" if stage in BF16_STAGES and cpu_has_native_bf16() else "f32"


def _checked(precision: str) -> str:
    if precision not in OV_PRECISIONS:
        raise ValueError(f"OpenVINO precision must be f32 or bf16; got {precision!r}")
    return precision


def runtime_choice(value: str | None = None) -> str:
    choice = (value or os.environ.get(RUNTIME_ENV) or "auto").strip().lower()
    if choice not in RUNTIMES:
        raise ValueError(f"{RUNTIME_ENV} must be one of {', '.join(RUNTIMES)}; got {choice!r}")
    return choice


def fold_batch_norms(module: nn.Module) -> int:
    """Fold every eval-mode `ConvBN` (conv without bias, batch norm) of `module` into one
    convolution with a bias, in place; returns how many were folded. Inference only: the
    folded network's state dict has conv biases instead of batch-norm statistics."""
    from .encoder import ConvBN

    count = 0
    for block in module.modules():
        if not isinstance(block, ConvBN) or not isinstance(block.bn, nn.BatchNorm2d):
            continue
        conv, bn = block.c, block.bn
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                               groups=conv.groups, bias=True).to(conv.weight.device)
            folded.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            folded.bias.copy_(bias)
        block.c = folded.eval()
        block.bn = nn.Identity()
        count += 1
    return count


class SplitWindowAttention(nn.Module):
    """`encoder.WindowAttention` for inference, with its fused per-head qkv projection
    split into three linear layers (rows regrouped, values unchanged) and the bias table
    gathered once. Same outputs; a graph OpenVINO runs without a split and a transpose."""

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        heads, dim = attention.heads, attention.key_dim
        self.heads, self.key_dim, self.norm, self.proj = heads, dim, attention.norm, attention.proj
        weight = attention.qkv.weight.detach().view(heads, 3, dim, -1)
        bias = attention.qkv.bias.detach().view(heads, 3, dim)
        self.q, self.k, self.v = (nn.Linear(weight.shape[-1], heads * dim) for _ in range(3))
        with torch.no_grad():
            for index, linear in enumerate((self.q, self.k, self.v)):
                linear.weight.copy_(weight[:, index].reshape(heads * dim, -1))
                linear.bias.copy_(bias[:, index].reshape(heads * dim))
        self.register_buffer("bias", attention.attention_biases.detach()[:, attention.bias_index].clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        y = self.norm(x)
        q, k, v = (linear(y).view(b, n, self.heads, self.key_dim).transpose(1, 2) for linear in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def split_attention(module: nn.Module) -> int:
    """Replace every `WindowAttention` of `module` by its `SplitWindowAttention`, in place;
    returns how many were replaced."""
    from .encoder import WindowAttention

    count = 0
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, WindowAttention):
                setattr(parent, name, SplitWindowAttention(child).to(child.qkv.weight.device).eval())
                count += 1
    return count


def prepare_encoder(encoder: nn.Module, device: torch.device) -> tuple[nn.Module, dict]:
    """The encoder copy inference runs: batch norms folded, attention split, the
    full-resolution stage in row strips, channels-last on CPUs. The network's own encoder
    (and state dict) stays the checkpoint's."""
    fast = copy.deepcopy(encoder).eval()
    done = {"folded_batch_norms": fold_batch_norms(fast), "split_attention": split_attention(fast)}
    if device.type == "cpu":
        fast.to(memory_format=torch.channels_last)
        done["channels_last"] = True
        fast = StripedEncoder(fast).eval()
        done["row_strips"] = fast.rows
    return fast, done


def weights_key(module: nn.Module) -> str:
    """SHA256 of a module's parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _openvino():
    # Optional: imported by name so that a missing package means the PyTorch path, not an
    # ImportError (Slicer installs it only if the user adds it).
    return importlib.import_module("openvino")


def export_folder() -> Path:
    from ...models.weights import cache_dir

    return cache_dir() / "openvino"


class OpenVINOModule:
    """A module as OpenVINO IR compiled for the CPU at `precision` ("f32" or "bf16").
    Converted on first use (or read from the cache, keyed by `name`, the weights' SHA256
    and the input shapes; one export serves both precisions); any failure warns once, and
    the caller's PyTorch module runs from then on (`failed`)."""

    def __init__(self, module: nn.Module, name: str, shapes: list[tuple[int, ...]], examples: list[torch.Tensor],
                 precision: str = "f32") -> None:
        self.precision = _checked(precision)
        self.module = module
        self.name = name
        self.shapes = shapes  # -1: any size
        self.examples = examples
        self.failed: str | None = None
        self.compiled = None
        self.key: str | None = None

    def run(self, *inputs: torch.Tensor) -> list[torch.Tensor] | None:
        """The module's outputs, or None where this runtime cannot run it (failure)."""
        if self.failed:
            return None
        try:
            if self.compiled is None:
                self.compiled = self._compile()
            outputs = self.compiled([x.detach().float().contiguous().numpy() for x in inputs])
            return [torch.from_numpy(outputs[i].copy()) for i in range(len(outputs))]
        except Exception as exc:  # noqa: BLE001 - any runtime failure means eager, with a warning
            self.failed = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"LiteMedSAM's OpenVINO {self.name} failed ({self.failed}); using PyTorch.", RuntimeWarning, stacklevel=3)
            return None

    def _compile(self):
        ov = _openvino()
        shapes = "_".join("x".join(str(d) for d in shape) for shape in self.shapes).replace("-1", "n")
        version = ov.__version__.split("-")[0]
        self.key = f"{self.name}-{weights_key(self.module)[:24]}-{shapes}-f{EXPORT_FORMAT}-ov{version}"
        compiled = _compiled.get((self.key, self.precision))
        if compiled is not None:
            return compiled
        path = export_folder() / self.key / f"{self.name}.xml"  # the IR holds float32 weights either way
        if not path.is_file():
            export_module(self.module, path, self.examples, self.shapes)
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY"}
        compiled = ov.Core().compile_model(str(path), "CPU", config)
        _compiled[(self.key, self.precision)] = compiled
        return compiled


class OpenVINOEncoder(OpenVINOModule):
    """The TinyViT image encoder: one float32 frame (1, 3, S, S) -> (1, 256, S/4, S/4)."""

    def __init__(self, encoder: nn.Module, precision: str = "f32") -> None:
        self.shape = (1, 3, encoder.img_size, encoder.img_size)
        super().__init__(encoder, "encoder", [self.shape], [torch.zeros(self.shape)], precision)

    def __call__(self, image: torch.Tensor) -> torch.Tensor | None:
        """The embedding, or None where this runtime cannot run it (shape, failure)."""
        if tuple(image.shape) != self.shape or image.dtype != torch.float32:
            return None
        out = self.run(image)
        return None if out is None else out[0]


class OpenVINODecoder:
    """The mask decoder for K prompts (any K, any number of tokens) on one embedding, as
    `decoder_graph.ExportDecoder`; one compiled graph per `multimask` setting and per
    dense prompt kind (a map per prompt, or one vector shared by all: no mask prompt),
    made when first used."""

    def __init__(self, mask_decoder: nn.Module, precision: str = "f32") -> None:
        self.precision = _checked(precision)
        self.mask_decoder = mask_decoder
        self.graphs: dict[tuple[bool, bool], OpenVINOModule] = {}  # by (multimask, shared image)
        self.image_pe: torch.Tensor | None = None

    def __call__(self, embedding, image_pe, sparse, dense, multimask: bool):
        """(logits, iou), or None where this runtime cannot run it."""
        if embedding.shape[0] != 1 or embedding.dtype != torch.float32 or sparse.dtype != torch.float32:
            return None
        if self.image_pe is not None and image_pe is not self.image_pe:
            if not torch.equal(image_pe, self.image_pe):  # the graphs hold the encoding they were made with
                return None
        self.image_pe = image_pe
        vector = shared_dense(dense)
        shared = vector is not None and sparse.shape[0] > 1
        graph = self.graphs.get((multimask, shared))
        if graph is None:
            _, c, h, w = embedding.shape
            third = (1, c, 1, 1) if shared else (-1, c, h, w)
            examples = [torch.zeros(1, c, h, w), torch.zeros(2, 3, c), torch.zeros(third if shared else (2, c, h, w))]
            shapes = [(1, c, h, w), (-1, -1, c), third]
            name = ("decoder-multimask" if multimask else "decoder") + ("-shared" if shared else "")
            module = ExportDecoder(self.mask_decoder, multimask, image_pe).eval()
            graph = self.graphs[(multimask, shared)] = OpenVINOModule(module, name, shapes, examples, self.precision)
        third = vector if shared else dense.expand(sparse.shape[0], -1, -1, -1)
        out = graph.run(embedding, sparse, third)
        return None if out is None else (out[0], out[1])

    @property
    def failed(self) -> str | None:
        return next((g.failed for g in self.graphs.values() if g.failed), None)


def export_module(module: nn.Module, path: Path, examples: list[torch.Tensor], shapes: list[tuple[int, ...]]) -> Path:
    """Convert a module to OpenVINO IR at `path` (written to a temporary name, then
    renamed, so that a concurrent or interrupted export never leaves half a file)."""
    ov = _openvino()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's deprecation notices
        graph = ov.convert_model(module.eval(), example_input=tuple(examples), input=[list(s) for s in shapes])
    tmp = path.with_name(f".{os.getpid()}.{path.name}")
    ov.save_model(graph, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
    tmp.replace(path)
    return path


def fast_decode(mask_decoder, embedding, image_pe, sparse, dense, multimask):
    """The OpenVINO mask decoder attached by `speed_up`, where it applies (inference, no
    autocast); None to run PyTorch."""
    fast = getattr(mask_decoder, "samusa_runtime", None)
    if fast is None or torch.is_grad_enabled() or torch.is_autocast_enabled("cpu") or embedding.device.type != "cpu":
        return None
    return fast(embedding, image_pe, sparse, dense, multimask)


def speed_up(net: nn.Module, device: torch.device, runtime: str | None = None) -> dict:
    """Prepare an inference LiteMedSAM: a copy of its encoder with folded batch norms, in
    channels-last on CPUs, used by `LiteMedSAM.embed` without gradients; the OpenVINO
    encoder and mask decoders on CPUs (`runtime_choice`). The network's parameters and
    state dict are left as loaded. Returns what was done, for metadata."""
    choice = runtime_choice(runtime)
    precision = {stage: stage_precision(stage) for stage in ("encoder", "decoder")}  # a bad setting fails here, any device
    encoder, done = prepare_encoder(net.image_encoder, device)
    done["runtime"] = "eager"
    net.__dict__["fast_encoder"] = encoder  # not a submodule: not saved, not moved by .to()
    net.encoder_runtime = None
    if device.type == "cpu" and choice != "eager":
        try:
            _openvino()
        except Exception as exc:  # noqa: BLE001 - absent or broken: PyTorch
            if choice == "openvino":
                warnings.warn(f"{RUNTIME_ENV}=openvino but OpenVINO cannot be imported ({exc}); using PyTorch.",
                              RuntimeWarning, stacklevel=2)
        else:
            done["precision"] = precision
            net.encoder_runtime = OpenVINOEncoder(encoder, precision["encoder"])
            for module in net.modules():
                if type(module).__name__ == "MaskDecoder":
                    module.samusa_runtime = OpenVINODecoder(module, precision["decoder"])
            done["runtime"] = "openvino"
    return done


def dense_pe(prompt_encoder: nn.Module) -> torch.Tensor:
    """`prompt_encoder.get_dense_pe()`, computed once: it depends only on the positional
    encoding's (fixed, random-Fourier) matrix, so it is recomputed only when that buffer
    changes (new storage, or written in place) or moves."""
    matrix = prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    key = (matrix.data_ptr(), matrix._version, matrix.device, matrix.dtype)
    cached = prompt_encoder.__dict__.get("_samusa_dense_pe")
    if cached is not None and cached[0] == key:
        return cached[1]
    with torch.inference_mode(False), torch.no_grad():  # a normal tensor: training reuses it
        value = prompt_encoder.get_dense_pe()
    prompt_encoder.__dict__["_samusa_dense_pe"] = (key, value)
    return value
