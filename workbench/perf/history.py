"""Performance history: a cohort's records judged one by one against the baseline they had,
the native/reference latency ratio per run, a per-stage breakdown and the committed GPU
benchmark records. Notebook 06 shows these; the CLI's `perf compare` judges one record.

Why record by record: each record is compared with the baseline of the eligible records
*before* it (median of the last 5, as `workbench.perf.compare` defines it), so a plot
marks the run where a regression entered, not every run after it; the newest record's
verdict is exactly what `workbench perf compare` says for it. A cohort with no earlier
eligible record says "calibration needed" rather than inventing a verdict.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from workbench.perf.compare import (
    THRESHOLDS, Comparison, MetricRow, compare, compare_with_history, compute_baseline,
)
from workbench.perf.pipelines import COMPONENTS, NATIVE, REFERENCE, SIDES, Measurement, PairedPipelines
from workbench.perf.records import METRIC_FIELDS, Cohort, PerfRecord, load_records
from workbench.perf.report import format_comparison, format_table, unit
from workbench.perf.store import PerfStore

RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def sig(value: float | None, digits: int = 4) -> str:
    """Fixed significant digits (what nbval compares); '-' for a value not measured."""
    return "-" if value is None else f"{value:.{digits}g}"


# ---- a cohort's history ------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryPoint:
    record: PerfRecord
    comparison: Comparison  # against the baseline of the eligible records before this one

    def row(self, metric: str) -> MetricRow | None:
        return next((r for r in self.comparison.rows if r.metric == metric), None)


@dataclass(frozen=True)
class CohortHistory:
    side: str
    cohort: Cohort
    points: tuple[HistoryPoint, ...]  # oldest first

    @property
    def records(self) -> list[PerfRecord]:
        return [p.record for p in self.points]

    def newest(self) -> Comparison:
        """What `workbench perf compare` says for the newest record."""
        return compare_with_history(self.points[-1].record, self.records)


def cohort_history(side: str, cohort: Cohort, records: Iterable[PerfRecord]) -> CohortHistory:
    ordered = sorted((r for r in records if r.cohort == cohort), key=lambda r: r.timestamp)
    points = tuple(HistoryPoint(r, compare(r, compute_baseline(cohort, ordered[:i]))) for i, r in enumerate(ordered))
    return CohortHistory(side, cohort, points)


@dataclass(frozen=True)
class RatioPoint:
    """One run measured on both sides (paired by session and run index)."""

    session: str
    run: int
    native_s: float
    reference_s: float

    @property
    def ratio(self) -> float:
        return self.native_s / self.reference_s


def paired_ratios(native: Sequence[PerfRecord], reference: Sequence[PerfRecord]) -> list[RatioPoint]:
    """Native/reference latency per run, in native record order; records measured without a
    partner (e.g. a benchmark's median-only record) are left out."""
    def key(r: PerfRecord):
        return (r.extra.get("session"), r.extra.get("run"))

    partners = {key(r): r for r in reference if r.success and r.extra.get("session") is not None}
    return [RatioPoint(n.extra["session"], n.extra["run"], n.latency_s, partners[key(n)].latency_s)
            for n in native if n.success and key(n) in partners]


@dataclass
class PerfHistory:
    store_path: Path
    sides: dict[str, CohortHistory]  # native, reference
    ratios: list[RatioPoint]
    session: str | None = None  # the session just measured, if any

    def newest(self) -> dict[str, Comparison]:
        return {side: h.newest() for side, h in self.sides.items()}


def load_history(store_path: str | Path, cohorts: Mapping[str, Cohort], session: str | None = None) -> PerfHistory:
    """Every record of the given cohorts (side -> cohort) in the store."""
    with PerfStore(store_path) as store:
        sides = {side: cohort_history(side, cohort, store.records(cohort)) for side, cohort in cohorts.items()}
        path = store.path
    ratios = paired_ratios(sides[NATIVE].records, sides[REFERENCE].records) if set(SIDES) <= set(sides) else []
    return PerfHistory(path, sides, ratios, session)


def history_of(measurement: Measurement, store_path: str | Path) -> PerfHistory:
    cohorts = {side: records[0].cohort for side, records in measurement.records.items()}
    return load_history(store_path, cohorts, measurement.session)


# ---- text views --------------------------------------------------------------------------
def measured_metrics(records: Sequence[PerfRecord]) -> list[str]:
    return [m for m in METRIC_FIELDS if any(getattr(r, m) is not None for r in records)]


def format_session(measurement: Measurement, store_path: str | Path) -> str:
    """What was measured and under which identity; nothing here depends on the clock or the
    machine (hardware ids are left out), so nbval compares it."""
    pair: PairedPipelines = measurement.pair
    lines = [(f"family {pair.family.name}, preset {pair.preset}, device {pair.device.type} ({pair.mode} mode), "
              f"{pair.steps} denoising steps"),
             f"{measurement.runs} run(s) per side after one warm-up each, interleaved reference -> native",
             f"records stored in {Path(store_path).as_posix()}"]
    rows = []
    for side in SIDES:
        record = measurement.records[side][0]
        rows.append([side, record.model_id, record.workload_id, record.variant_id, record.recipe_fingerprint[:12],
                     record.run_source])
    lines.append(format_table(["side", "model_id", "workload", "variant", "recipe", "source"], rows))
    lines.append("metrics per record (dit_s is per denoising step):")
    for side in SIDES:
        lines.append(f"  {side:<9}: {', '.join(measured_metrics(measurement.records[side]))}")
    return "\n".join(lines)


def format_thresholds() -> str:
    """The regression rule, per metric."""
    rows = [[m, "higher" if t.higher_is_worse else "lower", f"{t.percent:g}%", f"{t.absolute:g} {unit(m)}"]
            for m, t in THRESHOLDS.items()]
    return "\n".join(["a metric regresses only when its change in the worse direction exceeds both thresholds:",
                      format_table(["metric", "worse when", "percent", "absolute"], rows)])


def format_newest(history: PerfHistory) -> str:
    parts = []
    for side, h in history.sides.items():
        comparison = h.newest()
        eligible = sum(1 for p in h.points if p.record.success and p.record.baseline_eligible)
        parts.append(f"== {side}: {len(h.points)} record(s) in the cohort ({eligible} eligible), newest compared "
                     f"with the ones before it\n{format_comparison(comparison)}")
    return "\n\n".join(parts)


def format_ratios(history: PerfHistory) -> str:
    """This session's runs, then a summary over every paired run in the store."""
    ratios = history.ratios
    if not ratios:
        return "no run measured on both sides"
    current = [r for r in ratios if r.session == history.session] or ratios
    rows = [[str(r.run), sig(r.native_s), sig(r.reference_s), f"{r.ratio:.3f}"] for r in current]
    lines = [f"native / reference latency, {'this session' if history.session else 'all runs'}:",
             format_table(["run", "native s", "reference s", "ratio"], rows),
             f"median ratio {statistics.median(r.ratio for r in current):.3f} over {len(current)} run(s)"]
    sessions = len({r.session for r in ratios})
    lines.append(f"store: {len(ratios)} paired run(s) in {sessions} session(s), "
                 f"median ratio {statistics.median(r.ratio for r in ratios):.3f}")
    return "\n".join(lines)


# ---- per-stage breakdown -----------------------------------------------------------------
def stage_medians(records: Sequence[PerfRecord]) -> dict[str, float]:
    """Median seconds per native stage over `records`, in pipeline order."""
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r.extra.get("stages", {})))
    return {n: statistics.median(r.extra["stages"][n] for r in records if n in r.extra.get("stages", {}))
            for n in names}


