"""Wan family configuration: the official call defaults, each with where it was read."""

from __future__ import annotations

import torch

from workbench.api.family import Detector, FamilyConfig, FastMode, Sourced
from workbench.api.workload import VideoMedia, WorkloadType
from workbench.families.wan.pipeline import NativeWanPipeline
from workbench.families.wan.presets import ALL_PRESETS

_CALL = "diffusers 0.42.1 pipelines/wan/pipeline_wan.py WanPipeline.__call__"

WAN_T2V_DEFAULTS = {
    "height": Sourced(480, f"{_CALL} signature (height: int = 480)"),
    "width": Sourced(832, f"{_CALL} signature (width: int = 832)"),
    "num_frames": Sourced(81, f"{_CALL} signature (num_frames: int = 81)"),
    "num_inference_steps": Sourced(50, f"{_CALL} signature (num_inference_steps: int = 50)"),
    "guidance_scale": Sourced(5.0, f"{_CALL} signature (guidance_scale: float = 5.0)"),
    "max_sequence_length": Sourced(512, f"{_CALL} signature (max_sequence_length: int = 512)"),
    "negative_prompt": Sourced("", "pipeline_wan.py encode_prompt: negative_prompt = negative_prompt or ''"),
    "fps": Sourced(16, "pipeline_wan.py EXAMPLE_DOC_STRING: export_to_video(output, 'output.mp4', fps=16)"),
}


def video_media(batch) -> VideoMedia:
    """The media contract of a finished run (request fields as the pipeline used them)."""
    return VideoMedia(height=batch.height, width=batch.width, num_frames=batch.num_frames, fps=batch.fps)


# Fast mode: bf16 like the official GPU recipe (pipeline in bf16), the VAE decoded in bf16
# too (the official recipe keeps it fp32; the fast-mode frame tolerance checks the cost),
# both guidance branches in one batched call, the native DiT (workbench/components/
# wan_transformer.py: fused projections, fp32 RoPE without tables), cuDNN attention first.
WAN_FAST = FastMode(
    module_dtypes={"text_encoder": torch.bfloat16, "transformer": torch.bfloat16,
                   "transformer_2": torch.bfloat16, "vae": torch.bfloat16},
    module_classes={"transformer": ("workbench", "WanTransformer"), "transformer_2": ("workbench", "WanTransformer")},
    compile_modules=("transformer", "transformer_2"),
    stage_overrides=(("DenoisingStage", "cfg", "batched"),),
    reference_dtype=torch.bfloat16,
    reference_fp32_modules=("vae",),  # Wan docs: "VAE in torch.float32 for better decoding quality"
)

WAN_T2V = FamilyConfig(
    name="wan_t2v",
    workload=WorkloadType.T2V,
    pipeline_class=NativeWanPipeline,
    official_pipeline="diffusers.WanPipeline",
    defaults=WAN_T2V_DEFAULTS,
    presets=tuple(ALL_PRESETS),
    default_preset="tiny-ci",
    detectors=(Detector(class_names=("NativeWanPipeline", "WanPipeline"),
                        metadata={"boundary_ratio": lambda v: v is None}),),
    reference_module="workbench.families.wan.reference",
    media=video_media,
    output_kind="frames",
    description="Wan 2.1 text-to-video (UMT5 encoder, Wan DiT, Wan VAE, flow UniPC)",
    fast=WAN_FAST,
)
