"""Wan image-to-video: generate from a first frame with the native pipeline, then prove parity.

    python examples/wan_i2v.py --out i2v.mp4 [--image first_frame.png] [--preset tiny-ci] [--model-dir DIR]

Without --image the preset's deterministic gradient image is used; without --model-dir
the cached tiny random-init build (CPU, seconds). The parity run compares every
checkpoint, including the CLIP image embeddings and the VAE image condition, with
diffusers' WanImageToVideoPipeline.
"""

from __future__ import annotations

import argparse

from workbench.api.generate import generate
from workbench.parity.runner import run_parity

FAMILY = "wan_i2v"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="i2v.mp4")
    parser.add_argument("--image", help="conditioning image file (default: the preset's gradient)")
    parser.add_argument("--preset", default="tiny-ci")
    parser.add_argument("--model-dir", help="a `workbench build-reference wan_i2v` output")
    args = parser.parse_args()
    request = {"image": args.image} if args.image else {}

    result = generate(FAMILY, preset=args.preset, request=request, model_dir=args.model_dir, out=args.out,
                      progress=False)
    timings = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.stage_timings.items())
    print(f"wrote {args.out}: {tuple(result.output.shape)} frames ({timings})")

    verdict = run_parity(FAMILY, preset=args.preset, request=request, model_dir=args.model_dir).verdict
    print(verdict.summary_table())
    return verdict.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
