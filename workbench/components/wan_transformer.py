"""Native Wan DiT (Wan 2.1 / 2.2 text-to-video) for fast mode.

Same mathematics and the same precision choices as diffusers' `WanTransformer3DModel`
(fp32 LayerNorms, modulation and RoPE tables; the rest in the model dtype), written so
that one forward is a few large GEMMs, one SDPA call per attention and elementwise
glue that `torch.compile` fuses:

- self-attention q, k and v come out of one GEMM (weights concatenated at load time),
  cross-attention k and v out of another;
- the patch embedding is a GEMM over flattened patches (the official Conv3d has
  stride == kernel, so it is the same linear map);
- RoPE angles are recomputed in float64 inside the forward, as diffusers tabulates
  them, so no rotary table exists to be rounded when the module is cast to bf16;
- q, k and v stay in [B, S, H, D] memory and reach SDPA as transposed views.

Weights load from the official diffusers folder: `convert_state_dict` maps every
official key to exactly one native key (fusing q/k/v), refusing missing, unexpected and
mis-shaped tensors with the file and key named. Image-to-video checkpoints (added
image key/value projections) are refused: wan_i2v keeps the diffusers class.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ComponentLoadError
from workbench.runtime import attention as attention_backends

OFFICIAL_CLASS = "WanTransformer3DModel"
_CONFIG_METADATA = {"_class_name", "_diffusers_version", "_name_or_path"}


@dataclass(frozen=True)
class WanTransformerConfig:
    """The official config.json fields (diffusers names), so `config.in_channels` reads alike."""

    patch_size: tuple[int, int, int] = (1, 2, 2)
    num_attention_heads: int = 40
    attention_head_dim: int = 128
    in_channels: int = 16
    out_channels: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    ffn_dim: int = 13824
    num_layers: int = 40
    cross_attn_norm: bool = True
    qk_norm: str | None = "rms_norm_across_heads"
    eps: float = 1e-6
    image_dim: int | None = None
    added_kv_proj_dim: int | None = None
    rope_max_seq_len: int = 1024
    pos_embed_seq_len: int | None = None

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_file(cls, path: Path) -> WanTransformerConfig:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ComponentLoadError(f"{path}: cannot read the transformer config ({exc})") from None
        if raw.get("_class_name", OFFICIAL_CLASS) != OFFICIAL_CLASS:
            raise ComponentLoadError(f"{path}: _class_name {raw['_class_name']!r}; the native Wan DiT converts "
                                     f"{OFFICIAL_CLASS} checkpoints")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known - _CONFIG_METADATA)
        if unknown:
            raise ComponentLoadError(f"{path}: config keys {unknown} are not understood by the native Wan DiT")
        values = {k: v for k, v in raw.items() if k in known}
        if "patch_size" in values:
            values["patch_size"] = tuple(values["patch_size"])
        config = cls(**values)
        if config.image_dim is not None or config.added_kv_proj_dim is not None:
            raise ComponentLoadError(f"{path}: image-to-video checkpoints (image_dim / added_kv_proj_dim set) "
                                     "are not supported by the native Wan DiT; load WanTransformer3DModel")
        if config.qk_norm != "rms_norm_across_heads":
            raise ComponentLoadError(f"{path}: qk_norm {config.qk_norm!r}; the native Wan DiT implements "
                                     "'rms_norm_across_heads'")
        return config


# ---- weight conversion (official diffusers keys -> native keys) ------------------------
# One-to-one renames; q/k/v and k/v concatenations and the patch-embedding reshape below.
_RENAMES = [
    (r"condition_embedder\.time_embedder\.(linear_[12])\.", r"time_embedder.\1."),
    (r"condition_embedder\.time_proj\.", "time_proj."),
    (r"condition_embedder\.text_embedder\.(linear_[12])\.", r"text_embedder.\1."),
    (r"blocks\.(\d+)\.scale_shift_table$", r"blocks.\1.modulation"),
    (r"blocks\.(\d+)\.attn1\.to_out\.0\.", r"blocks.\1.self_attn.out."),
    (r"blocks\.(\d+)\.attn1\.norm_([qk])\.", r"blocks.\1.self_attn.norm_\2."),
    (r"blocks\.(\d+)\.attn2\.to_q\.", r"blocks.\1.cross_attn.q."),
    (r"blocks\.(\d+)\.attn2\.to_out\.0\.", r"blocks.\1.cross_attn.out."),
    (r"blocks\.(\d+)\.attn2\.norm_([qk])\.", r"blocks.\1.cross_attn.norm_\2."),
    (r"blocks\.(\d+)\.norm2\.", r"blocks.\1.norm_cross."),
    (r"blocks\.(\d+)\.ffn\.net\.0\.proj\.", r"blocks.\1.ffn_in."),
    (r"blocks\.(\d+)\.ffn\.net\.2\.", r"blocks.\1.ffn_out."),
    (r"scale_shift_table$", "head_modulation"),
    (r"proj_out\.", "head."),
]
_FUSED = [  # official keys concatenated (in this order) into one native GEMM
    (r"blocks\.(\d+)\.attn1\.to_q\.(weight|bias)$", ("to_q", "to_k", "to_v"), "blocks.{0}.self_attn.qkv.{1}"),
    (r"blocks\.(\d+)\.attn2\.to_k\.(weight|bias)$", ("to_k", "to_v"), "blocks.{0}.cross_attn.kv.{1}"),
]


def convert_state_dict(official: dict[str, torch.Tensor], source: str = "state dict") -> dict[str, torch.Tensor]:
    """Official `WanTransformer3DModel` weights -> native weights; every key used exactly once."""
    left = dict(official)
    native: dict[str, torch.Tensor] = {}
    for suffix in ("weight", "bias"):
        if f"patch_embedding.{suffix}" in left:
            tensor = left.pop(f"patch_embedding.{suffix}")
            native[f"patch_embed.{suffix}"] = tensor.flatten(1) if suffix == "weight" else tensor
    for pattern, parts, target in _FUSED:
        first = re.compile(pattern)
        for key in [k for k in left if first.match(k)]:
            names = [key.replace(f".{parts[0]}.", f".{p}.") for p in parts]
            absent = [n for n in names if n not in left]
            if absent:
                raise ComponentLoadError(f"{source}: missing official keys {absent} (needed with {key!r})")
            native[target.format(*first.match(key).groups())] = torch.cat([left.pop(n) for n in names])
    renames = [(re.compile(rf"^{p}"), r) for p, r in _RENAMES]
    for key in list(left):
        for pattern, replacement in renames:
            if pattern.match(key):
                native[pattern.sub(replacement, key, count=1)] = left.pop(key)
                break
    if left:
        extra = sorted(left)
        raise ComponentLoadError(f"{source}: unexpected official keys {extra[:8]}"
                                 + (f" (+{len(extra) - 8} more)" if len(extra) > 8 else ""))
    return native


# ---- model -------------------------------------------------------------------------------
def _sinusoidal(timestep: torch.Tensor, channels: int) -> torch.Tensor:
    """diffusers `Timesteps(channels, flip_sin_to_cos=True, downscale_freq_shift=0)`."""
    half = channels // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=timestep.device) / half
    angles = timestep[:, None].float() * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def _rope_axis(positions: int, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin per (position, frequency pair) of one axis, float64 angles as diffusers tabulates."""
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim))
    angles = torch.outer(torch.arange(positions, dtype=torch.float64, device=device), inv_freq)
    return angles.cos().float(), angles.sin().float()


