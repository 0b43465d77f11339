"""Record schema validation, fingerprints, profile ids and the JSON file format."""

from __future__ import annotations

import hashlib
import json

import pytest

from workbench.errors import PerfError, WorkbenchError
from workbench.perf import (
    PerfRecord, hardware_profile, hardware_profile_id, load_records, recipe_fingerprint, record_key,
    software_profile, software_profile_id, write_records,
)


def test_missing_field_is_named_with_its_source(make_record):
    data = make_record().to_dict()
    del data["commit"]
    with pytest.raises(PerfError, match=r"^runs/a\.json: missing required field 'commit'$"):
        PerfRecord.from_dict(data, "runs/a.json")


@pytest.mark.parametrize("field, value, expected", [
    ("latency_s", "10s", "finite number"),
    ("peak_memory_mb", -1.0, "finite number"),
    ("throughput_fps", float("nan"), "finite number"),
    ("dit_s", True, "finite number"),
    ("success", "yes", "true or false"),
    ("baseline_eligible", 1, "true or false"),
    ("model_id", "", "non-empty string"),
    ("recipe_fingerprint", "abc", "64 lowercase hex"),
    ("timestamp", "2026-03-01T12:00:00", "timezone"),
    ("timestamp", "yesterday", "ISO-8601"),
    ("extra", [], "JSON object"),
])
def test_ill_typed_field_is_named(make_record, field, value, expected):
    data = make_record().to_dict() | {field: value}
    with pytest.raises(PerfError) as caught:
        PerfRecord.from_dict(data, "r.json")
    message = str(caught.value)
    assert message.startswith("r.json: ") and repr(field) in message and expected in message
    assert isinstance(caught.value, WorkbenchError)


def test_unknown_field_is_refused(make_record):
    data = make_record().to_dict() | {"latncy_s": 1.0}
    with pytest.raises(PerfError, match="unknown field 'latncy_s'"):
        PerfRecord.from_dict(data, "r.json")


def test_successful_run_needs_latency_but_failed_run_does_not(make_record):
    with pytest.raises(PerfError, match="'latency_s' is required"):
        make_record(latency_s=None)
    failed = make_record(success=False, latency_s=None, throughput_fps=None)
    assert failed.latency_s is None and not failed.success


def test_timestamp_is_normalized_to_utc_so_text_order_is_time_order(make_record):
    record = make_record(timestamp="2026-03-01T14:30:00+02:00")
    assert record.timestamp == "2026-03-01T12:30:00.000000+00:00"
    assert make_record(timestamp="2026-03-01T12:30:00Z").timestamp == record.timestamp
    assert make_record(latency_s=3).latency_s == 3.0 and isinstance(make_record(latency_s=3).latency_s, float)


def test_fingerprint_is_stable_across_key_order_and_number_spelling():
    a = {"prompt": "fox", "steps": 30, "guidance": 5.0, "size": {"h": 480, "w": 832}}
    b = {"size": {"w": 832, "h": 480}, "guidance": 5, "steps": 30, "prompt": "fox"}
    assert recipe_fingerprint(a) == recipe_fingerprint(b)
    assert len(recipe_fingerprint(a)) == 64
    assert recipe_fingerprint({"x": (1, 2)}) == recipe_fingerprint({"x": [1, 2]})
    # the definition itself: sha256 of sorted, whitespace-free JSON (a change would orphan stored cohorts)
    assert recipe_fingerprint({"b": 1.5, "a": "x"}) == hashlib.sha256(b'{"a":"x","b":1.5}').hexdigest()


def test_fingerprint_changes_with_any_input():
    base = {"prompt": "fox", "steps": 30, "guidance": 5.0}
    changed = [base | {"steps": 31}, base | {"guidance": 5.5}, base | {"prompt": "Fox"}, base | {"seed": 0}]
    prints = {recipe_fingerprint(base), *map(recipe_fingerprint, changed)}
    assert len(prints) == 5


def test_fingerprint_refuses_non_json_inputs():
    with pytest.raises(PerfError, match=r"'cfg\.scale'.*finite"):
        recipe_fingerprint({"cfg": {"scale": float("inf")}})
    with pytest.raises(PerfError, match="'dtype'.*JSON value"):
        recipe_fingerprint({"dtype": object()})


def test_profile_ids_hash_the_profile():
    hw = {"machine": "x86_64", "cpu_model": "Xeon", "cpu_count": 16, "gpu_models": ["NVIDIA H200"], "gpu_count": 1}
    assert hardware_profile_id(hw) == hardware_profile_id(dict(reversed(hw.items())))
    assert hardware_profile_id(hw) != hardware_profile_id(hw | {"gpu_count": 2})
    assert hardware_profile_id(hw).startswith("hw-") and len(hardware_profile_id(hw)) == 19
    sw = {"python": "3.11.7", "torch": "2.13.0", "diffusers": "0.42.1", "transformers": None}
    assert software_profile_id(sw) != software_profile_id(sw | {"torch": "2.14.0"})


def test_profiles_of_this_machine():
    profile = software_profile()
    assert set(profile) == {"python", "torch", "diffusers", "transformers"}
    assert profile["python"].count(".") == 2
    hw = hardware_profile()
    assert hw["cpu_count"] >= 1 and hw["gpu_count"] == len(hw["gpu_models"])
    assert hardware_profile_id() == hardware_profile_id(hw)
    assert software_profile_id() == software_profile_id(profile)


def test_write_and_load_round_trip(tmp_path, make_record):
    records = [make_record(0), make_record(1, extra={"note": "warm cache"})]
    path = write_records(tmp_path / "runs.json", records)
    assert load_records(path) == records
    (tmp_path / "one.json").write_text(json.dumps(records[0].to_dict()))
    assert load_records(tmp_path / "one.json") == [records[0]]


def test_load_names_the_file_and_index(tmp_path, make_record):
    bad = make_record().to_dict()
    del bad["gpu_type"]
    (tmp_path / "runs.json").write_text(json.dumps([make_record().to_dict(), bad]))
    with pytest.raises(PerfError, match=r"runs\.json\[1\]: missing required field 'gpu_type'"):
        load_records(tmp_path / "runs.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PerfError, match=r"broken\.json: not a readable JSON file"):
        load_records(tmp_path / "broken.json")
    with pytest.raises(PerfError, match="file not found"):
        load_records(tmp_path / "absent.json")


def test_record_key_ignores_eligibility_only(make_record):
    record = make_record()
    assert record_key(record) == record_key(make_record(baseline_eligible=False))
    assert record_key(record) != record_key(make_record(latency_s=10.5))
