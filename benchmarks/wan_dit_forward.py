"""GPU benchmark of one Wan DiT forward: diffusers `WanTransformer3DModel` vs the native
`workbench.components.WanTransformer`, same weights, same inputs, one process (CUDA only).

Wan2.1-T2V-1.3B sizes at 480x832x81 (32,760 video tokens, 512 text tokens), batch 2
(both guidance branches, as fast mode runs them). For each side, eager and with every
transformer block compiled: seconds per forward and MFU from the analytic FLOPs; a
profiler pass splits the compiled forward's GPU time into attention, GEMM and the rest;
the attention kernel alone at this shape gives the ceiling. Outputs of the two compiled
sides are compared (cosine, max abs).

    python benchmarks/wan_dit_forward.py --out benchmarks/results [--iters 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.components.wan_transformer import (
    WanTransformer,
    WanTransformerConfig,
    convert_state_dict,
)
from workbench.families.wan.flops import dit_forward_flops
from workbench.families.wan.reference import TRANSFORMER_SIZES
from workbench.io import atomic_write_text
from workbench.perf.measure import cuda_seconds
from workbench.runtime.loader import load_state_strict
from workbench.runtime.pipeline import attention_priority, compile_module, place_module

PEAK_BF16_TFLOPS = 790.0  # measured 8192^3 bf16 matmul on this H200 (device KINDS.md)
LATENT = (16, 21, 60, 104)  # 480x832x81 through the Wan VAE
TEXT_TOKENS = 512
FAST_BACKENDS = ("cudnn", "flash", "efficient", "math")


def kernel_breakdown(fn) -> dict:
    """GPU time of one call by kernel kind (seconds) and the ten longest kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    kinds = {"attention": 0.0, "gemm": 0.0, "fused_elementwise": 0.0, "other": 0.0}
    per_kernel: dict[str, float] = {}
    for event in prof.events():
        if event.device_type.name != "CUDA":
            continue
        name, seconds = event.name, event.device_time / 1e6
        low = name.lower()
        if low.startswith("triton"):  # inductor names fused kernels after their ops, sdpa's neighbours too
            kind = "fused_elementwise"
        elif any(s in low for s in ("attention", "fmha", "flash", "cudnn", "sdpa")):
            kind = "attention"
        elif any(s in low for s in ("gemm", "cutlass", "nvjet", "xmma", "cublas", "matmul")):
            kind = "gemm"
        else:
            kind = "other"
        kinds[kind] += seconds
        per_kernel[name] = per_kernel.get(name, 0.0) + seconds
    top = sorted(per_kernel.items(), key=lambda kv: -kv[1])[:10]
    return {"seconds": kinds, "total_s": sum(kinds.values()), "top_kernels": [[n[:120], s] for n, s in top]}


def build(seed: int, device: torch.device):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    with torch.device(device):
        official = WanTransformer3DModel(**TRANSFORMER_SIZES["full"]).eval()
        native = WanTransformer(WanTransformerConfig(**{**TRANSFORMER_SIZES["full"], "patch_size": (1, 2, 2)})).eval()
    load_state_strict(native, convert_state_dict(official.state_dict()), Path("<in-memory>"))
    official = place_module(official, device, torch.bfloat16)
    official.fuse_qkv_projections()
    native = place_module(native, device, torch.bfloat16)
    return official, native


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device("cuda")
    official, native = build(args.seed, device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    latents = torch.randn(2, *LATENT, generator=g, device=device, dtype=torch.bfloat16)
    timestep = torch.tensor([999.0, 999.0], device=device)
    text = torch.randn(2, TEXT_TOKENS, 4096, generator=g, device=device, dtype=torch.bfloat16)
    tokens = LATENT[1] * (LATENT[2] // 2) * (LATENT[3] // 2)
    flops = 2 * dit_forward_flops(official.config, tokens, TEXT_TOKENS)

    def forward(model):
        return lambda: model(hidden_states=latents, timestep=timestep, encoder_hidden_states=text,
                             return_dict=False)[0]

    result: dict = {"tokens": tokens, "batch": 2, "tflop_per_forward": flops / 1e12, "peak_tflops": PEAK_BF16_TFLOPS}
    with torch.no_grad(), attention_priority(device, FAST_BACKENDS):
        for label, model in (("diffusers", official), ("native", native)):
            s = cuda_seconds(forward(model), args.iters)
            result[f"{label}_eager"] = {"s": s, "mfu": flops / s / 1e12 / PEAK_BF16_TFLOPS}
            print(label, "eager", result[f"{label}_eager"], flush=True)
        outputs = {}
        for label, model in (("diffusers", official), ("native", native)):
            compile_module(model)  # per block, as fast mode compiles
            s = cuda_seconds(forward(model), args.iters)
            result[f"{label}_compiled"] = {"s": s, "mfu": flops / s / 1e12 / PEAK_BF16_TFLOPS,
                                           "kernels": kernel_breakdown(forward(model))}
            outputs[label] = forward(model)().float()
            print(label, "compiled", {k: v for k, v in result[f"{label}_compiled"].items() if k != "kernels"},
                  flush=True)
        a, b = outputs["diffusers"].flatten(), outputs["native"].flatten()
        result["agreement"] = {"cosine": float(F.cosine_similarity(a, b, dim=0)),
                               "max_abs": float((a - b).abs().max()), "ref_abs_mean": float(a.abs().mean())}
        heads, head_dim = official.config.num_attention_heads, official.config.attention_head_dim
        q, k, v = (torch.randn(2, tokens, heads, head_dim, device=device, dtype=torch.bfloat16).transpose(1, 2)
                   for _ in range(3))
        s = cuda_seconds(lambda: F.scaled_dot_product_attention(q, k, v), 10)
        attn_flops = 2 * 4 * tokens**2 * heads * head_dim
        result["sdpa_alone"] = {"s_per_call": s, "tflops": attn_flops / s / 1e12,
                                "s_per_forward": s * official.config.num_layers}
    print(json.dumps({k: v for k, v in result.items() if "compiled" not in k}, indent=2))
    for label in ("diffusers", "native"):
        print(label, json.dumps(result[f"{label}_compiled"]["kernels"], indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "gpu_wan_dit_forward.json", json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