@dataclass(frozen=True)
class ComponentRow:
    metric: str
    native: float | None  # median seconds (dit_s: per step)
    reference: float | None

    @property
    def ratio(self) -> float | None:
        return self.native / self.reference if self.native is not None and self.reference else None


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def component_rows(native: Sequence[PerfRecord], reference: Sequence[PerfRecord]) -> list[ComponentRow]:
    return [ComponentRow(m, _median(getattr(r, m) for r in native), _median(getattr(r, m) for r in reference))
            for m in ("latency_s",) + COMPONENTS]


def format_breakdown(stages: Mapping[str, float], rows: Sequence[ComponentRow]) -> str:
    total = sum(stages.values())
    stage_rows = [[name, f"{s * 1e3:.3g}", f"{100 * s / total:.1f}%" if total else "-"] for name, s in stages.items()]
    comp_rows = [[r.metric, "-" if r.native is None else f"{r.native * 1e3:.3g}",
                  "-" if r.reference is None else f"{r.reference * 1e3:.3g}",
                  "-" if r.ratio is None else f"{r.ratio:.3f}"] for r in rows]
    return "\n".join(["native stages, median over the runs:",
                      format_table(["stage", "ms", "share"], stage_rows), "",
                      "components, median over the runs (dit_s per denoising step):",
                      format_table(["metric", "native ms", "reference ms", "native/ref"], comp_rows)])


