"""Attention kernel backends for the native DiT, chosen per device.

`components/wan_transformer.py::attention(q, k, v)` is the native DiT's one attention call;
on CUDA it dispatches here. Backends:

- ``sdpa``: `torch.nn.functional.scaled_dot_product_attention`, whose own backend order the
  fast mode sets (cuDNN first, see `runtime/pipeline.py`). Always the choice on CPU and CI,
  and the fallback everywhere.
- ``fa4``: FlashAttention-4's CuTe DSL forward (`flash_attn.cute.flash_attn_func`, the
  `flash-attn-4` package), for Hopper (SM90) and Blackwell (SM100), on key sequences of at
  least `FA4_MIN_KV_TOKENS` (self-attention; shorter ones run faster on cuDNN). Optional: the project
  never requires it to install; it is used only where it imports *and* holds parity with
  SDPA on this device (a probe on fresh random inputs at the first call per device and
  dtype; see `PROBE_*`).

The choice is made once per (device, dtype) at the first attention call after load (the
warm-up), outside any compiled graph: on CUDA the call goes through the custom op
``workbench::attention``, which torch.compile keeps as one opaque node, so the probe and
the kernel's own JIT never run inside a trace.

``WORKBENCH_ATTENTION=sdpa|fa4|auto`` (default auto) forces a backend; ``fa4`` that cannot
be used falls back to SDPA with the reason in `selection()`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

ENV_VAR = "WORKBENCH_ATTENTION"
BACKENDS = ("sdpa", "fa4")
# FA4's CuTe forward kernels exist for these compute capabilities (flash_attn/cute: sm90, sm100).
FA4_CAPABILITIES = ((9, 0), (10, 0), (10, 3))
# Probe: FA4 vs SDPA's math backend in fp32 on the same bf16 inputs. Source of the bounds:
# bf16 output rounding alone is 2^-8 relative (3.9e-3); measured on the H200 at the Wan
# 480x832x81 shape FA4 vs cuDNN reached cosine 0.999995, max abs 2.4e-4
# (shared/notes/gpu_device.md). The probe asks for cosine >= 0.9999 and max abs <= 2e-2
# (5x the bf16 ulp at |out| <= 1; softmax outputs of unit-variance v stay below that).
# Short key sequences (cross-attention over 512 text tokens) stay on SDPA: measured on the
# H200 at B=2, H=12, 32,760 queries x 512 keys, FA4 ran 0.65 ms (315 TFLOP/s) against cuDNN's
# 0.38 ms (540 TFLOP/s); at 32,760 keys FA4 ran 19.7 ms (670) against 23.2 ms (569)
# (benchmarks/results/gpu_attention_h200.json). The crossover lies between; 4096 is a guess
# inside it, not a measured point.
FA4_MIN_KV_TOKENS = 4096
PROBE_SHAPE = (1, 1024, 2, 128)  # B, S, H, D: fills a few tiles, one kernel JIT (~2 s)
PROBE_MIN_COSINE = 0.9999
PROBE_MAX_ABS = 2e-2


@dataclass(frozen=True)
class Selection:
    backend: str  # "sdpa" | "fa4"
    reason: str  # why, in one line (shown in benchmark JSON and logs)
    probe: dict | None = None  # {"cosine", "max_abs"} when the FA4 probe ran


_selected: dict[tuple[str, torch.dtype], Selection] = {}


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def fa4_importable() -> bool:
    """True when `flash_attn.cute` can be found (checks only, imports nothing)."""
    try:
        return importlib.util.find_spec("flash_attn") is not None and \
            importlib.util.find_spec("flash_attn.cute") is not None
    except (ImportError, ValueError):
        return False


def _fa4_kernel() -> Callable:
    from flash_attn.cute import flash_attn_func

    def run(q, k, v):
        out = flash_attn_func(q, k, v)
        return out[0] if isinstance(out, tuple) else out

    return run


def probe(kernel: Callable, device: torch.device, dtype: torch.dtype, shape=PROBE_SHAPE) -> dict:
    """Run `kernel` and SDPA (math, fp32) on fresh random [B,S,H,D] inputs; cosine and max abs."""
    gen = torch.Generator(device="cpu").manual_seed(int.from_bytes(os.urandom(4), "little"))
    q, k, v = (torch.randn(shape, generator=gen).to(device=device, dtype=dtype) for _ in range(3))
    out = torch.full(shape, float("nan"), device=device, dtype=dtype)
    out.copy_(kernel(q, k, v))  # poisoned first: an unwritten element stays NaN and fails
    high = torch.float64 if device.type == "cpu" else torch.float32  # no fp64 SDPA kernels on CUDA
    ref = _sdpa(q.to(high), k.to(high), v.to(high))
    diff = (out.to(ref.dtype) - ref).abs()
    cosine = F.cosine_similarity(out.to(ref.dtype).flatten(), ref.flatten(), dim=0).item()
    max_abs = diff.max().item()
    return {"cosine": cosine, "max_abs": max_abs, "shape": list(shape)}


def choose(device: torch.device, dtype: torch.dtype, *, requested: str | None = None,
           capability: tuple[int, int] | None = None, importable: bool | None = None,
           kernel_factory: Callable[[], Callable] = _fa4_kernel) -> Selection:
    """The backend for (device, dtype), without caching. Arguments after `dtype` exist for tests."""
    requested = (requested if requested is not None else os.environ.get(ENV_VAR, "auto")).strip().lower() or "auto"
    if requested not in BACKENDS + ("auto",):
        raise ValueError(f"{ENV_VAR}={requested!r} is not one of auto, {', '.join(BACKENDS)}")
    if requested == "sdpa":
        return Selection("sdpa", f"{ENV_VAR}=sdpa")
    if device.type != "cuda":
        return Selection("sdpa", f"{device.type}: SDPA only off CUDA")
    if dtype not in (torch.bfloat16, torch.float16):
        return Selection("sdpa", f"{dtype}: FA4 runs bf16/fp16 only")
    if capability is None:
        capability = torch.cuda.get_device_capability(device)
    if tuple(capability) not in FA4_CAPABILITIES:
        return Selection("sdpa", f"compute capability {capability[0]}.{capability[1]}: no FA4 kernel")
    if not (fa4_importable() if importable is None else importable):
        return Selection("sdpa", "flash-attn-4 is not installed")
    try:
        kernel = kernel_factory()
        result = probe(kernel, device, dtype)
    except Exception as exc:  # any failure to import, compile or run FA4 means: use SDPA
        return Selection("sdpa", f"FA4 failed its probe: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    ok = result["cosine"] >= PROBE_MIN_COSINE and result["max_abs"] <= PROBE_MAX_ABS
    if not ok:
        return Selection("sdpa", f"FA4 out of parity (cosine {result['cosine']:.6f}, max abs {result['max_abs']:.3e})",
                         result)
    return Selection("fa4", f"FA4 holds parity (cosine {result['cosine']:.6f}, max abs {result['max_abs']:.3e})",
                     result)


def selection(device: torch.device, dtype: torch.dtype) -> Selection:
    """The cached choice for (device, dtype), made on first use."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (str(device), dtype)
    if key not in _selected:
        _selected[key] = choose(device, dtype)
    return _selected[key]


def reset() -> None:
    """Forget the cached choices (tests; after changing WORKBENCH_ATTENTION)."""
    _selected.clear()
    _kernels.clear()


_kernels: dict[str, Callable] = {}


def _run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if k.shape[1] >= FA4_MIN_KV_TOKENS and selection(q.device, q.dtype).backend == "fa4":
        if "fa4" not in _kernels:
            _kernels["fa4"] = _fa4_kernel()
        return _kernels["fa4"](q, k, v)
    return _sdpa(q, k, v)


@torch.library.custom_op("workbench::attention", mutates_args=())
def _attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return _run(q, k, v).contiguous()


@_attention_op.register_fake
def _(q, k, v):
    return q.new_empty(q.shape[:-1] + v.shape[-1:])


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[B, S, H, D] in and out. CPU: plain SDPA (bitwise what the native DiT always ran);
    CUDA: the per-device backend, behind one opaque custom op."""
    if q.device.type != "cuda":
        return _sdpa(q, k, v)
    return _attention_op(q, k, v)
