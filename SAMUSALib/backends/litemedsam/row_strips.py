"""The encoder's full-resolution part computed in horizontal strips of rows.

Why: the stem and stage 0 of LiteMedSAM's TinyViT run at the input's 256x256, where each
MBConv expands 64 channels to 256: 64 MB per intermediate map. Computed 32 rows at a
time (every strip reading one extra row above and below it from its neighbours, the halo
its 3x3 depthwise convolutions need), OpenVINO's per-layer counters show stage 0's
depthwise convolutions at about 0.6x and its 1x1 convolutions at about 0.85x of their
time on the whole map, which fits intermediates that stay in cache. The OpenVINO encoder
takes 0.95-0.96x the time (strips of 16, 32 and 64 rows were within noise of each other;
one strip of 256 rows gained nothing), the PyTorch fallback 0.80x (docs/bench/README.md).
The output is the encoder's own: each output row is computed from the same input rows by
the same operations (`Testing/test_litemedsam_speed.py`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .encoder import ConvBN, MBConv, PatchMerging, map_to_tokens, tokens_to_map

#: Rows per strip: 32 rows of a 256-wide, 256-channel map are 8 MB.
STRIP_ROWS = 32


def _depthwise(conv: ConvBN, rows: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
    """`conv` (3x3 depthwise, any stride) over rows that already hold their halo, with
    `top` / `bottom` zero rows where the halo lies outside the image."""
    c = conv.c
    rows = F.pad(rows, (0, 0, top, bottom))
    return conv.bn(F.conv2d(rows, c.weight, c.bias, c.stride, (0, c.padding[1]), c.dilation, c.groups))


def _mbconv(block: MBConv, rows: torch.Tensor, above: bool, below: bool) -> torch.Tensor:
    """`block` on a strip given with a row of halo on each side that has a neighbour."""
    y = F.gelu(block.conv1(rows))
    y = F.gelu(_depthwise(block.conv2, y, 0 if above else 1, 0 if below else 1))
    core = rows[:, :, int(above): rows.shape[2] - int(below)]
    return F.gelu(core + block.conv3(y))


def _merge(merge: PatchMerging, rows: torch.Tensor, above: bool) -> torch.Tensor:
    """The stride-2 patch merging of a strip (starting on an even row) given with the row
    above it: output row j reads input rows 2j - 1 to 2j + 1."""
    y = F.gelu(merge.conv1(rows))
    y = F.gelu(_depthwise(merge.conv2, y, 0 if above else 1, 0))
    return merge.conv3(y)


def _with_halo(strips: list[torch.Tensor], index: int, above: int, below: int) -> torch.Tensor:
    parts = [strips[index]]
    if index > 0 and above:
        parts.insert(0, strips[index - 1][:, :, -above:])
    if index < len(strips) - 1 and below:
        parts.append(strips[index + 1][:, :, :below])
    return parts[0] if len(parts) == 1 else torch.cat(parts, 2)


class StripedEncoder(nn.Module):
    """A TinyViT encoder whose stem and stage 0 (MBConv blocks, then a stride-2 merge)
    run strip by strip; the later stages and the neck run as they are."""

    def __init__(self, encoder: nn.Module, rows: int = STRIP_ROWS) -> None:
        super().__init__()
        stage = encoder.layers[0]
        if not all(isinstance(b, MBConv) for b in stage.blocks) or not isinstance(stage.downsample, PatchMerging):
            raise ValueError("StripedEncoder expects TinyViT's stage 0: MBConv blocks, then a patch merging")
        if stage.downsample.conv2.c.stride[0] != 2 or rows % 2:
            raise ValueError("StripedEncoder expects a stride-2 merge and an even number of rows per strip")
        depthwise = [b.conv2.c for b in stage.blocks] + [stage.downsample.conv2.c]
        if any(c.kernel_size != (3, 3) or c.padding != (1, 1) for c in depthwise):
            raise ValueError("StripedEncoder expects 3x3 depthwise convolutions padded by 1 (one halo row)")
        self.encoder = encoder
        self.rows = rows
        self.img_size = encoder.img_size

    def first_stage(self, image: torch.Tensor) -> torch.Tensor:
        """Stem and stage 0, strip by strip: (B, 3, H, W) -> tokens (B, H/2 * W/2, C)."""
        height = image.shape[2]
        spans = [(a, min(a + self.rows, height)) for a in range(0, height, self.rows)]
        last = len(spans) - 1
        stem = self.encoder.patch_embed  # pointwise: its halo rows are the image's
        strips = [stem(image[:, :, max(a - 1, 0): min(b + 1, height)]) for a, b in spans]
        stage = self.encoder.layers[0]
        for index, block in enumerate(stage.blocks):
            if index:
                strips = [_with_halo(out, i, 1, 1) for i in range(len(spans))]
            out = [_mbconv(block, strips[i], i > 0, i < last) for i in range(len(spans))]
        merged = [_merge(stage.downsample, _with_halo(out, i, 1, 0), i > 0) for i in range(len(spans))]
        return map_to_tokens(torch.cat(merged, 2))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[2] % 2:
            return self.encoder(image)
        x = self.first_stage(image)
        for layer in self.encoder.layers[1:]:
            x = layer(x)
        return self.encoder.neck(tokens_to_map(x, self.encoder.out_resolution))
