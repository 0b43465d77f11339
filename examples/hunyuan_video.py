"""hunyuan_video (T2V) with the native pipeline, then parity against the official HunyuanVideoPipeline.

    python examples/hunyuan_video.py [--out clip.mp4] [--model-dir DIR]

Without --model-dir it uses the tiny offline build (built once, then cached), so it runs on a
CPU in seconds.
"""

from __future__ import annotations

import argparse

import torch

from workbench import registry
from workbench.api.generate import generate
from workbench.parity.runner import resolve_model_dir, run_native, run_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="clip.mp4")
    parser.add_argument("--model-dir")
    args = parser.parse_args()

    request = {"prompt": "a red fox running on a snowy hill", "true_cfg_scale": 4.0, "seed": 42}
    result = generate("hunyuan_video", preset="tiny-ci", request=request, device="cpu", model_dir=args.model_dir,
                      out=args.out, progress=False)
    print(f"output {tuple(result.output.shape)} -> {', '.join(map(str, result.paths))}")

    family = registry.get_family("hunyuan_video")
    params = family.sampling_params("tiny-ci", request)
    model_dir = resolve_model_dir(family, args.model_dir)
    native, _ = run_native(model_dir / "converted", params, "cpu")
    reference = run_reference(family, model_dir / "official", params, torch.device("cpu"))
    for checkpoint in reference:
        diff = (checkpoint.tensor.double() - native[checkpoint.name].tensor.double()).abs().max().item()
        print(f"  {checkpoint.name:28s} {checkpoint.kind:9s} {tuple(checkpoint.tensor.shape)!s:16s} max|diff| {diff:.1e}")


if __name__ == "__main__":
    main()
