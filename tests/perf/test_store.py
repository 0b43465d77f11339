"""The SQLite store: cohort queries in time order, path resolution, duplicates, schema, backup."""

from __future__ import annotations

import sqlite3

import pytest

from workbench.errors import PerfError
from workbench.perf import DB_ENV_VAR, PerfStore, resolve_db_path


def test_records_of_a_cohort_come_back_oldest_first(store, make_record):
    for i in (3, 0, 2, 1):
        store.add(make_record(i, latency_s=10.0 + i))
    store.add(make_record(4, variant_id="fp8"))
    cohort = make_record().cohort
    assert [r.latency_s for r in store.records(cohort)] == [10.0, 11.0, 12.0, 13.0]
    assert store.records(cohort)[0] == make_record(0, latency_s=10.0)
    assert [c.variant_id for c in store.cohorts("wan2.1-t2v-1.3b")] == ["bf16", "fp8"]
    assert [c.variant_id for c in store.cohorts("wan2.1-t2v-1.3b", variant_id="fp8")] == ["fp8"]
    assert store.cohorts("unknown-model") == []


def test_same_record_is_stored_once(store, make_record):
    store.add(make_record())
    with pytest.raises(PerfError, match="already stored"):
        store.add(make_record(baseline_eligible=False))
    assert len(store.records(make_record().cohort)) == 1


def test_path_from_argument_then_env(tmp_path, monkeypatch):
    monkeypatch.setenv(DB_ENV_VAR, str(tmp_path / "env.sqlite"))
    assert resolve_db_path() == tmp_path / "env.sqlite"
    assert resolve_db_path(tmp_path / "arg.sqlite") == tmp_path / "arg.sqlite"
    monkeypatch.delenv(DB_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_db_path() == tmp_path / "cache" / "workbench" / "perf.sqlite"
    with PerfStore() as store:
        assert store.path.exists()


def test_reopen_keeps_records_and_checks_schema_version(tmp_path, make_record):
    path = tmp_path / "nested" / "perf.sqlite"
    with PerfStore(path) as store:
        store.add(make_record())
    with PerfStore(path) as store:
        assert len(store.records(make_record().cohort)) == 1
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(PerfError, match="schema version 99, expected 2"):
        PerfStore(path)


def test_a_file_that_is_not_a_store_is_named(tmp_path):
    (tmp_path / "notes.sqlite").write_text("not a database " * 100)
    with pytest.raises(PerfError, match=r"notes\.sqlite: cannot open perf store"):
        PerfStore(tmp_path / "notes.sqlite")


def test_backup_is_a_timestamped_copy_next_to_the_store(store, make_record):
    store.add(make_record(0))
    backup = store.backup()
    store.add(make_record(1))
    assert backup.parent == store.path.parent and backup.name.startswith("perf.backup-")
    assert backup.suffix == ".sqlite"
    with PerfStore(backup) as copy:
        assert [r.commit for r in copy.records(make_record().cohort)] == ["c0000"]
