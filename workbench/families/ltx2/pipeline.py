"""The native LTX-2 joint audio-video pipeline.

InputValidation -> TextEncoding -> TextConnector -> LatentPreparation (video) ->
AudioLatentPreparation -> TimestepPreparation -> JointDenoising -> Decoding (video) ->
AudioDecoding.

One transformer denoises a video latent [B, C, F, H, W] and an audio latent [B, C, L, M]
(L latent audio frames of M mel bins) together: the streams cross-attend in every block, so
they are sampled in one loop (stages.JointDenoisingStage). What is LTX-2-specific besides
that loop lives in the methods below: Gemma prompt encoding, latent geometry and packing,
the timestep schedule, one transformer call, and decoding of each stream.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.errors import ManifestError
from workbench.families.ltx2.stages import (
    AudioDecodingStage,
    JointContext,
    JointDenoisingStage,
    TextConnectorStage,
    resolve_guidance,
    uses_cfg,
    uses_stg,
)
from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.pipeline import ComposedPipeline
from workbench.runtime.stages import (
    DecodingStage,
    InputValidationStage,
    LatentPreparationStage,
    TextEncodingStage,
    TimestepPreparationStage,
)


def calculate_shift(seq_len: int, base_seq_len: int, max_seq_len: int, base_shift: float, max_shift: float) -> float:
    """The dynamic-shift `mu`: linear in the number of video tokens (Flux's rule)."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return seq_len * m + (base_shift - m * base_seq_len)


# ---- latents <-> transformer tokens ----------------------------------------------------------
def pack_video_latents(latents: torch.Tensor, patch_size: int, patch_size_t: int) -> torch.Tensor:
    """[B, C, F, H, W] -> [B, F/pt * H/p * W/p, C * pt * p * p]."""
    b, _, f, h, w = latents.shape
    latents = latents.reshape(b, -1, f // patch_size_t, patch_size_t, h // patch_size, patch_size,
                              w // patch_size, patch_size)
    return latents.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4, 7).flatten(1, 3)


def unpack_video_latents(tokens: torch.Tensor, grid: tuple[int, int, int], patch_size: int,
                         patch_size_t: int) -> torch.Tensor:
    """The inverse of `pack_video_latents` for a latent grid (F, H, W) in tokens."""
    tokens = tokens.reshape(tokens.size(0), *grid, -1, patch_size_t, patch_size, patch_size)
    return tokens.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def pack_audio_latents(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, L, M] -> [B, L, C * M]: one token per latent audio frame, all mel bins in it."""
    return latents.transpose(1, 2).flatten(2, 3)


def unpack_audio_latents(tokens: torch.Tensor, mel_bins: int) -> torch.Tensor:
    return tokens.unflatten(2, (-1, mel_bins)).transpose(1, 2)


# ---- request rules ---------------------------------------------------------------------------
def _positive_number(optional: bool = False) -> V.Validator:
    def check(v):
        if v is None and optional:
            return None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
        return None if ok else repr(v)

    return V.Validator(("None or " if optional else "") + "a positive number", check)


def _block_list() -> V.Validator:
    def check(v):
        if v is None or (isinstance(v, (list, tuple)) and all(isinstance(b, int) and b >= 0 for b in v)):
            return None
        return repr(v)

    return V.Validator("None or a list of transformer block indices", check)


def _flag() -> V.Validator:
    return V.Validator("True or False", lambda v: None if isinstance(v, bool) else repr(v))


LTX2_RULES = {
    "prompt": V.text_prompt(),
    "negative_prompt": V.optional_text(),
    "seed": V.number_in(0, 2**63 - 1),
    "height": V.multiple_of(32),
    "width": V.multiple_of(32),
    "num_frames": V.positive_int(),
    "frame_rate": _positive_number(),
    "motion_speed": _positive_number(),
    "fps": _positive_number(optional=True),
    "num_inference_steps": V.positive_int(),
    "max_sequence_length": V.positive_int(),
    "guidance_scale": V.number_in(0.0, None),
    "stg_scale": V.number_in(0.0, None),
    "modality_scale": V.number_in(0.0, None),
    "guidance_rescale": V.number_in(0.0, 1.0),
    "audio_guidance_scale": V.number_in(0.0, None, optional=True),
    "audio_stg_scale": V.number_in(0.0, None, optional=True),
    "audio_modality_scale": V.number_in(0.0, None, optional=True),
    "audio_guidance_rescale": V.number_in(0.0, 1.0, optional=True),
    "spatio_temporal_guidance_blocks": _block_list(),
    "use_cross_timestep": _flag(),
    "sampling_rate": _positive_number(optional=True),
    "channels": _positive_number(optional=True),
}


class NativeLTX2Pipeline(ComposedPipeline):
    _required_config_modules = ("tokenizer", "text_encoder", "connectors", "transformer", "vae", "audio_vae",
                                "vocoder", "scheduler")

    def initialize_pipeline(self) -> None:
        if self.vae.config.timestep_conditioning:
            raise ManifestError(f"{self.model_dir / 'vae'}: a timestep-conditioned video VAE (decode_timestep, "
                                "decode_noise_scale) is not ported yet")

    # ---- geometry ---------------------------------------------------------------------
    def latent_grid(self, batch: ForwardBatch) -> tuple[int, int, int]:
        """(frames, height, width) of the video latent."""
        return ((batch.num_frames - 1) // self.vae.temporal_compression_ratio + 1,
                batch.height // self.vae.spatial_compression_ratio,
                batch.width // self.vae.spatial_compression_ratio)

    def audio_num_frames(self, batch: ForwardBatch) -> int:
        """Latent audio frames covering the video's duration (num_frames / frame_rate seconds)."""
        cfg = self.audio_vae.config
        per_second = cfg.sample_rate / cfg.mel_hop_length / float(self.audio_vae.temporal_compression_ratio)
        return round(batch.num_frames / batch.frame_rate * per_second)

    @property
    def audio_mel_bins(self) -> int:
        return self.audio_vae.config.mel_bins // self.audio_vae.mel_compression_ratio

    def video_latent_shape(self, batch: ForwardBatch) -> tuple[int, ...]:
        return (batch.batch_size, self.transformer.config.in_channels, *self.latent_grid(batch))

    def audio_latent_shape(self, batch: ForwardBatch) -> tuple[int, ...]:
        return (batch.batch_size, self.audio_vae.config.latent_channels, self.audio_num_frames(batch),
                self.audio_mel_bins)

    def pack(self, stream: str, latents: torch.Tensor) -> torch.Tensor:
        if stream == "audio":
            return pack_audio_latents(latents)
        cfg = self.transformer.config
        return pack_video_latents(latents, cfg.patch_size, cfg.patch_size_t)

    def unpack(self, stream: str, tokens: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        if stream == "audio":
            return unpack_audio_latents(tokens, self.audio_mel_bins)
        cfg = self.transformer.config
        return unpack_video_latents(tokens, self.latent_grid(batch), cfg.patch_size, cfg.patch_size_t)

    # ---- text -------------------------------------------------------------------------
    def encode_prompts(self, prompts: list[str], batch: ForwardBatch):
        """Gemma's hidden states of every layer (embeddings included), stacked on the feature
        axis: [B, L, hidden * (layers + 1)]. Prompts are left-padded, as Gemma expects."""
        inputs = self.tokenizer([p.strip() for p in prompts], padding="max_length",
                                max_length=batch.max_sequence_length, truncation=True, add_special_tokens=True,
                                return_tensors="pt", padding_side="left")
        ids, mask = inputs.input_ids.to(batch.device), inputs.attention_mask.to(batch.device)
        hidden = self.text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        return torch.stack(hidden, dim=-1).flatten(2, 3).to(self.text_encoder.dtype), mask

    def connect(self, embeds: torch.Tensor, mask: torch.Tensor):
        return self.connectors(embeds, mask, padding_side="left")

    # ---- sampling ---------------------------------------------------------------------
    def timestep_kwargs(self, batch: ForwardBatch) -> dict:
        """Linear sigmas 1 -> 1/n, shifted by `mu` from the video token count (the official call)."""
        n = batch.num_inference_steps
        cfg = self.scheduler.config
        f, h, w = self.latent_grid(batch)
        p, pt = self.transformer.config.patch_size, self.transformer.config.patch_size_t
        mu = calculate_shift((f // pt) * (h // p) * (w // p),
                             cfg.get("base_image_seq_len", 1024), cfg.get("max_image_seq_len", 4096),
                             cfg.get("base_shift", 0.95), cfg.get("max_shift", 2.05))
        return {"sigmas": np.linspace(1.0, 1 / n, n), "mu": mu}

    def conditioning_frame_rate(self, batch: ForwardBatch) -> float:
        """The frame rate the video positions are conditioned on; below 1, motion_speed slows motion."""
        return batch.frame_rate / batch.motion_speed

    def coords(self, batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE positions of the video and audio tokens (the same at every step)."""
        video = self.transformer.rope.prepare_video_coords(batch.batch_size, *self.latent_grid(batch), batch.device,
                                                           fps=self.conditioning_frame_rate(batch))
        audio = self.transformer.audio_rope.prepare_audio_coords(batch.batch_size, self.audio_num_frames(batch),
                                                                 batch.device)
        return video, audio

    def predict(self, tokens: dict[str, torch.Tensor], timestep: torch.Tensor, context: JointContext,
                batch: ForwardBatch, *, isolate_modalities: bool = False,
                stg_blocks: list[int] | None = None) -> dict[str, torch.Tensor]:
        dtype = batch.prompt_embeds.dtype
        frames, height, width = self.latent_grid(batch)
        video, audio = self.transformer(
            hidden_states=tokens["video"].to(dtype), audio_hidden_states=tokens["audio"].to(dtype),
            encoder_hidden_states=context.video_embeds, audio_encoder_hidden_states=context.audio_embeds,
            timestep=timestep, sigma=timestep, encoder_attention_mask=context.attention_mask,
            audio_encoder_attention_mask=context.attention_mask, num_frames=frames, height=height, width=width,
            fps=self.conditioning_frame_rate(batch), audio_num_frames=self.audio_num_frames(batch),
            video_coords=context.video_coords, audio_coords=context.audio_coords,
            isolate_modalities=isolate_modalities, spatio_temporal_guidance_blocks=stg_blocks,
            perturbation_mask=None, use_cross_timestep=batch.use_cross_timestep, return_dict=False)
        return {"video": video.float(), "audio": audio.float()}

    # ---- decoding ---------------------------------------------------------------------
    def decode_video(self, latents: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        vae = self.vae
        latents = latents.to(batch.prompt_embeds.dtype)
        mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(latents.device, latents.dtype)
        std = vae.latents_std.view(1, -1, 1, 1, 1).to(latents.device, latents.dtype)
        latents = latents * std / vae.config.scaling_factor + mean
        video = vae.decode(latents.to(vae.dtype), None, return_dict=False)[0]
        # [B, C, F, H, W] in [-1, 1] -> frames [B, F, H, W, C] in [0, 1]
        return (video * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).float()

    def decode_mel(self, latents: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        """Denormalise per token feature (the statistics are stored for packed tokens), then decode."""
        vae = self.audio_vae
        tokens = pack_audio_latents(latents)
        std = vae.latents_std.to(tokens.device, tokens.dtype)
        tokens = tokens * std + vae.latents_mean.to(tokens.device, tokens.dtype)
        latents = unpack_audio_latents(tokens, self.audio_mel_bins)
        return vae.decode(latents.to(vae.dtype), return_dict=False)[0]

    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        return self.vocoder(mel)

    # ---- request checks that need the model -----------------------------------------------
    def model_defaults(self) -> dict:
        """The audio format is the vocoder's."""
        return {"sampling_rate": self.vocoder.config.output_sampling_rate, "channels": self.vocoder.config.out_channels}

    def check_frames(self, batch: ForwardBatch):
        ratio = self.vae.temporal_compression_ratio
        if (batch.num_frames - 1) % ratio:
            return ("num_frames", f"a frame count the video VAE decodes exactly ({ratio}k+1)", repr(batch.num_frames))
        return None

    def check_steps(self, batch: ForwardBatch):
        if self.scheduler.config.get("shift_terminal") and batch.num_inference_steps < 2:
            return ("num_inference_steps", "at least 2 (the schedule is stretched to end at shift_terminal)",
                    repr(batch.num_inference_steps))
        return None

    def check_stg_blocks(self, batch: ForwardBatch):
        if not uses_stg(resolve_guidance(batch)):
            return None
        blocks = batch.spatio_temporal_guidance_blocks
        layers = self.transformer.config.num_layers
        if not blocks or any(b >= layers for b in blocks):
            return ("spatio_temporal_guidance_blocks",
                    f"block indices below {layers} (this transformer's depth) while stg_scale or audio_stg_scale > 0",
                    repr(blocks))
        return None

    def check_media(self, batch: ForwardBatch):
        if batch.fps is not None and batch.fps != batch.frame_rate:
            return ("fps", f"unset or equal to frame_rate ({batch.frame_rate}): the audio is as long as "
                           "num_frames / frame_rate", repr(batch.fps))
        for name, value in self.model_defaults().items():
            if getattr(batch, name) != value:
                return (name, f"the vocoder's {value} (LTX-2 cannot resample)", repr(getattr(batch, name)))
        return None

    # ---- composition ------------------------------------------------------------------
    def create_pipeline_stages(self):
        return [
            InputValidationStage(LTX2_RULES, cross_checks=(self.check_frames, self.check_steps, self.check_stg_blocks,
                                               self.check_media),
                                 model_defaults=self.model_defaults,
                                 cfg_enabled=lambda b: uses_cfg(resolve_guidance(b))),
            TextEncodingStage(self.encode_prompts),
            TextConnectorStage(self.connect),
            LatentPreparationStage(self.video_latent_shape),
            LatentPreparationStage(self.audio_latent_shape, stream="audio"),
            TimestepPreparationStage(lambda: self.scheduler, set_timesteps_kwargs=self.timestep_kwargs),
            JointDenoisingStage(self.predict, self, self.coords, progress=self.progress,
                                model=lambda: self.transformer),
            DecodingStage(self.decode_video, kind="frames", decoder=lambda: self.vae),
            AudioDecodingStage(self.decode_mel, self.vocode, decoder=lambda: self.audio_vae),
        ]
