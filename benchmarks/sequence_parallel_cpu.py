"""CPU evidence for sequence parallelism (issue 22): one native Wan DiT denoising step (a
batch-2 forward, both guidance branches as fast mode batches them) at SP=1 and at SP=2 over
gloo, same random-init weights and inputs, on the same cores (SP=1: 2 torch threads in one
process; SP=2: 2 processes of 1 thread). Records the max |SP=2 - SP=1| of the DiT output
(fp32 and bf16; a sequence not divisible by 2 too) and the median per-step time.

This is not the scaling measurement (that needs several GPUs: `benchmarks/results/
cpu_sequence_parallel.json` says whether one was available); on a shared 2-core host the
times move with the other load (recorded).

    python benchmarks/sequence_parallel_cpu.py [--repeats 3] [--out benchmarks/results/cpu_sequence_parallel.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIG = dict(num_attention_heads=12, attention_head_dim=64, text_dim=256, ffn_dim=2048, num_layers=2)
GRIDS = {"even": (4, 30, 52), "odd": (3, 18, 18)}  # latent (frames, height, width): 1560 and 243 tokens


def model_and_inputs(dtype, grid):
    from workbench.components.wan_transformer import WanTransformer, WanTransformerConfig

    torch.manual_seed(0)
    model = WanTransformer(WanTransformerConfig(**CONFIG)).eval().to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, *grid, generator=g).to(dtype)
    ctx = torch.randn(2, 32, CONFIG["text_dim"], generator=g).to(dtype)
    return model, (x, torch.tensor([700.0, 700.0]), ctx)


def run(repeats: int, sp: bool) -> dict:
    from workbench.components.sequence_parallel import sequence_parallel

    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        for name, grid in GRIDS.items():
            model, inputs = model_and_inputs(dtype, grid)
            times = []
            with torch.no_grad():
                for _ in range(repeats + 1):  # the first is a warm-up
                    start = time.perf_counter()
                    if sp:
                        with sequence_parallel([model]):
                            y = model(*inputs, return_dict=False)[0]
                    else:
                        y = model(*inputs, return_dict=False)[0]
                    times.append(time.perf_counter() - start)
            out[f"{str(dtype).split('.')[-1]}_{name}"] = {"seconds": statistics.median(times[1:]), "output": y}
    return out


def rank_main(path: str, repeats: int) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    result = run(repeats, sp=True)
    if dist.get_rank() == 0:
        torch.save({k: v["output"] for k, v in result.items()}, path + ".pt")
        Path(path).write_text(json.dumps({k: v["seconds"] for k, v in result.items()}))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/cpu_sequence_parallel.json")
    parser.add_argument("--rank", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank:
        return rank_main(args.rank, args.repeats)
    from workbench.io import atomic_write_text
    from workbench.references import versions

    load_before = os.getloadavg()
    torch.set_num_threads(2)
    sp1 = run(args.repeats, sp=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "sp2.json")
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        __file__, "--rank", path, "--repeats", str(args.repeats)], env=env, check=True)
        sp2_s = json.loads(Path(path).read_text())
        sp2_out = torch.load(path + ".pt")
    cases = {}
    for key, one in sp1.items():
        diff = (sp2_out[key].float() - one["output"].float()).abs().max().item()
        cases[key] = {"sp1_step_s": one["seconds"], "sp2_step_s": sp2_s[key], "speedup": one["seconds"] / sp2_s[key],
                      "max_abs_sp2_vs_sp1": diff, "bitwise_equal": bool(torch.equal(sp2_out[key], one["output"]))}
    result = {"what": "native Wan DiT, one batch-2 forward per step, SP=1 (2 threads) vs SP=2 (gloo, 2x1 thread)",
              "config": CONFIG, "grids": {k: list(v) for k, v in GRIDS.items()},
              "tokens": {k: v[0] * (v[1] // 2) * (v[2] // 2) for k, v in GRIDS.items()},
              "repeats": args.repeats, "cpu_count": os.cpu_count(), "loadavg_before": load_before,
              "loadavg_after": os.getloadavg(), "versions": versions(), "cases": cases}
    atomic_write_text(args.out, json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
