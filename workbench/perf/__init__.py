"""Performance tracking: normalized records, an SQLite store, baselines, compare and reseed."""

from workbench.perf.compare import (
    BASELINE_WINDOW, THRESHOLDS, Baseline, Comparison, MetricRow, Threshold, compare, compare_with_history,
    compute_baseline, judge,
)
from workbench.perf.records import (
    METRIC_FIELDS, Cohort, PerfRecord, canonical_json, detect_gpu_type, hardware_profile, hardware_profile_id,
    load_records, recipe_fingerprint, record_key, software_profile, software_profile_id, write_records,
)
from workbench.perf.reseed import RESEED_TOLERANCE_PCT, ReseedResult, reseed
from workbench.perf.store import DB_ENV_VAR, PerfStore, resolve_db_path

__all__ = [
    "BASELINE_WINDOW", "DB_ENV_VAR", "METRIC_FIELDS", "RESEED_TOLERANCE_PCT", "THRESHOLDS",
    "Baseline", "Cohort", "Comparison", "MetricRow", "PerfRecord", "PerfStore", "ReseedResult", "Threshold",
    "canonical_json", "compare", "compare_with_history", "compute_baseline", "detect_gpu_type",
    "hardware_profile", "hardware_profile_id", "judge", "load_records", "recipe_fingerprint", "record_key",
    "reseed", "resolve_db_path", "software_profile", "software_profile_id", "write_records",
]
