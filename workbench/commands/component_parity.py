"""`workbench component-parity FAMILY [--component NAME ...]`: run component parity and record it.

Each module the native pipeline loads is loaded by the official class from official/ and
by the workbench loader from converted/, fed the same seeded input, and compared
(exact: fp32 CPU, tolerance 0). Statuses and evidence go into the family's
port_state.yaml and PORT_STATUS.md is regenerated. Exit 1 when a component does not pass.
"""

from __future__ import annotations


def configure(parser) -> None:
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.add_argument("family")
    parser.add_argument("--component", action="append", dest="components", metavar="NAME",
                        help="check only this module (repeatable; default: every module the pipeline loads)")
    parser.add_argument("--model-dir",
                        help="a build-reference output (official/ + converted/); default: cached tiny build")


def run(args) -> int:
    from workbench import registry
    from workbench.portstate.components import record_component_parity
    from workbench.portstate.report import write_status

    family = registry.get_family(args.family)
    command = "workbench component-parity " + " ".join(
        [family.name] + [f"--component {c}" for c in args.components or []])
    results, state = record_component_parity(family, args.model_dir, args.components, command=command)
    for result in results:
        print(result.line())
    print(f"recorded in {state.path}")
    print(f"wrote {write_status(family)}")
    return 0 if all(r.passed for r in results) else 1
