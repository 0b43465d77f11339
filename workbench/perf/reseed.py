"""Reseeding: deliberately replace a cohort's baseline with a fresh, consistent set of runs.

Used after an accepted performance change (a faster kernel, a known-slower dependency) so
later runs are judged against the new level. Because it rewrites what "normal" means, it
is strict: every source must be a valid, successful record of one cohort, every measured
metric of every record must lie within 5% of that metric's median across the sources,
and the caller must confirm (`yes=True`, the CLI's --yes). The store is backed up before
anything changes. Effect: the cohort's existing records stay in the store but stop being
baseline-eligible; the sources are stored as eligible (already stored ones are re-marked),
so the next baseline is drawn from them alone.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from workbench.errors import PerfError
from workbench.perf.compare import exceeds
from workbench.perf.records import METRIC_FIELDS, Cohort, PerfRecord, load_records
from workbench.perf.store import PerfStore

RESEED_TOLERANCE_PCT = 5.0


@dataclass(frozen=True)
class ReseedResult:
    cohort: Cohort
    backup_path: Path
    seeded: int  # records now forming the cohort's baseline pool
    retired: int  # previously eligible records no longer used for baselines


def reseed(store: PerfStore, sources: Sequence[PerfRecord | str | Path], yes: bool) -> ReseedResult:
    """Validate `sources` (records or JSON files), back the store up, then swap the cohort's baseline pool."""
    if not yes:
        raise PerfError("reseed replaces the baseline of a cohort (the old records stop counting); "
                        "pass --yes to confirm")
    labelled = _labelled_records(sources)
    cohort = _single_cohort(labelled)
    _check_agreement(labelled)
    backup_path = store.backup()
    retired = store.replace_baseline(cohort, [replace(r, baseline_eligible=True) for _, r in labelled])
    return ReseedResult(cohort, backup_path, len(labelled), retired)


def _labelled_records(sources: Sequence[PerfRecord | str | Path]) -> list[tuple[str, PerfRecord]]:
    labelled: list[tuple[str, PerfRecord]] = []
    for i, source in enumerate(sources):
        if isinstance(source, PerfRecord):
            labelled.append((f"record #{i}", source))
            continue
        records = load_records(source)
        labels = [str(source)] if len(records) == 1 else [f"{source}[{j}]" for j in range(len(records))]
        labelled.extend(zip(labels, records))
    if not labelled:
        raise PerfError("reseed needs at least one record")
    for label, record in labelled:
        if not record.success:
            raise PerfError(f"{label}: a failed run (success false) cannot seed a baseline")
    return labelled


def _single_cohort(labelled: list[tuple[str, PerfRecord]]) -> Cohort:
    first_label, first = labelled[0]
    for label, record in labelled[1:]:
        if record.cohort != first.cohort:
            diffs = [f"{name} {b!r} vs {a!r}" for name, a, b in zip(Cohort._fields, first.cohort, record.cohort)
                     if a != b]
            raise PerfError(f"{label}: not in the same cohort as {first_label} ({'; '.join(diffs)}); "
                            "reseed takes records of one cohort only")
    return first.cohort


def _check_agreement(labelled: list[tuple[str, PerfRecord]]) -> None:
    for metric in METRIC_FIELDS:
        measured = [(label, getattr(r, metric)) for label, r in labelled if getattr(r, metric) is not None]
        if not measured:
            continue
        if len(measured) != len(labelled):
            label = next(label for label, r in labelled if getattr(r, metric) is None)
            raise PerfError(f"{label}: {metric!r} is missing while {len(measured)} other record(s) measure it")
        median = statistics.median(value for _, value in measured)
        for label, value in measured:
            if exceeds(abs(value - median), RESEED_TOLERANCE_PCT / 100.0 * abs(median)):
                off = f"{(value - median) / median * 100.0:+.1f}%" if median else "nonzero"
                raise PerfError(f"{label}: {metric} = {value:g} is {off} off the median {median:g} of the "
                                f"{len(measured)} records (reseed needs every record within {RESEED_TOLERANCE_PCT:g}%)")
