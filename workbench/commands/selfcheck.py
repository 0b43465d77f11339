"""`workbench selfcheck FAMILY [--mode exact|fast|fp32]`: plant single faults in the native side
(weights per component, config fields, code faults through run-time patches) and print how many
parity detects and localises. Exit 0 when the clean run passes and every exercised fault is
detected, 1 otherwise, 2 on bad input."""

from __future__ import annotations


def configure(parser) -> None:
    parser.add_argument("family")
    parser.add_argument("--mode", default="exact", choices=("exact", "fast", "fp32"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-dir", help="a built reference (default: the cached tiny build)")
    parser.add_argument("--preset")
    parser.add_argument("--set", dest="assignments", action="append", metavar="KEY=VALUE",
                        help="override a SamplingParam field (repeatable), e.g. --set num_inference_steps=3")
    parser.add_argument("--only", action="append", default=[], metavar="PREFIX",
                        help="only faults whose id starts with PREFIX (e.g. weight:, code:cfg); repeatable")
    parser.add_argument("--json", help="write the full result here")


def run(args) -> int:
    import json

    from workbench.api.params import parse_assignments
    from workbench.io import atomic_write_text
    from workbench.parity.selfcheck import run_selfcheck, summary_lines

    def progress(partial) -> None:  # one line per fault as it finishes; the JSON so far kept on disk
        rows = partial["faults"]
        if rows:
            row = rows[-1]
            print(f"[{len(rows)}] {row['id']}: {'error' if row['error'] else 'detected' if row['detected'] else 'missed'}"
                  f"{', localised' if row['localised'] else ''} ({row['seconds']:.1f} s)", flush=True)
        else:
            print(f"setup done in {partial['setup_s']:.1f} s; clean run "
                  f"{'passes' if partial['clean']['passed'] else 'FAILS'}", flush=True)
        if args.json:
            atomic_write_text(args.json, json.dumps(partial, indent=1, sort_keys=True, default=str) + "\n")

    result = run_selfcheck(args.family, mode=args.mode, device=args.device, model_dir=args.model_dir,
                           preset=args.preset, request=parse_assignments(args.assignments) or None,
                           only=tuple(args.only), on_progress=progress)
    for line in summary_lines(result):
        print(line)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
        print(f"result: {args.json}")
    everything = result["rates"]["all"]["detected"]
    return 0 if result["clean"]["passed"] and everything["count"] == everything["of"] else 1
