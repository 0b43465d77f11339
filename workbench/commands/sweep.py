"""`workbench sweep FAMILY --grid KEY=V1,V2 ...`: parity (or generation) at every grid point.

Each case's verdict JSON lands in `<out>/cases/<case-id>.json`, then a summary table and
index.html. A rerun skips the finished cases (resume), `--force` reruns all. Exit 0 when
every case passed, 1 when a verdict failed or a case could not run, 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path

from workbench.commands.common import add_executor_args, add_request_args, add_sp_arg, executor_from_args, request_from_args


def configure(parser) -> None:
    add_request_args(parser, device_default="cpu")
    parser.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                        help="a SamplingParam field and its values (repeatable; every combination runs), "
                             "e.g. --grid seed=0,1,2,3 --grid guidance_scale=3,5; a JSON list when values hold commas")
    parser.add_argument("--what", default="parity", choices=("parity", "generate"),
                        help="parity: a verdict per case (default); generate: media per case")
    parser.add_argument("--mode", choices=("auto", "exact", "fast"),
                        help="parity: exact (default) or fast; generate: auto (default), exact or fast")
    parser.add_argument("--cpus", type=int, default=1,
                        help="CPUs per case: its Ray resource and its torch threads on any executor (default: 1)")
    parser.add_argument("--out", help="sweep directory (default: sweeps/<family>)")
    parser.add_argument("--force", action="store_true", help="rerun cases that finished in an earlier run")
    add_sp_arg(parser, help="sequence-parallel ranks per case (fast mode, Wan): with --executor ray a case gets "
                            "N GPUs (or N x --cpus CPUs) of one node, a STRICT_PACK placement group (default: 1)")
    add_executor_args(parser)


def run(args) -> int:
    from workbench.run_report import summary_table
    from workbench.sweep import make_cases, parse_grid, run_sweep

    cases = make_cases(args.family, parse_grid(args.grid), request_from_args(args), what=args.what,
                       preset=args.preset, mode=args.mode, device=args.device, model_dir=args.model_dir,
                       compile=args.compile, cpus=args.cpus, sp=args.sp)
    out = Path(args.out or Path("sweeps") / args.family)
    results = run_sweep(cases, out, executor_from_args(args), force=args.force)
    print(summary_table(results, item="case"))
    print(f"index: {out / 'index.html'}")
    return 1 if any(r.status == "failed" for r in results) else 0
