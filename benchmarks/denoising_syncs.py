"""Host syncs inside each family's denoising stage on CUDA (fast mode, tiny build).

Runs the native pipeline with `torch.cuda.set_sync_debug_mode("warn")` switched on for
the denoising stage only and counts the synchronizing calls by the source line that made
them (the innermost workbench, diffusers or torchsde frame), so a sync our code adds to
the loop shows up by name.

    python benchmarks/denoising_syncs.py --out benchmarks/results [FAMILY ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import traceback
import warnings
from pathlib import Path

import torch

from workbench import registry
from workbench.api.generate import load_pipeline
from workbench.io import atomic_write_text
from workbench.references import ensure_reference

SOURCES = ("workbench/", "diffusers/", "torchsde/")


def _site(stack) -> str:
    frames = [f for f in stack if any(s in f.filename for s in SOURCES)]
    if not frames:
        return "?"
    f = frames[-1]
    path = next(f.filename[f.filename.index(s):] for s in SOURCES if s in f.filename)
    return f"{path}:{f.lineno} {f.line}"


def count_syncs(family_name: str) -> dict:
    family = registry.get_family(family_name)
    pipe = load_pipeline(ensure_reference(family) / "converted", device="cuda", mode="fast", progress=False)
    stage = next(s for s in pipe.stages if "Denois" in s.name)
    original, sites = stage.forward, collections.Counter()

    def record(message, category, filename, lineno, file=None, line=None):
        sites[_site(traceback.extract_stack()[:-1])] += 1

    def forward(batch):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return original(batch)
            finally:
                torch.cuda.set_sync_debug_mode(0)

    stage.forward = forward
    try:
        params = family.sampling_params()
        pipe(params.replace(stage_overrides=family.fast.stage_overrides))
    finally:
        del stage.forward
    ours = {k: v for k, v in sites.items() if k.startswith("workbench/")}
    return {"stage": stage.name, "steps": params.num_inference_steps, "syncs": sum(sites.values()),
            "workbench_syncs": sum(ours.values()), "sites": dict(sites.most_common())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", default=sorted(registry.FAMILIES))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {name: count_syncs(name) for name in args.families}
    print(json.dumps(result, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "gpu_denoising_syncs.json", json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
