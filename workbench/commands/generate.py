"""`workbench generate FAMILY --out FILE`: run the native pipeline and write the media."""

from __future__ import annotations

from workbench.commands.common import add_request_args, request_from_args


def configure(parser) -> None:
    add_request_args(parser)
    parser.add_argument("--out", required=True,
                        help="output file: .mp4 for video and joint audio-video families (muxed), .wav for audio")
    parser.add_argument("--frames-dir", help="also write every frame as PNG into this directory")
    parser.add_argument("--paired", action="store_true",
                        help="joint audio-video: write the mp4 without audio plus a .wav of the same name")
    parser.add_argument("--mode", default="auto", choices=("auto", "exact", "fast"),
                        help="auto: fast (bf16, batched guidance) on CUDA, exact (fp32) on CPU")


def run(args) -> int:
    from workbench.api.generate import generate

    result = generate(args.family, preset=args.preset, request=request_from_args(args), device=args.device,
                      mode=args.mode, compile=args.compile, model_dir=args.model_dir, out=args.out,
                      frames_dir=args.frames_dir, paired=args.paired)
    timing = ", ".join(f"{k} {v:.3f}s" for k, v in result.stage_timings.items())
    print(f"generated in {result.wall_s:.2f}s ({timing})")
    for path in result.paths:
        print(f"wrote {path}")
    return 0
