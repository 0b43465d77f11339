"""`workbench parity FAMILY`: official vs native, checkpoint by checkpoint.

Exit 0 on pass, 1 on a parity failure (the first divergent checkpoint is printed), 2 on
bad input or a closed gate: pipeline parity runs only once every component the pipeline
loads has a non_skip_pass record (`workbench component-parity FAMILY`);
`--skip-component-gate` bypasses that for debugging and says so in the verdict.
"""

from __future__ import annotations

from workbench.commands.common import add_request_args, request_from_args


def configure(parser) -> None:
    add_request_args(parser, device_default="cpu")
    parser.add_argument("--mode", default="exact", choices=("exact", "fast"),
                        help="exact: CPU fp32, <=1e-6; fast: CUDA bf16 within DESIGN tolerances")
    parser.add_argument("--json", help="write the verdict JSON here")
    parser.add_argument("--report", help="write a self-contained HTML report here")
    parser.add_argument("--no-probes", action="store_true",
                        help="without --set, parity also runs the family's probe set (edge-path requests, one "
                             "row each); this skips it")
    parser.add_argument("--skip-component-gate", action="store_true",
                        help="debugging only: run without non_skip_pass component records (printed in the verdict)")


def run(args) -> int:
    from workbench.parity.runner import run_parity

    from workbench.parity.runner import format_probes

    probes = not args.assignments and not args.no_probes
    result = run_parity(args.family, preset=args.preset, request=request_from_args(args), mode=args.mode,
                        model_dir=args.model_dir, device=args.device, compile=args.compile,
                        skip_component_gate=args.skip_component_gate, probes=probes)
    verdict = result.verdict
    print(verdict.summary_table())
    if verdict.drilldown:
        from workbench.parity.drilldown import format_drilldown

        print(format_drilldown(verdict.drilldown))
    if verdict.probes:
        print(format_probes(verdict.probes))
    if args.json:
        verdict.to_json(args.json)
        print(f"verdict: {args.json}")
    if args.report:
        from workbench.parity.report import write_report

        write_report(verdict, result.reference, result.native, args.report)
        print(f"report: {args.report}")
    return verdict.exit_code
