"""Seeded component-parity inputs for the LTX-2 classes no generic probe can drive.

Shapes come from each module's config and are kept tiny: a 2x2x2 latent video grid and
three audio latent frames for the DiT (plain, and with modality isolation and STG on
block 0, as guidance runs it), left-padded Gemma states for the connectors, two latent
frames for each VAE, and a short mel clip for the vocoder.
"""

from __future__ import annotations

import torch

from workbench.portstate.probes import Probe

GRID, AUDIO_FRAMES, TEXT_TOKENS = (2, 2, 2), 3, 6


def _left_padded_mask(length: int = TEXT_TOKENS) -> torch.Tensor:
    mask = torch.ones(1, length, dtype=torch.long)
    mask[:, :2] = 0
    return mask


def _transformer_inputs(model, ctx):
    cfg, g = model.config, ctx.generator()
    frames, height, width = GRID
    return {
        "hidden_states": torch.randn(1, frames * height * width, cfg.in_channels, generator=g),
        "audio_hidden_states": torch.randn(1, AUDIO_FRAMES, cfg.audio_in_channels, generator=g),
        "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, cfg.caption_channels, generator=g),
        "audio_encoder_hidden_states": torch.randn(1, TEXT_TOKENS, cfg.caption_channels, generator=g),
        "timestep": torch.tensor([0.62]), "sigma": torch.tensor([0.62]),
        "encoder_attention_mask": _left_padded_mask(), "audio_encoder_attention_mask": _left_padded_mask(),
        "num_frames": frames, "height": height, "width": width, "fps": 24.0, "audio_num_frames": AUDIO_FRAMES,
        "video_coords": model.rope.prepare_video_coords(1, frames, height, width, torch.device("cpu"), fps=24.0),
        "audio_coords": model.audio_rope.prepare_audio_coords(1, AUDIO_FRAMES, torch.device("cpu")),
        "use_cross_timestep": True, "return_dict": False,
    }


def _transformer_run(model, inputs):
    video, audio = model(**inputs)
    video_g, audio_g = model(**inputs, isolate_modalities=True, spatio_temporal_guidance_blocks=[0])
    return {"video": video, "audio": audio, "video_isolated_stg": video_g, "audio_isolated_stg": audio_g}


def _connectors_inputs(model, ctx):
    cfg = model.config
    length = cfg.video_connector_num_learnable_registers  # the sequence must be a multiple of the registers
    states = torch.randn(2, length, cfg.caption_channels * cfg.text_proj_in_factor, generator=ctx.generator())
    return {"states": states, "mask": torch.cat([_left_padded_mask(length), torch.ones(1, length, dtype=torch.long)])}


def _connectors_run(model, inputs):
    video, audio, mask = model(inputs["states"], inputs["mask"], padding_side="left")
    return {"video_embeds": video, "audio_embeds": audio, "attention_mask": mask}


def _video_vae_inputs(vae, ctx):
    cfg, g = vae.config, ctx.generator()
    t, s = vae.temporal_compression_ratio, vae.spatial_compression_ratio
    return {"latents": torch.randn(1, cfg.latent_channels, 2, 2, 2, generator=g),
            "video": torch.rand(1, cfg.in_channels, t + 1, 2 * s, 2 * s, generator=g) * 2 - 1}


def _audio_vae_inputs(vae, ctx):
    cfg, g = vae.config, ctx.generator()
    t = vae.temporal_compression_ratio
    return {"latents": torch.randn(1, cfg.latent_channels, 2, cfg.mel_bins // vae.mel_compression_ratio, generator=g),
            "mel": torch.randn(1, cfg.in_channels, 2 * t, cfg.mel_bins, generator=g)}


def _vae_run(vae, inputs):
    signal = inputs["video"] if "video" in inputs else inputs["mel"]
    posterior = vae.encode(signal).latent_dist
    return {"decoded": vae.decode(inputs["latents"], return_dict=False)[0], "posterior_mean": posterior.mean,
            "posterior_std": posterior.std}


def _vocoder_inputs(vocoder, ctx):
    cfg = vocoder.config
    return {"mel": torch.randn(1, cfg.out_channels, 7, cfg.in_channels // cfg.out_channels, generator=ctx.generator())}


def _vocoder_run(vocoder, inputs):
    return {"waveform": vocoder(inputs["mel"])}


PROBES = {
    "LTX2VideoTransformer3DModel": Probe("LTX2VideoTransformer3DModel: seeded video and audio tokens, text states, "
                                         "RoPE coords -> both streams, plain and isolated+STG",
                                         _transformer_inputs, _transformer_run),
    "LTX2TextConnectors": Probe("LTX2TextConnectors: seeded left-padded Gemma states -> video and audio embeddings",
                                _connectors_inputs, _connectors_run),
    "AutoencoderKLLTX2Video": Probe("AutoencoderKLLTX2Video: decode seeded latents, encode a seeded video",
                                    _video_vae_inputs, _vae_run),
    "AutoencoderKLLTX2Audio": Probe("AutoencoderKLLTX2Audio: decode seeded latents, encode a seeded mel",
                                    _audio_vae_inputs, _vae_run),
    "LTX2Vocoder": Probe("LTX2Vocoder: seeded mel -> waveform", _vocoder_inputs, _vocoder_run),
}
