"""The native Stable Audio text-to-audio pipeline, composed from the shared stages.

InputValidation -> TextEncoding -> TextDurationConditioning -> TimestepPreparation ->
LatentPreparation -> Denoising -> Decoding.

What is Stable Audio-specific: the request window checks, T5 encoding, the text and
duration conditioning (stages.py), one DiT call on the batched [uncond, cond] input, and
decoding cut to the requested window. The sampler is the loaded
`CosineDPMSolverMultistepScheduler`: it is an SDE solver whose Brownian-tree noise
(torchsde) is seeded from `generator.initial_seed()`, so handing `scheduler.step` the
request's CPU generator reproduces the official noise exactly.
"""

from __future__ import annotations

import torch

from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.pipeline import ComposedPipeline
from workbench.runtime.stages import (
    DecodingStage,
    DenoisingStage,
    Expert,
    InputValidationStage,
    LatentPreparationStage,
    TextEncodingStage,
    TimestepPreparationStage,
)
from workbench.families.stable_audio.stages import TextDurationConditioningStage


def _unused(why: str = "Stable Audio does not use it") -> V.Validator:
    return V.Validator(f"None ({why})", lambda v: None if v is None else repr(v))


STABLE_AUDIO_RULES = {
    "prompt": V.text_prompt(),
    "negative_prompt": V.optional_text(),
    "seed": V.number_in(0, 2**63 - 1),
    "num_inference_steps": V.positive_int(),
    "guidance_scale": V.number_in(0.0, None),
    "audio_start_in_s": V.number_in(0.0, None),
    "audio_end_in_s": V.number_in(0.0, None, optional=True),
    "sampling_rate": V.number_in(1, None, optional=True),
    "channels": V.number_in(1, None, optional=True),
    **{name: _unused() for name in ("height", "width", "num_frames", "fps", "guidance_scale_2", "boundary_ratio",
                                    "flow_shift", "image")},
    "max_sequence_length": _unused("prompts are padded to the tokenizer's model_max_length"),
}


def _guided(batch: ForwardBatch) -> bool:
    """The official `do_classifier_free_guidance = guidance_scale > 1.0` (the stage sets it after the checks)."""
    return batch.guidance_scale > 1.0


def _prompt_for_guidance(batch: ForwardBatch):
    """Guidance steers away from the negative prompt towards the prompt: an empty prompt has nothing to steer to."""
    if _guided(batch) and any(not p.strip() for p in batch.prompts):
        return ("prompt", "a non-empty prompt when guidance_scale > 1", repr(batch.prompt))
    return None


def _negative_prompt_like_prompt(batch: ForwardBatch):
    """The official pipeline refuses a string negative prompt for a list of prompts and vice versa."""
    if _guided(batch) and batch.negative_prompt is not None and (
            type(batch.negative_prompt) is not type(batch.prompt)):
        return ("negative_prompt", f"the same type as prompt ({type(batch.prompt).__name__})",
                type(batch.negative_prompt).__name__)
    return None


