"""hunyuan_video family configuration: the official call defaults, each with where it was read.

Scaffolded by `workbench new-family hunyuan_video --workload T2V --like wan_t2v --official HunyuanVideoPipeline`:
DEFAULTS were read from the official `__call__` signature; check the body for defaults it
computes (e.g. None -> a model value) and say so in the source.
"""

from __future__ import annotations

import torch

from workbench.api.family import Detector, FamilyConfig, FastMode, Sourced
from workbench.api.workload import VideoMedia, WorkloadType

from .pipeline import NativeHunyuanVideoPipeline
from .presets import ALL_PRESETS

OFFICIAL_PIPELINE = "diffusers.HunyuanVideoPipeline"

# SamplingParam field -> Sourced(value, source), from the official __call__ signature.
DEFAULTS: dict[str, Sourced] = {
    'prompt': Sourced(None, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (prompt: str | list[str] = None)'),
    'negative_prompt': Sourced(None, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (negative_prompt: str | list[str] = None)'),
    'height': Sourced(720, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (height: int = 720)'),
    'width': Sourced(1280, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (width: int = 1280)'),
    'num_frames': Sourced(129, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (num_frames: int = 129)'),
    'num_inference_steps': Sourced(50, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (num_inference_steps: int = 50)'),
    'guidance_scale': Sourced(6.0, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (guidance_scale: float = 6.0)'),
    'max_sequence_length': Sourced(256, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (max_sequence_length: int = 256)'),
}

# Official request arguments that are not SamplingParam fields (declared in params.py):
# true_cfg_scale (float = 1.0)

def media(request) -> VideoMedia:
    """The media contract, read from the request (or the finished batch)."""
    return VideoMedia(height=request.height, width=request.width, num_frames=request.num_frames, fps=request.fps)


# Fast mode: bf16 for every model module, the official loaded in bf16. The official example
# (pipeline_hunyuan_video.py EXAMPLE_DOC_STRING) loads the transformer in bf16 and the rest in
# fp16; one reference dtype cannot express that mix, so both sides use bf16 (PORT_NOTES D002).
FAST = FastMode(
    module_dtypes={name: torch.bfloat16 for name in ('text_encoder', 'transformer', 'vae', 'text_encoder_2')},
    reference_dtype=torch.bfloat16,
)

HUNYUAN_VIDEO = FamilyConfig(
    name="hunyuan_video",
    workload=WorkloadType.T2V,
    pipeline_class=NativeHunyuanVideoPipeline,
    official_pipeline=OFFICIAL_PIPELINE,
    defaults=DEFAULTS,
    presets=tuple(ALL_PRESETS),
    default_preset="tiny-ci",
    detectors=(Detector(class_names=("NativeHunyuanVideoPipeline", "HunyuanVideoPipeline")),),
    reference_module=f"{__package__}.reference",
    media=media,
    output_kind="frames",
    description="HunyuanVideo text-to-video (Llama + CLIP text encoders, HunyuanVideo DiT, flow-match Euler, its 3D VAE)",
    fast=FAST,
)
