"""SAM's mask decoder rewritten for a CPU graph runtime (OpenVINO, `runtime.OpenVINODecoder`).

`ExportDecoder` computes what SAM2's `MaskDecoder.forward(..., repeat_image=True)` computes
for K prompts on one image embedding, with LiteMedSAM's SAM-1 options (no high-resolution
features, no object-score token), reusing the decoder's own modules and weights. What it
leaves out is data movement, not arithmetic:

- the image embedding is broadcast to the K prompts instead of repeated
  (`repeat_interleave` is a gather in OpenVINO);
- the positional encoding, a constant of the weights, is a buffer already in token layout;
- only the mask tokens asked for become masks;
- the output upscaling runs on tokens (`_upscaled_masks`), and attention between the image
  and the prompt tokens keeps the image side in token layout, both ways
  (`_image_to_tokens`, `_tokens_to_image`).

Measured in OpenVINO against SAM2's module converted as it is (medians of 10, one
process, 2 cores, logits within 2e-5): 0.66x the time for one prompt, 0.68x for three,
0.69x for seven; a shared batch (below) of three or seven 0.56-0.58x.

When the K prompts share one dense embedding (no mask prompt: the prompt encoder's
``no_mask_embed`` vector, passed as one (1, C, 1, 1) input), the image stays a single
(1, h w, C) map until the first layer's end, so that layer's image-side projections
(keys and values of token-to-image attention, queries of image-to-token attention: 0.8
of a pass's 3.6 GFLOP) are the same for every prompt and are computed once.
Candidate boxes (boundary fitting, region search, the tracker's candidates) are batches
of this kind.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def shared_dense(dense: torch.Tensor) -> torch.Tensor | None:
    """The (1, C, 1, 1) vector when every prompt's dense embedding is one constant per
    channel (SAM's prompt encoder expands ``no_mask_embed`` this way when no mask is
    given), else None."""
    if dense.dim() != 4 or dense.stride(2) != 0 or dense.stride(3) != 0:
        return None
    if dense.shape[0] > 1 and dense.stride(0) != 0:
        return None
    return dense[:1, :, :1, :1]


def _pixel_linear(deconv: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x2, stride-2 transposed convolution as the linear map it is per input pixel:
    (C_in) -> (2, 2, C_out), as weight (C_in, 4 C_out) and bias (4 C_out)."""
    if tuple(deconv.kernel_size) != (2, 2) or tuple(deconv.stride) != (2, 2):
        raise ValueError("only 2x2, stride-2 transposed convolutions are pixel-wise linear maps")
    weight = deconv.weight.permute(0, 2, 3, 1).reshape(deconv.in_channels, -1)
    return weight, deconv.bias.repeat(4)


