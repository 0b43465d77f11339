"""Stable Audio text-to-audio with the native pipeline, then parity against the official one.

    python examples/stable_audio.py [--out clip.wav] [--model-dir DIR]

Without --model-dir it uses the tiny offline build (built once, then cached), so it runs on
a CPU in seconds; point --model-dir at a `workbench build-reference stable_audio` output
(or a converted release with its official copy) for real audio.
"""

from __future__ import annotations

import argparse

import torch

from workbench import registry
from workbench.api.generate import generate
from workbench.parity.runner import resolve_model_dir, run_native, run_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="clip.wav")
    parser.add_argument("--model-dir")
    args = parser.parse_args()

    # 1. Generate: preset defaults, overridden per request (a 1.5 s window starting at 0.25 s).
    request = {"prompt": "rain on a tin roof, distant thunder", "negative_prompt": "low quality",
               "audio_start_in_s": 0.25, "audio_end_in_s": 1.75, "seed": 42}
    result = generate("stable_audio", preset="tiny-ci", request=request, device="cpu", model_dir=args.model_dir,
                      out=args.out, progress=False)
    print(f"waveform {tuple(result.output.shape)} at {result.media.sampling_rate} Hz, "
          f"{result.media.audio_seconds:.3f} s -> {', '.join(map(str, result.paths))}")

    # 2. Parity: the official StableAudioPipeline on the same build and request, checkpoint by checkpoint.
    family = registry.get_family("stable_audio")
    params = family.sampling_params("tiny-ci", request)
    model_dir = resolve_model_dir(family, args.model_dir)
    native, _ = run_native(model_dir / "converted", params, "cpu")
    reference = run_reference(family, model_dir / "official", params, torch.device("cpu"))
    for checkpoint in reference:
        diff = (checkpoint.tensor.double() - native[checkpoint.name].tensor.double()).abs().max().item()
        print(f"  {checkpoint.name:28s} {checkpoint.kind:9s} {tuple(checkpoint.tensor.shape)!s:14s} max|diff| {diff:.1e}")


if __name__ == "__main__":
    main()
