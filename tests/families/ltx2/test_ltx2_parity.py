"""LTX-2 pipeline parity, exact mode (CPU, fp32): the native port against diffusers'
LTX2Pipeline on the same tiny build, every checkpoint of both streams, bitwise or <= 1e-6.

Both sides are real runs: the reference side is the official pipeline with capture hooks,
the native side our stage pipeline loaded from converted/ by the strict loader.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from workbench.parity.capture import CaptureSet
from workbench.parity.golden import load_golden
from workbench.parity.runner import run_native
from workbench.references import tree_sha256

pytestmark = pytest.mark.parity

EXACT = 1e-6
VIDEO = ["initial_latents", "latents_step_000", "latents_step_001", "latents_step_002", "final_latents", "frames"]
AUDIO = ["audio_initial_latents", "audio_latents_step_000", "audio_latents_step_001", "audio_latents_step_002",
         "audio_final_latents", "mel", "waveform"]
TEXT = ["prompt_embeds", "negative_prompt_embeds", "connector_prompt_embeds", "connector_audio_prompt_embeds"]


def max_abs_diffs(reference: CaptureSet, native: CaptureSet) -> dict[str, float]:
    """Per checkpoint in reference (pipeline) order; inf where native lacks it or the shape differs."""
    out = {}
    for ref in reference:
        nat = native[ref.name] if ref.name in native else None
        if nat is None or nat.tensor.shape != ref.tensor.shape:
            out[ref.name] = float("inf")
        else:
            out[ref.name] = (ref.tensor.double() - nat.tensor.double()).abs().max().item()
    return out


def failing(reference: CaptureSet, native: CaptureSet) -> list[str]:
    """Checkpoints out of exact tolerance in pipeline order: the first is the first divergence."""
    return [name for name, diff in max_abs_diffs(reference, native).items() if diff > EXACT]


def run_both(family, official_pipe, model_dir, request=None, preset=None, native_dir=None):
    params = family.sampling_params(preset, request)
    native, _ = run_native((native_dir or model_dir) / "converted", params)
    reference, _ = family.reference.run_reference(model_dir / "official", params, pipe=official_pipe)
    return reference, native


def test_tiny_ci_every_checkpoint_of_both_streams_is_exact(family, official_pipe, model_dir):
    reference, native = run_both(family, official_pipe, model_dir)
    assert reference.names() == native.names()
    assert set(TEXT + ["timesteps", "sigmas"] + VIDEO + AUDIO) <= set(reference.names())
    assert reference["frames"].tensor.shape == (1, 9, 32, 32, 3)
    assert reference["waveform"].tensor.shape == (1, 2, 132)
    assert failing(reference, native) == []
    for ref in reference:  # the guidance terms each step ran with, as each side resolved them
        assert native[ref.name].meta == ref.meta, ref.name


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
def variation(family, official_pipe, model_dir):
    """(reference, native) captures of a VARIATIONS request, each run once per module."""
    runs = {}

    def get(name):
        if name not in runs:
            runs[name] = run_both(family, official_pipe, model_dir, VARIATIONS[name])
        return runs[name]

    return get


@pytest.mark.parametrize("name", VARIATIONS)
def test_requests_beyond_the_preset_are_exact(variation, name):
    reference, native = variation(name)
    assert reference.names() == native.names()
    assert failing(reference, native) == []
    for ref in reference:
        assert native[ref.name].meta == ref.meta, ref.name


def test_audio_guidance_falls_back_to_video_like_the_official_call(variation):
    reference, native = variation("audio_fallback")
    # The reference meta holds the official pipeline's own resolved properties.
    audio, video = reference["audio_latents_step_000"].meta, reference["latents_step_000"].meta
    assert {k: audio[k] for k in ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")} == \
           {k: video[k] for k in ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")}
    assert native["audio_latents_step_000"].meta == audio


def test_no_guidance_skips_the_negative_prompt_on_both_sides(variation):
    reference, native = variation("no_guidance")
    assert "negative_prompt_embeds" not in reference and "negative_prompt_embeds" not in native
    assert native["connector_prompt_embeds"].tensor.shape[0] == 1


# ---- fault localisation: a wrong weight in converted/ shows first where it enters ---------
def corrupt(model_copy, module: str, key: str) -> None:
    folder = model_copy / "converted" / module
    path = next(folder.glob("*.safetensors"))
    state = load_file(str(path))
    state[key] = state[key] + 0.05
    save_file(state, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("module, key, first, still_exact", [
    ("text_encoder", "language_model.model.layers.1.mlp.down_proj.weight", "prompt_embeds", []),
    ("transformer", "proj_in.weight", "latents_step_000", TEXT + ["initial_latents", "audio_initial_latents"]),
    ("vae", "decoder.conv_out.conv.weight", "frames", TEXT + VIDEO[:-1] + AUDIO),
])
def test_a_wrong_weight_is_found_where_it_enters(family, official_pipe, model_dir, model_copy, module, key, first,
                                                 still_exact):
    corrupt(model_copy, module, key)
    reference, native = run_both(family, official_pipe, model_dir, native_dir=model_copy)
    bad = failing(reference, native)
    assert bad and bad[0] == first
    assert not set(still_exact) & set(bad)


@pytest.mark.parametrize("module, key, first", [
    ("audio_vae", "decoder.conv_out.conv.weight", "mel"),
    ("vocoder", "conv_out.weight", "waveform"),
])
def test_an_audio_only_fault_shows_in_audio_and_leaves_video_exact(family, official_pipe, model_dir, model_copy,
                                                                    module, key, first):
    corrupt(model_copy, module, key)
    reference, native = run_both(family, official_pipe, model_dir, native_dir=model_copy)
    bad = failing(reference, native)
    assert bad[0] == first and set(bad) <= set(AUDIO)
    assert not set(TEXT + VIDEO) & set(bad)


# ---- goldens: blessed by `workbench bless ltx2` in another process ------------------------
def test_native_matches_the_blessed_goldens(family, model_dir):
    golden, manifest = load_golden("ltx2", "tiny-ci")
    # The build in this process is byte-identical to the one bless made in its own process.
    assert manifest["model_dir_sha256"] == {side: tree_sha256(model_dir / side) for side in ("official", "converted")}
    native, _ = run_native(model_dir / "converted", family.sampling_params("tiny-ci"))
    assert golden.names() == native.names()
    assert failing(golden, native) == []
