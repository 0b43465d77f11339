"""LTX-2 pipeline parity, exact mode (CPU, fp32): the native port against diffusers'
LTX2Pipeline on the same tiny build, every checkpoint of both streams, bitwise or <= 1e-6.

Both sides are real runs (`run_parity`): the official pipeline with capture hooks, and our
stage pipeline loaded from converted/ by the strict loader; `compare_captures` judges them.
"""

from __future__ import annotations

import pytest
from safetensors.torch import load_file, save_file

from workbench.parity.compare import compare_captures
from workbench.parity.golden import load_golden, regress
from workbench.parity.runner import run_native, run_parity

pytestmark = pytest.mark.parity

VIDEO = ["initial_latents", "latents_step_000", "latents_step_001", "latents_step_002", "final_latents", "frames"]
AUDIO = ["audio_initial_latents", "audio_latents_step_000", "audio_latents_step_001", "audio_latents_step_002",
         "audio_final_latents", "mel", "waveform"]
TEXT = ["prompt_embeds", "negative_prompt_embeds", "connector_prompt_embeds", "connector_audio_prompt_embeds"]


def failing(verdict) -> list[str]:
    return [c.name for c in verdict.checkpoints if not c.passed]


def assert_exact(run) -> None:
    """Every checkpoint passes exact tolerance, and each step ran with the same guidance terms."""
    assert run.reference.names() == run.native.names()
    assert failing(run.verdict) == [], run.verdict.summary_table()
    assert all(c.metrics.max_abs_diff == 0.0 for c in run.verdict.checkpoints)  # in fact bitwise
    for ref in run.reference:
        assert run.native[ref.name].meta == ref.meta, ref.name


def test_tiny_ci_every_checkpoint_of_both_streams_is_exact(model_dir):
    run = run_parity("ltx2", model_dir=model_dir)
    assert set(TEXT + ["timesteps", "sigmas"] + VIDEO + AUDIO) <= set(run.reference.names())
    assert run.reference["frames"].tensor.shape == (1, 9, 32, 32, 3)
    assert run.reference["waveform"].tensor.shape == (1, 2, 132)
    assert_exact(run)


VARIATIONS = {
    # No guidance term active: one transformer call per step, no negative prompt encoded.
    "no_guidance": dict(guidance_scale=1.0, audio_guidance_scale=1.0, stg_scale=0.0, audio_stg_scale=0.0,
                        modality_scale=1.0, audio_modality_scale=1.0, guidance_rescale=0.0,
                        audio_guidance_rescale=0.0),
    # Audio terms of 0/None take the video value; other geometry, timing and seed.
    "audio_fallback": dict(audio_guidance_scale=0, audio_stg_scale=None, audio_modality_scale=0,
                           audio_guidance_rescale=0, seed=7, prompt="a red fox singing near a river", height=64,
                           width=32, num_frames=17, num_inference_steps=2, frame_rate=25.0, motion_speed=0.5,
                           use_cross_timestep=False),
    # Two prompts; CFG on for audio only; modality isolation alone; rescale on audio only.
    "batch_of_two": dict(prompt=["a cat", "two horses running on a beach"], negative_prompt=["", "noisy"],
                         guidance_scale=1.0, audio_guidance_scale=4.0, stg_scale=0.0, audio_stg_scale=0.0,
                         modality_scale=2.0, guidance_rescale=0.0, audio_guidance_rescale=0.3,
                         num_inference_steps=4, max_sequence_length=8),
    # STG alone, on both blocks, with different strengths per stream.
    "stg_only": dict(guidance_scale=1.0, audio_guidance_scale=1.0, stg_scale=2.0, audio_stg_scale=0.5,
                     modality_scale=1.0, audio_modality_scale=1.0, spatio_temporal_guidance_blocks=[0, 1],
                     seed=123456789, num_inference_steps=2),
}


@pytest.fixture(scope="module")
def variation(model_dir):
    """The parity run of a VARIATIONS request, each run once per module."""
    runs = {}

    def get(name):
        if name not in runs:
            runs[name] = run_parity("ltx2", request=VARIATIONS[name], model_dir=model_dir)
        return runs[name]

    return get


@pytest.mark.parametrize("name", VARIATIONS)
def test_requests_beyond_the_preset_are_exact(variation, name):
    assert_exact(variation(name))


def test_audio_guidance_falls_back_to_video_like_the_official_call(variation):
    run = variation("audio_fallback")
    # The reference meta holds the official pipeline's own resolved properties.
    audio, video = run.reference["audio_latents_step_000"].meta, run.reference["latents_step_000"].meta
    terms = ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")
    assert {k: audio[k] for k in terms} == {k: video[k] for k in terms} == {
        "guidance_scale": 3.0, "stg_scale": 1.0, "modality_scale": 3.0, "guidance_rescale": 0.7}
    assert run.native["audio_latents_step_000"].meta == audio


def test_no_guidance_skips_the_negative_prompt_on_both_sides(variation):
    run = variation("no_guidance")
    assert "negative_prompt_embeds" not in run.reference and "negative_prompt_embeds" not in run.native
    assert run.native["connector_prompt_embeds"].tensor.shape[0] == 1


# ---- fault localisation: a wrong weight in converted/ shows first where it enters ---------
def corrupt(model_copy, module: str, key: str) -> None:
    path = next((model_copy / "converted" / module).glob("*.safetensors"))
    state = load_file(str(path))
    state[key] = state[key] + 0.05
    save_file(state, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("module, key, first, still_exact", [
    ("text_encoder", "language_model.model.layers.1.mlp.down_proj.weight", "prompt_embeds", []),
    ("transformer", "proj_in.weight", "noise_cond_step_000", TEXT + ["initial_latents", "audio_initial_latents"]),
    ("vae", "decoder.conv_out.conv.weight", "decoder_output", TEXT + VIDEO[:-1] + AUDIO),
])
def test_a_wrong_weight_is_found_where_it_enters(model_copy, module, key, first, still_exact):
    corrupt(model_copy, module, key)
    verdict = run_parity("ltx2", model_dir=model_copy, skip_component_gate=True).verdict
    assert verdict.first_divergence is not None and verdict.first_divergence.name == first
    assert not set(still_exact) & set(failing(verdict))


@pytest.mark.parametrize("module, key, first", [
    ("audio_vae", "decoder.conv_out.conv.weight", "mel"),
    ("vocoder", "conv_out.weight", "waveform"),
])
def test_an_audio_only_fault_shows_in_audio_and_leaves_video_exact(model_copy, module, key, first):
    corrupt(model_copy, module, key)
    verdict = run_parity("ltx2", model_dir=model_copy, skip_component_gate=True).verdict
    assert verdict.first_divergence.name == first and set(failing(verdict)) <= set(AUDIO)
    assert all(verdict.result(name).passed for name in TEXT + VIDEO)


# ---- goldens: blessed by `workbench bless ltx2` in another process ------------------------
def test_native_matches_the_blessed_goldens(family, model_dir):
    golden, manifest = load_golden("ltx2", "tiny-ci")
    native, _ = run_native(model_dir / "converted", family.sampling_params("tiny-ci"))
    verdict = regress("ltx2", "tiny-ci", native, model_dir=model_dir)
    assert golden.names() == native.names() and verdict.passed, verdict.summary_table()
