"""LTX-2 stages the shared ones cannot express.

- `TextConnectorStage`: the connectors turn the stacked Gemma hidden states into one text
  embedding per stream; the official pipeline runs them once over [negative; positive].
- `JointDenoisingStage`: one transformer denoises video and audio latents together, and
  each stream combines up to four predictions per step (CFG, STG, modality isolation, rescale).
- `AudioDecodingStage`: audio latents -> mel spectrogram (audio VAE) -> waveform (vocoder).

Video noise and video decoding use the shared LatentPreparationStage and DecodingStage.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable, Protocol

import torch
from tqdm.auto import tqdm

from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.stage import Stage
from workbench.runtime.stages import _NO_HOOKS, StepHookedStage, TimestepProbe, watch_decode
from workbench.trace.context import set_step

STREAMS = ("video", "audio")


# ---- guidance terms -----------------------------------------------------------------------
@dataclass(frozen=True)
class StreamGuidance:
    """One stream's guidance terms, as the official call resolves them."""

    guidance_scale: float
    stg_scale: float
    modality_scale: float
    guidance_rescale: float


def resolve_guidance(batch: ForwardBatch) -> dict[str, StreamGuidance]:
    """Video terms as requested; an audio term that is None or 0 takes the video value
    (LTX2Pipeline.__call__: `audio_guidance_scale = audio_guidance_scale or guidance_scale`, ...)."""
    video = StreamGuidance(batch.guidance_scale, batch.stg_scale, batch.modality_scale, batch.guidance_rescale)
    audio = StreamGuidance(batch.audio_guidance_scale or video.guidance_scale,
                           batch.audio_stg_scale or video.stg_scale,
                           batch.audio_modality_scale or video.modality_scale,
                           batch.audio_guidance_rescale or video.guidance_rescale)
    return {"video": video, "audio": audio}


def uses_cfg(guidance: dict[str, StreamGuidance]) -> bool:
    return any(g.guidance_scale > 1.0 for g in guidance.values())


def uses_stg(guidance: dict[str, StreamGuidance]) -> bool:
    return any(g.stg_scale > 0.0 for g in guidance.values())


def uses_modality_isolation(guidance: dict[str, StreamGuidance]) -> bool:
    return any(g.modality_scale > 1.0 for g in guidance.values())


def rescale_noise_cfg(guided: torch.Tensor, cond: torch.Tensor, guidance_rescale: float) -> torch.Tensor:
    """Pull the guided prediction's per-sample std back toward the conditional one's
    (Lin et al. 2023, section 3.4), mixing by `guidance_rescale`."""
    dims = list(range(1, cond.ndim))
    rescaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return guidance_rescale * rescaled + (1 - guidance_rescale) * guided


# ---- text connectors ----------------------------------------------------------------------
def real_token_rows(embeds: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor | None:
    """Embeddings with padded rows zeroed: the checkpoint both sides record.

    The connectors never read padded rows, and their values depend on the attention kernel
    (on CUDA in bf16 they differ by ~2.5 while every real row matches bitwise).
    """
    if embeds is None:
        return None
    return embeds.masked_fill(~mask.bool().to(embeds.device)[..., None], 0.0)


class TextConnectorStage(Stage):
    """Stacked Gemma hidden states -> the video and audio text embeddings and their mask.

    With CFG the connectors run once over [negative; positive], as the official pipeline does;
    the transformer's batched call reads them in that order.
    """

    captures = {
        "prompt_embeds_real_rows": ("prompt_embeds", "embedding"),
        "negative_prompt_embeds_real_rows": ("negative_prompt_embeds", "embedding"),
        "connector_prompt_embeds": ("connector_prompt_embeds", "embedding"),
        "connector_audio_prompt_embeds": ("connector_audio_prompt_embeds", "embedding"),
    }

    def __init__(self, connect: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]):
        self.connect = connect

    def input_checks(self, batch):
        return {"prompt_embeds": V.tensor(3), "prompt_attention_mask": V.tensor(2)}

    def output_checks(self, batch):
        return {"connector_prompt_embeds": V.tensor(3), "connector_audio_prompt_embeds": V.tensor(3),
                "connector_attention_mask": V.tensor(2)}

    def forward(self, batch):
        embeds, mask = batch.prompt_embeds, batch.prompt_attention_mask
        if batch.do_classifier_free_guidance:
            embeds = torch.cat([batch.negative_prompt_embeds, embeds])
            mask = torch.cat([batch.negative_prompt_attention_mask, mask])
        with torch.no_grad():
            video, audio, mask = self.connect(embeds, mask)
        batch.extra.update(connector_prompt_embeds=video, connector_audio_prompt_embeds=audio,
                           connector_attention_mask=mask,
                           prompt_embeds_real_rows=real_token_rows(batch.prompt_embeds, batch.prompt_attention_mask),
                           negative_prompt_embeds_real_rows=real_token_rows(batch.negative_prompt_embeds,
                                                                            batch.negative_prompt_attention_mask))
        return batch


