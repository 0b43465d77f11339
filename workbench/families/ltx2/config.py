"""LTX-2 family configuration: the official call defaults, each with where it was read."""

from __future__ import annotations

import torch

from workbench.api.family import Detector, FamilyConfig, FastMode, Sourced
from workbench.api.workload import AudioMedia, JointMedia, VideoMedia, WorkloadType
from workbench.families.ltx2.pipeline import NativeLTX2Pipeline
from workbench.families.ltx2.presets import ALL_PRESETS

_FILE = "diffusers 0.42.1 pipelines/ltx2/pipeline_ltx2.py"
_CALL = f"{_FILE} LTX2Pipeline.__call__ signature"

LTX2_DEFAULTS = {
    "height": Sourced(512, f"{_CALL} (height: int = 512), line 935"),
    "width": Sourced(768, f"{_CALL} (width: int = 768), line 936"),
    "num_frames": Sourced(121, f"{_FILE} line 1212: num_frames = 121 when None and no duration_head"),
    "frame_rate": Sourced(24.0, f"{_CALL} (frame_rate: float = 24.0), line 940"),
    "motion_speed": Sourced(1.0, f"{_CALL} (motion_speed: float = 1.0), line 941"),
    "num_inference_steps": Sourced(30, f"{_CALL} (num_inference_steps: int = 30), line 942"),
    "guidance_scale": Sourced(3.0, f"{_CALL} (guidance_scale: float = 3.0), line 945"),
    "stg_scale": Sourced(1.0, f"{_CALL} (stg_scale: float = 1.0), line 946"),
    "modality_scale": Sourced(3.0, f"{_CALL} (modality_scale: float = 3.0), line 947"),
    "guidance_rescale": Sourced(0.7, f"{_CALL} (guidance_rescale: float = 0.7), line 948"),
    # Each audio_* term falls back to its video term when None or 0 (lines 1157-1160: `x or video`).
    "audio_guidance_scale": Sourced(7.0, f"{_CALL} (audio_guidance_scale: float | None = 7.0), line 949"),
    "audio_stg_scale": Sourced(1.0, f"{_CALL} (audio_stg_scale: float | None = 1.0), line 950"),
    "audio_modality_scale": Sourced(3.0, f"{_CALL} (audio_modality_scale: float | None = 3.0), line 951"),
    "audio_guidance_rescale": Sourced(0.7, f"{_CALL} (audio_guidance_rescale: float | None = 0.7), line 952"),
    "spatio_temporal_guidance_blocks": Sourced([28], f"{_CALL} (spatio_temporal_guidance_blocks = [28]), line 953"),
    "use_cross_timestep": Sourced(True, f"{_CALL} (use_cross_timestep: bool = True), line 965"),
    "max_sequence_length": Sourced(1024, f"{_CALL} (max_sequence_length: int = 1024), line 976"),
    "negative_prompt": Sourced("", f"{_FILE} encode_prompt line 427: negative_prompt = negative_prompt or ''"),
}


def joint_media(batch) -> JointMedia:
    """Both streams of a finished request (a ForwardBatch: the audio rate and channels are the
    vocoder's, the audio length is what the vocoder produced). Muxed unless the writer pairs."""
    waveform = batch.extra["waveform"]
    return JointMedia(
        video=VideoMedia(height=batch.height, width=batch.width, num_frames=batch.num_frames, fps=batch.frame_rate),
        audio=AudioMedia(audio_seconds=waveform.shape[-1] / batch.sampling_rate, sampling_rate=batch.sampling_rate,
                         channels=batch.channels),
        muxed=True)


# Fast mode: bf16 everywhere, as the official example loads the pipeline
# (`LTX2Pipeline.from_pretrained(..., torch_dtype=torch.bfloat16)`, pipeline_ltx2.py EXAMPLE_DOC_STRING).
# Guidance is already batched ([uncond, cond] in one call) in the official loop.
LTX2_FAST = FastMode(
    module_dtypes={name: torch.bfloat16
                   for name in ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")},
    compile_modules=("transformer",),
    reference_dtype=torch.bfloat16,
)

LTX2_T2AV = FamilyConfig(
    name="ltx2",
    workload=WorkloadType.T2AV,
    pipeline_class=NativeLTX2Pipeline,
    official_pipeline="diffusers.LTX2Pipeline",
    defaults=LTX2_DEFAULTS,
    presets=tuple(ALL_PRESETS),
    default_preset="tiny-ci",
    detectors=(Detector(class_names=("NativeLTX2Pipeline", "LTX2Pipeline")),),
    reference_module="workbench.families.ltx2.reference",
    media=joint_media,
    output_kind="joint",
    description="LTX-2 joint audio-video (Gemma 3 encoder, text connectors, AV DiT, video VAE, audio VAE, vocoder)",
    fast=LTX2_FAST,
)