def rotary_tables(grid: tuple[int, int, int], head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 cos, sin of shape [1, S, 1, head_dim / 2] for a (frames, height, width) patch grid."""
    h_dim = w_dim = 2 * (head_dim // 6)
    dims = (head_dim - h_dim - w_dim, h_dim, w_dim)
    cos_parts, sin_parts = [], []
    for axis, (n, dim) in enumerate(zip(grid, dims)):
        cos, sin = _rope_axis(n, dim, device)
        shape = [1, 1, 1, dim // 2]
        shape[axis] = n
        cos_parts.append(cos.view(shape).expand(*grid, dim // 2))
        sin_parts.append(sin.view(shape).expand(*grid, dim // 2))
    s = math.prod(grid)
    return (torch.cat(cos_parts, -1).reshape(1, s, 1, head_dim // 2),
            torch.cat(sin_parts, -1).reshape(1, s, 1, head_dim // 2))


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2i], x[2i+1]) of x [B, S, H, D] in fp32, written back in x's
    dtype (eager: no fp32 copy of the whole tensor; compiled: one fused kernel with the norm)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


def _layer_norm32(x: torch.Tensor, eps: float, weight=None, bias=None) -> torch.Tensor:
    return F.layer_norm(x.float(), x.shape[-1:], None if weight is None else weight.float(),
                        None if bias is None else bias.float(), eps)


class _MLP(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, activation: str):
        super().__init__()
        self.linear_1 = nn.Linear(d_in, d_hidden)
        self.linear_2 = nn.Linear(d_hidden, d_hidden)
        self.activation = activation

    def forward(self, x):
        x = self.linear_1(x)
        x = F.silu(x) if self.activation == "silu" else F.gelu(x, approximate="tanh")
        return self.linear_2(x)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention over [B, S, H, D] tensors, returning [B, S, H, D].

    The one place the native DiT calls attention: a faster kernel (a backend chosen per
    device) or sequence parallelism (an all-to-all around it) wraps this function, never
    the attention modules.
    """
    return attention_backends.attention(q, k, v)  # CPU: plain SDPA; CUDA: FA4 or SDPA (runtime/attention.py)


class WanSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, eps: float):
        super().__init__()
        self.heads, self.eps = heads, eps
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)

    def forward(self, x, cos, sin):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = apply_rotary(self.norm_q(q).unflatten(-1, (self.heads, -1)), cos, sin)
        k = apply_rotary(self.norm_k(k).unflatten(-1, (self.heads, -1)), cos, sin)
        v = v.unflatten(-1, (self.heads, -1))
        return self.out(attention(q, k, v).flatten(2))


class WanCrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)

    def forward(self, x, context):
        q = self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1))
        k, v = self.kv(context).chunk(2, dim=-1)
        k = self.norm_k(k).unflatten(-1, (self.heads, -1))
        v = v.unflatten(-1, (self.heads, -1))
        return self.out(attention(q, k, v).flatten(2))


class WanBlock(nn.Module):
    """Self-attention, cross-attention to the text, feed-forward; adaLN modulation in fp32."""

    def __init__(self, config: WanTransformerConfig):
        super().__init__()
        dim, eps = config.inner_dim, config.eps
        self.eps = eps
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        self.self_attn = WanSelfAttention(dim, config.num_attention_heads, eps)
        self.cross_attn = WanCrossAttention(dim, config.num_attention_heads, eps)
        self.norm_cross = nn.LayerNorm(dim, eps=eps) if config.cross_attn_norm else None
        self.ffn_in = nn.Linear(dim, config.ffn_dim)
        self.ffn_out = nn.Linear(config.ffn_dim, dim)

    def forward(self, x, context, temb6, cos, sin):
        shift, scale, gate, c_shift, c_scale, c_gate = (self.modulation + temb6.float()).chunk(6, dim=1)
        h = (_layer_norm32(x, self.eps) * (1 + scale) + shift).type_as(x)
        x = (x.float() + self.self_attn(h, cos, sin) * gate).type_as(x)
        h = x if self.norm_cross is None else _layer_norm32(
            x, self.eps, self.norm_cross.weight, self.norm_cross.bias).type_as(x)
        x = x + self.cross_attn(h, context)
        h = (_layer_norm32(x, self.eps) * (1 + c_scale) + c_shift).type_as(x)
        ff = self.ffn_out(self.ffn_hidden(h))
        return (x.float() + ff.float() * c_gate).type_as(x)

    def ffn_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """gelu(tanh)(ffn_in(h)). On CUDA the bias and GELU run in the GEMM epilogue (cuBLASLt's
        GELU is the tanh form; inductor keeps the op as one extern kernel), which saves a pass
        over the widest activation of the block; elsewhere the plain ops."""
        if h.is_cuda:
            hidden = torch._addmm_activation(self.ffn_in.bias, h.flatten(0, -2), self.ffn_in.weight.t(), use_gelu=True)
            return hidden.view(*h.shape[:-1], -1)
        return F.gelu(self.ffn_in(h), approximate="tanh")


