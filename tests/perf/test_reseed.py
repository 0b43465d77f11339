"""Reseed: confirmation, one cohort, 5% agreement, backup first, then the baseline pool is swapped."""

from __future__ import annotations

import pytest

from workbench.errors import PerfError
from workbench.perf import PerfStore, compute_baseline, reseed, write_records


@pytest.fixture
def seeded(store, make_record):
    """A store with five eligible 10 s runs of the test cohort."""
    for i in range(5):
        store.add(make_record(i, latency_s=10.0))
    return store


def new_runs(make_record, latencies):
    return [make_record(100 + i, latency_s=v) for i, v in enumerate(latencies)]


def test_refuses_without_yes_and_changes_nothing(seeded, make_record, tmp_path):
    with pytest.raises(PerfError, match="pass --yes"):
        reseed(seeded, new_runs(make_record, [8.0, 8.1, 7.9]), yes=False)
    assert len(seeded.records(make_record().cohort)) == 5
    assert not list(tmp_path.glob("*.backup-*"))


def test_refuses_mixed_cohorts_naming_the_odd_record(seeded, make_record, tmp_path):
    runs = new_runs(make_record, [8.0, 8.1]) + [make_record(200, latency_s=8.0, gpu_type="NVIDIA A100")]
    files = [write_records(tmp_path / f"run{i}.json", [r]) for i, r in enumerate(runs)]
    with pytest.raises(PerfError, match=r"run2\.json: not in the same cohort as .*run0\.json \(gpu_type 'NVIDIA A100'"):
        reseed(seeded, files, yes=True)
    assert not list(tmp_path.glob("*.backup-*"))


def test_refuses_a_record_more_than_5_percent_off_the_median(seeded, make_record):
    runs = new_runs(make_record, [8.0, 8.1, 7.9, 8.5])  # median 8.05; 8.5 is +5.6%
    with pytest.raises(PerfError, match=r"record #3: latency_s = 8\.5 is \+5\.6% off the median 8\.05"):
        reseed(seeded, runs, yes=True)
    off_memory = new_runs(make_record, [8.0, 8.0]) + [make_record(300, latency_s=8.0, peak_memory_mb=30000.0)]
    with pytest.raises(PerfError, match=r"record #2: peak_memory_mb"):
        reseed(seeded, off_memory, yes=True)


def test_refuses_failed_runs_and_partly_measured_metrics(seeded, make_record):
    with pytest.raises(PerfError, match="record #1: a failed run"):
        reseed(seeded, [make_record(100), make_record(101, success=False)], yes=True)
    with pytest.raises(PerfError, match="record #1: 'dit_s' is missing"):
        reseed(seeded, [make_record(100), make_record(101, dit_s=None)], yes=True)


def test_backs_up_then_swaps_the_baseline_pool(seeded, make_record, tmp_path):
    cohort = make_record().cohort
    runs = new_runs(make_record, [8.0, 8.2, 7.9])
    runs.append(make_record(103, latency_s=8.1, baseline_eligible=False))  # reseed makes it eligible
    result = reseed(seeded, runs, yes=True)

    assert (result.seeded, result.retired, result.cohort) == (4, 5, cohort)
    assert result.backup_path.exists() and result.backup_path.parent == tmp_path
    with PerfStore(result.backup_path) as backup:
        old = backup.records(cohort)
    assert [r.latency_s for r in old] == [10.0] * 5 and all(r.baseline_eligible for r in old)

    stored = seeded.records(cohort)
    assert len(stored) == 9
    assert [r.baseline_eligible for r in stored] == [False] * 5 + [True] * 4
    assert compute_baseline(cohort, stored).medians["latency_s"] == pytest.approx(8.05)


def test_reseeding_with_already_stored_records_reuses_them(seeded, make_record):
    cohort = make_record().cohort
    result = reseed(seeded, [make_record(3, latency_s=10.0), make_record(4, latency_s=10.0)], yes=True)
    assert (result.seeded, result.retired) == (2, 3)
    assert [r.baseline_eligible for r in seeded.records(cohort)] == [False, False, False, True, True]
