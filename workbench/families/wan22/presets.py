"""Wan 2.2 two-expert presets (frozen data). Every default is checked against the official sources."""

from __future__ import annotations

from workbench.api.presets import InferencePreset
from workbench.api.workload import WorkloadType
from workbench.families.wan.presets import OFFICIAL_NEGATIVE_PROMPT, STAGE_SCHEMAS

TINY_CI = InferencePreset(
    model_family="wan22_t2v",
    name="tiny-ci",
    version=1,
    workload_type=WorkloadType.T2V,
    description="Tiny random-init two-expert model for CPU and CI: 32x32, 9 frames, 4 steps "
                "(timesteps 999, 900 on the high-noise expert; 750, 500 on the low-noise one).",
    defaults={
        "prompt": "a cat walking in the rain, cinematic",
        "negative_prompt": "low quality, blurred details",
        "height": 32, "width": 32, "num_frames": 9, "fps": 8,
        "num_inference_steps": 4, "guidance_scale": 4.0, "guidance_scale_2": 3.0, "max_sequence_length": 16,
    },
    stage_schemas=STAGE_SCHEMAS,
)

WAN22_A14B_720P = InferencePreset(
    model_family="wan22_t2v",
    name="wan2.2-t2v-a14b-720p",
    version=1,
    workload_type=WorkloadType.T2V,
    description="Wan2.2-T2V-A14B at 720x1280, 81 frames, 40 steps, guidance 4.0 (high noise) / 3.0 (low noise).",
    defaults={
        # Wan-Video/Wan2.2 wan/configs/wan_t2v_A14B.py: sample_steps 40, sample_guide_scale (3.0, 4.0) as
        # (low noise, high noise); diffusers modular_pipelines/wan/denoise.py Wan22 guider 4.0 / guider_2 3.0.
        "num_inference_steps": 40, "guidance_scale": 4.0, "guidance_scale_2": 3.0,
        # generate.py default --size 1280*720 (width*height); shared_config.py frame_num 81, sample_fps 16.
        "height": 720, "width": 1280, "num_frames": 81, "fps": 16,
        # pipeline_wan.py __call__ max_sequence_length=512; negative prompt of the official example.
        "max_sequence_length": 512, "negative_prompt": OFFICIAL_NEGATIVE_PROMPT,
        "prompt": "A cat and a dog baking a cake together in a kitchen.",
        # boundary_ratio and flow_shift come from the model directory (model_index.json, scheduler_config.json).
    },
    stage_schemas=STAGE_SCHEMAS,
)

ALL_PRESETS = (TINY_CI, WAN22_A14B_720P)
