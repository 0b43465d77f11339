"""Sequence-parallel scaling of the native Wan DiT (issue 22, item 3): per-step DiT time at SP = 1,
2, 4, 8 (as many GPUs as the host has), speed-up, efficiency, peak memory per GPU, and how far
the SP=N prediction is from SP=1 (cosine, max abs), all in one JSON.

One step = one batch-2 forward (both guidance branches, as fast mode batches them) of the
Wan2.1-T2V-1.3B architecture (random init, bf16, seeded: the same weights and inputs on every
rank and every SP), at 480x832x81 (32,760 tokens) and a longer video, 480x832x161 (63,960).
Each SP runs as its own `torchrun`-style job (one process per GPU, NCCL, NVLink multicast off).

    python benchmarks/sequence_parallel_scaling.py --out benchmarks/results/gpu_sequence_parallel.json [--compile]
    python benchmarks/sequence_parallel_scaling.py --device cpu --tiny --sp 1,2 --out /tmp/sp.json   # the code path on CPU

Not yet run on a multi-GPU host (the device pool lent one H200 only; see the issue-22 report).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

FULL = dict(num_attention_heads=12, attention_head_dim=128, text_dim=4096, ffn_dim=8960, num_layers=30)  # 1.3B
TINY = dict(num_attention_heads=4, attention_head_dim=16, text_dim=32, ffn_dim=64, num_layers=2)
VIDEOS = {"480x832x81": (21, 60, 104), "480x832x161": (41, 60, 104)}  # latent (frames, height, width)
TINY_VIDEOS = {"tiny": (3, 8, 12), "tiny_long": (5, 8, 12)}


def rank_main(args) -> None:
    import torch.distributed as dist

    from workbench.components.sequence_parallel import sequence_parallel
    from workbench.components.wan_transformer import WanTransformer, WanTransformerConfig

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    cuda = args.device == "cuda"
    dev = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if cuda else "gloo")
    config = TINY if args.tiny else FULL
    torch.manual_seed(0)
    model = WanTransformer(WanTransformerConfig(**config)).eval().to(dev, torch.bfloat16)
    if args.compile:
        model.compile_repeated_blocks()
    results = {}
    for name, grid in (TINY_VIDEOS if args.tiny else VIDEOS).items():
        g = torch.Generator().manual_seed(1)
        x = torch.randn(2, 16, *grid, generator=g).to(dev, torch.bfloat16)
        ctx = torch.randn(2, 512 if not args.tiny else 8, config["text_dim"], generator=g).to(dev, torch.bfloat16)
        t = torch.tensor([700.0, 700.0], device=dev)
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        times = []
        with torch.no_grad(), (sequence_parallel([model]) if world > 1 else _null()):
            for i in range(args.warmup + args.steps):
                dist.barrier()
                if cuda:
                    torch.cuda.synchronize(dev)
                start = time.perf_counter()
                y = model(x, t, ctx, return_dict=False)[0]
                if cuda:
                    torch.cuda.synchronize(dev)
                if i >= args.warmup:
                    times.append(time.perf_counter() - start)
        peak = torch.tensor([torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else 0.0], device=dev)
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        step = torch.tensor([sorted(times)[len(times) // 2]], device=dev)
        dist.all_reduce(step, op=dist.ReduceOp.MAX)  # the slowest rank sets the step time
        results[name] = {"step_s": step.item(), "peak_gib_per_gpu": peak.item(),
                         "tokens": grid[0] * (grid[1] // 2) * (grid[2] // 2)}
        if rank == 0:
            torch.save(y.float().cpu(), f"{args.rank_out}.{name}.pt")
        del x, ctx, y
    if rank == 0:
        Path(args.rank_out).write_text(json.dumps(results))
    dist.destroy_process_group()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--sp", default=None, help="comma list (default: 1,2,4,8 up to the GPU count)")
    parser.add_argument("--tiny", action="store_true", help="a tiny config (checks the code path, e.g. on CPU)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rank-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_out:
        return rank_main(args)
    from workbench.io import atomic_write_text
    from workbench.references import versions

    gpus = torch.cuda.device_count() if args.device == "cuda" else 8
    sps = [int(v) for v in args.sp.split(",")] if args.sp else [n for n in (1, 2, 4, 8) if n <= gpus]
    runs, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for sp in sps:
            rank_out = str(Path(tmp) / f"sp{sp}.json")
            env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), NCCL_NVLS_ENABLE="0",
                       OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(sp),
                   __file__, "--device", args.device, "--out", args.out, "--rank-out", rank_out,
                   "--warmup", str(args.warmup), "--steps", str(args.steps)]
            cmd += ["--tiny"] * args.tiny + ["--compile"] * args.compile
            subprocess.run(cmd, env=env, check=True)
            runs[sp] = json.loads(Path(rank_out).read_text())
            outputs[sp] = {name: torch.load(f"{rank_out}.{name}.pt") for name in runs[sp]}
    base = sps[0]
    table = {}
    for name in runs[base]:
        rows = {}
        for sp in sps:
            r, ref, y = runs[sp][name], outputs[base][name], outputs[sp][name]
            speedup = runs[base][name]["step_s"] / r["step_s"] * base
            rows[str(sp)] = {**r, "speedup": speedup, "efficiency": speedup / sp,
                             "max_abs_vs_sp1": (y - ref).abs().max().item(),
                             "cosine_vs_sp1": torch.nn.functional.cosine_similarity(y.flatten(), ref.flatten(), 0).item()}
        table[name] = rows
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    result = {"what": "native Wan DiT, batch-2 forward per step, bf16, Ulysses SP over NCCL/gloo",
              "config": TINY if args.tiny else FULL, "compile": args.compile, "device": gpu, "sp": sps,
              "warmup": args.warmup, "steps": args.steps, "versions": versions(), "videos": table}
    atomic_write_text(args.out, json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
