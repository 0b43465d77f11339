"""The native Wan text-to-video pipeline, composed from the shared stages.

InputValidation -> TextEncoding -> Conditioning -> TimestepPreparation ->
LatentPreparation -> Denoising -> Decoding.

What is Wan-specific lives in four small functions below: prompt cleaning and encoding,
the latent shape, one transformer call, and decoding. With `transformer_2` and a
`boundary_ratio` in the manifest (Wan 2.2), the same class runs two experts: the first
(high-noise) expert while t >= boundary_ratio * num_train_timesteps, then the second with
`guidance_scale_2`. The image-to-video pipeline (`families/wan_i2v`) subclasses this one.
"""

from __future__ import annotations

import html
import re

import torch

from workbench.errors import ManifestError
from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.manifest import Manifest
from workbench.runtime.pipeline import ComposedPipeline
from workbench.runtime.stages import (
    ConditioningStage,
    DecodingStage,
    DenoisingStage,
    Expert,
    InputValidationStage,
    LatentPreparationStage,
    TextEncodingStage,
    TimestepPreparationStage,
)


def prompt_clean(text: str) -> str:
    """The official prompt normalisation: ftfy (when installed), double HTML unescape, whitespace."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def _guidance_2_needs_boundary(batch: ForwardBatch):
    if batch.guidance_scale_2 is not None and batch.boundary_ratio is None:
        return ("guidance_scale_2", "to be set only with a boundary_ratio (a two-expert Wan 2.2 model)",
                repr(batch.guidance_scale_2))
    return None


WAN_RULES = {
    "prompt": V.text_prompt(),
    "negative_prompt": V.optional_text(),
    "seed": V.number_in(0, 2**63 - 1),
    "height": V.multiple_of(16),
    "width": V.multiple_of(16),
    "num_frames": V.multiple_of(4, offset=1),
    "num_inference_steps": V.positive_int(),
    "guidance_scale": V.number_in(0.0, None),
    "guidance_scale_2": V.number_in(0.0, None, optional=True),
    "boundary_ratio": V.number_in(0.0, 1.0, optional=True),
    "max_sequence_length": V.positive_int(),
}


class NativeWanPipeline(ComposedPipeline):
    _required_config_modules = ("tokenizer", "text_encoder", "transformer", "vae", "scheduler")
    _optional_config_modules = ("transformer_2",)

    def required_modules_for(self, manifest: Manifest) -> list[str]:
        required = list(self._required_config_modules)
        if manifest.metadata.get("boundary_ratio") is not None:
            required.append("transformer_2")
        return required

    def load_modules(self) -> None:
        if self.manifest.metadata.get("expand_timesteps"):
            # Wan 2.2 TI2V-5B: per-token timesteps, not ported; refuse before loading rather than run it wrongly.
            raise ManifestError(f"{self.manifest.path}: expand_timesteps=true (Wan 2.2 TI2V) is not supported "
                                f"by {type(self).__name__}")
        super().load_modules()

    def _boundary_needs_two_experts(self, batch: ForwardBatch):
        if batch.boundary_ratio is not None and self.get_module("transformer_2") is None:
            return ("boundary_ratio", "to be set only for a two-expert model (transformer_2 in model_index.json)",
                    repr(batch.boundary_ratio))
        return None

    def _size_fits_model(self, batch: ForwardBatch):
        """Refused before anything is allocated: a latent grid longer, on any axis, than the
        transformer's RoPE table (`rope_max_seq_len` positions, WanRotaryPosEmbed), or decoded
        frames (fp32 [B, F, H, W, 3], a lower bound of the run's memory) beyond the free memory."""
        t_cfg, v_cfg = self.transformer.config, self.vae.config
        limit = getattr(t_cfg, "rope_max_seq_len", None)
        p_t, p_h, p_w = t_cfg.patch_size
        scale = {"num_frames": (v_cfg.scale_factor_temporal, p_t), "height": (v_cfg.scale_factor_spatial, p_h),
                 "width": (v_cfg.scale_factor_spatial, p_w)}
        for name, (factor, patch) in scale.items():
            value = getattr(batch, name)
            grid = ((value - 1) // factor + 1 if name == "num_frames" else value // factor) // patch
            if limit is not None and grid > limit:
                most = (limit * patch - 1) * factor + 1 if name == "num_frames" else limit * patch * factor
                return (name, f"at most {most} (the transformer's RoPE table has {limit} positions per axis, "
                              f"transformer/config.json rope_max_seq_len)", repr(value))
        frames = batch.batch_size * batch.num_frames * batch.height * batch.width * 3 * 4
        return V.fits_in_memory("num_frames x height x width", f"{batch.num_frames}x{batch.height}x{batch.width}",
                                frames, "decoded frames (fp32)", self.device)

    # ---- Wan-specific pieces ----------------------------------------------------------
    def encode_prompts(self, prompts: list[str], batch: ForwardBatch):
        length = batch.max_sequence_length
        inputs = self.tokenizer([prompt_clean(p) for p in prompts], padding="max_length", max_length=length,
                                truncation=True, add_special_tokens=True, return_attention_mask=True,
                                return_tensors="pt")
        device = next(self.text_encoder.parameters()).device
        mask = inputs.attention_mask.to(device)
        embeds = self.text_encoder(inputs.input_ids.to(device), mask).last_hidden_state
        embeds = embeds.to(device=batch.device)
        # Positions past each prompt's length are zeros, as the official pipeline pads them.
        return embeds.masked_fill(~mask.to(batch.device).bool()[..., None], 0.0), mask

    def latent_shape(self, batch: ForwardBatch) -> tuple[int, ...]:
        cfg = self.vae.config
        return (batch.batch_size, self.transformer.config.in_channels,
                (batch.num_frames - 1) // cfg.scale_factor_temporal + 1,
                batch.height // cfg.scale_factor_spatial, batch.width // cfg.scale_factor_spatial)

    def predict_noise(self, model, latents, t, batch: ForwardBatch, branch: str, **conditioning) -> torch.Tensor:
        """One transformer call; `conditioning` holds extra model inputs (I2V image embeddings)."""
        if branch == "both":
            embeds = torch.cat([batch.negative_prompt_embeds, batch.prompt_embeds])
        else:
            embeds = batch.prompt_embeds if branch == "cond" else batch.negative_prompt_embeds
        return model(hidden_states=latents.to(model.dtype), timestep=t.expand(latents.shape[0]),
                     encoder_hidden_states=embeds, return_dict=False, **conditioning)[0]

    def latent_statistics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE's per-channel latent mean and 1/std, as the official pipelines build them."""
        cfg = self.vae.config
        shape = (1, cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(cfg.latents_mean).view(shape).to(like.device, like.dtype)
        inv_std = 1.0 / torch.tensor(cfg.latents_std).view(shape).to(like.device, like.dtype)
        return mean, inv_std

    def decode(self, latents: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        vae = self.vae
        latents = latents.to(vae.dtype)
        mean, inv_std = self.latent_statistics(latents)
        video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
        # [B, C, F, H, W] in [-1, 1] -> frames [B, F, H, W, C] in [0, 1]
        return (video * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).float()

    def experts(self) -> list[Expert]:
        experts = [Expert("transformer", self.transformer, "guidance_scale")]
        if self.get_module("transformer_2") is not None:
            experts.append(Expert("transformer_2", self.transformer_2, "guidance_scale_2"))
        return experts

    # ---- composition ------------------------------------------------------------------
    def input_validation(self, rules=WAN_RULES, cross_checks=(), loaders=None) -> InputValidationStage:
        """Wan's request checks; `boundary_ratio` defaults to the manifest's (Wan 2.2)."""
        return InputValidationStage(
            rules, cross_checks=(_guidance_2_needs_boundary, self._boundary_needs_two_experts, self._size_fits_model,
                                 *cross_checks),
            model_defaults=lambda: {"boundary_ratio": self.manifest.metadata.get("boundary_ratio")},
            loaders=loaders)

    def create_pipeline_stages(self):
        return [
            self.input_validation(),
            TextEncodingStage(self.encode_prompts),
            ConditioningStage(lambda: self.transformer.dtype),
            TimestepPreparationStage(lambda: self.scheduler),
            LatentPreparationStage(self.latent_shape),
            DenoisingStage(self.predict_noise, self.experts, cfg="sequential", progress=self.progress),
            DecodingStage(self.decode, kind="frames", decoder=lambda: self.vae),
        ]
