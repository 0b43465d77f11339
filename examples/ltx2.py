"""LTX-2 joint audio-video with the native port: generate a clip, then compare every
checkpoint of both streams with the official diffusers pipeline.

    PYTHONPATH=. python examples/ltx2.py --out clip.mp4            # one mp4 with its audio track
    PYTHONPATH=. python examples/ltx2.py --out clip.mp4 --paired   # clip.mp4 + clip.wav

The first run builds the tiny random-init reference (official/ + converted/) into the
workbench cache; nothing is downloaded.
"""

from __future__ import annotations

import argparse

import torch

from workbench import registry
from workbench.api.generate import generate
from workbench.parity.runner import run_native
from workbench.references import ensure_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="clip.mp4")
    parser.add_argument("--paired", action="store_true")
    parser.add_argument("--preset", default="tiny-ci")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: fastest, and the same on both sides

    result = generate("ltx2", preset=args.preset, device="cpu", out=args.out, paired=args.paired)
    print(f"generated in {result.wall_s:.2f}s: frames {tuple(result.output.shape)}, "
          f"waveform {tuple(result.audio.shape)}")
    print(f"media: {result.media}")
    for path in result.paths:
        print(f"wrote {path}")

    # Parity, exact mode: the same request through the official pipeline, checkpoint by checkpoint.
    family = registry.get_family("ltx2")
    model_dir = ensure_reference(family)
    native, _ = run_native(model_dir / "converted", result.params)
    reference, _ = family.reference.run_reference(model_dir / "official", result.params)
    worst = {"video": 0.0, "audio": 0.0, "text": 0.0}
    for checkpoint in reference:
        diff = (checkpoint.tensor.double() - native[checkpoint.name].tensor.double()).abs().max().item()
        stream = ("audio" if checkpoint.name.startswith("audio") or checkpoint.kind in ("mel", "waveform")
                  else "text" if checkpoint.kind == "embedding" else "video")
        worst[stream] = max(worst[stream], diff)
        print(f"  {checkpoint.name:32s} {checkpoint.kind:10s} max abs diff {diff:.3e}")
    print("max abs diff per stream: " + ", ".join(f"{k} {v:.3e}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
