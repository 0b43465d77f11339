"""`workbench generate FAMILY --out FILE`: run the native pipeline and write the media."""

from __future__ import annotations

from workbench.commands.common import add_request_args, add_sp_arg, request_from_args, run_sequence_parallel


def configure(parser) -> None:
    add_request_args(parser)
    parser.add_argument("--out", required=True,
                        help="output file: .mp4 for video and joint audio-video families (muxed), .wav for audio")
    parser.add_argument("--frames-dir", help="also write every frame as PNG into this directory")
    parser.add_argument("--paired", action="store_true",
                        help="joint audio-video: write the mp4 without audio plus a .wav of the same name")
    parser.add_argument("--mode", default="auto", choices=("auto", "exact", "fast"),
                        help="auto: fast (bf16, batched guidance) on CUDA, exact (fp32) on CPU; fast with --sp")
    add_sp_arg(parser)


def run(args) -> int:
    from workbench import registry
    from workbench.api.generate import check_outputs, generate

    # before any rank starts or any model loads: a result is never computed only to be lost
    check_outputs(registry.get_family(args.family), args.out, args.frames_dir, args.paired)
    if getattr(args, "sp", 1) != 1:
        return run_sequence_parallel("generate", args, _run_sp_rank)
    result = generate(args.family, preset=args.preset, request=request_from_args(args), device=args.device,
                      mode=args.mode, compile=args.compile, model_dir=args.model_dir, out=args.out,
                      frames_dir=args.frames_dir, paired=args.paired)
    timing = ", ".join(f"{k} {v:.3f}s" for k, v in result.stage_timings.items())
    print(f"generated in {result.wall_s:.2f}s ({timing})")
    for path in result.paths:
        print(f"wrote {path}")
    return 0


def _run_sp_rank(args) -> int:
    """One rank of `--sp N`: every rank runs the sharded DiT, rank 0 writes the media."""
    from workbench.api.sequence_parallel import generate_sp

    result = generate_sp(args.family, args.sp, preset=args.preset, request=request_from_args(args),
                         device=args.device, compile=args.compile, model_dir=args.model_dir, out=args.out,
                         frames_dir=args.frames_dir)
    if result is None:
        return 0
    timing = ", ".join(f"{k} {v:.3f}s" for k, v in result.stage_timings.items())
    print(f"generated in {result.wall_s:.2f}s with --sp {args.sp} ({timing})")
    for path in result.paths:
        print(f"wrote {path}")
    return 0
