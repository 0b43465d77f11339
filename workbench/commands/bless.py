"""`workbench bless FAMILY [--preset P] [--only goldens|notebooks]`: the one way golden
artifacts are rewritten: the official pipeline's captured tensors, and the executed
notebooks that nbval re-executes (reference_outputs/notebooks/<family>/).

Everything is staged first and swapped in as one change at the end (a journal finishes a
swap that a kill interrupted; staging left by a killed run is removed by the next one), so
reference_outputs/ never holds new goldens beside old notebooks. Blessing runs in the pinned
numeric environment (`workbench.parity.numeric_env.PINS`): when this process was started
without the pins it re-runs itself in a child process that has them, since they must be set
before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys


def configure(parser) -> None:
    parser.add_argument("family")
    parser.add_argument("--preset", action="append",
                        help="preset to bless (repeatable; default: the family's golden presets)")
    parser.add_argument("--only", choices=("goldens", "notebooks"),
                        help="bless only the golden tensors or only the executed notebooks (default: both)")


def bless_family(family_name: str, presets=None, only: str | None = None, progress: bool = True, **notebook_kwargs):
    """Stage the goldens of `presets` and/or the executed notebooks, then swap them in together.
    Returns the target directories."""
    from workbench import registry
    from workbench.io import DirectorySwap
    from workbench.notebooks import bless_notebooks, reference_dir
    from workbench.parity.golden import capture_goldens, golden_dir, reference_outputs_root, write_goldens

    family = registry.get_family(family_name)
    targets = []
    with DirectorySwap(reference_outputs_root(), f"bless-{family.name}") as swap:
        if only != "notebooks":
            for preset in presets or family.golden_presets:
                targets.append(golden_dir(family.name, preset))
                write_goldens(swap.stage(targets[-1]), *capture_goldens(family.name, preset))
        if only != "goldens":
            targets.append(reference_dir(family.name))
            bless_notebooks(family.name, swap.stage(targets[-1]), progress=progress, **notebook_kwargs)
    return targets


def _pinned() -> bool:
    from workbench.parity.numeric_env import PINS

    return all(os.environ.get(k) == v for k, v in PINS.items())


def run(args) -> int:
    if not _pinned():
        from workbench.parity.numeric_env import pinned_environ

        argv = [sys.executable, "-m", "workbench.cli", "bless", args.family]
        argv += [f"--preset={p}" for p in args.preset or ()]
        argv += [f"--only={args.only}"] if args.only else []
        return subprocess.run(argv, env=pinned_environ()).returncode
    for target in bless_family(args.family, args.preset, args.only):
        print(f"blessed {target}")
    return 0
