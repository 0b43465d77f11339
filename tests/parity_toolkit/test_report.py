"""The HTML report is one self-contained file that names the first divergence and shows
its cause: schedules of both sides, config differences, selectable heatmaps, players."""

from __future__ import annotations

import base64
import json
import re
import shutil
from types import SimpleNamespace

import pytest
from tests.parity_toolkit.conftest import copy_capture, make_audio_capture, make_joint_capture, make_video_capture

from workbench.parity.compare import compare_captures
from workbench.parity.report import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _figure_captions(text: str) -> list[str]:
    return re.findall(r"<h3>([^<]*)</h3><img", text)


def test_report_embeds_pngs_and_highlights_the_first_divergence(tmp_path):
    ref = make_joint_capture()
    nat = copy_capture(ref, lambda n, t: t + 1e-2 if n == "latents_step_001" else t)
    verdict = compare_captures(ref, nat, family="ltx2", preset="tiny",
                               parameters={"seed": 42, "flow_shift": None, "audio_end_in_s": 1.0, "height": 32})
    path = write_report(verdict, ref, nat, tmp_path / "report.html")
    text = path.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert all(base64.b64decode(img).startswith(PNG_SIGNATURE) for img in images)
    # no matplotlib copy of the HTML table; schedules, per-step diffs, media
    assert _figure_captions(text) == ["Schedules: timesteps, sigmas (reference vs native)", "Per-step latent diff",
                                      "Frames and waveform"]
    divergence = re.search(r'<div class="divergence">(.*?)</div>', text, re.S).group(1)
    assert "latents_step_001" in divergence and "scheduler step" in divergence
    assert '<tr class="first"><td>latents_step_001</td>' in text
    # Parameters: the family's fields, set ones only (ltx2 has no flow_shift, no audio window)
    params = text.split("<h2>Parameters</h2>")[1].split("<h2>")[0]
    assert "<th>seed</th><td>42</td>" in params and "<th>height</th><td>32</td>" in params
    assert "flow_shift" not in params and "audio_end_in_s" not in params and "None" not in params
    assert "<th>torch</th>" in text
    assert "http://" not in text and "https://" not in text
    assert text.count("<video ") == 3 and text.count("<audio ") == 2  # reference | native | diff; ref | native


def test_heatmaps_are_selectable_and_the_worst_slice_matches_the_table(tmp_path):
    ref = make_video_capture()
    def bump(name, t):  # channel 5, frame 2 of the final latents is the only slice changed
        if name != "final_latents":
            return t
        t = t.clone()
        t[0, 5, 2] += 0.25
        return t

    nat = copy_capture(ref, bump)
    verdict = compare_captures(ref, nat, family="wan_t2v", preset="tiny")
    text = write_report(verdict, ref, nat, tmp_path / "report.html").read_text()
    section = text.split("<h3>Latent heatmaps: final_latents</h3>")[1].split("<h2>")[0]
    options = re.findall(r"<option value='\d+'>([^<]*)</option>", section)
    assert options[0] == "channel 5, frame 2 (largest |diff|)"
    assert "channel 0, frame 2" in options and "channel 5, frame 0" in options  # beyond channel 0 / frame 0
    table_max = verdict.result("final_latents").metrics.max_abs_diff
    assert f"|diff| (0 .. {table_max:.3e})" in section.split("data-i='1'")[0]