def _upscaled_masks(upscaling: nn.Sequential, keys: torch.Tensor, hyper: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """SAM's output upscaling (2x2 transposed conv, LayerNorm2d, GELU, 2x2 transposed conv,
    GELU) and the hypernetwork product, on tokens (K, h w, C) -> masks (K, M, 4h, 4w).

    Each transposed convolution maps one pixel to a 2x2 block, so both run as matrix
    products on the tokens, the 4 x 4 output pixels of a token kept as extra axes; the
    normalisation, the activations and the product with the mask tokens are per pixel, so
    they run there too, and only the (K, M, 4h, 4w) masks are rearranged into an image.
    No full-resolution feature map changes layout (in OpenVINO those reorders cost more
    than the convolutions)."""
    deconv1, norm, act1, deconv2, act2 = upscaling
    k = keys.shape[0]
    w1, b1 = _pixel_linear(deconv1)
    w2, b2 = _pixel_linear(deconv2)
    first = (keys @ w1 + b1).view(k, h * w, 4, deconv1.out_channels)  # (token, 2x2 block, channel)
    first = F.layer_norm(first, (deconv1.out_channels,), norm.weight, norm.bias, norm.eps)
    second = act2(act1(first) @ w2 + b2).view(k, h * w * 16, deconv2.out_channels)  # (token, 2x2, 2x2, channel)
    masks = second @ hyper.transpose(1, 2)  # (K, h w 16, M)
    m = hyper.shape[1]
    masks = masks.view(k, h, w, 2, 2, 2, 2, m)  # i, j, (a1, b1), (a2, b2): pixel 4i + 2 a1 + a2, 4j + 2 b1 + b2
    return masks.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(k, m, 4 * h, 4 * w)


def _tokens_to_image(attention: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SAM2's `Attention` from the K prompts' T tokens to the image's positions, on
    projected inputs (q (K, T, D); k, v (1 or K, N, D)), without splitting the image side
    into heads: the queries become a block-diagonal (heads T, D) matrix, so the image-side
    keys and values are used in token layout (and, shared by a batch, broadcast), and the
    heads' outputs are the diagonal blocks of a small (K, heads T, D) product."""
    heads = attention.num_heads
    count, tokens, width = q.shape
    dim = width // heads
    eye = torch.eye(heads, dtype=q.dtype, device=q.device)
    queries = q.view(count, 1, tokens, heads, dim) * dim**-0.5  # (K, 1, T, g, e)
    queries = (eye.view(1, heads, 1, heads, 1) * queries).reshape(count, heads * tokens, width)
    weights = torch.softmax(queries @ k.transpose(-2, -1), dim=-1)  # (K, heads T, N)
    out = (weights @ v).view(count, heads, tokens, heads, dim)  # head h's tokens, all heads' values
    out = (out * eye.view(1, heads, 1, heads, 1)).sum(dim=1)  # (K, T, heads, dim): the diagonal blocks
    return attention.out_proj(out.reshape(count, tokens, width))


def _image_to_tokens(attention: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SAM2's `Attention` from the image's 4096 positions to the K prompts' T tokens, on
    projected inputs (q (1 or K, N, D); k, v (K, T, D)), without splitting the image side
    into heads: the keys and values become block-diagonal (D, heads T) and (heads T, D)
    matrices, so scores come out as (K, N, heads, T) and the values as (K, N, D) in token
    layout. Eight times the FLOPs of the few-token products (small next to the
    projections) instead of two transposes of the image-sized queries and output."""
    heads = attention.num_heads
    count, tokens, width = k.shape
    dim = width // heads
    eye = torch.eye(heads, dtype=k.dtype, device=k.device)
    keys = k.view(count, tokens, heads, dim).permute(0, 3, 2, 1).unsqueeze(1)  # (K, 1, e, g, T)
    keys = (eye.view(1, heads, 1, heads, 1) * keys).reshape(count, width, heads * tokens)
    scores = (q * dim**-0.5) @ keys
    weights = torch.softmax(scores.view(count, -1, heads, tokens), dim=-1).view(count, -1, heads * tokens)
    values = v.view(count, tokens, heads, dim).unsqueeze(1)  # (K, 1, T, h, e)
    values = (eye.view(1, heads, 1, heads, 1) * values).reshape(count, heads * tokens, width)
    return attention.out_proj(weights @ values)


class ExportDecoder(nn.Module):
    """The mask decoder for K prompts on one image embedding (module docstring).

    forward(embedding (1, C, H, W), sparse (K, T, C), dense) -> logits (K, M, 4H, 4W), IoU
    (K, M); dense is (K, C, H, W), or one (1, C, 1, 1) vector shared by all prompts."""

    def __init__(self, mask_decoder: nn.Module, multimask: bool, image_pe: torch.Tensor) -> None:
        super().__init__()
        self.mask_decoder = mask_decoder
        self.multimask = multimask
        self.register_buffer("pe_tokens", image_pe.detach().flatten(2).transpose(1, 2).contiguous())

    def forward(self, embedding: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor):
        decoder, transformer = self.mask_decoder, self.mask_decoder.transformer
        k = sparse.shape[0]
        _, c, h, w = embedding.shape
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], 0)
        tokens = torch.cat((output_tokens.unsqueeze(0).expand(k, -1, -1), sparse), 1)
        image = (embedding + dense).flatten(2).transpose(1, 2)  # (1 if shared, else K; h w; C)
        queries, keys = tokens, image
        for layer in transformer.layers:
            queries, keys = self._block(layer, queries, keys, tokens)
        final = transformer.final_attn_token_to_image
        attended = _tokens_to_image(final, final.q_proj(queries + tokens), final.k_proj(keys + self.pe_tokens), final.v_proj(keys))
        hs = transformer.norm_final_attn(queries + attended)
        iou = decoder.iou_prediction_head(hs[:, 0])
        chosen = range(1, decoder.num_mask_tokens) if self.multimask else range(1)
        hyper = torch.stack([decoder.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in chosen], 1)
        masks = _upscaled_masks(decoder.output_upscaling, keys, hyper, h, w)
        return masks, (iou[:, 1:] if self.multimask else iou[:, :1])

    def _block(self, layer: nn.Module, queries: torch.Tensor, keys: torch.Tensor, tokens: torch.Tensor):
        """SAM2's `TwoWayAttentionBlock.forward`, for K token sets against keys (K, h w, C)
        or, before the first layer of a shared batch, one image (1, h w, C) whose
        projections are computed once and broadcast to the K prompts."""
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + tokens
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        to_image = layer.cross_attn_token_to_image
        keys_pe = keys + self.pe_tokens
        attended = _tokens_to_image(to_image, to_image.q_proj(queries + tokens), to_image.k_proj(keys_pe), to_image.v_proj(keys))
        queries = layer.norm2(queries + attended)
        queries = layer.norm3(queries + layer.mlp(queries))
        to_token = layer.cross_attn_image_to_token
        attended = _image_to_tokens(to_token, to_token.q_proj(keys_pe), to_token.k_proj(queries + tokens),
                                    to_token.v_proj(queries))
        return queries, layer.norm4(keys + attended)
