"""`workbench run FAMILY | --all`: execute the notebooks headless (papermill) into runs/<family>/.

Exit 0 when every notebook ran or was already current, 1 when one failed (the summary
names the notebook and the failing cell), 2 on bad input. With `--executor ray` each
(family, notebook) is one Ray task.
"""

from __future__ import annotations

from pathlib import Path

from workbench.commands.common import add_executor_args, executor_from_args
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
                        help="local executor: notebooks run at once, each in its own kernel (default: %(default)s)")
    add_executor_args(parser)


def run(args) -> int:
    from workbench import registry
    from workbench.errors import ParameterError
    from workbench.notebooks import parse_settings, run_notebooks
    from workbench.run_report import summary_table, write_index

    if bool(args.family) == bool(args.all):
        raise ParameterError("give one FAMILY or --all")
    families = list(registry.FAMILIES) if args.all else [registry.get_family(args.family).name]
    selection = [s.strip() for s in args.notebooks.split(",") if s.strip()] if args.notebooks else None
    settings = parse_settings(args.settings)
    executor = executor_from_args(args, jobs=args.jobs)
    root = Path(args.out or "runs")
    outs = {family: root / family if args.all or not args.out else root for family in families}
    by_family = run_notebooks(outs, selection, settings, force=args.force, executor=executor)
    results = [r for family in families for r in by_family[family]]
    if args.all:
        write_index(root, results)
    print(summary_table(results))
    print(f"index: {(root if args.all else outs[families[0]]) / 'index.html'}")
    return 1 if any(r.status == "failed" for r in results) else 0
