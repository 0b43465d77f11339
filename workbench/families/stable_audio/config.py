"""Stable Audio family configuration: the official call defaults, each with where it was read."""

from __future__ import annotations

import torch

from workbench.api.family import Detector, FamilyConfig, FastMode, Sourced
from workbench.api.workload import AudioMedia, WorkloadType
from workbench.families.stable_audio.pipeline import NativeStableAudioPipeline
from workbench.families.stable_audio.presets import ALL_PRESETS
from workbench.runtime.batch import ForwardBatch

_FILE = "diffusers 0.42.1 pipelines/stable_audio/pipeline_stable_audio.py"
_CALL = f"{_FILE} StableAudioPipeline.__call__"

STABLE_AUDIO_DEFAULTS = {
    "num_inference_steps": Sourced(100, f"{_CALL} signature (num_inference_steps: int = 100)"),
    "guidance_scale": Sourced(7.0, f"{_CALL} signature (guidance_scale: float = 7.0)"),
    "audio_start_in_s": Sourced(0.0, f"{_CALL} signature (audio_start_in_s: float | None = 0.0)"),
    # None -> the model maximum, filled in by the pipeline from the loaded model.
    "audio_end_in_s": Sourced(None, f"{_CALL} step 0: audio_end_in_s = None -> max_audio_length_in_s = "
                                    "transformer.config.sample_size * vae.hop_length / vae.config.sampling_rate "
                                    "(47.55 s for stable-audio-open-1.0, the docstring's default)"),
    # None -> the unconditional branch is all zeros (not an encoded empty string).
    "negative_prompt": Sourced(None, f"{_CALL} signature (negative_prompt = None) and its 'In case of classifier "
                                     "free guidance without negative prompt' branch (torch.zeros_like)"),
    # Model facts, filled in from the VAE config: the pipeline neither resamples nor remixes.
    "sampling_rate": Sourced(None, f"{_FILE} EXAMPLE_DOC_STRING: sf.write(..., pipe.vae.sampling_rate)"),
    "channels": Sourced(None, f"{_CALL} prepare_latents(..., audio_channels=self.vae.config.audio_channels)"),
}


def audio_media(batch: ForwardBatch) -> AudioMedia:
    """What was written: the decoder may return a few samples less than the window asks for."""
    return AudioMedia(audio_seconds=batch.output.shape[-1] / batch.sampling_rate,
                      sampling_rate=batch.sampling_rate, channels=batch.output.shape[1])


# Fast mode follows the official example (pipeline_stable_audio.py EXAMPLE_DOC_STRING:
# `StableAudioPipeline.from_pretrained(..., torch_dtype=torch.float16)`); guidance is
# already batched as the official does.
STABLE_AUDIO_FAST = FastMode(
    module_dtypes={name: torch.float16 for name in ("text_encoder", "projection_model", "transformer", "vae")},
    reference_dtype=torch.float16,
)

STABLE_AUDIO = FamilyConfig(
    name="stable_audio",
    workload=WorkloadType.T2A,
    pipeline_class=NativeStableAudioPipeline,
    official_pipeline="diffusers.StableAudioPipeline",
    defaults=STABLE_AUDIO_DEFAULTS,
    presets=tuple(ALL_PRESETS),
    default_preset="tiny-ci",
    detectors=(Detector(class_names=("NativeStableAudioPipeline", "StableAudioPipeline")),),
    reference_module="workbench.families.stable_audio.reference",
    media=audio_media,
    output_kind="waveform",
    description="Stable Audio Open text-to-audio (T5 encoder, seconds conditioning, Stable Audio DiT, Oobleck VAE)",
    fast=STABLE_AUDIO_FAST,
)
