"""Wan 2.2 two-expert text-to-video: generate with the native pipeline, then prove parity.

    python examples/wan22_t2v.py --out wan22.mp4 [--preset tiny-ci] [--model-dir DIR] [--set KEY=VALUE ...]

Without --model-dir it uses the cached tiny random-init build (CPU, seconds): the video
is noise, but the run shows which expert denoised each step and that every checkpoint
matches diffusers' WanPipeline (transformer_2 + boundary_ratio) exactly.
"""

from __future__ import annotations

import argparse

from workbench.api.generate import generate
from workbench.api.params import parse_assignments
from workbench.parity.capture import CaptureHooks, CaptureSet
from workbench.parity.runner import run_parity

FAMILY = "wan22_t2v"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="wan22.mp4")
    parser.add_argument("--preset", default="tiny-ci")
    parser.add_argument("--model-dir", help="a `workbench build-reference wan22_t2v` output")
    parser.add_argument("--set", dest="assignments", action="append", metavar="KEY=VALUE",
                        help="e.g. --set boundary_ratio=0.8 --set guidance_scale_2=2.5")
    args = parser.parse_args()
    request = parse_assignments(args.assignments)

    capture = CaptureSet()
    result = generate(FAMILY, preset=args.preset, request=request, model_dir=args.model_dir, out=args.out,
                      hooks=CaptureHooks(capture), progress=False)
    print(f"wrote {args.out} in {result.wall_s:.2f}s")
    for checkpoint in capture:
        if checkpoint.step is not None:
            meta = checkpoint.meta
            print(f"  step {checkpoint.step}: t={meta['timestep']:.0f}  {meta['expert']:<13}  "
                  f"guidance {meta['guidance_scale']}")

    verdict = run_parity(FAMILY, preset=args.preset, request=request, model_dir=args.model_dir).verdict
    print(verdict.summary_table())
    return verdict.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
