"""Where LTX-2's fast-mode prompt embeddings differ on CUDA: padded or real token rows.

Runs both sides in fast mode (bf16) on the tiny build and splits the prompt_embeds
difference by the tokenizer's attention mask.

    python benchmarks/ltx2_embeds_probe.py [--device cuda]
"""

from __future__ import annotations

import argparse
import json

import torch

from workbench import registry
from workbench.parity.runner import run_native, run_reference
from workbench.references import ensure_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    family = registry.get_family("ltx2")
    root = ensure_reference(family)
    params = family.sampling_params().replace(stage_overrides=family.fast.stage_overrides)
    device = torch.device(args.device)
    native, batch = run_native(root / "converted", params, device, mode="fast")
    reference = run_reference(family, root / "official", params, device, mode="fast")
    out = {}
    for name, mask in (("prompt_embeds", batch.prompt_attention_mask),
                       ("negative_prompt_embeds", batch.negative_prompt_attention_mask)):
        diff = (native[name].tensor.float() - reference[name].tensor.float()).abs()
        real = mask.bool().cpu()
        out[name] = {"real_rows_max_abs": float(diff[real].max()), "padded_rows_max_abs": float(diff[~real].max())
                     if (~real).any() else None, "real_tokens": int(real.sum()), "padded_tokens": int((~real).sum())}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
