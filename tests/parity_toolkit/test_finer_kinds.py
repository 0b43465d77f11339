"""Issue 16 items 3-5, the toolkit side (no model runs): the finer checkpoint kinds in every
tolerance table, the dtype bound, kind-specific hints, drill-down and probe rows in the verdict."""

from __future__ import annotations

import torch

from workbench.parity.capture import KINDS, CaptureHooks, CaptureSet, as_tensor
from workbench.parity.compare import compare_captures
from workbench.parity.drilldown import compare_modules, format_drilldown, triggers_drilldown
from workbench.parity.metrics import compare_tensors
from workbench.parity.tolerances import (EXACT, FAST_BY_KIND, KIND_HINTS, REGRESSION_BY_KIND, Tolerance,
                                         tolerances_for)
from workbench.parity.verdict import Verdict

NEW_KINDS = ("noise", "timestep", "positional", "decoded")


def test_the_new_kinds_are_in_every_mode_table():
    assert set(NEW_KINDS) <= set(KINDS)
    for kind in NEW_KINDS:
        assert kind in FAST_BY_KIND and kind in REGRESSION_BY_KIND
        for mode in ("exact", "fast", "regression"):
            tolerances_for(mode).for_checkpoint(f"x_{kind}", kind)


def test_a_timestep_dtype_change_fails_exact_mode_even_with_equal_values():
    t = torch.tensor([999], dtype=torch.int64)
    exact = tolerances_for("exact").for_checkpoint("timestep_input_step_000", "timestep")
    passed, reason = exact.check(compare_tensors(t, t.to(torch.float16), "timestep"))
    assert not passed and reason == "dtype differs: reference int64, native float16"
    assert exact.check(compare_tensors(t, t.clone(), "timestep")) == (True, "")
    # a latent in another dtype is a value question only (exact mode's other kinds)
    assert tolerances_for("exact").for_checkpoint("x", "latent") == EXACT
    assert "same dtype" in exact.describe()
    assert Tolerance.from_dict(exact.to_dict()) == exact


def _capture(noise_delta=0.0, guided_delta=0.0, latent_delta=0.0, expert="transformer"):
    cap = CaptureSet()
    base = torch.linspace(-1, 1, 64).view(1, 4, 4, 4)
    meta = {"timestep": 999.0, "expert": expert, "guidance_scale": 5.0}
    cap.record("timesteps", torch.tensor([999, 500]), "schedule")
    cap.record("timestep_input_step_000", torch.tensor([999]), "timestep", step=0, meta=meta)
    cap.record("noise_cond_step_000", base + noise_delta, "noise", step=0, meta=meta)
    cap.record("noise_uncond_step_000", base * 0.5, "noise", step=0, meta=meta)
    cap.record("noise_guided_step_000", base * 2 + noise_delta + guided_delta, "noise", step=0, meta=meta)
    cap.record("latents_step_000", base * 3 + noise_delta + guided_delta + latent_delta, "latent", step=0, meta=meta)
    cap.record("decoder_input", base, "latent")
    cap.record("decoder_output", base, "decoded")
    return cap


def test_hints_follow_the_finer_checkpoints_that_passed():
    ref = _capture()
    assert compare_captures(ref, _capture(noise_delta=0.1)).first_divergence.hint == KIND_HINTS["noise_branch"]
    assert compare_captures(ref, _capture(guided_delta=0.1)).first_divergence.hint == KIND_HINTS["noise_guided"]
    first = compare_captures(ref, _capture(latent_delta=0.1)).first_divergence
    assert first.name == "latents_step_000" and first.hint == KIND_HINTS["latents_after_guided"]
    ref2, nat2 = _capture(expert="transformer_2"), _capture(noise_delta=0.1, expert="transformer_2")
    assert compare_captures(ref2, nat2).first_divergence.hint.startswith(KIND_HINTS["expert_2"])


def test_a_step_reports_its_finer_tensors_ahead_of_its_latents():
    class Batch:
        latents = torch.zeros(2)
        extra = {"audio_latents": torch.ones(2)}

    cap = CaptureSet()
    info = {"expert": "transformer", "guidance_scale": 3.0,
            "tensors": {"timestep_input": (torch.tensor([7]), "timestep"), "noise_cond": (torch.ones(2), "noise")},
            "once": {"video_coords": (torch.zeros(3), "positional")},
            "streams": {"audio": {"guidance_scale": 2.0, "tensors": {"noise_guided": (torch.ones(2), "noise")}}}}
    CaptureHooks(cap).on_step_end(0, torch.tensor(7.0), Batch(), info)
    assert cap.names() == ["video_coords", "timestep_input_step_000", "noise_cond_step_000", "latents_step_000",
                           "audio_noise_guided_step_000", "audio_latents_step_000"]
    assert cap["audio_noise_guided_step_000"].meta == {"timestep": 7.0, "guidance_scale": 2.0}
    assert cap["noise_cond_step_000"].kind == "noise" and cap["video_coords"].step is None
    assert as_tensor((torch.zeros(2), torch.ones(2))).shape == (2, 2)  # a (cos, sin) table


def test_drilldown_triggers_only_inside_the_denoiser():
    ref = _capture()
    assert triggers_drilldown(compare_captures(ref, _capture(noise_delta=0.1)))
    assert not triggers_drilldown(compare_captures(ref, _capture(guided_delta=0.1)))  # a guidance formula
    assert not triggers_drilldown(compare_captures(ref, _capture(latent_delta=0.1)))  # a scheduler step
    assert not triggers_drilldown(compare_captures(ref, ref))


def test_module_rows_line_up_a_batched_call_and_skip_other_layouts():
    ref = {"t.blocks.0.ffn": torch.ones(1, 3), "t.patch": torch.ones(1, 2, 2), "t.blocks.0": torch.ones(1, 3)}
    nat = {"t.blocks.0.ffn": torch.cat([torch.zeros(1, 3), torch.ones(1, 3)]),  # [uncond, cond]: cond half compared
           "t.patch": torch.ones(4), "t.blocks.0": torch.full((1, 3), 2.0)}
    skipped: list = []
    rows = compare_modules(ref, nat, EXACT, skipped)
    assert [(r["name"], r["passed"]) for r in rows] == [("t.blocks.0.ffn", True), ("t.blocks.0", False)]
    assert skipped == ["t.patch"]
    drill = {"checkpoint": "noise_cond_step_000", "step": 0, "expert": "transformer", "first_module": "t.blocks.0",
             "modules": rows, "note": "first divergent module t.blocks.0 (max_abs 1.000e+00, cosine 1.000000)"}
    text = format_drilldown(drill)
    assert text.startswith("drill-down (noise_cond_step_000, step 0, transformer): first divergent module t.blocks.0")
    assert "t.blocks.0.ffn" in text and format_drilldown(None) == ""


def test_drilldown_and_probes_travel_in_the_verdict_json(tmp_path):
    verdict = compare_captures(_capture(), _capture())
    verdict.drilldown = {"checkpoint": "noise_cond_step_000", "step": 0, "first_module": None, "modules": []}
    verdict.probes = [{"name": "no_guidance", "passed": True}, {"name": "non_square", "passed": False}]
    assert verdict.passed and verdict.exit_code == 1  # a failing probe fails the run
    again = Verdict.from_json(verdict.to_json(tmp_path / "v.json"))
    assert again.drilldown == verdict.drilldown and again.probes == verdict.probes
    verdict.probes = verdict.probes[:1]
    assert verdict.exit_code == 0
