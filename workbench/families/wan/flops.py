"""Analytic FLOPs of one Wan transformer forward, for MFU in benchmarks.

Counts matmul FLOPs (2 per multiply-add) of every block: self-attention projections and
scores, cross-attention to the text, and the feed-forward; norms, RoPE and the
embedders are ignored (well under 1%). At the 1.3B sizes, 480x832x81 gives 32,760 video
tokens and 283 TFLOP per batch-1 forward.
"""

from __future__ import annotations

from math import prod


def video_tokens(config, height: int, width: int, num_frames: int, vae_temporal: int = 4, vae_spatial: int = 8) -> int:
    latent = ((num_frames - 1) // vae_temporal + 1, height // vae_spatial, width // vae_spatial)
    return prod(n // p for n, p in zip(latent, config.patch_size))


def dit_forward_flops(config, tokens: int, text_tokens: int) -> float:
    d = config.num_attention_heads * config.attention_head_dim
    per_block = (
        2 * 4 * tokens * d * d            # self-attention q, k, v, o
        + 2 * 2 * tokens * tokens * d     # scores and weighted sum
        + 2 * 2 * tokens * d * d          # cross-attention q, o
        + 2 * 2 * text_tokens * d * d     # cross-attention k, v on the text
        + 2 * 2 * tokens * text_tokens * d
        + 2 * 2 * tokens * d * config.ffn_dim
    )
    return float(per_block * config.num_layers)
