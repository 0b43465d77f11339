"""Which SDPA backend runs Wan's attention shape, and how fast (CUDA only).

Times each backend alone, then the priority list the fast mode sets, on q/k/v laid out
as diffusers' native attention passes them (a permute of [B, S, H, D]).

    python benchmarks/sdpa_backends.py [--tokens 32760 --heads 12 --head-dim 128]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from workbench.perf.measure import cuda_seconds
from workbench.runtime.pipeline import attention_priority

BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32760)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=128)
    args = parser.parse_args()
    shape = (1, args.tokens, args.heads, args.head_dim)
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16).permute(0, 2, 1, 3) for _ in range(3))
    flops = 4 * args.tokens**2 * args.head_dim * args.heads
    out = {}
    for name, backend in BACKENDS.items():
        try:
            with sdpa_kernel([backend]):
                seconds = cuda_seconds(lambda: F.scaled_dot_product_attention(q, k, v))
            out[name] = {"s": seconds, "tflops": flops / seconds / 1e12}
        except RuntimeError as exc:
            out[name] = {"error": str(exc).splitlines()[0]}
    with attention_priority(torch.device("cuda"), ("cudnn", "flash", "efficient", "math")):
        seconds = cuda_seconds(lambda: F.scaled_dot_product_attention(q, k, v))
    out["fast-mode priority"] = {"s": seconds, "tflops": flops / seconds / 1e12}
    out["default"] = {"s": (s := cuda_seconds(lambda: F.scaled_dot_product_attention(q, k, v))), "tflops": flops / s / 1e12}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
