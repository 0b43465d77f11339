"""FA4 (CuTe SM90) vs cuDNN SDPA at Wan2.1-1.3B's attention shapes, through the native DiT's
dispatch (`workbench/runtime/attention.py`). CUDA only; FA4 optional (reported when absent).

Self-attention: B=2 guidance branches, 12 heads, 32,760 tokens (480x832x81), head dim 128;
cross-attention: the same queries over 512 text tokens. Median of 20 event-timed calls
after warm-up; accuracy of each kernel vs SDPA in fp32 on the same bf16 inputs (fresh
random draws), output poisoned with NaN before the timed kernel writes it.

    python benchmarks/gpu_attention.py [--out benchmarks/results/gpu_attention_h200.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.io import atomic_write_text
from workbench.runtime import attention as attn
from workbench.runtime.pipeline import attention_priority

FAST_PRIORITY = ("cudnn", "flash", "efficient", "math")


def median_seconds(fn, iters: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def accuracy(fn, shape_q, shape_kv) -> dict:
    q = torch.randn(shape_q, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(shape_kv, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    out = torch.full(shape_q, float("nan"), device="cuda", dtype=torch.bfloat16)
    out.copy_(fn(q, k, v))
    ref = attn._sdpa(q.float(), k.float(), v.float())
    o = out.float()
    return {"cosine": F.cosine_similarity(o.flatten(), ref.flatten(), dim=0).item(),
            "max_abs": (o - ref).abs().max().item(),
            "rel_l2": ((o - ref).norm() / ref.norm()).item(), "nan": bool(o.isnan().any())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32760)
    parser.add_argument("--text-tokens", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_attention_h200.json"))
    args = parser.parse_args()
    device = torch.device("cuda")
    B, H, D = 2, 12, 128
    result = {"shape": {"B": B, "H": H, "D": D, "tokens": args.tokens, "text_tokens": args.text_tokens},
              "device": torch.cuda.get_device_name(), "fa4_importable": attn.fa4_importable(), "kernels": {}}
    with attention_priority(device, FAST_PRIORITY):
        sel = attn.selection(device, torch.bfloat16)
        result["selection"] = {"backend": sel.backend, "reason": sel.reason, "probe": sel.probe}
        kernels = {"cudnn-sdpa (fast-mode priority)": attn._sdpa, "dispatch (workbench::attention)": attn.attention}
        if attn.fa4_importable():
            kernels["fa4 direct"] = attn._fa4_kernel()
        for name, fn in kernels.items():
            row = {}
            for kind, s_kv in (("self", args.tokens), ("cross", args.text_tokens)):
                shape_q, shape_kv = (B, args.tokens, H, D), (B, s_kv, H, D)
                try:
                    q = torch.randn(shape_q, device="cuda", dtype=torch.bfloat16)
                    k, v = (torch.randn(shape_kv, device="cuda", dtype=torch.bfloat16) for _ in range(2))
                    seconds = median_seconds(lambda: fn(q, k, v))
                    flops = 4 * B * H * args.tokens * s_kv * D
                    row[kind] = {"s": seconds, "tflops": flops / seconds / 1e12,
                                 **accuracy(fn, (B, 4096, H, D), (B, min(s_kv, 4096), H, D))}
                except Exception as exc:  # report and go on: one kernel failing is a result too
                    row[kind] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            result["kernels"][name] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    for name, row in result["kernels"].items():
        print(name, {k: {m: (round(x, 5) if isinstance(x, float) else x) for m, x in v.items()} for k, v in row.items()})
    print("selection:", result["selection"]["backend"], "-", result["selection"]["reason"])


if __name__ == "__main__":
    main()
