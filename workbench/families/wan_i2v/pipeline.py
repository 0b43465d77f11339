"""The native Wan image-to-video pipeline: the Wan text-to-video pipeline plus a first frame.

InputValidation -> TextEncoding -> ImageEncoding -> Conditioning -> TimestepPreparation ->
LatentPreparation -> ImageVAEEncoding -> Denoising -> Decoding.

The image enters twice, as in diffusers' `WanImageToVideoPipeline`: CLIP hidden states
(second to last layer) go to the transformer's image cross-attention
(`encoder_hidden_states_image`), and the VAE latent of [image, black frames] with a
first-frame mask is concatenated to the noisy latents along channels at every call.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from workbench.families.wan.pipeline import WAN_RULES, NativeWanPipeline
from workbench.media import load_image
from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.stages import (
    ConditioningStage,
    DecodingStage,
    DenoisingStage,
    ImageEncodingStage,
    ImageVAEEncodingStage,
    LatentPreparationStage,
    TextEncodingStage,
    TimestepPreparationStage,
)

# WanTransformer3DModel's image cross-attention takes the last 512 context tokens as text
# ("512 is the context length of the text encoder, hardcoded for now").
TEXT_CONTEXT_LENGTH = 512

WAN_I2V_RULES = {
    **WAN_RULES,
    "image": V.Validator("a conditioning image (a file path or a PIL image, e.g. --image PATH)",
                         lambda v: None if v is not None else "None"),
}


def image_to_tensor(image: Image.Image, height: int, width: int) -> torch.Tensor:
    """The official `video_processor.preprocess(image, height, width)` for one RGB image:
    Lanczos resize to (width, height), [0, 255] -> [-1, 1], as [1, 3, H, W] float32."""
    image = image.resize((width, height), resample=Image.Resampling.LANCZOS)
    pixels = np.stack([np.array(image).astype(np.float32) / 255.0])
    return 2.0 * torch.from_numpy(pixels.transpose(0, 3, 1, 2)) - 1.0


def first_frame_mask(batch_size: int, num_frames: int, height: int, width: int, temporal_scale: int) -> torch.Tensor:
    """The official I2V mask in latent layout [B, temporal_scale, latent frames, h, w]: 1 for the
    given first frame (repeated temporal_scale times, as the VAE folds it), 0 for the frames to make."""
    mask = torch.ones(batch_size, 1, num_frames, height, width)
    mask[:, :, 1:] = 0
    first = torch.repeat_interleave(mask[:, :, 0:1], dim=2, repeats=temporal_scale)
    mask = torch.concat([first, mask[:, :, 1:]], dim=2)
    return mask.view(batch_size, -1, temporal_scale, height, width).transpose(1, 2)


class NativeWanI2VPipeline(NativeWanPipeline):
    _required_config_modules = NativeWanPipeline._required_config_modules + ("image_encoder", "image_processor")

    def _text_length_fits_image_attention(self, batch: ForwardBatch):
        if self.transformer.config.added_kv_proj_dim is not None and batch.max_sequence_length != TEXT_CONTEXT_LENGTH:
            return ("max_sequence_length", f"{TEXT_CONTEXT_LENGTH}: the transformer's image cross-attention takes the "
                    f"last {TEXT_CONTEXT_LENGTH} context tokens as text", repr(batch.max_sequence_length))
        return None

    # ---- I2V-specific pieces ----------------------------------------------------------
    def encode_image(self, batch: ForwardBatch) -> torch.Tensor:
        """CLIP hidden states of the second to last layer, one copy per prompt, in the transformer dtype."""
        encoder = self.image_encoder
        inputs = self.image_processor(images=batch.image, return_tensors="pt").to(encoder.device)
        embeds = encoder(**inputs, output_hidden_states=True).hidden_states[-2].to(batch.device)
        return embeds.repeat(batch.batch_size, 1, 1).to(self.transformer.dtype)

    def latent_shape(self, batch: ForwardBatch) -> tuple[int, ...]:
        # The noise has the VAE's channels; the transformer's in_channels also count mask and condition.
        cfg = self.vae.config
        return (batch.batch_size, cfg.z_dim, (batch.num_frames - 1) // cfg.scale_factor_temporal + 1,
                batch.height // cfg.scale_factor_spatial, batch.width // cfg.scale_factor_spatial)

    def encode_image_latents(self, batch: ForwardBatch) -> torch.Tensor:
        """The condition [B, 4 + z_dim, F', h, w]: first-frame mask, then the normalized VAE latent
        (distribution mode) of the image followed by num_frames - 1 black frames."""
        vae, cfg = self.vae, self.vae.config
        image = image_to_tensor(batch.image, batch.height, batch.width).to(batch.device).unsqueeze(2)
        video = torch.cat([image, image.new_zeros(1, 3, batch.num_frames - 1, batch.height, batch.width)], dim=2)
        latent = vae.encode(video.to(vae.device, vae.dtype)).latent_dist.mode()
        latent = latent.repeat(batch.batch_size, 1, 1, 1, 1).to(batch.device, torch.float32)
        mean, inv_std = self.latent_statistics(batch.latents)
        latent = (latent - mean) * inv_std
        mask = first_frame_mask(batch.batch_size, batch.num_frames, latent.shape[-2], latent.shape[-1],
                                cfg.scale_factor_temporal)
        return torch.concat([mask.to(latent.device), latent], dim=1)

    def predict_noise(self, model, latents, t, batch: ForwardBatch, branch: str, **conditioning) -> torch.Tensor:
        condition, image_embeds = batch.image_latents, batch.image_embeds
        if branch == "both":  # batched CFG: [uncond, cond] share the image conditioning
            condition, image_embeds = torch.cat([condition] * 2), torch.cat([image_embeds] * 2)
        return super().predict_noise(model, torch.cat([latents, condition], dim=1), t, batch, branch,
                                     encoder_hidden_states_image=image_embeds, **conditioning)

    # ---- composition ------------------------------------------------------------------
    def create_pipeline_stages(self):
        return [
            self.input_validation(WAN_I2V_RULES, cross_checks=(self._text_length_fits_image_attention,),
                                  loaders={"image": load_image}),
            TextEncodingStage(self.encode_prompts),
            ImageEncodingStage(self.encode_image),
            ConditioningStage(lambda: self.transformer.dtype),
            TimestepPreparationStage(lambda: self.scheduler),
            LatentPreparationStage(self.latent_shape),
            ImageVAEEncodingStage(self.encode_image_latents),
            DenoisingStage(self.predict_noise, self.experts, cfg="sequential", progress=self.progress),
            DecodingStage(self.decode, kind="frames", decoder=lambda: self.vae),
        ]
