"""The official reference: diffusers' `StableAudioPipeline`, built offline and run with stage capture.

`build_reference(out, scale)` writes `out/official` (diffusers `save_pretrained`) and
`out/converted` (the same files, with a manifest naming our native class).
`run_reference(official_dir, params)` runs the official pipeline and records the same
checkpoints the native pipeline records, in the same order.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from workbench.api.params import SamplingParam
from workbench.families.offline import load_official_pipeline, seeded, t5_tokenizer
from workbench.parity.capture import CaptureSet, as_tensor, step_checkpoint
from workbench.runtime.stages import first_output, model_timestep, timestep_value, watch_decode
from workbench.trace.context import set_step

OFFICIAL_CLASS = "StableAudioPipeline"
NATIVE_CLASS = "NativeStableAudioPipeline"

# Sizes: `tiny` for CPU/CI (offline_references.md: latents (1, 3, 16), 2 s of stereo at 16 Hz);
# `full` = stable-audio-open-1.0 (stable-audio-tools model_config.json as read by diffusers
# scripts/convert_stable_audio.py; the diffusers constructor defaults are the same numbers).
TRANSFORMER_SIZES = {
    "tiny": dict(sample_size=16, in_channels=3, num_layers=2, attention_head_dim=8, num_attention_heads=4,
                 num_key_value_attention_heads=2, out_channels=3, cross_attention_dim=16, time_proj_dim=8,
                 global_states_input_dim=8, cross_attention_input_dim=4),
    "full": dict(sample_size=1024, in_channels=64, num_layers=24, attention_head_dim=64, num_attention_heads=24,
                 num_key_value_attention_heads=12, out_channels=64, cross_attention_dim=768, time_proj_dim=256,
                 global_states_input_dim=1536, cross_attention_input_dim=768),
}
TEXT_ENCODER_SIZES = {
    "tiny": dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                 relative_attention_max_distance=16),
    # t5-base encoder
    "full": dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12, relative_attention_num_buckets=32,
                 relative_attention_max_distance=128),
}
VAE_SIZES = {
    "tiny": dict(encoder_hidden_size=6, downsampling_ratios=[1, 2], channel_multiples=[2, 4], decoder_channels=3,
                 decoder_input_channels=3, audio_channels=2, sampling_rate=16),
    "full": dict(),  # the constructor defaults: 44.1 kHz stereo, hop 2048, 64 latent channels
}
# conditioning_dim = transformer cross_attention_input_dim; seconds are conditioned on [0, 512].
PROJECTION_SIZES = {
    "tiny": dict(text_encoder_dim=32, conditioning_dim=4, min_value=0, max_value=512),
    "full": dict(text_encoder_dim=768, conditioning_dim=768, min_value=0, max_value=512),
}
# The official pipeline pads every prompt to `tokenizer.model_max_length`: always set it
# (t5-base `max_length` 128 in stable-audio-open-1.0).
TOKENIZER_MAX_LENGTH = {"tiny": 32, "full": 128}
# CosineDPMSolverMultistepScheduler docstring: sigma_min 0.3 / sigma_max 500 (its defaults)
# "set in Stable Audio Open"; v-prediction, second order, exponential sigmas.
SCHEDULER_CONFIG = dict(solver_order=2, prediction_type="v_prediction", sigma_data=1.0,
                        sigma_schedule="exponential")


def build_official(scale: str = "tiny", dtype: torch.dtype = torch.float32):
    """The official diffusers pipeline from seeded random-init components."""
    from diffusers import (AutoencoderOobleck, CosineDPMSolverMultistepScheduler, StableAudioDiTModel,
                           StableAudioPipeline, StableAudioProjectionModel)
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_tokenizer(TOKENIZER_MAX_LENGTH[scale])
    seeded(0)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), feed_forward_proj="relu", dropout_rate=0.0,
                                           is_encoder_decoder=False, **TEXT_ENCODER_SIZES[scale])).to(dtype).eval()
    seeded(1)
    projection_model = StableAudioProjectionModel(**PROJECTION_SIZES[scale]).to(dtype).eval()
    seeded(2)
    transformer = StableAudioDiTModel(**TRANSFORMER_SIZES[scale]).to(dtype).eval()
    seeded(3)
    vae = AutoencoderOobleck(**VAE_SIZES[scale]).eval()
    scheduler = CosineDPMSolverMultistepScheduler(**SCHEDULER_CONFIG)
    return StableAudioPipeline(vae=vae, text_encoder=text_encoder, projection_model=projection_model,
                               tokenizer=tokenizer, transformer=transformer, scheduler=scheduler)


def build_reference(out: Path, scale: str = "tiny") -> Path:
    """Write `out/official` and `out/converted` (byte-identical across processes)."""
    from workbench.families.conversion import write_converted

    pipe = build_official(scale)
    pipe.save_pretrained(out / "official", safe_serialization=True)
    write_converted(out / "official", out / "converted", NATIVE_CLASS)
    return out


def load_official(official_dir: Path, device: torch.device, dtype: torch.dtype | None = None,
                  fp32_modules: tuple[str, ...] = ()):
    return load_official_pipeline("StableAudioPipeline", official_dir, device, dtype, fp32_modules)


def run_reference(official_dir: Path, params: SamplingParam, device: torch.device = torch.device("cpu"),
                  pipe=None) -> tuple[CaptureSet, torch.Tensor]:
    """Run the official pipeline with `params`; return its checkpoints and the waveform [B, C, T].

    The official pipeline exposes its intermediates only through the legacy per-step
    callback, so the conditioning is read by wrapping `encode_prompt` / `encode_duration`
    and the transformer's first call, and the initial noise by wrapping `prepare_latents`.
    """
    pipe = pipe or load_official(official_dir, device)
    seen: dict = {"steps": []}
    encode_prompt, encode_duration, prepare_latents = pipe.encode_prompt, pipe.encode_duration, pipe.prepare_latents

    def capture_prompt(*args, **kwargs):
        seen["text"] = encode_prompt(*args, **kwargs)  # projected; [negative; prompt] when both are encoded
        return seen["text"]

    def capture_duration(*args, **kwargs):
        seen["seconds"] = encode_duration(*args, **kwargs)
        return seen["seconds"]

    def capture_initial(*args, **kwargs):
        seen["initial_latents"] = prepare_latents(*args, **kwargs).clone()
        return seen["initial_latents"]

    def capture_transformer_inputs(module, args, kwargs):
        seen.setdefault("encoder_hidden_states", kwargs["encoder_hidden_states"].clone())
        seen.setdefault("global_hidden_states", kwargs["global_hidden_states"].clone())
        seen.setdefault("rotary_embedding", as_tensor(kwargs["rotary_embedding"]).clone())

    calls: list = []
    guided: list = []

    def on_denoiser_call(module, args, kwargs, output):
        calls.append((model_timestep(args, kwargs), first_output(output)))

    scheduler_class = type(pipe.scheduler)
    scheduler_step = scheduler_class.step

    @functools.wraps(scheduler_step)  # the official reads step's signature (generator)
    def step_recording_guided(self, model_output, *args, **kwargs):
        guided.append(model_output.clone())
        return scheduler_step(self, model_output, *args, **kwargs)

    def on_step(i, t, latents):
        (timestep, noise), = calls  # one batched call per step: [uncond, cond] under guidance
        branches = ({"noise_cond": noise.chunk(2)[1], "noise_uncond": noise.chunk(2)[0]} if guidance
                    else {"noise_cond": noise})
        seen["steps"].append((i, t, latents.clone(), timestep_value(timestep).clone(),
                              {k: v.clone() for k, v in branches.items()}, guided[-1]))
        calls.clear()
        set_step(i + 1)  # the step context the native loop sets

    batch_size = 1 if isinstance(params.prompt, str) else len(params.prompt)
    guidance = params.guidance_scale > 1.0
    pipe.encode_prompt, pipe.encode_duration, pipe.prepare_latents = capture_prompt, capture_duration, capture_initial
    hook = pipe.transformer.register_forward_pre_hook(capture_transformer_inputs, with_kwargs=True)
    call_hook = pipe.transformer.register_forward_hook(on_denoiser_call, with_kwargs=True)
    undo_decode = watch_decode(pipe.vae, seen)
    scheduler_class.step = step_recording_guided
    set_step(0)
    try:
        waveform = pipe(prompt=params.prompt, negative_prompt=params.negative_prompt,
                        audio_start_in_s=params.audio_start_in_s, audio_end_in_s=params.audio_end_in_s,
                        num_inference_steps=params.num_inference_steps, guidance_scale=params.guidance_scale,
                        generator=torch.Generator("cpu").manual_seed(int(params.seed)), output_type="pt",
                        callback=on_step, callback_steps=1).audios
    finally:
        set_step(None)
        scheduler_class.step = scheduler_step
        undo_decode()
        call_hook.remove()
        hook.remove()
        del pipe.encode_prompt, pipe.encode_duration, pipe.prepare_latents

    capture = CaptureSet()
    text = seen["text"]
    capture.record("prompt_embeds", text[-batch_size:], "embedding")
    if guidance and params.negative_prompt is not None:
        capture.record("negative_prompt_embeds", text[:batch_size], "embedding")
    seconds_start, seconds_end = seen["seconds"]  # [start; start] under guidance with a negative prompt
    capture.record("seconds_start_hidden_states", seconds_start[:batch_size], "embedding")
    capture.record("seconds_end_hidden_states", seconds_end[:batch_size], "embedding")
    capture.record("text_audio_duration_embeds", seen["encoder_hidden_states"], "embedding")
    capture.record("audio_duration_embeds", seen["global_hidden_states"], "embedding")
    capture.record("rotary_embedding", seen["rotary_embedding"], "positional")
    capture.record("timesteps", pipe.scheduler.timesteps, "schedule")
    capture.record("sigmas", pipe.scheduler.sigmas, "schedule")
    capture.record("initial_latents", seen["initial_latents"], "latent")
    for i, t, latents, timestep, branches, noise in seen["steps"]:
        meta = {"timestep": float(t), "expert": "transformer", "guidance_scale": float(params.guidance_scale)}
        capture.record(step_checkpoint(i, what="timestep_input"), timestep, "timestep", step=i, meta=meta)
        for what, tensor in branches.items():
            capture.record(step_checkpoint(i, what=what), tensor, "noise", step=i, meta=meta)
        capture.record(step_checkpoint(i, what="noise_guided"), noise, "noise", step=i, meta=meta)
        capture.record(step_checkpoint(i), latents, "latent", step=i, meta=meta)
    capture.record("final_latents", seen["steps"][-1][2], "latent")
    capture.record("decoder_input", seen["decoder_input"], "latent")
    capture.record("decoder_output", seen["decoder_output"], "decoded")
    capture.record("waveform", waveform, "waveform")
    return capture, waveform
