"""Ulysses sequence parallelism for the native Wan DiT (`workbench/components/wan_transformer.py`).

Each rank of a `torch.distributed` group (NCCL on CUDA, gloo on CPU) holds 1/N of the video
tokens; the text, the timestep embedding and the modulation are replicated. The model's own
code runs unchanged: `sequence_parallel(models, group)` attaches, for its duration,

- a forward hook on `patch_embed` that keeps this rank's slice of the tokens (zero-padded to
  a multiple of N when the sequence does not divide: the pad tokens are dropped as keys
  inside attention and cut off at the gather, so they never reach a real token);
- a pre-hook on every block that slices the RoPE tables the same way;
- a wrapper around `wan_transformer.attention(q, k, v)` (the DiT's single attention call,
  see the shared contract): inside self-attention, one all-to-all turns [B, S/N, H, D]
  q/k/v into [B, S, H/N, D] (all tokens, a slice of the heads), attention runs on the full
  sequence, and a second all-to-all returns [B, S/N, H, D]. Cross-attention needs no
  communication (local queries against the replicated text) and calls `attention` as is;
- a forward hook on `head` that all-gathers the tokens, so the DiT returns the whole
  prediction on every rank and the scheduler runs replicated, unchanged.

Per token the arithmetic is the same as without SP (the same GEMMs row by row, attention
over the same keys), so SP=N matches SP=1 up to kernel blocking of the smaller shapes.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
import torch.distributed as dist

from workbench.components import wan_transformer
from workbench.errors import ParameterError


def padded_length(seq_len: int, world: int) -> int:
    """The smallest multiple of `world` >= `seq_len` (every rank gets the same slice length)."""
    return math.ceil(seq_len / world) * world


def check_heads(heads: int, world: int, where: str = "the transformer") -> None:
    """Ulysses splits the attention heads over the ranks: refuse a count that does not divide."""
    if world < 1:
        raise ParameterError(f"--sp {world}: expected 1 or more ranks")
    if heads % world:
        divisors = [d for d in range(1, heads + 1) if heads % d == 0]
        raise ParameterError(f"--sp {world}: {where} has {heads} attention heads, not divisible by {world} "
                             f"(Ulysses splits the heads over the ranks); use --sp one of {divisors}")


@dataclass
class _State:
    group: object
    world: int
    rank: int
    seq_len: int | None = None      # tokens of the current forward (before padding)
    in_self_attention: bool = False
    handles: list = field(default_factory=list)


_STATE: _State | None = None
_ORIGINAL_ATTENTION = None


# ---- communication ---------------------------------------------------------------------------
def _wire(x: torch.Tensor, group) -> torch.Tensor:
    """gloo has no bf16 collectives: it moves them as raw bytes (a copy either way: bit-exact)."""
    if x.dtype == torch.bfloat16 and dist.get_backend(group) == "gloo":
        return x.view(torch.uint8)
    return x


def _all_to_all(send: torch.Tensor, group) -> torch.Tensor:
    """all_to_all_single over dim 0 (one slice per rank)."""
    send = send.contiguous()
    recv = torch.empty_like(send)
    dist.all_to_all_single(_wire(recv, group), _wire(send, group), group=group)
    return recv


def _gather_tokens(x: torch.Tensor, state: _State) -> torch.Tensor:
    """[B, S/N, C] on each rank -> [B, S, C] on every rank (pad tokens cut)."""
    parts = [torch.empty_like(x) for _ in range(state.world)]
    dist.all_gather([_wire(p, state.group) for p in parts], _wire(x.contiguous(), state.group), group=state.group)
    return torch.cat(parts, dim=1)[:, :state.seq_len]


def _shard(x: torch.Tensor, state: _State, dim: int = 1, pad_value: float = 0.0) -> torch.Tensor:
    """This rank's slice along `dim` of a full-sequence tensor, padded to a multiple of N."""
    total = padded_length(x.shape[dim], state.world)
    if total != x.shape[dim]:
        pad_shape = list(x.shape)
        pad_shape[dim] = total - x.shape[dim]
        x = torch.cat([x, x.new_full(pad_shape, pad_value)], dim=dim)
    local = total // state.world
    return x.narrow(dim, state.rank * local, local)