# ---- joint denoising ----------------------------------------------------------------------
@dataclass(frozen=True)
class JointContext:
    """What one transformer call sees besides the latents and the timestep."""

    video_embeds: torch.Tensor
    audio_embeds: torch.Tensor
    attention_mask: torch.Tensor
    video_coords: torch.Tensor
    audio_coords: torch.Tensor

    def conditional(self) -> "JointContext":
        """The positive half of a CFG batch (the extra guidance passes run on it alone)."""
        return JointContext(self.video_embeds.chunk(2)[1], self.audio_embeds.chunk(2)[1],
                            self.attention_mask.chunk(2)[1], self.video_coords.chunk(2)[0],
                            self.audio_coords.chunk(2)[0])


class JointNoisePredictor(Protocol):
    """One transformer call on packed tokens -> float velocity per stream."""

    def __call__(self, tokens: dict[str, torch.Tensor], timestep: torch.Tensor, context: JointContext,
                 batch: ForwardBatch, *, isolate_modalities: bool = False,
                 stg_blocks: list[int] | None = None) -> dict[str, torch.Tensor]: ...


class LatentLayout(Protocol):
    """Latents [B, C, F, H, W] / [B, C, L, M] <-> the transformer's token sequences [B, S, D]."""

    def pack(self, stream: str, latents: torch.Tensor) -> torch.Tensor: ...

    def unpack(self, stream: str, tokens: torch.Tensor, batch: ForwardBatch) -> torch.Tensor: ...


