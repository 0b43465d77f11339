"""LTX-2 presets (frozen data). Every default is checked against the official sources."""

from __future__ import annotations

from workbench.api.presets import InferencePreset
from workbench.api.workload import WorkloadType

# Stage overrides a user may set with `--override Stage.key=value`.
STAGE_SCHEMAS = {
    "JointDenoisingStage": {"progress": bool},
}

TINY_CI = InferencePreset(
    model_family="ltx2",
    name="tiny-ci",
    version=1,
    workload_type=WorkloadType.T2AV,
    description="Tiny random-init model for CPU and CI: 32x32, 9 frames at 24 fps, 3 steps, every guidance term on.",
    defaults={
        "prompt": "a drummer playing in the rain, cinematic",
        "negative_prompt": "low quality, blurred details",
        "height": 32, "width": 32, "num_frames": 9, "frame_rate": 24.0,
        "num_inference_steps": 3, "max_sequence_length": 16,
        # The official default [28] points past the tiny 2-block transformer: perturb its last block.
        "spatio_temporal_guidance_blocks": [1],
    },
    stage_schemas=STAGE_SCHEMAS,
)

LTX2_OFFICIAL = InferencePreset(
    model_family="ltx2",
    name="ltx2-official",
    version=1,
    workload_type=WorkloadType.T2AV,
    description="The official LTX2Pipeline example: 512x768, 121 frames at 24 fps, 30 steps, default guidance.",
    defaults={
        # pipeline_ltx2.py EXAMPLE_DOC_STRING: width=768, height=512, num_frames=121, frame_rate=24.0,
        # num_inference_steps=30, guidance_scale=3.0, and its prompt / negative prompt.
        "height": 512, "width": 768, "num_frames": 121, "frame_rate": 24.0, "num_inference_steps": 30,
        "guidance_scale": 3.0,
        "negative_prompt": "worst quality, inconsistent motion, blurry, jittery, distorted",
        "prompt": (
            "A woman with long brown hair and light skin smiles at another woman with long blonde hair. The woman "
            "with brown hair wears a black jacket and has a small, barely noticeable mole on her right cheek. The "
            "camera angle is a close-up, focused on the woman with brown hair's face. The lighting is warm and "
            "natural, likely from the setting sun, casting a soft glow on the scene. The scene appears to be "
            "real-life footage"),
        # Not set in the example, so the call signature's values apply (see config.LTX2_DEFAULTS).
    },
    stage_schemas=STAGE_SCHEMAS,
)

ALL_PRESETS = (TINY_CI, LTX2_OFFICIAL)
