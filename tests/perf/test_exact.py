"""The `exact` flag: stored (JSON and SQLite, a version-1 store migrated), and an approximate
speed-up refused against an exact baseline."""

from __future__ import annotations

import json
import sqlite3

import pytest

from workbench.errors import PerfError
from workbench.perf import PerfRecord, PerfStore, compare_with_history, compute_baseline, record_key
from workbench.perf.records import load_records, write_records

from .conftest import record_dict


def test_exact_defaults_true_and_old_json_keeps_its_key(make_record):
    old = record_dict()
    assert "exact" not in old
    record = PerfRecord.from_dict(old, "old.json")
    assert record.exact is True
    flagged = PerfRecord.from_dict(record_dict(exact=True), "new.json")
    assert record_key(flagged) == record_key(record)  # recording old JSON again is recognised as stored
    approx = PerfRecord.from_dict(record_dict(exact=False), "approx.json")
    assert record_key(approx) != record_key(record)


def test_exact_must_be_a_bool():
    with pytest.raises(PerfError, match="'exact' expected true or false"):
        PerfRecord.from_dict(record_dict(exact="yes"), "bad.json")


def test_exact_round_trips_through_json(tmp_path, make_record):
    path = write_records(tmp_path / "r.json", [make_record(0), make_record(1, exact=False)])
    assert [r.exact for r in load_records(path)] == [True, False]
    assert json.loads(path.read_text())[1]["exact"] is False


def test_exact_round_trips_through_sqlite(store, make_record):
    store.add(make_record(0))
    store.add(make_record(1, exact=False))
    assert [r.exact for r in store.records(make_record().cohort)] == [True, False]
    row = store._conn.execute("SELECT exact FROM records ORDER BY timestamp").fetchall()
    assert [r[0] for r in row] == [1, 0]


def test_version_1_store_is_migrated_with_records_exact(tmp_path, make_record):
    path = tmp_path / "v1.sqlite"
    with PerfStore(path) as store:
        store.add(make_record(0))
    with sqlite3.connect(path) as conn:  # rebuild the version-1 table: no `exact` column
        conn.execute("ALTER TABLE records DROP COLUMN exact")
        conn.execute("UPDATE schema_version SET version = 1")
    with sqlite3.connect(path) as conn:
        assert "exact" not in [r[1] for r in conn.execute("PRAGMA table_info(records)")]
    with PerfStore(path) as store:
        (old,) = store.records(make_record().cohort)
        assert old.exact is True
        store.add(make_record(1, exact=False))
        assert [r.exact for r in store.records(make_record().cohort)] == [True, False]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == 2


def test_approximate_record_refused_against_exact_baseline(make_record):
    history = [make_record(i) for i in range(3)]
    approx = make_record(5, exact=False, latency_s=5.0)
    with pytest.raises(PerfError, match="approximate .* cannot be compared against the exact baseline"):
        compare_with_history(approx, history)
    # an exact record is judged as before; an approximate one against approximate history too
    assert compare_with_history(make_record(5), history).status == "ok"
    approx_history = [make_record(i, exact=False) for i in range(3)]
    assert compare_with_history(approx, approx_history).baseline.records
    assert compute_baseline(approx.cohort, approx_history).medians["latency_s"] == 10.0