class JointDenoisingStage(StepHookedStage):
    """LTX-2's sampling loop over coupled video and audio latents.

    Per step, both streams come out of the same transformer calls:
      cond (+ uncond under CFG)  one call, batched as [uncond, cond]
      STG                        cond with self-attention perturbed at `spatio_temporal_guidance_blocks`
      modality isolation         cond with audio<->video cross-attention switched off
    Each stream combines them in x0 space (x0 = x - v * sigma):
      x0 = cond + (cfg - 1)(cond - uncond) + stg (cond - perturbed) + (mod - 1)(cond - isolated),
    optionally rescaled toward cond's std, then back to velocity for its own Euler step. Audio
    steps a copy of the scheduler (the official loop deep-copies it so step state stays apart).
    Latents stay unpacked on the batch (`latents`, `extra["audio_latents"]`) after every step.

    Each step reports per stream the model's velocity of every pass (`noise_cond`, `noise_uncond`,
    `noise_stg`, `noise_isolated`), the guided velocity handed to the stream's scheduler
    (`noise_guided`), and the timestep the transformer (`model`) received; the RoPE coordinates of
    both streams are captured once (`video_coords`, `audio_coords`, kind positional).
    """

    captures = {"latents": ("final_latents", "latent"), "audio_latents": ("audio_final_latents", "latent")}

    def __init__(self, predict: JointNoisePredictor, layout: LatentLayout,
                 coords: Callable[[ForwardBatch], tuple[torch.Tensor, torch.Tensor]], progress: bool = True,
                 model: Callable[[], torch.nn.Module] | None = None):
        self.predict = predict
        self.layout = layout
        self.coords = coords
        self.progress = progress
        self.model = model

    def input_checks(self, batch):
        return {"latents": V.tensor(5), "audio_latents": V.tensor(4), "timesteps": V.tensor(1),
                "connector_prompt_embeds": V.tensor(3), "connector_audio_prompt_embeds": V.tensor(3)}

    def output_checks(self, batch):
        return {"latents": V.tensor(5), "audio_latents": V.tensor(4)}

    def context(self, batch: ForwardBatch) -> JointContext:
        video_coords, audio_coords = self.coords(batch)
        if batch.do_classifier_free_guidance:  # positions repeated for the [uncond, cond] batch
            video_coords = video_coords.repeat((2,) + (1,) * (video_coords.ndim - 1))
            audio_coords = audio_coords.repeat((2,) + (1,) * (audio_coords.ndim - 1))
        extra = batch.extra
        return JointContext(extra["connector_prompt_embeds"], extra["connector_audio_prompt_embeds"],
                            extra["connector_attention_mask"], video_coords, audio_coords)

    def forward(self, batch):
        guidance = resolve_guidance(batch)
        cfg = batch.do_classifier_free_guidance
        stg, isolate = uses_stg(guidance), uses_modality_isolation(guidance)
        schedulers = {"video": batch.scheduler, "audio": copy.deepcopy(batch.scheduler)}
        tokens = {"video": self.layout.pack("video", batch.latents),
                  "audio": self.layout.pack("audio", batch.extra["audio_latents"])}
        context = self.context(batch)
        conditional = context.conditional() if cfg else context
        info = {**asdict(guidance["video"]), "streams": {"audio": asdict(guidance["audio"])}}

        def to_x0(stream: str, velocity: torch.Tensor, i: int) -> torch.Tensor:
            return tokens[stream] - velocity * schedulers[stream].sigmas[i]

        observed = self.step_hooks is not _NO_HOOKS and self.model is not None
        probe = TimestepProbe([self.model()]) if observed else None
        try:
            with torch.no_grad():
                for i, t in enumerate(tqdm(batch.timesteps, desc="denoising", disable=not self.progress,
                                           leave=False)):
                    set_step(i)
                    passes: dict[str, dict[str, torch.Tensor]] = {s: {} for s in STREAMS}  # velocities per pass
                    inputs = {s: torch.cat([tokens[s]] * 2) if cfg else tokens[s] for s in STREAMS}
                    timestep = t.expand(inputs["video"].shape[0])
                    first = self.predict(inputs, timestep, context, batch)
                    if cfg:
                        timestep = timestep.chunk(2)[0]
                        halves = {s: first[s].chunk(2) for s in STREAMS}
                        for s in STREAMS:
                            passes[s].update(noise_cond=halves[s][1], noise_uncond=halves[s][0])
                        cond = {s: to_x0(s, halves[s][1], i) for s in STREAMS}
                        uncond = {s: to_x0(s, halves[s][0], i) for s in STREAMS}
                        cfg_delta = {s: (guidance[s].guidance_scale - 1) * (cond[s] - uncond[s]) for s in STREAMS}
                    else:
                        for s in STREAMS:
                            passes[s]["noise_cond"] = first[s]
                        cond = {s: to_x0(s, first[s], i) for s in STREAMS}
                        cfg_delta = {s: 0 for s in STREAMS}
                    stg_delta = {s: 0 for s in STREAMS}
                    if stg:
                        perturbed = self.predict(tokens, timestep, conditional, batch,
                                                 stg_blocks=batch.spatio_temporal_guidance_blocks)
                        for s in STREAMS:
                            passes[s]["noise_stg"] = perturbed[s]
                        stg_delta = {s: guidance[s].stg_scale * (cond[s] - to_x0(s, perturbed[s], i))
                                     for s in STREAMS}
                    modality_delta = {s: 0 for s in STREAMS}
                    if isolate:
                        isolated = self.predict(tokens, timestep, conditional, batch, isolate_modalities=True)
                        for s in STREAMS:
                            passes[s]["noise_isolated"] = isolated[s]
                        modality_delta = {s: (guidance[s].modality_scale - 1) * (cond[s] - to_x0(s, isolated[s], i))
                                          for s in STREAMS}

                    for s in STREAMS:
                        x0 = cond[s] + cfg_delta[s] + stg_delta[s] + modality_delta[s]
                        if guidance[s].guidance_rescale > 0:
                            x0 = rescale_noise_cfg(x0, cond[s], guidance[s].guidance_rescale)
                        velocity = (tokens[s] - x0) / schedulers[s].sigmas[i]
                        passes[s]["noise_guided"] = velocity
                        tokens[s] = schedulers[s].step(velocity, t, tokens[s], return_dict=False)[0]

                    batch.latents = self.layout.unpack("video", tokens["video"], batch)
                    batch.extra["audio_latents"] = self.layout.unpack("audio", tokens["audio"], batch)
                    timestep_input = probe.take() if probe is not None else None
                    step_info = {**info, "tensors": self._step_tensors(passes["video"], timestep_input),
                                 # the RoPE coordinates, once, ahead of the first step's checkpoints
                                 **({"once": {"video_coords": (context.video_coords, "positional"),
                                              "audio_coords": (context.audio_coords, "positional")}} if i == 0 else {}),
                                 "streams": {"audio": {**info["streams"]["audio"],
                                                       "tensors": self._step_tensors(passes["audio"], None)}}}
                    self.step_hooks.on_step_end(i, t, batch, step_info)
                set_step(None)
        finally:
            if probe is not None:
                probe.close()
        return batch

    @staticmethod
    def _step_tensors(passes: dict[str, torch.Tensor], timestep: torch.Tensor | None) -> dict:
        tensors = {"timestep_input": (timestep, "timestep")} if timestep is not None else {}
        tensors.update({name: (value, "noise") for name, value in passes.items()})
        return tensors


