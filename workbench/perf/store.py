"""The perf store: normalized records in one embedded SQLite file.

Path: the `path` argument, else $WORKBENCH_PERF_DB, else ~/.cache/workbench/perf.sqlite
(under $XDG_CACHE_HOME when set). SQLite's own journal keeps the file consistent, so the
store is not written through workbench.io; backups are (copy to a temp file, then rename).

A record is stored once: its key is the sha256 of the record without `baseline_eligible`,
so recording the same JSON twice cannot double-weight it in a baseline median.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Sequence

from workbench.errors import PerfError
from workbench.io import atomic_path
from workbench.perf.records import METRIC_FIELDS, Cohort, PerfRecord, record_key

SCHEMA_VERSION = 2  # 2: the `exact` column (a version-1 store is migrated on open, its records exact)
DB_ENV_VAR = "WORKBENCH_PERF_DB"

_TEXT_COLUMNS = ("model_id", "timestamp", "commit", "gpu_type", "workload_id", "variant_id",
                 "recipe_fingerprint", "hardware_profile_id", "software_profile_id", "run_source")
_BOOL_COLUMNS = ("success", "baseline_eligible", "exact")
_RECORD_COLUMNS = _TEXT_COLUMNS + _BOOL_COLUMNS + METRIC_FIELDS + ("extra",)
_SCHEMA = f"""
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_key TEXT NOT NULL UNIQUE,
    {", ".join(f'"{c}" TEXT NOT NULL' for c in _TEXT_COLUMNS)},
    {", ".join(f"{c} INTEGER NOT NULL" + (" DEFAULT 1" if c == "exact" else "") for c in _BOOL_COLUMNS)},
    {", ".join(f"{c} REAL" for c in METRIC_FIELDS)},
    extra TEXT NOT NULL
);
CREATE INDEX records_by_cohort ON records
    (model_id, workload_id, variant_id, recipe_fingerprint, hardware_profile_id, gpu_type, timestamp);
"""
_COHORT_WHERE = " AND ".join(f"{name} = ?" for name in Cohort._fields)


def resolve_db_path(path: str | Path | None = None) -> Path:
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(DB_ENV_VAR):
        return Path(os.environ[DB_ENV_VAR]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "workbench" / "perf.sqlite"


class PerfStore:
    """Records in SQLite; the schema is created on first open and its version checked after."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = resolve_db_path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise PerfError(f"{self.path}: cannot open perf store ({exc})") from None
        self._conn.row_factory = sqlite3.Row
        try:
            self._ensure_schema()
        except sqlite3.Error as exc:
            self._conn.close()
            raise PerfError(f"{self.path}: cannot open perf store ({exc})") from None
        except PerfError:
            self._conn.close()
            raise

    def _ensure_schema(self) -> None:
        tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "records" not in tables:
            self._conn.executescript(
                f"BEGIN; {_SCHEMA} INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION}); COMMIT;")
            return
        row = None
        if "schema_version" in tables:
            row = self._conn.execute("SELECT version FROM schema_version").fetchone()
        if row is not None and row[0] == 1:  # before the `exact` flag: every record was held to parity
            self._conn.executescript("BEGIN; ALTER TABLE records ADD COLUMN exact INTEGER NOT NULL DEFAULT 1; "
                                     f"UPDATE schema_version SET version = {SCHEMA_VERSION}; COMMIT;")
            return
        if row is None or row[0] != SCHEMA_VERSION:
            found = "none" if row is None else row[0]
            raise PerfError(f"{self.path}: perf store schema version {found}, expected {SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PerfStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def add(self, record: PerfRecord) -> None:
        """Insert one record; a record already stored is refused."""
        with self._conn:
            self._insert(record, on_conflict="")

    def add_all(self, records: Sequence[PerfRecord]) -> None:
        """Insert a batch in one transaction: a record already stored (or given twice) refuses
        the whole batch, and nothing of it is stored."""
        try:
            with self._conn:
                for record in records:
                    self._insert(record, on_conflict="")
        except PerfError as exc:
            raise PerfError(f"{exc}; nothing of this batch of {len(records)} was recorded") from None

    def _insert(self, record: PerfRecord, on_conflict: str) -> None:
        data = record.to_dict()
        values = [data[c] for c in _TEXT_COLUMNS] + [int(data[c]) for c in _BOOL_COLUMNS]
        values += [data[c] for c in METRIC_FIELDS] + [json.dumps(data["extra"], sort_keys=True)]
        columns = ", ".join(f'"{c}"' for c in ("record_key",) + _RECORD_COLUMNS)
        placeholders = ", ".join("?" for _ in range(len(values) + 1))
        try:
            self._conn.execute(f"INSERT INTO records ({columns}) VALUES ({placeholders}) {on_conflict}",
                               [record_key(record), *values])
        except sqlite3.IntegrityError:
            raise PerfError(f"{self.path}: record of {record.model_id} at {record.timestamp} "
                            f"(commit {record.commit}) is already stored") from None

    def records(self, cohort: Cohort) -> list[PerfRecord]:
        """All records of one cohort, oldest first."""
        rows = self._conn.execute(f"SELECT * FROM records WHERE {_COHORT_WHERE} ORDER BY timestamp, id", cohort)
        return [self._to_record(row) for row in rows]

    def cohorts(self, model_id: str, workload_id: str | None = None, variant_id: str | None = None) -> list[Cohort]:
        """Cohorts with at least one record for a model, optionally narrowed by workload and variant."""
        filters = {"model_id": model_id, "workload_id": workload_id, "variant_id": variant_id}
        used = {k: v for k, v in filters.items() if v is not None}
        where = " AND ".join(f"{k} = ?" for k in used)
        columns = ", ".join(Cohort._fields)
        rows = self._conn.execute(f"SELECT DISTINCT {columns} FROM records WHERE {where} ORDER BY {columns}",
                                  list(used.values()))
        return [Cohort(*row) for row in rows]

    def replace_baseline(self, cohort: Cohort, records: Sequence[PerfRecord]) -> int:
        """In one transaction: retire the cohort's records from baselines, store `records` as eligible.

        A record that is already stored is made eligible again rather than duplicated.
        Returns how many previously eligible records were retired.
        """
        odd = next((r for r in records if r.cohort != cohort), None)
        if odd is not None:
            raise PerfError(f"record at {odd.timestamp} belongs to cohort {odd.cohort.describe()}, "
                            f"not {cohort.describe()}")
        keys = [record_key(r) for r in records]
        with self._conn:
            retired = self._conn.execute(
                f"UPDATE records SET baseline_eligible = 0 WHERE {_COHORT_WHERE} AND baseline_eligible = 1 "
                f"AND record_key NOT IN ({', '.join('?' for _ in keys)})", [*cohort, *keys]
            ).rowcount
            for record in records:
                self._insert(record, on_conflict="ON CONFLICT(record_key) DO UPDATE SET baseline_eligible = 1")
        return retired

    def backup(self) -> Path:
        """Copy the whole store, via SQLite's backup API, to a timestamped file next to it."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path.with_name(f"{self.path.stem}.backup-{stamp}{self.path.suffix}")
        with atomic_path(target) as tmp:
            copy = sqlite3.connect(tmp)
            try:
                self._conn.backup(copy)
            finally:
                copy.close()
        return target

    @staticmethod
    def _to_record(row: sqlite3.Row) -> PerfRecord:
        data = {c: row[c] for c in _TEXT_COLUMNS + METRIC_FIELDS}
        data.update({c: bool(row[c]) for c in _BOOL_COLUMNS})
        data["extra"] = json.loads(row["extra"])
        return PerfRecord(**data)
