"""Wan 2.2 two-expert parity: the native pipeline against diffusers' WanPipeline with
`transformer_2` and `boundary_ratio`, in exact mode on CPU, and faults localized to the
checkpoint where they first act."""

from __future__ import annotations

import json

import pytest
import torch

from workbench import registry
from workbench.parity.runner import run_native, run_parity, run_reference

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("single_torch_thread")]

FAMILY = "wan22_t2v"
NUM_TRAIN_TIMESTEPS = 1000


def expected_experts(timesteps, boundary_ratio):
    """Which expert the official rule picks per step: the high-noise one while t >= boundary."""
    return ["transformer" if t >= boundary_ratio * NUM_TRAIN_TIMESTEPS else "transformer_2" for t in timesteps]


def step_metas(capture):
    return [c.meta for c in capture if c.name.startswith("latents_step_")]


def assert_exact(verdict):
    assert verdict.passed, verdict.summary_table()
    for result in verdict.checkpoints:
        assert result.metrics.max_abs_diff <= 1e-6, (result.name, result.metrics.max_abs_diff)


def test_cli_parity_tiny_ci_is_exact_and_switches_experts(cli, tmp_path):
    code, out, _ = cli("parity", FAMILY, "--json", tmp_path / "verdict.json")
    assert code == 0, out
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    steps = [c for c in verdict["checkpoints"] if c["name"].startswith("latents_step_")]
    # tiny-ci: 4 steps at t = 999, 900, 750, 500 with boundary 0.875 and guidance 4.0 / 3.0.
    assert [c["reference_meta"]["expert"] for c in steps] == ["transformer"] * 2 + ["transformer_2"] * 2
    assert [c["reference_meta"]["guidance_scale"] for c in steps] == [4.0, 4.0, 3.0, 3.0]
    assert all(c["native_meta"] == c["reference_meta"] for c in steps)
    assert all(c["metrics"]["max_abs_diff"] == 0.0 for c in verdict["checkpoints"])
    # without --set the probe set ran too, each its own row: the boundary probe and prompt cleaning
    assert [(p["name"], p["passed"]) for p in verdict["probes"]] == [("boundary_on_a_timestep", True),
                                                                     ("prompt_cleaning", True)]
    assert "boundary_on_a_timestep  pass" in out


@pytest.mark.parametrize("request_", [
    dict(seed=7, prompt="two horses running on a beach at sunset", negative_prompt="noisy",
         height=48, width=32, num_frames=5, num_inference_steps=5, guidance_scale=6.0, guidance_scale_2=2.0),
    dict(seed=123, num_inference_steps=3, guidance_scale=1.0, max_sequence_length=24),  # no CFG, one call per step
])
def test_exact_for_other_requests(request_):
    assert_exact(run_parity(FAMILY, request=request_).verdict)


def test_requested_boundary_ratio_acts_on_both_sides():
    run = run_parity(FAMILY, request=dict(boundary_ratio=0.8, num_inference_steps=3))
    assert_exact(run.verdict)
    timesteps = run.reference["timesteps"].tensor.tolist()  # 999, 857, 600
    experts = expected_experts(timesteps, 0.8)
    assert experts != expected_experts(timesteps, 0.875)  # the override changes which expert runs
    assert [m["expert"] for m in step_metas(run.reference)] == experts
    assert [m["expert"] for m in step_metas(run.native)] == experts


def test_wrong_boundary_in_manifest_is_localized_to_first_switched_step(broken_copy, edit_json):
    model_dir = broken_copy(FAMILY)
    edit_json(model_dir / "converted" / "model_index.json", boundary_ratio=0.95)
    run = run_parity(FAMILY, model_dir=model_dir)
    timesteps = run.reference["timesteps"].tensor.tolist()
    official, edited = expected_experts(timesteps, 0.875), expected_experts(timesteps, 0.95)
    first = next(i for i in range(len(timesteps)) if official[i] != edited[i])
    divergence = run.verdict.first_divergence
    assert divergence.step == first  # its first checkpoint: the expert differs in the step's meta
    assert divergence.reference_meta["expert"] == "transformer" and divergence.native_meta["expert"] == "transformer_2"


def test_wrong_guidance_scale_2_is_localized_to_first_low_noise_step(reference_dir):
    """guidance_scale_2 changed on the native side only: the high-noise steps still match."""
    from workbench.parity.compare import compare_captures

    family = registry.get_family(FAMILY)
    params = family.sampling_params("tiny-ci")
    root = reference_dir(FAMILY)
    reference = run_reference(family, root / "official", params, torch.device("cpu"))
    native, _ = run_native(root / "converted", params.replace(guidance_scale_2=5.0))
    verdict = compare_captures(reference, native, mode="exact")
    first_low_noise = next(c.step for c in reference if c.step is not None and c.meta["expert"] == "transformer_2")
    assert verdict.first_divergence.step == first_low_noise
    assert verdict.first_divergence.native_meta["guidance_scale"] == 5.0
    assert all(r.passed for r in verdict.checkpoints[:verdict.checkpoints.index(verdict.first_divergence)])


@pytest.mark.parametrize("module, key, first_divergence", [
    ("text_encoder", "encoder.block.0.layer.0.SelfAttention.q.weight", "prompt_embeds"),
    ("transformer", "blocks.0.attn1.to_q.weight", "noise_cond_step_000"),
    ("transformer_2", "blocks.0.attn1.to_q.weight", "noise_cond_step_002"),  # first low-noise step of tiny-ci
    ("vae", "decoder.conv_out.weight", "decoder_output"),
])
def test_broken_weight_is_localized(broken_copy, perturb_weight, module, key, first_divergence):
    model_dir = broken_copy(FAMILY)
    perturb_weight(model_dir / "converted" / module, key)
    verdict = run_parity(FAMILY, model_dir=model_dir, skip_component_gate=True).verdict
    assert verdict.first_divergence.name == first_divergence
    if module == "vae":
        assert verdict.result("final_latents").passed


def test_scheduler_shift_is_localized_to_timesteps(broken_copy, edit_json):
    model_dir = broken_copy(FAMILY)
    edit_json(model_dir / "converted" / "scheduler" / "scheduler_config.json", flow_shift=5.0)
    assert run_parity(FAMILY, model_dir=model_dir, skip_component_gate=True).verdict.first_divergence.name == "timesteps"


def test_native_matches_committed_goldens(reference_dir):
    from workbench.parity.golden import load_golden, regress

    golden, manifest = load_golden(FAMILY, "tiny-ci")
    root = reference_dir(FAMILY)
    native, _ = run_native(root / "converted", registry.get_family(FAMILY).sampling_params("tiny-ci"))
    assert golden.names() == native.names()
    verdict = regress(FAMILY, "tiny-ci", native, model_dir=root)
    assert verdict.passed, verdict.summary_table()


def test_wan21_directory_still_runs_one_expert_exactly():
    run = run_parity("wan_t2v")
    assert_exact(run.verdict)
    assert {m["expert"] for m in step_metas(run.native)} == {"transformer"}