# ---- audio decoding -----------------------------------------------------------------------
class AudioDecodingStage(Stage):
    """Audio latents -> mel spectrogram [B, C, T, mel_bins] -> waveform [B, channels, samples]."""

    captures = {"mel": ("mel", "mel"), "waveform": ("waveform", "waveform")}

    def __init__(self, decode_mel: Callable[[torch.Tensor, ForwardBatch], torch.Tensor],
                 vocode: Callable[[torch.Tensor], torch.Tensor], decoder: Callable[[], torch.nn.Module] | None = None):
        self.decode_mel = decode_mel
        self.vocode = vocode
        self.decoder = decoder
        if decoder is not None:  # what the audio VAE receives: the denormalised audio latents (its output is `mel`)
            self.captures = {"audio_decoder_input": ("audio_decoder_input", "latent"), **type(self).captures}

    def input_checks(self, batch):
        return {"audio_latents": V.tensor(4)}

    def output_checks(self, batch):
        return {"mel": V.tensor(4), "waveform": V.tensor(3)}

    def __call__(self, batch, hooks=_NO_HOOKS):
        self._observed = hooks is not _NO_HOOKS  # the decoder is watched only for an observer
        return super().__call__(batch, hooks)

    def forward(self, batch):
        seen: dict = {}
        observed = self.decoder is not None and getattr(self, "_observed", False)
        undo = watch_decode(self.decoder(), seen, prefix="audio_") if observed else None
        try:
            with torch.no_grad():
                batch.extra["mel"] = self.decode_mel(batch.extra["audio_latents"], batch)
        finally:
            if undo is not None:
                undo()
        if "audio_decoder_input" in seen:
            batch.extra["audio_decoder_input"] = seen["audio_decoder_input"]
        with torch.no_grad():
            batch.extra["waveform"] = self.vocode(batch.extra["mel"])
        return batch