@torch.compiler.disable  # collectives stay eager when the blocks are compiled (one graph break per attention)
def ulysses_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: _State) -> torch.Tensor:
    """Self-attention over a token-sharded sequence: q, k, v [B, S/N, H, D] -> [B, S/N, H, D]."""
    world = state.world
    b, s, h, d = q.shape
    # [3, B, s, N, H/N, D] -> [N, 3, B, s, H/N, D]: slice r (head group r) goes to rank r.
    qkv = torch.stack([q, k, v]).reshape(3, b, s, world, h // world, d).permute(3, 0, 1, 2, 4, 5)
    recv = _all_to_all(qkv, state.group)  # [N (source rank = token block), 3, B, s, H/N, D]
    full = recv.permute(1, 2, 0, 3, 4, 5).reshape(3, b, world * s, h // world, d)
    n = state.seq_len
    out = _ORIGINAL_ATTENTION(full[0], full[1, :, :n], full[2, :, :n])  # pad tokens are never keys
    # [B, N*s, H/N, D] -> [N (token block), B, s, H/N, D]: block r goes back to rank r.
    back = _all_to_all(out.reshape(b, world, s, h // world, d).permute(1, 0, 2, 3, 4), state.group)
    return back.permute(1, 2, 0, 3, 4).reshape(b, s, h, d)  # head groups in rank order


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """What `wan_transformer.attention` is while SP is on."""
    state = _STATE
    if state is None or not state.in_self_attention:
        return _ORIGINAL_ATTENTION(q, k, v)  # cross-attention: local queries, replicated text
    return ulysses_attention(q, k, v, state)


# ---- hooks -----------------------------------------------------------------------------------
def _after_patch_embed(module, args, output):
    _STATE.seq_len = output.shape[1]
    return _shard(output, _STATE)


def _before_block(module, args):
    x, context, temb6, cos, sin, *rest = args
    if cos.shape[1] == _STATE.seq_len:  # full tables: this rank's rows (identity rotation on pads)
        cos, sin = _shard(cos, _STATE, pad_value=1.0), _shard(sin, _STATE)
    return (x, context, temb6, cos, sin, *rest)


def _enter_self_attention(module, args):
    _STATE.in_self_attention = True


def _leave_self_attention(module, args, output):
    _STATE.in_self_attention = False


def _after_head(module, args, output):
    return _gather_tokens(output, _STATE)


def _native_models(models: Iterable) -> list:
    out = []
    for model in models:
        if model is None:
            continue
        if not isinstance(model, wan_transformer.WanTransformer):
            raise ParameterError(f"--sp: sequence parallelism runs the native Wan DiT (fast mode); got "
                                 f"{type(model).__name__}")
        out.append(model)
    return out


@contextmanager
def sequence_parallel(models: Iterable, group=None) -> Iterator[_State]:
    """Run the given native Wan DiTs (e.g. transformer and transformer_2) token-sharded over
    `group` (default: the world) until the block exits; then they are plain models again."""
    global _STATE, _ORIGINAL_ATTENTION
    if not dist.is_initialized():
        raise ParameterError("--sp: torch.distributed is not initialised (launch with `workbench ... --sp N` "
                             "or torchrun)")
    if _STATE is not None:
        raise RuntimeError("sequence_parallel is already active in this process")
    models = _native_models(models)
    state = _State(group, dist.get_world_size(group), dist.get_rank(group))
    for model in models:
        check_heads(model.config.num_attention_heads, state.world)
        state.handles.append(model.patch_embed.register_forward_hook(_after_patch_embed))
        state.handles.append(model.head.register_forward_hook(_after_head))
        for block in model.blocks:
            state.handles.append(block.register_forward_pre_hook(_before_block))
            state.handles.append(block.self_attn.register_forward_pre_hook(_enter_self_attention))
            state.handles.append(block.self_attn.register_forward_hook(_leave_self_attention))
    _ORIGINAL_ATTENTION = wan_transformer.attention
    wan_transformer.attention = _attention
    _STATE = state
    try:
        yield state
    finally:
        wan_transformer.attention = _ORIGINAL_ATTENTION
        _STATE = None
        for handle in state.handles:
            handle.remove()
