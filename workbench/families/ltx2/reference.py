"""The official reference: diffusers' `LTX2Pipeline`, built offline and run with stage capture.

`build_reference(out, scale)` writes `out/official` (diffusers `save_pretrained`) and
`out/converted` (the same files, with a manifest naming our native class).
`run_reference(official_dir, params)` runs the official pipeline and records the same
checkpoints the native pipeline records, in the same order: prompt embeddings, connector
outputs, both initial latents, schedule, both latents after every step, both final latents,
frames, mel spectrogram, waveform.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from workbench.api.params import SamplingParam
from workbench.errors import ParameterError
from workbench.families.offline import gemma_tokenizer, load_official_pipeline, seeded
from workbench.families.ltx2.stages import real_token_rows
from workbench.parity.capture import CaptureSet, step_checkpoint
from workbench.runtime.stages import model_timestep, timestep_value, watch_decode
from workbench.trace.context import set_step

OFFICIAL_CLASS = "LTX2Pipeline"
NATIVE_CLASS = "NativeLTX2Pipeline"

# Tiny sizes for CPU/CI (offline_references.md, LTX-2 section). The full-size model (Gemma 3
# 12B, a 48-block DiT) cannot be random-initialised on the CPU machines this runs on.
GEMMA_TEXT = dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=16, sliding_window=8,
                  layer_types=["sliding_attention", "full_attention"])
# Gemma3ForConditionalGeneration requires a vision tower; LTX-2 never calls it.
GEMMA_VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=8,
                    patch_size=2)
CONNECTORS = dict(caption_channels=32, text_proj_in_factor=3,  # Gemma layers + 1 (the embeddings)
                  video_connector_num_attention_heads=4, video_connector_attention_head_dim=8,
                  video_connector_num_layers=1, video_connector_num_learnable_registers=8,
                  audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8,
                  audio_connector_num_layers=1, audio_connector_num_learnable_registers=8, rope_type="split")
TRANSFORMER = dict(in_channels=4, out_channels=4, patch_size=1, patch_size_t=1, num_attention_heads=2,
                   attention_head_dim=8, cross_attention_dim=16, audio_in_channels=4, audio_out_channels=4,
                   audio_num_attention_heads=2, audio_attention_head_dim=4, audio_cross_attention_dim=8,
                   num_layers=2, caption_channels=32, perturbed_attn=True)
# One block each side: 2x in time and space. decoder_causal=False as in the released LTX-2 VAE
# (diffusers scripts/convert_ltx2_to_diffusers.py, version "2.0").
VIDEO_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,),
                 decoder_block_out_channels=(8,), layers_per_block=(1, 1), decoder_layers_per_block=(1, 1),
                 spatio_temporal_scaling=(True,), decoder_spatio_temporal_scaling=(True,),
                 decoder_inject_noise=(False, False), downsample_type=("spatiotemporal",),
                 upsample_type=("spatiotemporal",), upsample_residual=(False,), upsample_factor=(1,), patch_size=1,
                 patch_size_t=1, decoder_causal=False)
# Latent statistics of the tiny VAEs (issue 16 item 5): the constructors' identity statistics
# (mean 0, std 1, scaling 1.0) make a missing or misordered denormalisation invisible, so the tiny
# build draws its own from a fixed seed: mean ~ N(0, 0.5^2), std in [0.5, 1.5), scaling 0.75.
LATENT_STATISTICS_SEED = 6
VIDEO_SCALING_FACTOR = 0.75


def draw_latent_statistics(vae, generator: torch.Generator) -> None:
    """Non-identity `latents_mean` / `latents_std` buffers (saved with the weights)."""
    with torch.no_grad():
        vae.latents_mean.copy_(0.5 * torch.randn(vae.latents_mean.shape, generator=generator))
        vae.latents_std.copy_(0.5 + torch.rand(vae.latents_std.shape, generator=generator))


# ch_mult (1, 1, 1), not (1,): with one level the decoder never upsamples.
AUDIO_VAE = dict(base_channels=4, output_channels=2, ch_mult=(1, 1, 1), num_res_blocks=1, in_channels=2,
                 latent_channels=2, mel_bins=8, sample_rate=16000, mel_hop_length=160)
VOCODER = dict(in_channels=16,  # audio VAE output channels x mel bins
               hidden_channels=32, out_channels=2, upsample_kernel_sizes=[4, 4], upsample_factors=[2, 2],
               resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]], output_sampling_rate=16000)
# LTX-2's scheduler_config.json: exponential dynamic shift with mu from the video token count,
# stretched to end at 0.1 (mirrored in diffusers' tiny LTX-2 test pipeline builder).
SCHEDULER = dict(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
                 max_image_seq_len=4096, shift_terminal=0.1, time_shift_type="exponential")

# LTX2Pipeline.__call__ keywords that are SamplingParam fields of the same name.
CALL_KWARGS = ("prompt", "negative_prompt", "height", "width", "num_frames", "frame_rate", "motion_speed",
               "num_inference_steps", "guidance_scale", "stg_scale", "modality_scale", "guidance_rescale",
               "audio_guidance_scale", "audio_stg_scale", "audio_modality_scale", "audio_guidance_rescale",
               "spatio_temporal_guidance_blocks", "use_cross_timestep", "max_sequence_length")
# Loop locals the step callback also reads (LTX2Pipeline only lists latents and prompt embeds).
EXTRA_CALLBACK_TENSORS = ("audio_latents", "connector_prompt_embeds", "connector_audio_prompt_embeds")


def build_official(scale: str = "tiny"):
    """The official diffusers pipeline from seeded random-init components."""
    from diffusers import (AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           LTX2Pipeline, LTX2VideoTransformer3DModel)
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    if scale != "tiny":
        raise ParameterError(f"--scale {scale!r}: LTX-2 has only the tiny CPU build (a random-init Gemma 3 12B "
                             "does not fit this machine)")
    tokenizer = gemma_tokenizer()
    seeded(0)
    text_encoder = Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=GEMMA_TEXT, vision_config=GEMMA_VISION, mm_tokens_per_image=4)).eval()
    seeded(1)
    connectors = LTX2TextConnectors(**CONNECTORS).eval()
    seeded(2)
    transformer = LTX2VideoTransformer3DModel(**TRANSFORMER).eval()
    seeded(3)
    vae = AutoencoderKLLTX2Video(**VIDEO_VAE, scaling_factor=VIDEO_SCALING_FACTOR).eval()
    seeded(4)
    audio_vae = AutoencoderKLLTX2Audio(**AUDIO_VAE).eval()
    statistics = torch.Generator("cpu").manual_seed(LATENT_STATISTICS_SEED)
    draw_latent_statistics(vae, statistics)
    draw_latent_statistics(audio_vae, statistics)
    seeded(5)
    vocoder = LTX2Vocoder(**VOCODER).eval()
    return LTX2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), vae=vae, audio_vae=audio_vae,
                        text_encoder=text_encoder, tokenizer=tokenizer, connectors=connectors,
                        transformer=transformer, vocoder=vocoder)


def build_reference(out: Path, scale: str = "tiny") -> Path:
    """Write `out/official` and `out/converted` (byte-identical across processes)."""
    from workbench.families.conversion import write_converted

    pipe = build_official(scale)
    pipe.save_pretrained(out / "official", safe_serialization=True)
    write_converted(out / "official", out / "converted", NATIVE_CLASS)
    return out


def load_official(official_dir: Path, device: torch.device, dtype: torch.dtype | None = None,
                  fp32_modules: tuple[str, ...] = ()):
    """The saved official pipeline, with the loop locals the step callback also reads."""
    pipe = load_official_pipeline(OFFICIAL_CLASS, official_dir, device, dtype, fp32_modules)
    pipe._callback_tensor_inputs = [*type(pipe)._callback_tensor_inputs, *EXTRA_CALLBACK_TENSORS]
    return pipe


def _guidance_meta(pipe, stream: str) -> dict:
    """A stream's guidance terms as the official call resolved them (its own properties)."""
    prefix = "audio_" if stream == "audio" else ""
    return {name: getattr(pipe, prefix + name)
            for name in ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")}


def run_reference(official_dir: Path, params: SamplingParam, device: torch.device = torch.device("cpu"),
                  pipe=None) -> tuple[CaptureSet, tuple[torch.Tensor, torch.Tensor]]:
    """Run the official pipeline with `params`; return its checkpoints and (frames [B,F,H,W,3], waveform [B,C,T])."""
    pipe = pipe or load_official(official_dir, device)
    seen: dict = {"steps": []}
    latent_frames = (params.num_frames - 1) // pipe.vae_temporal_compression_ratio + 1
    latent_grid = (latent_frames, params.height // pipe.vae_spatial_compression_ratio,
                   params.width // pipe.vae_spatial_compression_ratio)
    mel_bins = pipe.audio_vae.config.mel_bins // pipe.audio_vae_mel_compression_ratio

    def unpack_video(tokens):
        return pipe._unpack_latents(tokens, *latent_grid, pipe.transformer_spatial_patch_size,
                                    pipe.transformer_temporal_patch_size)

    def unpack_audio(tokens):
        return pipe._unpack_audio_latents(tokens, tokens.shape[1], num_mel_bins=mel_bins)

    def recording(name, method, transform=lambda x: x):
        def wrapped(*args, **kwargs):
            result = method(*args, **kwargs)
            seen[name] = transform(result)
            return result

        return wrapped

    # Per step: each transformer pass (told apart by its keywords, as the official loop calls them),
    # the timestep of the first, and the guided velocity each stream's scheduler receives.
    passes = {"video": {}, "audio": {}}
    guided: dict = {}
    timestep_input: list = []

    def on_transformer_call(module, args, kwargs, output):
        if kwargs.get("isolate_modalities"):
            names = ("noise_isolated",)
        elif kwargs.get("spatio_temporal_guidance_blocks") is not None:
            names = ("noise_stg",)
        else:
            timestep_input.append(timestep_value(model_timestep(args, kwargs)).clone())
            seen.setdefault("video_coords", kwargs["video_coords"].clone())
            seen.setdefault("audio_coords", kwargs["audio_coords"].clone())
            names = ("noise_uncond", "noise_cond") if pipe.do_classifier_free_guidance else ("noise_cond",)
        for stream, velocity in zip(("video", "audio"), output[:2]):
            velocity = velocity.float()
            parts = velocity.chunk(2) if len(names) == 2 else (velocity,)
            passes[stream].update({n: p.clone() for n, p in zip(names, parts)})

    scheduler_class = type(pipe.scheduler)
    scheduler_step = scheduler_class.step

    @functools.wraps(scheduler_step)
    def step_recording_guided(self, model_output, *args, **kwargs):
        guided["video" if self is pipe.scheduler else "audio"] = model_output.clone()
        return scheduler_step(self, model_output, *args, **kwargs)

    order = ("timestep_input", "noise_cond", "noise_uncond", "noise_stg", "noise_isolated", "noise_guided")

    def step_tensors(stream: str) -> dict:
        found = dict(passes[stream], noise_guided=guided[stream])
        if stream == "video" and timestep_input:
            found["timestep_input"] = timestep_input[0]
        return {name: found[name] for name in order if name in found}

    def on_step_end(pipeline, i, t, tensors):
        if i == 0:
            seen["connector_prompt_embeds"] = tensors["connector_prompt_embeds"]
            seen["connector_audio_prompt_embeds"] = tensors["connector_audio_prompt_embeds"]
        seen["steps"].append((i, t, unpack_video(tensors["latents"]), unpack_audio(tensors["audio_latents"]),
                              _guidance_meta(pipeline, "video"), _guidance_meta(pipeline, "audio"),
                              step_tensors("video"), step_tensors("audio")))
        for stream in passes.values():
            stream.clear()
        timestep_input.clear()
        set_step(i + 1)  # the step context the native loop sets
        return {}

    def on_vocoder(module, args, output):
        seen["mel"] = args[0].clone()

    kwargs = {name: getattr(params, name) for name in CALL_KWARGS}
    kwargs.update(generator=torch.Generator("cpu").manual_seed(int(params.seed)), output_type="np",
                  callback_on_step_end=on_step_end,
                  callback_on_step_end_tensor_inputs=["latents", *EXTRA_CALLBACK_TENSORS])
    pipe.encode_prompt = recording("prompts", pipe.encode_prompt)
    pipe.prepare_latents = recording("initial_latents", pipe.prepare_latents, lambda x: unpack_video(x).clone())
    pipe.prepare_audio_latents = recording("audio_initial_latents", pipe.prepare_audio_latents,
                                           lambda x: unpack_audio(x).clone())
    hook = pipe.vocoder.register_forward_hook(on_vocoder)
    call_hook = pipe.transformer.register_forward_hook(on_transformer_call, with_kwargs=True)
    undo_decoders = [watch_decode(pipe.vae, seen), watch_decode(pipe.audio_vae, seen, prefix="audio_")]
    scheduler_class.step = step_recording_guided
    set_step(0)
    try:
        out = pipe(**kwargs)
    finally:
        set_step(None)
        scheduler_class.step = scheduler_step
        for undo in undo_decoders:
            undo()
        call_hook.remove()
        del pipe.encode_prompt, pipe.prepare_latents, pipe.prepare_audio_latents
        hook.remove()
    frames, waveform = torch.from_numpy(out.frames), out.audio

    capture = CaptureSet()
    prompt_embeds, mask, negative_prompt_embeds, negative_mask = seen["prompts"]
    capture.record("prompt_embeds", real_token_rows(prompt_embeds, mask), "embedding")
    if negative_prompt_embeds is not None:
        capture.record("negative_prompt_embeds", real_token_rows(negative_prompt_embeds, negative_mask), "embedding")
    capture.record("connector_prompt_embeds", seen["connector_prompt_embeds"], "embedding")
    capture.record("connector_audio_prompt_embeds", seen["connector_audio_prompt_embeds"], "embedding")
    capture.record("initial_latents", seen["initial_latents"], "latent")
    capture.record("audio_initial_latents", seen["audio_initial_latents"], "latent")
    capture.record("timesteps", pipe.scheduler.timesteps, "schedule")
    capture.record("sigmas", pipe.scheduler.sigmas, "schedule")
    capture.record("video_coords", seen["video_coords"], "positional")
    capture.record("audio_coords", seen["audio_coords"], "positional")
    for i, t, video, audio, video_meta, audio_meta, video_tensors, audio_tensors in seen["steps"]:
        for stream, latents, meta, tensors in (("", video, video_meta, video_tensors),
                                               ("audio", audio, audio_meta, audio_tensors)):
            meta = {"timestep": float(t), **meta}
            for what, tensor in tensors.items():
                capture.record(step_checkpoint(i, stream, what), tensor, "timestep" if what == "timestep_input"
                               else "noise", step=i, meta=meta)
            capture.record(step_checkpoint(i, stream), latents, "latent", step=i, meta=meta)
    capture.record("final_latents", seen["steps"][-1][2], "latent")
    capture.record("audio_final_latents", seen["steps"][-1][3], "latent")
    capture.record("decoder_input", seen["decoder_input"], "latent")
    capture.record("decoder_output", seen["decoder_output"], "decoded")
    capture.record("frames", frames, "frames")
    capture.record("audio_decoder_input", seen["audio_decoder_input"], "latent")
    capture.record("mel", seen["mel"], "mel")
    capture.record("waveform", waveform, "waveform")
    return capture, (frames, waveform)
