"""Plain-text views of baselines and comparisons, shared by `workbench perf` and notebook 06.

One formatter, so the notebook says exactly what the CLI says about the same record.
"""

from __future__ import annotations

from typing import Sequence

from workbench.perf.compare import CALIBRATION_NEEDED, THRESHOLDS, Baseline, Comparison
from workbench.perf.records import METRIC_FIELDS, Cohort

CALIBRATION_HINT = ("no eligible baseline records for this cohort; record runs with `workbench perf record` "
                    "or seed them with `workbench perf reseed --yes`")
_UNITS = {"s": "s", "fps": "fps", "mb": "MB"}


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Fixed-width columns: the first left-aligned, the rest right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for line in (headers, *rows):
        cells = [cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _num(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else f"{value:+.3f}" if signed else f"{value:.3f}"


def unit(metric: str) -> str:
    return _UNITS[metric.rsplit("_", 1)[1]]


def threshold_text(metric: str) -> str:
    threshold = THRESHOLDS[metric]
    return f"{threshold.percent:g}% & {threshold.absolute:g} {unit(metric)}"


def _cohort_header(cohort: Cohort) -> str:
    return f"cohort {cohort.describe()}"


def format_comparison(comparison: Comparison) -> str:
    record, baseline = comparison.record, comparison.baseline
    head = [_cohort_header(record.cohort), f"record {record.timestamp} commit {record.commit}"]
    if baseline.needs_calibration:
        return "\n".join(head + [f"{CALIBRATION_NEEDED.upper()}: {CALIBRATION_HINT}"])
    head.append(f"baseline: median of {len(baseline.records)} eligible record(s), "
                f"{baseline.records[0].timestamp} .. {baseline.records[-1].timestamp}")
    rows = [[row.metric, _num(row.baseline), _num(row.value), _num(row.delta_abs, signed=True),
             "-" if row.delta_pct is None else f"{row.delta_pct:+.1f}%", threshold_text(row.metric), row.status]
            for row in comparison.rows]
    table = format_table(["metric", "baseline", "value", "delta", "delta %", "threshold", "status"], rows)
    return "\n".join(head + [table, f"verdict: {comparison.status.upper()}"])


def format_baseline(baseline: Baseline) -> str:
    head = _cohort_header(baseline.cohort)
    if baseline.needs_calibration:
        return f"{head}\n{CALIBRATION_NEEDED.upper()}: {CALIBRATION_HINT}"
    rows = [[metric, _num(baseline.medians.get(metric)), threshold_text(metric)] for metric in METRIC_FIELDS]
    return "\n".join([head, f"median of the last {len(baseline.records)} eligible record(s)",
                      format_table(["metric", "median", "threshold"], rows)])
