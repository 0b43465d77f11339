"""hunyuan_video presets (frozen data). Every default is a SamplingParam field or one params.py declares."""

from __future__ import annotations

from . import params  # noqa: F401  (declares the family's request fields first)

from workbench.api.presets import InferencePreset
from workbench.api.workload import WorkloadType

# Stage overrides a user may set with `--override Stage.key=value`.
STAGE_SCHEMAS = {"DenoisingStage": {"cfg": ("sequential",), "progress": bool}}

TINY_CI = InferencePreset(
    model_family="hunyuan_video",
    name="tiny-ci",
    version=1,
    workload_type=WorkloadType.T2V,
    description="Tiny random-init model for CPU and CI: 32x32, 9 frames (latents 16x3x4x4), 3 steps, true CFG on.",
    defaults={
        'prompt': 'a cat walking in the rain, cinematic',
        'negative_prompt': 'low quality, blurred details',
        'height': 32,
        'width': 32,
        'num_frames': 9,
        'fps': 15,   # pipeline_hunyuan_video.py EXAMPLE_DOC_STRING: export_to_video(output, "output.mp4", fps=15)
        'num_inference_steps': 3,
        'guidance_scale': 6.0,
        'true_cfg_scale': 3.0,   # both branches run (the official default 1.0 runs one)
        # the template tail left after the 95-token crop is 19 tokens with the tiny tokenizer
        'max_sequence_length': 48,
    },
    stage_schemas=STAGE_SCHEMAS,
)

ALL_PRESETS = (TINY_CI,)
