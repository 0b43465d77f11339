"""Issue 16 item 3: the finer checkpoints on both sides, each catching and naming the fault
planted in front of it on the native side only (the official run is the untouched reference).

Faults are planted by patching one native method for one run (monkeypatch), never the
official pipeline: the kind the new checkpoint exists for must be the first divergence.
"""

from __future__ import annotations

import pytest
import torch

from workbench import registry
from workbench.parity.compare import compare_captures
from workbench.parity.runner import run_native, run_reference
from workbench.parity.tolerances import KIND_HINTS


@pytest.fixture(scope="module")
def wan():
    """wan_t2v tiny-ci: the model dir, the request and the official capture (run once)."""
    from workbench.references import ensure_reference

    family = registry.get_family("wan_t2v")
    root = ensure_reference(family)
    params = family.sampling_params("tiny-ci")
    return root, params, run_reference(family, root / "official", params, torch.device("cpu"))


def native_stage(root, name):
    """A stage of the (cached) native pipeline `run_native` loads: patch it with monkeypatch."""
    from workbench.api.generate import load_pipeline

    return load_pipeline(root / "converted", device="cpu", progress=False).stage(name)


def native_verdict(root, params, reference):
    native, _ = run_native(root / "converted", params)
    return compare_captures(reference, native, mode="exact")


def test_every_step_records_branches_guided_prediction_and_model_timestep(wan):
    root, params, reference = wan
    verdict = native_verdict(root, params, reference)
    assert verdict.passed, verdict.summary_table()
    names = [c.name for c in verdict.checkpoints]
    for step in range(params.num_inference_steps):
        order = [f"timestep_input_step_{step:03d}", f"noise_cond_step_{step:03d}", f"noise_uncond_step_{step:03d}",
                 f"noise_guided_step_{step:03d}", f"latents_step_{step:03d}"]
        assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert names[-3:] == ["decoder_input", "decoder_output", "frames"]
    assert reference["timestep_input_step_000"].tensor.dtype == torch.int64  # UniPC's timesteps, as the model sees them
    kinds = {c.name: c.kind for c in verdict.checkpoints}
    assert (kinds["timestep_input_step_000"], kinds["noise_cond_step_000"], kinds["decoder_output"]) == (
        "timestep", "noise", "decoded")


def test_a_timestep_cast_is_caught_by_its_dtype(wan, monkeypatch):
    """fp16 holds the integer timesteps < 2048 exactly: only the dtype shows the cast."""
    root, params, reference = wan
    stage = native_stage(root, "DenoisingStage")
    original = stage.predict
    monkeypatch.setattr(stage, "predict", lambda model, latents, t, batch, branch:
                        original(model, latents, t.to(torch.float16), batch, branch))
    first = native_verdict(root, params, reference).first_divergence
    assert first.name == "timestep_input_step_000"
    assert "dtype differs: reference int64, native float16" in first.reason
    assert first.metrics.max_abs_diff == 0.0 and first.hint == KIND_HINTS["timestep"]


def test_a_wrong_branch_conditioning_is_caught_in_that_branch(wan, monkeypatch):
    """The unconditional branch fed the prompt: cond matches, uncond is the first divergence."""
    root, params, reference = wan
    stage = native_stage(root, "DenoisingStage")
    original = stage.predict
    monkeypatch.setattr(stage, "predict", lambda model, latents, t, batch, branch:
                        original(model, latents, t, batch, "cond" if branch == "uncond" else branch))
    verdict = native_verdict(root, params, reference)
    assert verdict.result("noise_cond_step_000").passed
    assert verdict.first_divergence.name == "noise_uncond_step_000"
    assert verdict.first_divergence.hint == KIND_HINTS["noise_branch"]


def test_a_wrong_guidance_formula_is_caught_in_the_guided_prediction(wan, monkeypatch):
    """CFG computed with (scale - 1): both branches match, the guided prediction does not."""
    from workbench.runtime.stages import DenoisingStage

    original = DenoisingStage.guided
    monkeypatch.setattr(DenoisingStage, "guided",
                        lambda self, model, latents, t, batch, scale, predictions=None:
                        original(self, model, latents, t, batch, scale - 1, predictions))
    root, params, reference = wan
    verdict = native_verdict(root, params, reference)
    assert verdict.result("noise_cond_step_000").passed and verdict.result("noise_uncond_step_000").passed
    assert verdict.first_divergence.name == "noise_guided_step_000"
    assert verdict.first_divergence.hint == KIND_HINTS["noise_guided"]


def test_a_missing_denormalisation_is_caught_at_the_decoder_input(wan, monkeypatch):
    from workbench.families.wan.pipeline import NativeWanPipeline

    monkeypatch.setattr(NativeWanPipeline, "latent_statistics",
                        lambda self, like: (torch.zeros((), dtype=like.dtype), torch.ones((), dtype=like.dtype)))
    root, params, reference = wan
    verdict = native_verdict(root, params, reference)
    assert verdict.result("final_latents").passed
    assert verdict.first_divergence.name == "decoder_input"
    assert verdict.first_divergence.hint == KIND_HINTS["decoder_input"]


def test_a_postprocessing_fault_is_told_apart_from_the_decoder(wan, monkeypatch):
    """[-1, 1] -> [0, 1] done as x * 0.5 + 0.45: the raw decoder output matches, the frames do not."""
    root, params, reference = wan
    stage = native_stage(root, "DecodingStage")
    original = stage.decode
    monkeypatch.setattr(stage, "decode", lambda latents, batch: original(latents, batch) - 0.05)
    verdict = native_verdict(root, params, reference)
    assert verdict.result("decoder_output").passed
    assert verdict.first_divergence.name == "frames"
    assert verdict.first_divergence.hint == KIND_HINTS["frames_after_decoded"]


def test_a_wrong_rotary_table_is_caught_as_positional(monkeypatch):
    """Stable Audio's rotary table computed with another theta: the positional checkpoint names it."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    from workbench.references import ensure_reference

    family = registry.get_family("stable_audio")
    root = ensure_reference(family)
    stage = native_stage(root, "TextDurationConditioningStage")
    original = stage.rotary_embedding

    def other_theta(batch):
        cos, _ = original(batch)
        return get_1d_rotary_pos_embed(cos.shape[-1], cos.shape[0], use_real=True, repeat_interleave_real=False,
                                       theta=1000.0)

    monkeypatch.setattr(stage, "rotary_embedding", other_theta)
    params = family.sampling_params("tiny-ci")
    reference = run_reference(family, root / "official", params, torch.device("cpu"))
    verdict = native_verdict(root, params, reference)
    assert verdict.first_divergence.name == "rotary_embedding"
    assert verdict.first_divergence.kind == "positional" and verdict.first_divergence.hint == KIND_HINTS["positional"]


def test_a_low_noise_expert_fault_gets_the_expert_hint(broken_copy, perturb_weight):
    """Wan 2.2: a weight of transformer_2 shows at the first step that runs it, with its expert named."""
    from workbench.parity.runner import run_parity

    model_dir = broken_copy("wan22_t2v")
    perturb_weight(model_dir / "converted" / "transformer_2", "blocks.0.attn1.to_q.weight")
    first = run_parity("wan22_t2v", model_dir=model_dir, skip_component_gate=True).verdict.first_divergence
    assert first.kind == "noise" and first.reference_meta["expert"] == "transformer_2"
    assert first.hint.startswith(KIND_HINTS["expert_2"])
