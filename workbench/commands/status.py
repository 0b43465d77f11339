"""`workbench status [FAMILY ...] [--run] [--write] [--check]`: the gates of a port, in order.

Without `--run` nothing runs: component parity is read from the component records in
port_state.yaml, smoke / pipeline parity / example from their last recorded run.
`--run` runs every gate on the tiny build (component parity -> smoke -> pipeline
parity -> example), records the results and regenerates PORT_STATUS.md. Exit 1 when
`--run` leaves a gate not passing, or `--check` finds a stale PORT_STATUS.md.
"""

from __future__ import annotations


def configure(parser) -> None:
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.add_argument("families", nargs="*", metavar="FAMILY", help="registered families (default: all)")
    parser.add_argument("--run", action="store_true",
                        help="run every gate on the tiny build, record the results, regenerate PORT_STATUS.md")
    parser.add_argument("--write", action="store_true", help="regenerate PORT_STATUS.md from the records")
    parser.add_argument("--check", action="store_true", help="exit 1 when a PORT_STATUS.md is stale")


def run(args) -> int:
    from workbench import registry
    from workbench.portstate import report
    from workbench.portstate.gates import read_gates, run_gates
    from workbench.portstate.state import load_family_state

    families = [registry.get_family(n) for n in args.families] or list(registry.FAMILIES.values())
    code = 0
    for i, family in enumerate(families):
        if i:
            print()
        if args.run:
            components, _ = run_gates(family)
            for result in components:
                print(result.line())
            if not all(g.passed for g in read_gates(load_family_state(family))):
                code = 1
        print("\n".join(report.render_family(family)).rstrip())
        if args.run or args.write:
            print(f"wrote {report.write_status(family)}")
        elif report.is_current(family):
            print(f"{report.status_path(family)}: current")
        else:
            print(f"{report.status_path(family)}: STALE (regenerate with `workbench status {family.name} --write`)")
            code = 1 if args.check else code
    return code
