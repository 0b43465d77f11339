"""Wan 2.2 two-expert family configuration: the official call defaults, each with where it was read.

The pipeline class is the Wan 2.1 one (`NativeWanPipeline`); this config is chosen for a
model directory whose manifest has a `boundary_ratio` (the Wan 2.1 config requires null).
"""

from __future__ import annotations

from workbench.api.family import Detector, FamilyConfig, Sourced
from workbench.api.workload import WorkloadType
from workbench.families.wan.config import WAN_FAST, WAN_T2V_DEFAULTS, video_media
from workbench.families.wan.pipeline import NativeWanPipeline
from workbench.families.wan22.presets import ALL_PRESETS

WAN22_T2V_DEFAULTS = {
    **WAN_T2V_DEFAULTS,  # the same WanPipeline.__call__ signature
    "guidance_scale_2": Sourced(None, "diffusers 0.42.1 pipeline_wan.py __call__ (guidance_scale_2: float | None = "
                                      "None; with a boundary_ratio it takes guidance_scale's value)"),
    "fps": Sourced(16, "Wan-Video/Wan2.2 wan/configs/shared_config.py: sample_fps = 16"),
    # boundary_ratio is not a call argument: it is read from the model's model_index.json.
}

WAN22_T2V = FamilyConfig(
    name="wan22_t2v",
    workload=WorkloadType.T2V,
    pipeline_class=NativeWanPipeline,
    official_pipeline="diffusers.WanPipeline",
    defaults=WAN22_T2V_DEFAULTS,
    presets=tuple(ALL_PRESETS),
    default_preset="tiny-ci",
    detectors=(Detector(class_names=("NativeWanPipeline", "WanPipeline"),
                        metadata={"boundary_ratio": lambda v: v is not None}),),
    reference_module="workbench.families.wan22.reference",
    media=video_media,
    output_kind="frames",
    description="Wan 2.2 text-to-video, two experts switched at boundary_ratio (UMT5, 2x Wan DiT, Wan VAE, flow UniPC)",
    fast=WAN_FAST,
)
