"""Baselines and regression verdicts.

A baseline is the per-metric median of the last 5 eligible records (successful and
baseline-eligible) of one cohort; a median of five shrugs off one noisy run. A metric
regresses only when the change in the bad direction exceeds *both* its percent and its
absolute threshold: the percent guards large values, the absolute guards small ones, where
a few percent is timer noise. The same rule in the good direction reports "improved".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable

from workbench.errors import PerfError
from workbench.perf.records import METRIC_FIELDS, Cohort, PerfRecord, record_key

BASELINE_WINDOW = 5

OK, REGRESSED, IMPROVED, MISSING = "ok", "regressed", "improved", "missing"
CALIBRATION_NEEDED, FAILED = "calibration needed", "failed"


@dataclass(frozen=True)
class Threshold:
    percent: float
    absolute: float
    higher_is_worse: bool

    def limits(self, baseline: float) -> tuple[float, float]:
        """(percent limit, absolute limit) in the metric's unit around `baseline`; a change
        counts only beyond both, i.e. beyond the larger one (the band a plot shades)."""
        return self.percent / 100.0 * abs(baseline), self.absolute


THRESHOLDS: dict[str, Threshold] = {
    "latency_s": Threshold(8.0, 0.5, higher_is_worse=True),
    "throughput_fps": Threshold(8.0, 0.05, higher_is_worse=False),
    "peak_memory_mb": Threshold(5.0, 256.0, higher_is_worse=True),
    "text_encoder_s": Threshold(5.0, 0.25, higher_is_worse=True),
    "dit_s": Threshold(5.0, 0.25, higher_is_worse=True),
    "vae_decode_s": Threshold(5.0, 0.25, higher_is_worse=True),
}


@dataclass(frozen=True)
class Baseline:
    cohort: Cohort
    records: tuple[PerfRecord, ...]  # the records the medians come from, oldest first
    medians: dict[str, float]  # only metrics that at least one of `records` measured

    @property
    def needs_calibration(self) -> bool:
        return not self.records


def is_eligible(record: PerfRecord) -> bool:
    return record.success and record.baseline_eligible


def compute_baseline(cohort: Cohort, records: Iterable[PerfRecord]) -> Baseline:
    """Median per metric over the last BASELINE_WINDOW eligible records of `cohort`."""
    eligible = sorted((r for r in records if r.cohort == cohort and is_eligible(r)), key=lambda r: r.timestamp)
    window = tuple(eligible[-BASELINE_WINDOW:])
    medians = {}
    for metric in METRIC_FIELDS:
        values = [getattr(r, metric) for r in window if getattr(r, metric) is not None]
        if values:
            medians[metric] = statistics.median(values)
    return Baseline(cohort, window, medians)


@dataclass(frozen=True)
class MetricRow:
    metric: str
    baseline: float | None
    value: float | None
    delta_abs: float | None
    delta_pct: float | None  # None when a value is missing or the baseline is 0
    threshold: Threshold
    status: str  # ok | regressed | improved | missing (measured on one side only)


@dataclass(frozen=True)
class Comparison:
    record: PerfRecord
    baseline: Baseline
    rows: tuple[MetricRow, ...]

    @property
    def status(self) -> str:
        """calibration needed (no baseline yet) | failed (the run failed) | regressed | ok."""
        if self.baseline.needs_calibration:
            return CALIBRATION_NEEDED
        if not self.record.success:
            return FAILED
        return REGRESSED if any(row.status == REGRESSED for row in self.rows) else OK


def exceeds(change: float, limit: float) -> bool:
    """Strictly beyond `limit`; a change equal to it up to float rounding (10.8 - 10.0) is not."""
    return change > limit and not math.isclose(change, limit, rel_tol=1e-9, abs_tol=1e-12)


def judge(metric: str, baseline: float | None, value: float | None) -> MetricRow:
    """One metric's verdict; a threshold is exceeded only when strictly passed."""
    threshold = THRESHOLDS[metric]
    if baseline is None or value is None:
        return MetricRow(metric, baseline, value, None, None, threshold, MISSING)
    delta = value - baseline
    delta_pct = delta / baseline * 100.0 if baseline else None
    change = abs(delta)
    percent_limit, absolute_limit = threshold.limits(baseline)
    significant = exceeds(change, absolute_limit) and exceeds(change, percent_limit)
    worse = delta > 0 if threshold.higher_is_worse else delta < 0
    status = (REGRESSED if worse else IMPROVED) if significant else OK
    return MetricRow(metric, baseline, value, delta, delta_pct, threshold, status)


def compare(record: PerfRecord, baseline: Baseline) -> Comparison:
    if record.cohort != baseline.cohort:
        raise PerfError(f"record of cohort {record.cohort.describe()} cannot be compared with the baseline "
                        f"of cohort {baseline.cohort.describe()}")
    if not record.exact and any(r.exact for r in baseline.records):
        raise PerfError(f"record at {record.timestamp} is approximate (exact=false): a speed-up that is not held "
                        f"to parity cannot be compared against the exact baseline of cohort {baseline.cohort.describe()}")
    rows = tuple(judge(m, baseline.medians.get(m), getattr(record, m)) for m in METRIC_FIELDS
                 if m in baseline.medians or getattr(record, m) is not None)
    return Comparison(record, baseline, rows)


def compare_with_history(record: PerfRecord, history: Iterable[PerfRecord]) -> Comparison:
    """Compare against the baseline of the record's cohort in `history` (e.g. the store's records).

    The record itself is left out, so recording a run and then comparing it does not let
    it vote in its own baseline.
    """
    own_key = record_key(record)
    return compare(record, compute_baseline(record.cohort, (r for r in history if record_key(r) != own_key)))
