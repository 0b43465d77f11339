"""Notebook 04's panel: progress per side, widgets for the family's key fields and the
model directory, a Run button that reruns parity with them, selectors, coloured table."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from workbench import parity_panel as pp


@pytest.fixture(scope="module")
def run():
    return pp.run_with_progress("wan_t2v", request={"num_inference_steps": 2})


def test_progress_bars_advance_per_checkpoint_of_each_side(capsys):
    with pp.checkpoint_progress(total=5) as bars:
        from workbench.parity.capture import CaptureSet
        import torch

        native, official = CaptureSet(), CaptureSet()
        for i in range(3):
            native.record(f"latents_step_{i:03d}", torch.zeros(1), "latent", step=i)
        official.record("frames", torch.zeros(1), "frames")
    assert [(b.desc, b.n, b.total) for b in bars] == [("native", 3, 3), ("official", 1, 1)]
    assert len(native) == 3 and len(official) == 1  # the observed records still land


def test_panel_offers_the_family_fields_and_model_dir_and_reruns_with_them(run, tmp_path):
    assert run.verdict.passed
    panel = pp.parity_panel("wan_t2v", parity=run)
    assert list(panel.controls) == ["seed", "steps", "guidance_scale", "flow_shift", "model_dir"]
    assert panel.controls["flow_shift"].value == 3.0  # the converted scheduler's, the request leaves it unset
    assert panel.controls["steps"].value == 2
    assert "background:#eef8ee" in panel.verdict_html.value and "PASS" in panel.verdict_html.value
    sel = panel.selectors
    assert sel["checkpoint"].value == "final_latents" and "latents_step_001" in sel["checkpoint"].options
    assert (sel["channel"].max, sel["frame"].max) == (15, 2)  # every channel and latent frame selectable
    assert sel["media_frame"].max == 8  # every decoded frame
    assert panel.widget.children[-1].value.count("<video ") == 3
    assert "image/png" in panel._repr_mimebundle_()

    panel.controls["flow_shift"].value = 5.0  # both sides get it: parity still holds, the request changed
    panel.controls["model_dir"].value = str(tmp_path / "missing")
    panel.run()
    assert panel.state["error"] and "missing" in panel.state["error"]  # a bad model dir is one clear line
    panel.controls["model_dir"].value = ""
    panel.run()
    rerun = panel.state["parity"]
    assert rerun is not run and rerun.verdict.parameters["flow_shift"] == 5.0 and rerun.verdict.passed


def test_failing_verdict_is_red_with_the_first_divergence_bold(run):
    from dataclasses import replace

    bad = replace(run.verdict, checkpoints=[replace(run.verdict.checkpoints[0], passed=False, reason="moved")]
                  + run.verdict.checkpoints[1:])
    html = pp.verdict_table_html(bad)
    assert "FAIL" in html and "background:#f4b4b4;font-weight:bold" in html
