"""`workbench bless FAMILY [--preset P] [--only goldens|notebooks]`: the one way golden
artifacts are rewritten: the official pipeline's captured tensors, and the executed
notebooks that nbval re-executes (reference_outputs/notebooks/<family>/). Each is swapped
in whole, so a failure leaves the previous blessing in place."""

from __future__ import annotations


def configure(parser) -> None:
    parser.add_argument("family")
    parser.add_argument("--preset", action="append",
                        help="preset to bless (repeatable; default: the family's golden presets)")
    parser.add_argument("--only", choices=("goldens", "notebooks"),
                        help="bless only the golden tensors or only the executed notebooks (default: both)")


def run(args) -> int:
    from workbench import registry
    from workbench.notebooks import bless_notebooks
    from workbench.parity.golden import bless

    family = registry.get_family(args.family)
    if args.only != "notebooks":
        for preset in args.preset or family.golden_presets:
            print(f"blessed {bless(family.name, preset)}")
    if args.only != "goldens":
        print(f"blessed {bless_notebooks(family.name)}")
    return 0
