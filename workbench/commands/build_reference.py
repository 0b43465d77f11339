"""`workbench build-reference FAMILY --out DIR [--scale tiny|full]`."""

from __future__ import annotations

import os
from pathlib import Path

BUILD_ENTRIES = ("official", "converted")


def configure(parser) -> None:
    parser.add_argument("family")
    parser.add_argument("--out", required=True, help="directory to write official/ and converted/ into "
                        "(new, empty, or an earlier reference build, which is replaced)")
    parser.add_argument("--scale", default="tiny", choices=("tiny", "full"),
                        help="tiny: CPU/CI sizes; full: the released architecture (random init, GPU work)")
    parser.add_argument("--variant", action="append", metavar="MODULE=Class",
                        help="swap a module for another class the official pipeline allows, e.g. "
                             "scheduler=DPMSolverMultistepScheduler (from the built one's config; repeatable)")


def check_out_dir(out: Path) -> None:
    """Refuse, before building, an --out the build would overwrite and that is not a reference build.

    The build replaces `out` whole; only a new or empty directory, or one holding exactly
    an earlier build (official/ and converted/, each with its model_index.json), may be replaced.
    """
    from workbench.errors import ParameterError
    from workbench.io import check_output_dir

    check_output_dir(out, "--out")
    if not out.is_dir():
        return
    entries = sorted(os.listdir(out))
    foreign = [e for e in entries if e not in BUILD_ENTRIES]
    partial = [e for e in BUILD_ENTRIES if e in entries and not (out / e / "model_index.json").is_file()]
    if foreign or partial:
        found = ", ".join((foreign + partial)[:5]) + (" ..." if len(foreign + partial) > 5 else "")
        raise ParameterError(f"--out {out}: not empty and not a reference build (found {found}); "
                             "the build would replace it: give a new or empty directory")


def parse_variants(items):
    from workbench.families.variants import parse_variants as parse

    return parse(items)


def build_variant(family, out: Path, scale: str, variants: dict) -> Path:
    """The family's build with its variants applied, swapped in atomically (a refused variant
    leaves nothing)."""
    from workbench.errors import ParameterError
    from workbench.families.offline import quiet_hf
    from workbench.families.variants import apply_variants
    from workbench.io import atomic_directory
    from workbench.references import SCALES

    if scale not in SCALES:
        raise ParameterError(f"--scale {scale!r}: expected one of {SCALES}")
    quiet_hf()
    with atomic_directory(out) as tmp:
        family.reference.build_reference(tmp, scale)
        for module, cls in apply_variants(family, tmp, variants).items():
            print(f"variant:   {module} = {cls}")
    return out


def run(args) -> int:
    from workbench import registry
    from workbench.references import build_reference

    family = registry.get_family(args.family)
    out = Path(args.out)
    check_out_dir(out)
    variants = parse_variants(getattr(args, "variant", None))
    if variants:
        out = build_variant(family, out, args.scale, variants)
    else:
        out = build_reference(family, out, args.scale)
    print(f"official:  {out / 'official'}")
    print(f"converted: {out / 'converted'}")
    return 0
