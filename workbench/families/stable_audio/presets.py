"""Stable Audio presets (frozen data). Every default is checked against the official sources."""

from __future__ import annotations

from workbench.api.presets import InferencePreset
from workbench.api.workload import WorkloadType

# Stage overrides a user may set with `--override Stage.key=value`. The official pipeline
# batches guidance ([uncond, cond] in one DiT call); the conditioning is laid out for that.
STAGE_SCHEMAS = {
    "DenoisingStage": {"cfg": ("batched",), "progress": bool},
}

TINY_CI = InferencePreset(
    model_family="stable_audio",
    name="tiny-ci",
    version=1,
    workload_type=WorkloadType.T2A,
    description="Tiny random-init model for CPU and CI: 2 s of stereo at 16 Hz (latents 3x16), 4 steps.",
    defaults={
        "prompt": "a drummer playing in the rain",
        "negative_prompt": "low quality, noisy",
        "audio_start_in_s": 0.0, "audio_end_in_s": 2.0,
        "num_inference_steps": 4, "guidance_scale": 7.0,
    },
    stage_schemas=STAGE_SCHEMAS,
)

STABLE_AUDIO_OPEN_10 = InferencePreset(
    model_family="stable_audio",
    name="stable-audio-open-1.0",
    version=1,
    workload_type=WorkloadType.T2A,
    description="stabilityai/stable-audio-open-1.0 (44.1 kHz stereo, up to 47.55 s): the official call defaults "
                "with the docstring example's prompts and 10 s window.",
    defaults={
        # pipeline_stable_audio.py __call__ signature: 100 steps, guidance 7.0, audio_start_in_s 0.0
        "num_inference_steps": 100, "guidance_scale": 7.0, "audio_start_in_s": 0.0,
        # EXAMPLE_DOC_STRING: audio_end_in_s=10.0, generator seed 0, these prompts (it also shows 200 steps)
        "audio_end_in_s": 10.0, "seed": 0,
        "prompt": "The sound of a hammer hitting a wooden surface.",
        "negative_prompt": "Low quality.",
    },
    stage_schemas=STAGE_SCHEMAS,
)

ALL_PRESETS = (TINY_CI, STABLE_AUDIO_OPEN_10)
