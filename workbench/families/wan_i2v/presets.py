"""Wan image-to-video presets (frozen data). Every default is checked against the official sources."""

from __future__ import annotations

from workbench.api.presets import InferencePreset
from workbench.api.workload import WorkloadType
from workbench.families.offline import gradient_image
from workbench.families.wan.presets import OFFICIAL_NEGATIVE_PROMPT, STAGE_SCHEMAS

TINY_CI = InferencePreset(
    model_family="wan_i2v",
    name="tiny-ci",
    version=1,
    workload_type=WorkloadType.I2V,
    description="Tiny random-init model for CPU and CI: a 48x40 gradient image to 32x32, 9 frames, 3 steps.",
    defaults={
        "prompt": "a red fox running on a snowy hill, cinematic",
        "negative_prompt": "low quality, blurred details",
        "image": gradient_image(48, 40),
        "height": 32, "width": 32, "num_frames": 9, "fps": 8,
        "num_inference_steps": 3, "guidance_scale": 5.0,
        # The transformer's image cross-attention assumes 512 text tokens (transformer_wan.py).
        "max_sequence_length": 512,
    },
    stage_schemas=STAGE_SCHEMAS,
)

WAN21_I2V_14B_480P = InferencePreset(
    model_family="wan_i2v",
    name="wan2.1-i2v-14b-480p",
    version=1,
    workload_type=WorkloadType.I2V,
    description="Wan2.1-I2V-14B-480P at 480x832, 81 frames (official example settings); give the image with --image.",
    defaults={
        # pipeline_wan_i2v.py __call__ defaults: 480x832, 81 frames, 50 steps, guidance 5.0, max_sequence_length 512.
        "height": 480, "width": 832, "num_frames": 81, "num_inference_steps": 50, "guidance_scale": 5.0,
        "max_sequence_length": 512,
        # Wan-Video/Wan2.1 generate.py: sample_shift 3.0 for i2v at 480*832 (diffusers
        # convert_wan_to_diffusers.py ships flow_shift 3.0 for Wan-I2V-14B-480p); EXAMPLE_DOC_STRING fps=16.
        "flow_shift": 3.0, "fps": 16,
        "negative_prompt": OFFICIAL_NEGATIVE_PROMPT,
        # pipeline_wan_i2v.py EXAMPLE_DOC_STRING prompt
        "prompt": ("An astronaut hatching from an egg, on the surface of the moon, the darkness and depth of space "
                   "realised in the background. High quality, ultrarealistic detail and breath-taking movie-like "
                   "camera shot."),
    },
    stage_schemas=STAGE_SCHEMAS,
)

ALL_PRESETS = (TINY_CI, WAN21_I2V_14B_480P)
