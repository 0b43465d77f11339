"""`workbench bless FAMILY [--preset P]`: the one way golden artifacts are rewritten."""

from __future__ import annotations


def configure(parser) -> None:
    parser.add_argument("family")
    parser.add_argument("--preset", action="append",
                        help="preset to bless (repeatable; default: the family's golden presets)")


def run(args) -> int:
    from workbench import registry
    from workbench.parity.golden import bless

    family = registry.get_family(args.family)
    for preset in args.preset or family.golden_presets:
        print(f"blessed {bless(family.name, preset)}")
    return 0