class NativeStableAudioPipeline(ComposedPipeline):
    _required_config_modules = ("tokenizer", "text_encoder", "projection_model", "transformer", "vae", "scheduler")

    # ---- model facts the request is checked against -----------------------------------
    @property
    def max_audio_length_in_s(self) -> float:
        """The longest window the model can generate (StableAudioPipeline.__call__ step 0)."""
        return self.transformer.config.sample_size * self.vae.hop_length / self.vae.config.sampling_rate

    def model_defaults(self) -> dict:
        vae = self.vae.config
        return {"audio_end_in_s": self.max_audio_length_in_s, "sampling_rate": vae.sampling_rate,
                "channels": vae.audio_channels}

    def check_window(self, batch: ForwardBatch):
        """start < end <= the model's maximum, both inside the seconds conditioners' range (as the official)."""
        start, end = batch.audio_start_in_s, batch.audio_end_in_s
        low, high = self.projection_model.config.min_value, self.projection_model.config.max_value
        if start < low:
            return ("audio_start_in_s", f"at least {low} (projection_model min_value)", repr(start))
        if end <= start:
            return ("audio_end_in_s", f"greater than audio_start_in_s={start!r}", repr(end))
        if end > self.max_audio_length_in_s:
            return ("audio_end_in_s", f"at most the model's maximum of {self.max_audio_length_in_s:g} s "
                    f"(sample_size {self.transformer.config.sample_size} x hop {self.vae.hop_length} / "
                    f"{self.vae.config.sampling_rate} Hz)", repr(end))
        if end > high:
            return ("audio_end_in_s", f"at most {high} (projection_model max_value)", repr(end))
        return None

    def check_media(self, batch: ForwardBatch):
        """`sampling_rate` and `channels` are the VAE's: the pipeline neither resamples nor remixes."""
        for field, model_value in (("sampling_rate", self.vae.config.sampling_rate),
                                   ("channels", self.vae.config.audio_channels)):
            if getattr(batch, field) != model_value:
                return (field, f"the model's {model_value} (or unset)", repr(getattr(batch, field)))
        return None

    # ---- Stable Audio-specific pieces -------------------------------------------------
    def encode_prompts(self, prompts: list[str], batch: ForwardBatch):
        """T5 last hidden states for prompts padded to the tokenizer's model_max_length."""
        inputs = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        ids, mask = inputs.input_ids.to(batch.device), inputs.attention_mask.to(batch.device)
        return self.text_encoder(ids, attention_mask=mask)[0], mask

    def rotary_embedding(self, batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary positions over the global token and the latent sequence, computed once per request."""
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        length = self.transformer.config.sample_size + batch.extra["audio_duration_embeds"].shape[1]
        return get_1d_rotary_pos_embed(self.transformer.config.attention_head_dim // 2, length, use_real=True,
                                       repeat_interleave_real=False)

    def latent_shape(self, batch: ForwardBatch) -> tuple[int, ...]:
        config = self.transformer.config
        return (batch.batch_size, config.in_channels, config.sample_size)

    def predict_noise(self, model, latents, t, batch: ForwardBatch, branch: str) -> torch.Tensor:
        """One DiT call; under guidance `latents` is already [uncond, cond] like the conditioning."""
        return model(latents, t.unsqueeze(0), encoder_hidden_states=batch.extra["text_audio_duration_embeds"],
                     global_hidden_states=batch.extra["audio_duration_embeds"],
                     rotary_embedding=batch.extra["rotary_embedding"], return_dict=False)[0]

    def decode(self, latents: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        """Latents -> waveform [B, C, T], cut to [start, end) in samples as the official does."""
        rate = self.vae.config.sampling_rate
        audio = self.vae.decode(latents).sample
        return audio[:, :, int(batch.audio_start_in_s * rate):int(batch.audio_end_in_s * rate)]

    # ---- composition ------------------------------------------------------------------
    def create_pipeline_stages(self):
        return [
            InputValidationStage(STABLE_AUDIO_RULES, model_defaults=self.model_defaults,
                                 cross_checks=(self.check_window, self.check_media, _prompt_for_guidance,
                                               _negative_prompt_like_prompt)),
            TextEncodingStage(self.encode_prompts, default_negative=None),
            TextDurationConditioningStage(self.projection_model, self.rotary_embedding),
            TimestepPreparationStage(lambda: self.scheduler),
            LatentPreparationStage(self.latent_shape, init_noise_sigma=lambda: self.scheduler.init_noise_sigma,
                                   dtype_of=lambda batch: batch.extra["text_audio_duration_embeds"].dtype),
            # The generator seeds the solver's Brownian-tree noise (initial_seed() = the request seed).
            DenoisingStage(self.predict_noise, lambda: [Expert("transformer", self.transformer)], cfg="batched",
                           scale_input=True, step_kwargs=lambda batch: {"generator": batch.generator},
                           progress=self.progress),
            DecodingStage(self.decode, kind="waveform", decoder=lambda: self.vae),
        ]
