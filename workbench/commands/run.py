"""`workbench run FAMILY | --all`: execute the notebooks headless (papermill) into runs/<family>/.

Exit 0 when every notebook ran or was already current, 1 when one failed (the summary
names the notebook and the failing cell), 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path

from workbench.notebooks import DEFAULT_JOBS


def configure(parser) -> None:
    parser.add_argument("family", nargs="?", help="registered family (see `workbench families`)")
    parser.add_argument("--all", action="store_true", help="run every registered family")
    parser.add_argument("--notebooks", metavar="01,04",
                        help="comma-separated notebook prefixes or names (default: all)")
    parser.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE",
                        help="set a notebook parameter (repeatable; JSON values), e.g. --set steps=4")
    parser.add_argument("--out", help="run directory (default: runs/<family>; with --all: runs/)")
    parser.add_argument("--force", action="store_true", help="re-execute notebooks that are up to date")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                        help="notebooks executed at once, each in its own kernel (default: %(default)s)")


def run(args) -> int:
    from workbench import registry
    from workbench.errors import ParameterError
    from workbench.notebooks import parse_settings, run_family, summary_table, write_index

    if bool(args.family) == bool(args.all):
        raise ParameterError("give one FAMILY or --all")
    families = list(registry.FAMILIES) if args.all else [registry.get_family(args.family).name]
    selection = [s.strip() for s in args.notebooks.split(",") if s.strip()] if args.notebooks else None
    settings = parse_settings(args.settings)
    root = Path(args.out or "runs")
    results = []
    for family in families:
        out = root / family if args.all or not args.out else root
        results += run_family(family, selection, settings, out, force=args.force, jobs=args.jobs)
    if args.all:
        write_index(root, results)
    print(summary_table(results))
    index = (root if args.all else out) / "index.html"
    print(f"index: {index}")
    return 1 if any(r.status == "failed" for r in results) else 0
