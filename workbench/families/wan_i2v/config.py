"""Wan image-to-video family configuration: the official call defaults, each with where it was read."""

from __future__ import annotations

from dataclasses import replace

from workbench.api.family import Detector, FamilyConfig, Sourced
from workbench.api.workload import WorkloadType
from workbench.families.wan.config import WAN_FAST, video_media
from workbench.families.wan_i2v.pipeline import NativeWanI2VPipeline
from workbench.families.wan_i2v.presets import ALL_PRESETS

_CALL = "diffusers 0.42.1 pipelines/wan/pipeline_wan_i2v.py WanImageToVideoPipeline.__call__"

WAN_I2V_DEFAULTS = {
    "height": Sourced(480, f"{_CALL} signature (height: int = 480)"),
    "width": Sourced(832, f"{_CALL} signature (width: int = 832)"),
    "num_frames": Sourced(81, f"{_CALL} signature (num_frames: int = 81)"),
    "num_inference_steps": Sourced(50, f"{_CALL} signature (num_inference_steps: int = 50)"),
    "guidance_scale": Sourced(5.0, f"{_CALL} signature (guidance_scale: float = 5.0)"),
    "max_sequence_length": Sourced(512, f"{_CALL} signature (max_sequence_length: int = 512)"),
    "negative_prompt": Sourced("", "pipeline_wan_i2v.py encode_prompt: negative_prompt = negative_prompt or ''"),
    "fps": Sourced(16, "pipeline_wan_i2v.py EXAMPLE_DOC_STRING: export_to_video(output, 'output.mp4', fps=16)"),
}

# The native Wan DiT has no image cross-attention: I2V keeps the diffusers transformer in
# fast mode, with its own fused projections.
WAN_I2V_FAST = replace(WAN_FAST, module_classes={}, module_setup=(("transformer", "fuse_qkv_projections"),))

WAN_I2V = FamilyConfig(
    name="wan_i2v",
    workload=WorkloadType.I2V,
    pipeline_class=NativeWanI2VPipeline,
    official_pipeline="diffusers.WanImageToVideoPipeline",
    defaults=WAN_I2V_DEFAULTS,
    presets=tuple(ALL_PRESETS),
    default_preset="tiny-ci",
    detectors=(Detector(class_names=("NativeWanI2VPipeline", "WanImageToVideoPipeline"),
                        metadata={"boundary_ratio": lambda v: v is None}),),
    reference_module="workbench.families.wan_i2v.reference",
    media=video_media,
    output_kind="frames",
    description="Wan 2.1 image-to-video (UMT5 + CLIP vision encoders, Wan DiT with image cross-attention, Wan VAE)",
    fast=WAN_I2V_FAST,
)
