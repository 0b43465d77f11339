"""`workbench perf ...` end to end through workbench.cli.main with a temporary store."""

from __future__ import annotations

import pytest

from workbench import cli
from workbench.perf import PerfStore, write_records


@pytest.fixture
def run_cli(tmp_path, capsys):
    """Run `workbench perf ARGS --db tmp`; returns (exit code, stdout, stderr)."""
    db = str(tmp_path / "perf.sqlite")

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main(["perf", *args, "--db", db])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_record_then_compare_exit_codes(run_cli, make_record, tmp_path):
    fresh = write_records(tmp_path / "fresh.json", [make_record(0, latency_s=10.0)])
    code, out, _ = run_cli("compare", str(fresh))
    assert code == 0 and "CALIBRATION NEEDED" in out

    history = write_records(tmp_path / "history.json", [make_record(i, latency_s=10.0 + i / 10) for i in range(5)])
    code, out, _ = run_cli("record", str(history))
    assert code == 0 and "recorded 5 record(s)" in out and "5 record(s) in the baseline window" in out

    code, out, _ = run_cli("compare", str(write_records(tmp_path / "ok.json", [make_record(9, latency_s=10.6)])))
    assert code == 0 and "verdict: OK" in out
    assert any(line.startswith("latency_s") and line.rstrip().endswith("ok") for line in out.splitlines())

    slow = write_records(tmp_path / "slow.json", [make_record(9, latency_s=12.0)])
    code, out, _ = run_cli("compare", str(slow))
    assert code == 1 and "verdict: REGRESSED" in out
    latency_line = next(line for line in out.splitlines() if line.startswith("latency_s"))
    assert latency_line.split() == ["latency_s", "10.200", "12.000", "+1.800", "+17.6%",
                                    "8%", "&", "0.5", "s", "regressed"]

    code, out, _ = run_cli("record", str(slow))
    assert code == 0
    code, out, _ = run_cli("compare", str(slow))  # stored now, but never its own baseline
    assert code == 1 and "median of 5 eligible record(s)" in out


def test_table_columns_line_up(run_cli, make_record, tmp_path):
    run_cli("record", str(write_records(tmp_path / "h.json", [make_record(i) for i in range(3)])))
    _, out, _ = run_cli("compare", str(write_records(tmp_path / "r.json", [make_record(9, peak_memory_mb=123456.0)])))
    table = [line for line in out.splitlines() if line.startswith(("metric", "latency_s", "peak_memory_mb"))]
    assert len(table) == 3 and len({len(line) for line in table}) == 1
    end_of_value = table[0].index(" value") + len(" value")
    assert [line[:end_of_value].split()[-1] for line in table] == ["value", "10.000", "123456.000"]
    assert all(line[end_of_value] == " " for line in table)  # numbers end exactly under their header


def test_baseline_by_model_and_by_record(run_cli, make_record, tmp_path):
    code, out, _ = run_cli("baseline", "--model-id", "wan2.1-t2v-1.3b")
    assert code == 0 and "CALIBRATION NEEDED: no records for model_id=wan2.1-t2v-1.3b" in out

    run_cli("record", str(write_records(tmp_path / "h.json", [make_record(i, dit_s=8.0 + i) for i in range(7)])))
    code, out, _ = run_cli("baseline", "--model-id", "wan2.1-t2v-1.3b", "--variant", "bf16")
    assert code == 0 and "median of the last 5 eligible record(s)" in out
    assert next(line for line in out.splitlines() if line.startswith("dit_s")).split()[1] == "12.000"

    other = write_records(tmp_path / "other.json", [make_record(0, workload_id="i2v")])
    code, out, _ = run_cli("baseline", "--record", str(other))
    assert code == 0 and "workload=i2v" in out and "CALIBRATION NEEDED" in out


def test_reseed_needs_yes_then_reports_backup(run_cli, make_record, tmp_path):
    run_cli("record", str(write_records(tmp_path / "h.json", [make_record(i) for i in range(5)])))
    runs = write_records(tmp_path / "new.json", [make_record(100 + i, latency_s=v) for i, v in enumerate([8.0, 8.1])])

    code, _, err = run_cli("reseed", str(runs))
    assert code == 2 and "pass --yes" in err and err.count("\n") == 1

    code, out, _ = run_cli("reseed", str(runs), "--yes")
    assert code == 0 and "backed up" in out and "2 record(s) now form the baseline pool; 5 earlier" in out
    with PerfStore(tmp_path / "perf.sqlite") as store:
        assert sum(r.baseline_eligible for r in store.records(make_record().cohort)) == 2


def test_user_errors_exit_2_with_one_line(run_cli, tmp_path):
    (tmp_path / "bad.json").write_text('{"model_id": "m"}')
    code, out, err = run_cli("record", str(tmp_path / "bad.json"))
    assert code == 2 and out == ""
    assert err == f"workbench perf: error: {tmp_path / 'bad.json'}: missing required field 'timestamp'\n"
