"""LTX-2 joint audio-video with the native pipeline, then a parity check of both streams against diffusers.

    python examples/ltx2.py --out clip.mp4            # one mp4 with its audio track
    python examples/ltx2.py --out clip.mp4 --paired   # clip.mp4 + clip.wav
"""

import argparse

from workbench.api.generate import generate
from workbench.parity.runner import run_parity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="ltx2.mp4")
    parser.add_argument("--paired", action="store_true", help="write the mp4 and a .wav instead of muxing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt", default="a drummer playing in the rain, cinematic")
    args = parser.parse_args()

    request = {"seed": args.seed, "prompt": args.prompt}
    result = generate("ltx2", preset="tiny-ci", request=request, device="auto", out=args.out, paired=args.paired)
    print(f"frames {tuple(result.output.shape)}, waveform {tuple(result.audio.shape)} in {result.wall_s:.2f}s")
    print(f"media: {result.media}")
    print("wrote " + ", ".join(str(p) for p in result.paths))

    verdict = run_parity("ltx2", preset="tiny-ci", request=request).verdict
    print(verdict.summary_table())
    audio = [c for c in verdict.checkpoints if c.name.startswith("audio") or c.kind in ("mel", "waveform")]
    video = [c for c in verdict.checkpoints if c.kind in ("latent", "frames") and c not in audio]
    for stream, checkpoints in (("video", video), ("audio", audio)):
        print(f"{stream} stream: max abs diff {max(c.metrics.max_abs_diff for c in checkpoints):.3e}")


if __name__ == "__main__":
    main()
