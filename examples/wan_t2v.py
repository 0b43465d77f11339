"""Wan 2.1 text-to-video with the native pipeline, then a parity check against diffusers.

    python examples/wan_t2v.py --out cat.mp4 --seed 3
"""

import argparse

from workbench.api.generate import generate
from workbench.parity.runner import run_parity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="wan_t2v.mp4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt", default="a cat walking in the rain, cinematic")
    args = parser.parse_args()

    request = {"seed": args.seed, "prompt": args.prompt}
    result = generate("wan_t2v", preset="tiny-ci", request=request, device="auto", out=args.out)
    print(f"wrote {args.out}: {tuple(result.output.shape)} in {result.wall_s:.2f}s")

    verdict = run_parity("wan_t2v", preset="tiny-ci", request=request).verdict
    print(verdict.summary_table())


if __name__ == "__main__":
    main()