# ---- committed GPU benchmark records -----------------------------------------------------
@dataclass(frozen=True)
class CommittedBenchmark:
    path: Path
    records: tuple[PerfRecord, ...]

    def paired(self) -> list[tuple[PerfRecord, PerfRecord | None]]:
        """Each record with the official (diffusers) record of its benchmark run: the latest
        non-native record up to it. A file keeps every run appended (the benchmark writes the
        official side first), so a native record is never compared with another run's."""
        out, official = [], None
        for r in sorted(self.records, key=lambda r: r.timestamp):
            if not r.variant_id.startswith(NATIVE):
                official = r
                out.append((r, None))
            else:
                out.append((r, official))
        return out


def benchmark_family(stem: str, families: Iterable[str]) -> str | None:
    """The family a `gpu_<family>[_<tag>]_records.json` file belongs to (as
    benchmarks/gpu_pipeline.py names them); the longest matching name wins, so one family's
    name being a prefix of another's cannot mis-file a record."""
    if not (stem.startswith("gpu_") and stem.endswith("_records")):
        return None
    body = stem[len("gpu_"):-len("_records")]
    matches = [f for f in families if body == f or body.startswith(f + "_")]
    return max(matches, key=len) if matches else None


def committed_benchmarks(family: str, results_dir: Path = RESULTS_DIR,
                         families: Iterable[str] | None = None) -> list[CommittedBenchmark]:
    if families is None:
        from workbench import registry

        families = registry.FAMILIES
    families = list(families)
    paths = sorted(results_dir.glob("gpu_*_records.json")) if results_dir.is_dir() else []
    return [CommittedBenchmark(p, tuple(load_records(p))) for p in paths
            if benchmark_family(p.stem, families) == family]


def format_committed(family: str, benchmarks: Sequence[CommittedBenchmark]) -> str:
    if not benchmarks:
        return f"no committed GPU benchmark records for {family} (benchmarks/results/gpu_{family}*_records.json)"
    lines = []
    for bench in benchmarks:
        first = bench.records[0]
        lines.append(f"{bench.path.name}: {first.model_id}, {first.workload_id}, {first.gpu_type}")
        rows = []
        for r, ref in bench.paired():
            ratio = "-" if ref is None else f"{r.latency_s / ref.latency_s:.3f}"
            dit_ratio = "-" if ref is None or r.dit_s is None or not ref.dit_s else f"{r.dit_s / ref.dit_s:.3f}"
            peak = None if r.peak_memory_mb is None else r.peak_memory_mb / 1024
            rows.append([r.timestamp[:16], r.commit, r.variant_id, sig(r.latency_s), sig(r.dit_s),
                         sig(r.vae_decode_s), sig(r.text_encoder_s), sig(peak), ratio, dit_ratio])
        lines.append(format_table(["date (UTC)", "commit", "variant", "e2e s", "DiT s/step", "VAE s", "text enc s",
                                   "peak GiB", "e2e ratio", "DiT ratio"], rows))
        lines.append("")
    lines.append("ratios: native / the official (diffusers) record of the same benchmark run")
    return "\n".join(lines)