def test_calibration_fields_config_differences_drilldown_and_native_error_are_rendered(tmp_path):
    ref = make_audio_capture()
    nat = copy_capture(ref, lambda n, t: t * 1.5 if n == "timesteps" else t)
    verdict = compare_captures(ref, nat, family="stable_audio", preset="tiny")
    for c in verdict.checkpoints:  # issue 16's contract fields, as the calibration fills them
        c.floor, c.k, c.tolerance_source = 2.5e-7, 8.0, "calibrated"
    verdict.config_differences = [{"file": "scheduler/scheduler_config.json", "field": "sigma_max",
                                   "official": 500.0, "native": 400.0}]
    verdict.drilldown = {"checkpoint": "latents_step_001", "step": 1, "first_module": "transformer.blocks.0",
                         "modules": [{"name": "transformer.proj_in", "max_abs": 0.0, "cosine": 1.0, "passed": True},
                                     {"name": "transformer.blocks.0", "max_abs": 3e-2, "cosine": 0.99,
                                      "passed": False}]}
    verdict.native_error = {"stage": "DecodingStage", "step": None, "message": "shape [1, 2] vs [1, 3]"}
    text = write_report(verdict, ref, nat, tmp_path / "report.html").read_text()
    assert "<td class=\"num\">2.500e-07</td><td class=\"num\">8</td><td>calibrated</td>" in text
    diff = text.split("<h2>Config differences (official vs converted)</h2>")[1].split("<h2>")[0]
    assert "<b>sigma_max</b>" in diff and "500.0" in diff and "400.0" in diff
    drill = text.split("<h2>Drill-down</h2>")[1].split("<h2>")[0]
    assert "first divergent module <b>transformer.blocks.0</b>" in drill and "3.000e-02" in drill
    assert "DecodingStage" in text.split("<h2>Native side raised</h2>")[1]
    assert "Schedules: timesteps, sigmas" in text and text.count("<audio ") == 2


def test_report_of_a_run_with_missing_media_notes_the_undrawn_figure(tmp_path):
    ref = make_video_capture()
    nat = copy_capture(ref, skip=("frames",))
    path = write_report(compare_captures(ref, nat), ref, nat, tmp_path / "report.html")
    text = path.read_text()
    assert "not drawn: checkpoint &#x27;frames&#x27; is missing in native" in text
    assert "missing in native" in re.search(r'<div class="divergence">(.*?)</div>', text, re.S).group(1)
    assert "<video " not in text  # no players for media one side lacks


@pytest.mark.parity
def test_a_converted_flow_shift_of_5_instead_of_3_shows_its_cause(tmp_path):
    """The issue's case: the converted scheduler says flow_shift 5.0, the official 3.0."""
    from workbench import registry
    from workbench.parity.runner import resolve_model_dir, run_parity

    model = tmp_path / "model"
    shutil.copytree(resolve_model_dir(registry.get_family("wan_t2v"), None), model)
    config = model / "converted" / "scheduler" / "scheduler_config.json"
    data = json.loads(config.read_text())
    assert data["flow_shift"] == 3.0
    config.write_text(json.dumps({**data, "flow_shift": 5.0}))
    # The file-bound component gate would refuse these edited files first (its own test covers
    # that); the report's job starts once the run is made.
    run = run_parity("wan_t2v", request={"num_inference_steps": 2}, model_dir=model, skip_component_gate=True)
    verdict = run.verdict
    assert not verdict.passed and verdict.first_divergence.name in ("timesteps", "sigmas")
    assert verdict.config_differences == [{"file": "scheduler/scheduler_config.json", "field": "flow_shift",
                                           "official": 3.0, "native": 5.0}]
    text = write_report(verdict, run.reference, run.native, tmp_path / "report.html").read_text()
    diff = text.split("<h2>Config differences (official vs converted)</h2>")[1].split("<h2>")[0]
    row = re.search(r"<tr class='fail'><td>scheduler/scheduler_config.json</td><td><b>flow_shift</b></td>"
                    r"<td class='num'>([^<]*)</td><td class='num'>([^<]*)</td></tr>", diff)
    assert row and row.groups() == ("3.0", "5.0")
    assert "Schedules: timesteps, sigmas (reference vs native)" in _figure_captions(text)
    params = text.split("<h2>Parameters</h2>")[1].split("<h2>")[0]
    assert "None" not in params and "audio_end_in_s" not in params and "<th>num_inference_steps</th>" in params
    assert text.count("<video ") == 3
