"""The one Stable Audio stage the shared ones cannot express: text *and duration* conditioning.

Stable Audio conditions its DiT on the projected T5 text states followed by two learned
embeddings of the requested window (start and end seconds) as cross-attention tokens, and
on the two window embeddings side by side as a global vector. The layout under guidance
follows `StableAudioPipeline.encode_prompt` / `encode_duration` / `__call__` exactly,
including the operation order (one batched projection of [negative; prompt]).
"""

from __future__ import annotations

import torch

from typing import Callable

from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.stage import Stage


class TextDurationConditioningStage(Stage):
    """T5 states + window -> `text_audio_duration_embeds` [B', L+2, D] and `audio_duration_embeds` [B', 1, 2D].

    B' = 2B under guidance, ordered [uncond, cond]. With a negative prompt the uncond half
    is its (masked) projection; without one it is all zeros, as the official pipeline does.
    """

    captures = {
        "prompt_embeds": ("prompt_embeds", "embedding"),
        "negative_prompt_embeds": ("negative_prompt_embeds", "embedding"),
        "seconds_start_hidden_states": ("seconds_start_hidden_states", "embedding"),
        "seconds_end_hidden_states": ("seconds_end_hidden_states", "embedding"),
        "text_audio_duration_embeds": ("text_audio_duration_embeds", "embedding"),
        "audio_duration_embeds": ("audio_duration_embeds", "embedding"),
        # (cos, sin), stacked into one table by the capture
        "rotary_embedding": ("rotary_embedding", "positional"),
    }

    def __init__(self, projection_model: torch.nn.Module,
                 rotary_embedding: Callable[[ForwardBatch], tuple[torch.Tensor, torch.Tensor]]):
        self.projection_model = projection_model
        self.rotary_embedding = rotary_embedding

    def input_checks(self, batch):
        return {"prompt_embeds": V.tensor(3), "prompt_attention_mask": V.tensor(2),
                "audio_start_in_s": V.number_in(0.0), "audio_end_in_s": V.number_in(0.0)}

    def output_checks(self, batch):
        return {"text_audio_duration_embeds": V.tensor(3), "audio_duration_embeds": V.tensor(3),
                "rotary_embedding": V.not_none()}

    def forward(self, batch):
        with torch.no_grad():
            self.condition(batch)
        batch.extra["rotary_embedding"] = self.rotary_embedding(batch)
        return batch

    def condition(self, batch: ForwardBatch) -> None:
        projection = self.projection_model
        size = batch.batch_size
        text, mask = batch.prompt_embeds, batch.prompt_attention_mask
        with_negative = batch.negative_prompt_embeds is not None
        if with_negative:
            negative_mask = batch.negative_prompt_attention_mask
            negative = torch.where(negative_mask.to(torch.bool).unsqueeze(2), batch.negative_prompt_embeds, 0.0)
            text, mask = torch.cat([negative, text]), torch.cat([negative_mask, mask])
        text = projection(text_hidden_states=text).text_hidden_states
        # The official multiplies by the mask twice; with a 0/1 mask once gives the same bits.
        text = text * mask.unsqueeze(-1).to(text.dtype)
        batch.prompt_embeds = text[-size:]
        if with_negative:
            batch.negative_prompt_embeds = text[:size]

        seconds = projection(start_seconds=torch.tensor([float(batch.audio_start_in_s)] * size).to(batch.device),
                             end_seconds=torch.tensor([float(batch.audio_end_in_s)] * size).to(batch.device))
        start, end = seconds.seconds_start_hidden_states, seconds.seconds_end_hidden_states
        batch.extra["seconds_start_hidden_states"], batch.extra["seconds_end_hidden_states"] = start, end
        if with_negative:
            start, end = torch.cat([start, start]), torch.cat([end, end])

        cross = torch.cat([text, start, end], dim=1)
        global_states = torch.cat([start, end], dim=2)
        if batch.do_classifier_free_guidance and not with_negative:
            cross = torch.cat([torch.zeros_like(cross), cross])
            global_states = torch.cat([global_states, global_states])
        batch.extra["text_audio_duration_embeds"] = cross
        batch.extra["audio_duration_embeds"] = global_states
