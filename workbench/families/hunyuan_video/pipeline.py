"""The native HunyuanVideo text-to-video pipeline, composed from the shared stages.

InputValidation -> TextEncoding (Llama, template-cropped) -> HunyuanConditioning (CLIP pooled,
masks, embedded guidance, dtype cast) -> TimestepPreparation (sigmas linspace(1, 0)) ->
LatentPreparation -> Denoising (true CFG through the guidance_scale hook) -> Decoding.

Modules as the official HunyuanVideoPipeline declares them (`__init__` signature and
`_optional_components`): text_encoder LlamaModel, tokenizer LlamaTokenizer, transformer
HunyuanVideoTransformer3DModel, vae AutoencoderKLHunyuanVideo, scheduler
FlowMatchEulerDiscreteScheduler, text_encoder_2 CLIPTextModel, tokenizer_2 CLIPTokenizer.
"""

from __future__ import annotations

import numpy as np
import torch


from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.pipeline import ComposedPipeline
from workbench.runtime.stages import (DecodingStage, DenoisingStage, Expert, InputValidationStage,
                                      LatentPreparationStage, TextEncodingStage, TimestepPreparationStage)

from .params import FIELDS
from .stages import HunyuanConditioningStage

# diffusers 0.42.1 pipeline_hunyuan_video.py: DEFAULT_PROMPT_TEMPLATE (crop_start 95) and
# _get_llama_prompt_embeds(num_hidden_layers_to_skip=2); _get_clip_prompt_embeds(max_sequence_length=77).
LAYERS_TO_SKIP = 2
CLIP_LENGTH = 77

HUNYUAN_RULES = {
    "prompt": V.text_prompt(),
    "negative_prompt": V.optional_text(),
    "seed": V.number_in(0, 2**63 - 1),
    "height": V.multiple_of(16),    # VAE 8x spatial x patch 2
    "width": V.multiple_of(16),
    "num_frames": V.multiple_of(4, offset=1),   # VAE 4x temporal
    "num_inference_steps": V.positive_int(),
    "guidance_scale": V.number_in(0.0, None),
    "max_sequence_length": V.positive_int(),
    **{f.name: f.validator() for f in FIELDS},   # true_cfg_scale (params.py)
}


def true_cfg(batch: ForwardBatch) -> bool:
    """__call__: do_true_cfg = true_cfg_scale > 1 and has_neg_input."""
    return batch.true_cfg_scale > 1.0 and batch.negative_prompt is not None


class NativeHunyuanVideoPipeline(ComposedPipeline):
    _required_config_modules = ('text_encoder', 'tokenizer', 'transformer', 'vae', 'scheduler', 'text_encoder_2',
                                'tokenizer_2')
    _optional_config_modules = ()

    def encode_prompts(self, prompts: list[str], batch: ForwardBatch):
        """Llama hidden_states[-(2 + 1)] of the templated prompts, the template's first 95 tokens cropped."""
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE as template

        crop = template["crop_start"]
        inputs = self.tokenizer([template["template"].format(p) for p in prompts], max_length=batch.max_sequence_length
                                + crop, padding="max_length", truncation=True, return_tensors="pt",
                                return_attention_mask=True)
        ids, mask = inputs.input_ids.to(batch.device), inputs.attention_mask.to(batch.device)
        embeds = self.text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True
                                   ).hidden_states[-(LAYERS_TO_SKIP + 1)].to(self.text_encoder.dtype)
        return embeds[:, crop:], mask[:, crop:]

    def pooled(self, prompts: list[str], batch: ForwardBatch) -> torch.Tensor:
        ids = self.tokenizer_2(prompts, padding="max_length", max_length=CLIP_LENGTH, truncation=True,
                               return_tensors="pt").input_ids
        return self.text_encoder_2(ids.to(batch.device), output_hidden_states=False).pooler_output

    def latent_shape(self, batch: ForwardBatch) -> tuple[int, ...]:
        vae = self.vae.config
        return (batch.batch_size, self.transformer.config.in_channels,
                (batch.num_frames - 1) // vae.temporal_compression_ratio + 1,
                batch.height // vae.spatial_compression_ratio, batch.width // vae.spatial_compression_ratio)

    def predict_noise(self, model, latents, t, batch: ForwardBatch, branch: str) -> torch.Tensor:
        prefix = "" if branch == "cond" else "negative_"
        extra = batch.extra
        return model(hidden_states=latents.to(model.dtype), timestep=t.expand(latents.shape[0]).to(latents.dtype),
                     encoder_hidden_states=getattr(batch, f"{prefix}prompt_embeds"),
                     encoder_attention_mask=getattr(batch, f"{prefix}prompt_attention_mask"),
                     pooled_projections=extra[f"{prefix}pooled_prompt_embeds"], guidance=extra["guidance"],
                     return_dict=False)[0]

    def decode(self, latents: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        video = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor, return_dict=False)[0]
        return (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).float()   # VideoProcessor, output_type="np"

    def create_pipeline_stages(self):
        return [
            InputValidationStage(HUNYUAN_RULES, cfg_enabled=true_cfg),
            TextEncodingStage(self.encode_prompts, default_negative=None),
            HunyuanConditioningStage(self.pooled, lambda: self.transformer.dtype),
            TimestepPreparationStage(lambda: self.scheduler, lambda b: {
                "sigmas": np.linspace(1.0, 0.0, b.num_inference_steps + 1)[:-1]}),
            LatentPreparationStage(self.latent_shape),
            DenoisingStage(self.predict_noise, lambda: [Expert("transformer", self.transformer)], cfg="sequential",
                           guidance_scale=lambda i, t, b, e: b.true_cfg_scale, progress=self.progress),
            DecodingStage(self.decode, kind="frames", decoder=lambda: self.vae),
        ]
