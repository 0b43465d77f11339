"""`workbench perf record|compare|baseline|reseed`: track performance records against baselines.

Exit codes of `compare`: 0 when every record is within thresholds, and also when a cohort
has no baseline yet — then it prints "CALIBRATION NEEDED" instead of a verdict, because
the first runs of a new model or machine must be recordable before anything can be
judged; 1 when any metric regressed or a compared run failed; 2 on a user error.
"""

from __future__ import annotations

import argparse

from workbench.errors import PerfError
from workbench.perf.compare import CALIBRATION_NEEDED, OK, compare_with_history, compute_baseline
from workbench.perf.records import load_records
from workbench.perf.report import format_baseline, format_comparison
from workbench.perf.reseed import reseed
from workbench.perf.store import DB_ENV_VAR, PerfStore


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = __doc__.split("\n\n", 1)[1]
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="PATH",
                    help=f"perf store (default: ${DB_ENV_VAR}, else ~/.cache/workbench/perf.sqlite)")
    sub = parser.add_subparsers(dest="perf_command", required=True, metavar="ACTION")

    p = sub.add_parser("record", parents=[db], help="store records from a JSON file (one record or a list)")
    p.add_argument("file", metavar="FILE.json")
    p.set_defaults(_perf_run=_record)

    p = sub.add_parser("compare", parents=[db],
                       help="compare records with their cohort's baseline (exit 1 on regression)")
    p.add_argument("file", metavar="FILE.json")
    p.set_defaults(_perf_run=_compare)

    p = sub.add_parser("baseline", parents=[db], help="show the baseline of the cohorts of a model or of a record")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-id", help="every cohort of this model (narrow with --workload / --variant)")
    which.add_argument("--record", metavar="FILE.json", help="the cohorts of the records in this file")
    p.add_argument("--workload", help="workload id filter, with --model-id")
    p.add_argument("--variant", help="variant id filter, with --model-id")
    p.set_defaults(_perf_run=_baseline)

    p = sub.add_parser("reseed", parents=[db],
                       help="replace a cohort's baseline with agreeing records (backs up first)")
    p.add_argument("files", nargs="+", metavar="FILE.json")
    p.add_argument("--yes", action="store_true", help="confirm replacing the baseline")
    p.set_defaults(_perf_run=_reseed)


def run(args: argparse.Namespace) -> int:
    with PerfStore(args.db) as store:
        return args._perf_run(args, store)


def _record(args: argparse.Namespace, store: PerfStore) -> int:
    records = load_records(args.file)
    store.add_all(records)  # one transaction: a refused record stores none of the batch
    print(f"recorded {len(records)} record(s) in {store.path}")
    for cohort in dict.fromkeys(r.cohort for r in records):
        baseline = compute_baseline(cohort, store.records(cohort))
        print(f"  cohort {cohort.describe()}: {len(baseline.records)} record(s) in the baseline window")
    return 0


def _compare(args: argparse.Namespace, store: PerfStore) -> int:
    comparisons = [compare_with_history(r, store.records(r.cohort)) for r in load_records(args.file)]
    for i, comparison in enumerate(comparisons):
        if i:
            print()
        print(format_comparison(comparison))
    return 0 if all(c.status in (OK, CALIBRATION_NEEDED) for c in comparisons) else 1


def _baseline(args: argparse.Namespace, store: PerfStore) -> int:
    if args.record:
        if args.workload or args.variant:
            raise PerfError("--workload and --variant narrow --model-id; with --record the file defines the cohort")
        cohorts = list(dict.fromkeys(r.cohort for r in load_records(args.record)))
    else:
        cohorts = store.cohorts(args.model_id, args.workload, args.variant)
        if not cohorts:
            print(f"{CALIBRATION_NEEDED.upper()}: no records for model_id={args.model_id}"
                  f"{f' workload={args.workload}' if args.workload else ''}"
                  f"{f' variant={args.variant}' if args.variant else ''} in {store.path}")
            return 0
    for i, cohort in enumerate(cohorts):
        if i:
            print()
        print(format_baseline(compute_baseline(cohort, store.records(cohort))))
    return 0


def _reseed(args: argparse.Namespace, store: PerfStore) -> int:
    result = reseed(store, args.files, yes=args.yes)
    print(f"backed up {store.path} to {result.backup_path}")
    print(f"reseeded: {result.seeded} record(s) now form the baseline pool; "
          f"{result.retired} earlier record(s) no longer count")
    print(format_baseline(compute_baseline(result.cohort, store.records(result.cohort))))
    return 0
