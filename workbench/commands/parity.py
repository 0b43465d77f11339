"""`workbench parity FAMILY`: official vs native, checkpoint by checkpoint.

Exit 0 on pass, 1 on a parity failure (the first divergent checkpoint is printed), 2 on
bad input or a closed gate: pipeline parity runs only once every component the pipeline
loads has a non_skip_pass record (`workbench component-parity FAMILY`);
`--skip-component-gate` bypasses that for debugging and says so in the verdict.
"""

from __future__ import annotations

from workbench.commands.common import add_request_args, add_sp_arg, request_from_args, run_sequence_parallel


def configure(parser) -> None:
    add_request_args(parser, device_default="cpu")
    parser.add_argument("--mode", default="exact", choices=("exact", "fast", "fp32"),
                        help="exact: CPU fp32, <=1e-6; fp32: both sides fp32 per component, TF32 off, one "
                             "attention backend (any device, real sizes), within k x its measured floor; "
                             "fast: bf16 within k x the fast-mode floor")
    parser.add_argument("--fixed-tolerances", action="store_true",
                        help="fast/fp32: skip calibration and use the fixed fallback table (said per checkpoint)")
    parser.add_argument("--json", help="write the verdict JSON here")
    parser.add_argument("--report", help="write a self-contained HTML report here")
    parser.add_argument("--no-probes", action="store_true",
                        help="without --set, parity also runs the family's probe set (edge-path requests, one "
                             "row each); this skips it")
    parser.add_argument("--skip-component-gate", action="store_true",
                        help="debugging only: run without non_skip_pass component records (printed in the verdict)")
    add_sp_arg(parser)


def run(args) -> int:
    from workbench.io import check_output_file
    from workbench.parity.runner import run_parity

    from workbench.parity.runner import format_probes

    for flag, path in (("--json", args.json), ("--report", args.report)):
        if path:
            check_output_file(path, flag)  # before the run: a verdict is never computed only to be lost
    if getattr(args, "sp", 1) != 1:
        from workbench.parity.sequence_parallel import refuse_mode

        refuse_mode(args.mode)
        return run_sequence_parallel("parity", args, _run_sp_rank)

    result = run_parity(args.family, preset=args.preset, request=request_from_args(args), mode=args.mode,
                        model_dir=args.model_dir, device=args.device, compile=args.compile,
                        skip_component_gate=args.skip_component_gate, calibrate=not args.fixed_tolerances,
                        probes=not args.assignments and not args.no_probes)
    verdict = result.verdict
    print(verdict.summary_table())
    for line in calibration_lines(verdict):
        print(line)
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
    if verdict.native_error is not None:  # the partial verdict is above; one line says where the port broke
        import sys

        from workbench.parity.verdict import native_error_text

        print(f"workbench parity: native side raised in {native_error_text(verdict.native_error)}", file=sys.stderr)
    return verdict.exit_code


def _run_sp_rank(args) -> int:
    """One rank of `--sp N`: every rank runs the sharded DiT, rank 0 compares and reports."""
    from workbench.parity.sequence_parallel import run_sp_parity

    result = run_sp_parity(args.family, args.sp, preset=args.preset, request=request_from_args(args),
                           model_dir=args.model_dir, device=args.device, compile=args.compile,
                           skip_component_gate=args.skip_component_gate)
    if result is None:  # ranks > 0
        return 0
    print(result.summary())
    if args.json:
        result.to_json(args.json)
        print(f"verdict: {args.json}")
    if args.report:
        from workbench.parity.report import write_report

        write_report(result.verdict, result.reference, result.native, args.report)
        print(f"report: {args.report}")
    return result.exit_code


def calibration_lines(verdict) -> list[str]:
    """Floor and k of the calibrated bounds (the worst checkpoint relative to its bound first)."""
    cal = verdict.calibration
    if not cal:
        fallback = [c.name for c in verdict.checkpoints if c.tolerance_source.startswith("fixed fallback")]
        return [f"tolerances: fixed fallback for {len(fallback)} checkpoints ({fallback[0]}: "
                f"{verdict.checkpoints[0].tolerance_source})"] if fallback else []
    lines = [f"tolerances: calibrated, k={cal['k']:g} x floor + one ulp of the dtype x scale; floors "
             f"{'reused from cache' if cal['cached'] else 'measured'} ({cal['key']}): {cal['sides_compared']}; "
             f"variants: {', '.join(cal['variants'])}"]
    rows = []
    for c in verdict.checkpoints:
        if c.metrics is None or c.metrics.max_abs_diff is None:
            continue
        if c.floor is None:
            rows.append(f"  {c.name}: {c.tolerance_source}")
        else:
            bound = c.tolerance.max_abs if c.tolerance else None
            rows.append(f"  {c.name}: max_abs {c.metrics.max_abs_diff:.3e} vs floor {c.floor:.3e} "
                        f"(bound {bound:.3e}){'' if c.passed else '  FAIL'}")
    return lines + rows
