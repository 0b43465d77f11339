"""Seeded component-parity inputs for the Wan classes no generic probe can drive.

Shapes come from each module's config, kept tiny: two latent frames (so the causal
temporal paths run), a few patches or pixels across.
Other Wan families (2.2, I2V) import `PROBES` from here.
"""

from __future__ import annotations

import torch

from workbench.portstate.probes import Probe


def _transformer_inputs(model, ctx):
    cfg, g = model.config, ctx.generator()
    p_t, p_h, p_w = cfg.patch_size
    inputs = {"hidden_states": torch.randn(1, cfg.in_channels, 2 * p_t, 4 * p_h, 4 * p_w, generator=g),
              "timestep": torch.tensor([637.0]),
              "encoder_hidden_states": torch.randn(1, 8, cfg.text_dim, generator=g)}
    if cfg.image_dim is not None:  # image-to-video: CLIP states enter through the added key/value projections
        inputs["encoder_hidden_states_image"] = torch.randn(1, cfg.pos_embed_seq_len or 5, cfg.image_dim, generator=g)
    return inputs


def _transformer_run(model, inputs):
    return {"noise_pred": model(**inputs, return_dict=False)[0]}


def _vae_inputs(vae, ctx):
    cfg, g = vae.config, ctx.generator()
    return {"latents": torch.randn(1, cfg.z_dim, 2, 2, 2, generator=g),
            "video": torch.rand(1, 3, 5, 8, 8, generator=g) * 2 - 1}


def _vae_run(vae, inputs):
    posterior = vae.encode(inputs["video"]).latent_dist
    return {"decoded": vae.decode(inputs["latents"], return_dict=False)[0],
            "posterior_mean": posterior.mean, "posterior_std": posterior.std}


PROBES = {
    "WanTransformer3DModel": Probe("WanTransformer3DModel: seeded latents, timestep, text states -> noise prediction",
                                   _transformer_inputs, _transformer_run),
    "AutoencoderKLWan": Probe("AutoencoderKLWan: decode seeded latents, encode a seeded video",
                              _vae_inputs, _vae_run),
}
