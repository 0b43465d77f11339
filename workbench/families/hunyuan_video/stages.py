"""HunyuanVideo's conditioning: CLIP pooled states, masks and the embedded guidance, cast as
`HunyuanVideoPipeline.__call__` steps 3 and 6 do (to the transformer's dtype)."""

from __future__ import annotations

import torch

from workbench.runtime.stage import Stage


class HunyuanConditioningStage(Stage):
    captures = {name: (name, "embedding") for name in (
        "prompt_embeds", "pooled_prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds",
        "negative_pooled_prompt_embeds", "negative_prompt_attention_mask", "guidance")}

    def __init__(self, pooled, dtype_of):
        self.pooled, self.dtype_of = pooled, dtype_of

    def forward(self, batch):
        dtype, extra = self.dtype_of(), batch.extra
        with torch.no_grad():
            extra["pooled_prompt_embeds"] = self.pooled(batch.prompts, batch).to(dtype)
            if batch.negative_prompt_embeds is not None:
                negatives = [batch.negative_prompt] * batch.batch_size if isinstance(batch.negative_prompt, str) \
                    else list(batch.negative_prompt)
                extra["negative_pooled_prompt_embeds"] = self.pooled(negatives, batch).to(dtype)
        for prefix in ("", "negative_"):
            if getattr(batch, f"{prefix}prompt_embeds") is not None:
                setattr(batch, f"{prefix}prompt_embeds", getattr(batch, f"{prefix}prompt_embeds").to(dtype))
                setattr(batch, f"{prefix}prompt_attention_mask", getattr(batch, f"{prefix}prompt_attention_mask").to(dtype))
        extra["guidance"] = torch.tensor([batch.guidance_scale] * batch.batch_size, dtype=dtype,
                                         device=batch.device) * 1000.0
        return batch
