"""Wan 2.1 presets (frozen data). Every default is checked against the official sources."""

from __future__ import annotations

from workbench.api.presets import InferencePreset
from workbench.api.workload import WorkloadType

# Stage overrides a user may set with `--override Stage.key=value`.
STAGE_SCHEMAS = {
    "DenoisingStage": {"cfg": ("sequential", "batched"), "progress": bool},
}

# The English negative prompt of the official example (pipeline_wan.py EXAMPLE_DOC_STRING).
OFFICIAL_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, "
    "messy background, three legs, many people in the background, walking backwards"
)

TINY_CI = InferencePreset(
    model_family="wan_t2v",
    name="tiny-ci",
    version=1,
    workload_type=WorkloadType.T2V,
    description="Tiny random-init model for CPU and CI: 32x32, 9 frames, 3 steps.",
    defaults={
        "prompt": "a cat walking in the rain, cinematic",
        "negative_prompt": "low quality, blurred details",
        "height": 32, "width": 32, "num_frames": 9, "fps": 8,
        "num_inference_steps": 3, "guidance_scale": 5.0, "max_sequence_length": 16,
    },
    stage_schemas=STAGE_SCHEMAS,
)

WAN21_13B_480P = InferencePreset(
    model_family="wan_t2v",
    name="wan2.1-1.3b-480p",
    version=1,
    workload_type=WorkloadType.T2V,
    description="Wan2.1-T2V-1.3B at 480x832, 81 frames (official example settings, flow shift 3.0 for 480P).",
    defaults={
        # pipeline_wan.py __call__ defaults: 480x832, 81 frames, 50 steps, guidance 5.0, max_sequence_length 512
        "height": 480, "width": 832, "num_frames": 81, "num_inference_steps": 50, "guidance_scale": 5.0,
        "max_sequence_length": 512,
        # EXAMPLE_DOC_STRING: flow_shift = 5.0 for 720P, 3.0 for 480P; export_to_video(..., fps=16)
        "flow_shift": 3.0, "fps": 16,
        "negative_prompt": OFFICIAL_NEGATIVE_PROMPT,
        "prompt": "A cat and a dog baking a cake together in a kitchen.",
    },
    stage_schemas=STAGE_SCHEMAS,
)

ALL_PRESETS = (TINY_CI, WAN21_13B_480P)
