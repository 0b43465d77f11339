"""`workbench build-reference FAMILY --out DIR [--scale tiny|full]`."""

from __future__ import annotations

from pathlib import Path


def configure(parser) -> None:
    parser.add_argument("family")
    parser.add_argument("--out", required=True, help="directory to write official/ and converted/ into")
    parser.add_argument("--scale", default="tiny", choices=("tiny", "full"),
                        help="tiny: CPU/CI sizes; full: the released architecture (random init, GPU work)")


def run(args) -> int:
    from workbench import registry
    from workbench.references import build_reference

    family = registry.get_family(args.family)
    out = build_reference(family, Path(args.out), args.scale)
    print(f"official:  {out / 'official'}")
    print(f"converted: {out / 'converted'}")
    return 0
