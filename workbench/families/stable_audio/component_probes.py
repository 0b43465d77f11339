"""Seeded component-parity inputs for the Stable Audio classes no generic probe can drive.

Shapes come from each module's config: the DiT gets the global token plus its sample_size
latents with the rotary table the pipeline builds; the VAE decodes four latent frames and
encodes the audio they stand for.
"""

from __future__ import annotations

import torch

from workbench.portstate.probes import Probe


def _dit_inputs(model, ctx):
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    cfg, g = model.config, ctx.generator()
    rotary = get_1d_rotary_pos_embed(cfg.attention_head_dim // 2, cfg.sample_size + 1, use_real=True,
                                     repeat_interleave_real=False)
    return {"hidden_states": torch.randn(1, cfg.in_channels, cfg.sample_size, generator=g),
            "timestep": torch.tensor([0.37]),
            "encoder_hidden_states": torch.randn(1, 6, cfg.cross_attention_input_dim, generator=g),
            "global_hidden_states": torch.randn(1, 1, cfg.global_states_input_dim, generator=g),
            "rotary_embedding": rotary}


def _dit_run(model, inputs):
    return {"noise_pred": model(**inputs, return_dict=False)[0]}


def _projection_inputs(model, ctx):
    g = ctx.generator()
    return {"text_hidden_states": torch.randn(2, 5, model.config.text_encoder_dim, generator=g),
            "start_seconds": torch.tensor([0.0, 0.5]), "end_seconds": torch.tensor([1.7, 2.0])}


def _projection_run(model, inputs):
    out = model(**inputs)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def _vae_inputs(vae, ctx):
    cfg, g = vae.config, ctx.generator()
    frames = 4
    return {"latents": torch.randn(1, cfg.decoder_input_channels, frames, generator=g),
            "audio": torch.rand(1, cfg.audio_channels, frames * vae.hop_length, generator=g) * 2 - 1}


def _vae_run(vae, inputs):
    posterior = vae.encode(inputs["audio"]).latent_dist
    return {"decoded": vae.decode(inputs["latents"]).sample, "posterior_mean": posterior.mean,
            "posterior_std": posterior.std}


PROBES = {
    "StableAudioDiTModel": Probe("StableAudioDiTModel: seeded latents, timestep, text and global states, rotary "
                                 "table -> noise prediction", _dit_inputs, _dit_run),
    "StableAudioProjectionModel": Probe("StableAudioProjectionModel: seeded T5 states and seconds -> projections",
                                        _projection_inputs, _projection_run),
    "AutoencoderOobleck": Probe("AutoencoderOobleck: decode seeded latents, encode seeded audio",
                                _vae_inputs, _vae_run),
}
