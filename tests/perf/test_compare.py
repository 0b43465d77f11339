"""Baseline window and median, both-threshold regressions, metric directions, calibration."""

from __future__ import annotations

import pytest

from workbench.errors import PerfError
from workbench.perf import THRESHOLDS, METRIC_FIELDS, compare, compare_with_history, compute_baseline, judge
from workbench.perf.compare import IMPROVED, OK, REGRESSED


def test_every_metric_has_a_threshold():
    assert set(THRESHOLDS) == set(METRIC_FIELDS)


def test_baseline_is_median_of_last_five_eligible(make_record):
    latencies = [100.0, 11.0, 13.0, 10.0, 12.0, 30.0]  # index 0 is the 6th-oldest eligible: must be dropped
    history = [make_record(i, latency_s=v) for i, v in enumerate(latencies)]
    history += [make_record(10, latency_s=999.0, baseline_eligible=False),
                make_record(11, latency_s=999.0, success=False),
                make_record(12, latency_s=999.0, model_id="other-model")]
    baseline = compute_baseline(history[0].cohort, reversed(history))  # input order must not matter
    assert [r.latency_s for r in baseline.records] == [11.0, 13.0, 10.0, 12.0, 30.0]
    assert baseline.medians["latency_s"] == 12.0
    assert not baseline.needs_calibration


def test_baseline_median_per_metric_skips_unmeasured(make_record):
    history = [make_record(0, dit_s=None), make_record(1, dit_s=8.0), make_record(2, dit_s=9.0)]
    assert compute_baseline(history[0].cohort, history).medians["dit_s"] == 8.5
    assert "vae_decode_s" not in compute_baseline(history[0].cohort, [make_record(0, vae_decode_s=None)]).medians


@pytest.mark.parametrize("baseline, value, status", [
    (1.0, 1.1, "ok"),          # +10% but only +0.1 s: under the 0.5 s absolute threshold
    (10.0, 11.0, "regressed"),  # +10% and +1 s: both exceeded
    (10.0, 10.6, "ok"),        # +0.6 s but only +6%
    (10.0, 10.8, "ok"),        # exactly +8% is not *exceeded*
    (10.0, 9.0, "improved"),
])
def test_latency_regresses_only_when_both_thresholds_exceeded(baseline, value, status):
    row = judge("latency_s", baseline, value)
    assert row.status == status
    assert row.delta_abs == pytest.approx(value - baseline)
    assert row.delta_pct == pytest.approx((value - baseline) / baseline * 100)


def test_throughput_lower_is_worse():
    assert judge("throughput_fps", 8.0, 7.0).status == "regressed"
    assert judge("throughput_fps", 8.0, 9.0).status == "improved"
    assert judge("throughput_fps", 0.5, 0.46).status == "ok"  # -8% exceeded but only -0.04 fps


def test_memory_and_component_thresholds():
    assert judge("peak_memory_mb", 20000.0, 21100.0).status == "regressed"  # +5.5%, +1100 MB
    assert judge("peak_memory_mb", 2000.0, 2200.0).status == "ok"  # +10% but only +200 MB
    assert judge("vae_decode_s", 0.7, 0.9).status == "ok"  # +29% but only +0.2 s
    assert judge("dit_s", 8.5, 9.0).status == "regressed"  # +5.9%, +0.5 s
    assert judge("dit_s", 0.0, 0.3).status == "regressed"  # zero baseline: any positive change exceeds the percent
    assert judge("dit_s", 0.0, 0.3).delta_pct is None
    assert judge("text_encoder_s", None, 0.8).status == "missing"


def test_compare_verdicts(make_record):
    history = [make_record(i, latency_s=v) for i, v in enumerate([10.0, 10.2, 9.9])]
    baseline = compute_baseline(history[0].cohort, history)
    assert compare(make_record(20, latency_s=10.4), baseline).status == "ok"
    regressed = compare(make_record(20, latency_s=11.5), baseline)
    assert regressed.status == "regressed"
    assert {row.metric: row.status for row in regressed.rows}["latency_s"] == "regressed"
    failed = compare(make_record(20, success=False, latency_s=None), baseline)
    assert failed.status == "failed"


def test_new_cohort_needs_calibration_instead_of_passing(make_record):
    history = [make_record(i) for i in range(5)]
    newcomer = make_record(20, variant_id="fp8", latency_s=50.0)
    comparison = compare_with_history(newcomer, history)
    assert comparison.status == "calibration needed"
    only_ineligible = [make_record(i, baseline_eligible=False) for i in range(3)]
    assert compare_with_history(make_record(20), only_ineligible).status == "calibration needed"


def test_record_is_not_its_own_baseline(make_record):
    slow = make_record(5, latency_s=20.0)
    assert compare_with_history(slow, [slow]).status == "calibration needed"
    assert compare_with_history(slow, [make_record(0), slow]).status == "regressed"


def test_compare_refuses_another_cohorts_baseline(make_record):
    baseline = compute_baseline(make_record().cohort, [make_record()])
    with pytest.raises(PerfError, match="cannot be compared"):
        compare(make_record(gpu_type="NVIDIA A100"), baseline)


@pytest.mark.parametrize("baseline, limit", [(10.0, 0.8), (2.0, 0.5)])  # 8% of 10 s beats 0.5 s; 0.5 s beats 8% of 2 s
def test_threshold_limits_are_where_judge_starts_to_give_a_verdict(baseline, limit):
    percent, absolute = THRESHOLDS["latency_s"].limits(baseline)
    assert max(percent, absolute) == pytest.approx(limit)
    assert judge("latency_s", baseline, baseline + limit * 0.99).status == OK
    assert judge("latency_s", baseline, baseline + limit * 1.01).status == REGRESSED
    assert judge("latency_s", baseline, baseline - limit * 1.01).status == IMPROVED
