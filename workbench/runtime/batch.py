"""`ForwardBatch`: the one object that carries a request through the stages."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch


@dataclass
class ForwardBatch:
    """Request state shared by every stage.

    Every `SamplingParam` field exists here (a test keeps the two in step); the rest is
    filled in by stages. Family-specific state goes into `extra`, never new globals.
    """

    # --- request (mirrors SamplingParam) ---
    prompt: str | list[str] | None = None
    negative_prompt: str | list[str] | None = None
    seed: int = 0
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    fps: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    guidance_scale_2: float | None = None
    boundary_ratio: float | None = None
    flow_shift: float | None = None
    max_sequence_length: int | None = None
    image: Any = None
    audio_start_in_s: float | None = None
    audio_end_in_s: float | None = None
    sampling_rate: int | None = None
    channels: int | None = None
    frame_rate: float | None = None
    motion_speed: float | None = None
    stg_scale: float | None = None
    modality_scale: float | None = None
    guidance_rescale: float | None = None
    audio_guidance_scale: float | None = None
    audio_stg_scale: float | None = None
    audio_modality_scale: float | None = None
    audio_guidance_rescale: float | None = None
    spatio_temporal_guidance_blocks: list[int] | None = None
    use_cross_timestep: bool | None = None
    output_type: str = "tensor"

    # --- filled by stages ---
    generator: torch.Generator | None = None
    prompt_embeds: torch.Tensor | None = None
    negative_prompt_embeds: torch.Tensor | None = None
    prompt_attention_mask: torch.Tensor | None = None
    negative_prompt_attention_mask: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    image_latents: torch.Tensor | None = None
    do_classifier_free_guidance: bool = False
    scheduler: Any = None  # this run's scheduler (set by TimestepPreparationStage)
    timesteps: torch.Tensor | None = None
    sigmas: torch.Tensor | None = None
    initial_latents: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    output: torch.Tensor | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    stage_timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # family-declared request fields (workbench.api.params.RequestField), read as attributes
    family_values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        from workbench.api.params import FAMILY_FIELDS

        if name in FAMILY_FIELDS and "family_values" in self.__dict__:
            return self.__dict__["family_values"].get(name, FAMILY_FIELDS[name].default)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def prompts(self) -> list[str]:
        """The prompt as a list (batch of one for a plain string)."""
        if self.prompt is None:
            return []
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def batch_size(self) -> int:
        return len(self.prompts) or (self.prompt_embeds.shape[0] if self.prompt_embeds is not None else 1)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}