class WanTransformer(nn.Module):
    """Drop-in for `WanTransformer3DModel` (T2V) in the Wan pipelines: same call signature."""

    # Kept in fp32 when the module is cast (place_module honours this, as diffusers does).
    _keep_in_fp32_modules = ("time_embedder", "modulation", "norm_cross", "head_modulation")
    _repeated_blocks = ("WanBlock",)

    def __init__(self, config: WanTransformerConfig):
        super().__init__()
        self.config = config
        dim = config.inner_dim
        self.patch_embed = nn.Linear(config.in_channels * math.prod(config.patch_size), dim)
        self.time_embedder = _MLP(config.freq_dim, dim, "silu")
        self.time_proj = nn.Linear(dim, 6 * dim)
        self.text_embedder = _MLP(config.text_dim, dim, "gelu_tanh")
        self.blocks = nn.ModuleList(WanBlock(config) for _ in range(config.num_layers))
        self.head_modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        self.head = nn.Linear(dim, config.out_channels * math.prod(config.patch_size))

    # loading: workbench.runtime.loader calls these for the `workbench` library token
    @classmethod
    def read_config(cls, folder: Path) -> WanTransformerConfig:
        return WanTransformerConfig.from_file(Path(folder) / "config.json")

    @staticmethod
    def convert_state_dict(state: dict[str, torch.Tensor], source: str = "state dict") -> dict[str, torch.Tensor]:
        return convert_state_dict(state, source)

    def compile_repeated_blocks(self) -> None:
        """Compile one block graph reused by every block (compiles in seconds; on the H200 it runs
        as fast as the whole model compiled: the GPU stays busy between blocks)."""
        for block in self.blocks:
            block.compile()

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_hidden_states_image: torch.Tensor | None = None, return_dict: bool = True,
                attention_kwargs=None):
        if encoder_hidden_states_image is not None:
            raise ValueError("the native Wan DiT has no image conditioning (image-to-video uses the diffusers class)")
        if timestep.ndim != 1:
            raise ValueError(f"timestep must be 1-D (one per sample), got shape {tuple(timestep.shape)}")
        b, c, f, h, w = hidden_states.shape
        pt, ph, pw = self.config.patch_size
        grid = (f // pt, h // ph, w // pw)
        patches = hidden_states.reshape(b, c, grid[0], pt, grid[1], ph, grid[2], pw)
        x = self.patch_embed(patches.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4).flatten(1, 3))
        cos, sin = rotary_tables(grid, self.config.attention_head_dim, x.device)

        # Official precisions: timestep MLP in its (fp32) dtype, temb rounded to the text dtype.
        t = _sinusoidal(timestep, self.config.freq_dim).to(self.time_embedder.linear_1.weight.dtype)
        temb = self.time_embedder(t).type_as(encoder_hidden_states)
        temb6 = self.time_proj(F.silu(temb)).unflatten(1, (6, -1))
        context = self.text_embedder(encoder_hidden_states)

        for block in self.blocks:
            x = block(x, context, temb6, cos, sin)

        shift, scale = (self.head_modulation + temb.unsqueeze(1)).chunk(2, dim=1)
        x = (_layer_norm32(x, self.config.eps) * (1 + scale) + shift).type_as(x)
        x = self.head(x)
        out = x.reshape(b, *grid, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        out = out.reshape(b, -1, f, h, w)
        return (out,) if not return_dict else {"sample": out}
