"""`workbench trace-diff A.jsonl B.jsonl`: name the first module where two activation traces part."""

from __future__ import annotations

import argparse

from workbench.trace.diff import DEFAULT_REL_THRESHOLD, trace_diff


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A.jsonl", help="trace of one side (usually the reference)")
    parser.add_argument("b", metavar="B.jsonl", help="trace of the other side (usually native)")
    parser.add_argument("--rel-threshold", type=float, default=DEFAULT_REL_THRESHOLD,
                        help="relative abs-mean drift that flags a record (default %(default)s = 0.5%%, for "
                             "fast-mode traces; exact-mode traces agree bitwise: use e.g. 1e-6)")
    parser.add_argument("--top", type=int, default=10, help="rows of the worst-module table (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the traces agree, 1 when they diverge (or records are missing)."""
    result = trace_diff(args.a, args.b, rel_threshold=args.rel_threshold)
    print(result.summary(top=args.top))
    return 1 if result.divergent else 0
