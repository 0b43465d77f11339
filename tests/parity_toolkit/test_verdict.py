"""Verdict persistence and the text summary."""

from __future__ import annotations

import json

import pytest
from tests.parity_toolkit.conftest import copy_capture, make_joint_capture

from workbench.errors import ParityError
from workbench.parity.capture import CaptureSet
from workbench.parity.compare import compare_captures
from workbench.parity.verdict import Verdict


def _failing_verdict() -> Verdict:
    ref = make_joint_capture()
    nat = copy_capture(ref, lambda n, t: t + 1e-2 if n == "latents_step_001" else t, skip=("waveform",))
    return compare_captures(ref, nat, family="ltx2", preset="tiny", parameters={"seed": 0, "steps": 3})


def test_json_round_trip_keeps_everything(tmp_path):
    verdict = _failing_verdict()
    path = verdict.to_json(tmp_path / "verdict.json")
    loaded = Verdict.from_json(path)
    assert loaded == verdict
    assert loaded.first_divergence.name == "latents_step_001"
    assert loaded.result("frames").metrics.psnr == float("inf")


def test_json_is_strict_sorted_and_has_the_summary_fields(tmp_path):
    path = _failing_verdict().to_json(tmp_path / "verdict.json")
    text = path.read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert list(data) == sorted(data)
    assert data["passed"] is False
    assert data["first_divergence"]["name"] == "latents_step_001"
    assert data["parameters"] == {"seed": 0, "steps": 3}
    frames = next(c for c in data["checkpoints"] if c["name"] == "frames")
    assert frames["metrics"]["psnr"] == "inf"


def test_summary_table_has_fixed_digits_and_the_divergence():
    table = _failing_verdict().summary_table()
    lines = table.splitlines()
    assert lines[0] == "FAIL  family=ltx2 preset=tiny mode=exact"
    step_line = next(line for line in lines if line.startswith("latents_step_001"))
    assert "1.000e-02" in step_line and step_line.endswith("FAIL")
    assert any(line.startswith("waveform") and line.endswith("FAIL") for line in lines)
    assert "first divergence: latents_step_001: max_abs_diff 1.000e-02 > 1.000e-06" in table
    assert len({len(line) for line in lines[1:4]}) == 1  # header, rule and rows share one width


def test_from_json_errors_name_the_file(tmp_path):
    with pytest.raises(ParityError, match="does not exist"):
        Verdict.from_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{\"family\": 1")
    with pytest.raises(ParityError, match="bad.json is not a valid verdict"):
        Verdict.from_json(bad)


def test_saved_and_reloaded_captures_still_compare_exactly(tmp_path):
    ref = make_joint_capture()
    ref.save(tmp_path / "ref")
    verdict = compare_captures(CaptureSet.load(tmp_path / "ref"), ref)
    assert verdict.passed
    assert verdict.result("latents_step_002").reference_meta["expert"] == "transformer_2"
