"""compare_captures: pass/fail per checkpoint, first divergence and its debug hint."""

from __future__ import annotations

import pytest
import torch
from tests.parity_toolkit.conftest import copy_capture, make_audio_capture, make_joint_capture, make_video_capture

from workbench.parity.capture import CaptureSet
from workbench.parity.compare import HINTS, compare_captures, pipeline_order


@pytest.mark.parametrize("make", [make_video_capture, make_audio_capture, make_joint_capture])
def test_identical_captures_pass_in_exact_mode(make):
    ref = make()
    verdict = compare_captures(ref, copy_capture(ref), family="t", preset="tiny")
    assert verdict.passed and verdict.exit_code == 0
    assert verdict.first_divergence is None
    assert [c.name for c in verdict.checkpoints] == ref.names()
    assert set(verdict.versions) == {"torch", "diffusers", "transformers", "workbench", "python"}


def _perturb_from(start: str, ref: CaptureSet, delta: float = 1e-3) -> CaptureSet:
    """Native run that goes wrong at `start`: that checkpoint and everything after it drift."""
    later = ref.names()[ref.names().index(start):]
    return copy_capture(ref, lambda n, t: t + delta if n in later else t)


def test_perturbation_at_step_one_is_the_first_divergence_with_the_scheduler_hint():
    ref = make_video_capture()
    verdict = compare_captures(ref, _perturb_from("latents_step_001", ref))
    first = verdict.first_divergence
    assert first.name == "latents_step_001" and first.step == 1
    assert first.hint == HINTS["later_step"]
    assert first.reason == "max_abs_diff 1.000e-03 > 1.000e-06"
    assert verdict.result("latents_step_000").passed
    downstream = verdict.result("latents_step_002")
    assert not downstream.passed and "downstream of the first divergence 'latents_step_001'" in downstream.hint
    assert not verdict.passed and verdict.exit_code == 1


@pytest.mark.parametrize("start, hint", [
    ("prompt_embeds", "embedding"),
    ("timesteps", "schedule"),
    ("initial_latents", "initial_latents"),
    ("latents_step_000", "first_step"),
    ("final_latents", "final_latents"),
    ("frames", "decode"),
])
def test_hint_follows_the_kind_and_name_of_the_first_divergence(start, hint):
    ref = make_video_capture()
    first = compare_captures(ref, _perturb_from(start, ref)).first_divergence
    assert first.name == start
    assert first.hint == HINTS[hint]


def test_joint_audio_stream_first_step_gets_the_transformer_hint():
    ref = make_joint_capture()
    nat = copy_capture(ref, lambda n, t: t + 1e-3 if n.startswith("audio_") else t)
    first = compare_captures(ref, nat).first_divergence
    assert first.name == "audio_initial_latents" and first.hint == HINTS["initial_latents"]
    nat = copy_capture(ref, lambda n, t: t + 1e-3 if n.startswith("audio_latents") else t)
    first = compare_captures(ref, nat).first_divergence
    assert first.name == "audio_latents_step_000" and first.hint == HINTS["first_step"]
    nat = copy_capture(ref, lambda n, t: t + 1e-3 if n == "waveform" else t)
    assert compare_captures(ref, nat).first_divergence.hint == HINTS["decode"]


def test_expert_mismatch_at_a_step_is_named_in_the_reason():
    ref = make_video_capture()
    nat = CaptureSet()
    for c in ref:
        meta = dict(c.meta, expert="transformer") if c.name == "latents_step_002" else c.meta
        nat.record(c.name, c.tensor, c.kind, c.step, meta)
    verdict = compare_captures(ref, nat)
    first = verdict.first_divergence
    assert first.name == "latents_step_002"
    assert first.reason == "expert differs: reference 'transformer_2', native 'transformer'"
    assert first.hint == HINTS["meta"]
    assert first.reference_meta["expert"] == "transformer_2" and first.native_meta["expert"] == "transformer"


def test_missing_checkpoints_fail_on_either_side_in_pipeline_order():
    ref = make_video_capture()
    nat = copy_capture(ref, skip=("frames",))
    nat.record("sigmas_shifted", torch.ones(4), "schedule")  # native-only, recorded after final_latents
    verdict = compare_captures(ref, nat)
    missing = verdict.result("frames")
    assert not missing.passed and missing.reason == "missing in native" and missing.hint == HINTS["missing"]
    assert missing.native_meta is None and missing.metrics is None
    assert verdict.result("sigmas_shifted").reason == "missing in reference"
    assert [c.name for c in verdict.checkpoints][-3:] == ["final_latents", "sigmas_shifted", "frames"]
    assert verdict.first_divergence.name == "sigmas_shifted"

    extra_early = copy_capture(ref)
    order_ref = CaptureSet()
    for c in ref:
        if c.name != "sigmas":
            order_ref.record(c.name, c.tensor, c.kind, c.step, c.meta)
    order = pipeline_order(order_ref, extra_early)
    assert order.index("sigmas") == order.index("timesteps") + 1  # placed where native recorded it
    assert compare_captures(order_ref, extra_early).first_divergence.name == "sigmas"


def test_shape_mismatch_fails_without_exception():
    ref = make_video_capture()
    nat = copy_capture(ref, lambda n, t: t[:, :, :2] if n == "initial_latents" else t)
    result = compare_captures(ref, nat).result("initial_latents")
    assert not result.passed
    assert result.reason == "shape mismatch: reference [1, 16, 3, 4, 4] vs native [1, 16, 2, 4, 4]"


def test_nan_in_native_fails_with_reason():
    ref = make_video_capture()
    nat = copy_capture(ref, lambda n, t: t * float("nan") if n == "final_latents" else t)
    result = compare_captures(ref, nat, mode="fast").result("final_latents")
    assert not result.passed and "NaN" in result.reason


def test_fast_mode_accepts_a_bf16_copy_that_exact_mode_rejects():
    ref = make_joint_capture()
    # Schedules stay fp32 in a bf16 run; everything the model computes is rounded to bf16.
    nat = copy_capture(ref, lambda n, t: t if n in ("timesteps", "sigmas") else t.bfloat16())
    fast = compare_captures(ref, nat, mode="fast")
    assert fast.passed, fast.summary_table()
    assert fast.result("prompt_embeds").metrics.native_dtype == "bfloat16"
    exact = compare_captures(ref, nat, mode="exact")
    assert not exact.passed and exact.first_divergence.name == "prompt_embeds"


def test_fast_mode_rejects_a_final_latent_that_steps_would_tolerate():
    ref = make_video_capture()
    g = torch.Generator().manual_seed(5)
    noisy = {n: ref[n].tensor + 0.05 * torch.randn(ref[n].tensor.shape, generator=g)
             for n in ("latents_step_002", "final_latents")}
    verdict = compare_captures(ref, copy_capture(ref, lambda n, t: noisy.get(n, t)), mode="fast")
    step, final = verdict.result("latents_step_002"), verdict.result("final_latents")
    assert 0.99 <= step.metrics.cosine < 0.999
    assert step.passed and not final.passed
    assert final.reason.startswith("cosine")


def test_an_empty_comparison_fails():
    verdict = compare_captures(CaptureSet(), CaptureSet())
    assert not verdict.passed and verdict.first_divergence is None
    assert "no checkpoints were compared" in verdict.summary_table()
