"""`workbench handoff FAMILY [--json FILE]`: the pipeline handoff report, every field computed."""

from __future__ import annotations


def configure(parser) -> None:
    parser.add_argument("family")
    parser.add_argument("--model-dir",
                        help="a build-reference output (official/ + converted/); default: cached tiny build")
    parser.add_argument("--json", help="also write the report as JSON here")


def run(args) -> int:
    import json

    from workbench import registry
    from workbench.io import atomic_write_text
    from workbench.portstate.handoff import build_handoff

    report = build_handoff(registry.get_family(args.family), args.model_dir)
    print(report.to_text())
    if args.json:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=1) + "\n")
        print(f"report: {args.json}")
    return 0
