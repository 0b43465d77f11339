"""Seeded component-parity inputs for the HunyuanVideo classes no generic probe covers.

Shapes from each module's config, kept tiny: two latent frames, 4x4 latent pixels (two
patches across), six text tokens with the last two masked, the embedded guidance at 6.0.
"""

from __future__ import annotations

import torch

from workbench.portstate.probes import Probe


def _transformer_inputs(model, ctx):
    cfg, g = model.config, ctx.generator()
    mask = torch.ones(1, 6)
    mask[:, 4:] = 0
    return {"hidden_states": torch.randn(1, cfg.in_channels, 2, 2 * cfg.patch_size, 2 * cfg.patch_size, generator=g),
            "timestep": torch.tensor([637.0]), "encoder_hidden_states": torch.randn(1, 6, cfg.text_embed_dim, generator=g),
            "encoder_attention_mask": mask, "pooled_projections": torch.randn(1, cfg.pooled_projection_dim, generator=g),
            "guidance": torch.tensor([6000.0])}


def _transformer_run(model, inputs):
    return {"noise_pred": model(**inputs, return_dict=False)[0]}


def _vae_inputs(vae, ctx):
    cfg, g = vae.config, ctx.generator()
    return {"latents": torch.randn(1, cfg.latent_channels, 2, 2, 2, generator=g),
            "video": torch.rand(1, cfg.in_channels, 5, 16, 16, generator=g) * 2 - 1}


def _vae_run(vae, inputs):
    posterior = vae.encode(inputs["video"]).latent_dist
    return {"decoded": vae.decode(inputs["latents"], return_dict=False)[0],
            "posterior_mean": posterior.mean, "posterior_std": posterior.std}


PROBES = {
    "HunyuanVideoTransformer3DModel": Probe("HunyuanVideoTransformer3DModel: seeded latents, timestep, masked text "
                                            "states, pooled CLIP states, guidance -> noise prediction",
                                            _transformer_inputs, _transformer_run),
    "AutoencoderKLHunyuanVideo": Probe("AutoencoderKLHunyuanVideo: decode seeded latents, encode a seeded video",
                                       _vae_inputs, _vae_run),
}
