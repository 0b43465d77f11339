"""History views over hand-made records: rolling verdicts, ratios, breakdowns, committed files."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # this test process only

import matplotlib.pyplot as plt
import pytest

from workbench.perf import compare_with_history, write_records
from workbench.perf.compare import CALIBRATION_NEEDED, IMPROVED, OK, REGRESSED
from workbench.perf.history import (
    PerfHistory, benchmark_family, cohort_history, committed_benchmarks, component_rows, format_committed,
    format_newest, format_ratios, format_thresholds, load_history, paired_ratios, stage_medians,
)
from workbench.perf.plots import baseline_band, plot_breakdown, plot_committed, plot_history, plot_latency_ratios


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _latencies(make_record, values, variant="native-exact-cpu", session="s1", **extra):
    return [make_record(i, latency_s=v, variant_id=variant, extra={"session": session, "run": i, **extra})
            for i, v in enumerate(values)]


def test_each_record_is_judged_against_the_records_before_it(make_record):
    # Baseline 10 s: +2 s passes both 8% (0.8 s) and 0.5 s; +0.6 s passes only the absolute one.
    records = _latencies(make_record, [10.0] * 5 + [12.0, 10.6, 10.0, 8.0])
    history = cohort_history("native", records[0].cohort, reversed(records))  # order comes from the timestamps
    statuses = [p.row("latency_s").status for p in history.points]
    assert history.points[0].comparison.status == CALIBRATION_NEEDED
    assert statuses[1:] == [OK] * 4 + [REGRESSED, OK, OK, IMPROVED]
    # The 12 s run enters the later baselines: the window of the last record is 10, 10, 12, 10.6, 10.
    assert history.points[-1].comparison.baseline.medians["latency_s"] == 10.0
    assert len(history.points[-1].comparison.baseline.records) == 5
    newest = history.newest()
    assert newest.status == OK and newest.rows[0].status == IMPROVED
    assert newest.rows == compare_with_history(records[-1], records).rows


def test_a_lone_record_says_calibration_needed_and_other_cohorts_do_not_count(make_record):
    mine = make_record(3, latency_s=1.0)
    other = make_record(1, latency_s=1.0, variant_id="reference-exact-cpu")
    history = cohort_history("native", mine.cohort, [other, mine])
    assert [p.record for p in history.points] == [mine]
    assert history.newest().status == CALIBRATION_NEEDED
    text = format_newest(PerfHistory("s.sqlite", {"native": history}, []))
    assert "1 record(s) in the cohort" in text and "CALIBRATION NEEDED" in text


def test_ratios_pair_runs_by_session_and_run(make_record):
    native = _latencies(make_record, [1.0, 2.0, 3.0], session="a") + [make_record(9, latency_s=5.0)]
    reference = _latencies(make_record, [2.0, 2.0], variant="reference-exact-cpu", session="a")
    ratios = paired_ratios(native, reference)
    assert [(r.run, r.ratio) for r in ratios] == [(0, 0.5), (1, 1.0)]  # run 2 and the session-less record: no partner
    text = format_ratios(PerfHistory("s.sqlite", {}, ratios, session="a"))
    assert "median ratio 0.750 over 2 run(s)" in text and "2 paired run(s) in 1 session(s)" in text
    assert format_ratios(PerfHistory("s.sqlite", {}, [])) == "no run measured on both sides"


def test_stage_medians_and_component_rows(make_record):
    parts = [{"TextEncodingStage": 0.1, "DenoisingStage": 0.9}, {"TextEncodingStage": 0.3, "DenoisingStage": 0.5},
             {"TextEncodingStage": 0.2, "DenoisingStage": 0.7, "Extra": 1.0}]
    native = [make_record(i, extra={"stages": p}, dit_s=d, text_encoder_s=None) for i, (p, d) in
              enumerate(zip(parts, (0.3, 0.1, 0.2)))]
    reference = [make_record(i, variant_id="ref", dit_s=0.4, text_encoder_s=None) for i in range(2)]
    medians = stage_medians(native)
    assert list(medians) == ["TextEncodingStage", "DenoisingStage", "Extra"]
    assert medians["TextEncodingStage"] == pytest.approx(0.2) and medians["DenoisingStage"] == pytest.approx(0.7)
    assert medians["Extra"] == 1.0
    rows = {r.metric: r for r in component_rows(native, reference)}
    assert rows["dit_s"].native == pytest.approx(0.2) and rows["dit_s"].ratio == pytest.approx(0.5)
    assert rows["text_encoder_s"].native is None and rows["text_encoder_s"].ratio is None
    fig = plot_breakdown(medians, list(rows.values()))
    assert len(fig.axes) == 2


def test_band_is_the_larger_limit_around_each_records_baseline(make_record):
    # Baseline 10 s: 8% = 0.8 s beats 0.5 s; baseline 2 s: 8% = 0.16 s, so 0.5 s is the band.
    for level, band in ((10.0, 0.8), (2.0, 0.5)):
        records = _latencies(make_record, [level] * 3)
        data = baseline_band(cohort_history("native", records[0].cohort, records))
        assert math.isnan(data["baseline"][0]) and math.isnan(data["band"][0])
        assert data["baseline"][1:] == [level, level]
        assert data["band"][1:] == pytest.approx([band, band])


def test_history_figure_has_a_panel_per_side_and_marks_regressions(make_record):
    native = _latencies(make_record, [10.0] * 5 + [12.0])
    reference = _latencies(make_record, [11.0] * 6, variant="reference-exact-cpu")
    history = PerfHistory("s.sqlite", {"native": cohort_history("native", native[0].cohort, native),
                                       "reference": cohort_history("reference", reference[0].cohort, reference)},
                          paired_ratios(native, reference), "s1")
    fig = plot_history(history)
    assert len(fig.axes) == 2
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert REGRESSED in legend and CALIBRATION_NEEDED in legend
    assert REGRESSED not in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert len(plot_latency_ratios(history).axes) == 1


def test_store_round_trip(make_record, store):
    records = _latencies(make_record, [1.0, 1.1])
    for r in records + [make_record(5, variant_id="reference-exact-cpu")]:
        store.add(r)
    history = load_history(store.path, {"native": records[0].cohort})
    assert [p.record for p in history.sides["native"].points] == records and history.ratios == []


def test_benchmark_files_belong_to_the_longest_matching_family():
    families = ["wan", "wan_t2v", "wan22_t2v", "stable_audio"]
    assert benchmark_family("gpu_wan_t2v_records", families) == "wan_t2v"
    assert benchmark_family("gpu_wan_t2v_compile_records", families) == "wan_t2v"
    assert benchmark_family("gpu_wan_other_records", families) == "wan"
    assert benchmark_family("gpu_wan22_t2v_records", families) == "wan22_t2v"
    assert benchmark_family("cpu_tiny_records", families) is None
    assert benchmark_family("gpu_ltx2_records", families) is None


def test_committed_records_table_and_plot(make_record, tmp_path):
    """Each native record is compared with the diffusers record of its own benchmark run."""
    diffusers = make_record(0, variant_id="diffusers-bf16", latency_s=8.0, dit_s=1.25, peak_memory_mb=2048.0)
    native = make_record(1, variant_id="native-fast", latency_s=6.0, dit_s=1.0, peak_memory_mb=1024.0)
    diffusers_2 = make_record(2, variant_id="diffusers-bf16", latency_s=5.0, dit_s=2.0)
    native_2 = make_record(3, variant_id="native-fast", latency_s=4.0, dit_s=1.0)
    write_records(tmp_path / "gpu_fam_records.json", [diffusers, native, diffusers_2, native_2])
    write_records(tmp_path / "gpu_fam_long_records.json", [native])
    write_records(tmp_path / "cpu_tiny_records.json", [native])
    benches = committed_benchmarks("fam", tmp_path, families=["fam", "fam_long"])
    assert [b.path.name for b in benches] == ["gpu_fam_records.json"]
    assert benches[0].paired() == [(diffusers, None), (native, diffusers), (diffusers_2, None), (native_2, diffusers_2)]
    text = format_committed("fam", benches)
    rows = [line.split() for line in text.splitlines() if "native-fast" in line]
    assert rows[0][1:] == ["c0001", "native-fast", "6", "1", "0.7", "0.8", "1", "0.750", "0.800"]
    assert rows[1][-2:] == ["0.800", "0.500"]  # against diffusers_2, not the first run's record
    fig = plot_committed(benches)
    assert len(fig.axes) == 2 and [len(ax.get_xticks()) for ax in fig.axes] == [2, 2]  # two runs, bars paired
    assert committed_benchmarks("other", tmp_path, families=["fam", "other"]) == []
    assert format_committed("other", []).startswith("no committed GPU benchmark records for other")
    assert plot_committed([]) is None


def test_the_committed_wan_t2v_gpu_records_are_found_and_other_families_have_none():
    benches = committed_benchmarks("wan_t2v")
    assert benches, "benchmarks/results/gpu_wan_t2v*_records.json are committed"
    for bench in benches:
        pairs = bench.paired()
        assert pairs[0][1] is None and pairs[0][0].variant_id.startswith("diffusers")  # each run: official first
        assert all(ref is not None and ref.variant_id.startswith("diffusers")
                   for r, ref in pairs if r.variant_id.startswith("native"))
        assert all(r.gpu_type != "cpu" for r in bench.records)
        # every side has a DiT time, except files of end-to-end-only runs (the 50-step ones)
        assert all(r.dit_s is not None for r in bench.records) or "steps_records" in bench.path.name
    assert committed_benchmarks("stable_audio") == []


def test_thresholds_table_lists_every_metric_and_both_limits():
    rows = {line.split()[0]: line.split()[1:] for line in format_thresholds().splitlines()[2:]}
    assert rows["latency_s"] == ["higher", "8%", "0.5", "s"]
    assert rows["throughput_fps"] == ["lower", "8%", "0.05", "fps"]
    assert rows["peak_memory_mb"] == ["higher", "5%", "256", "MB"]
    assert set(rows) == {"latency_s", "throughput_fps", "peak_memory_mb", "text_encoder_s", "dit_s", "vae_decode_s"}
