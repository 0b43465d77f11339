"""Hook points that capture and trace attach to.

A `PipelineHooks` object is handed to a pipeline run; stages call it after every stage
and the denoising loop calls it after every step. The default does nothing, so a run
without observers pays nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from workbench.runtime.batch import ForwardBatch
    from workbench.runtime.stage import Stage


class PipelineHooks:
    """Observer interface; subclasses override what they need. Hooks must not mutate."""

    def on_stage_end(self, stage: "Stage", batch: "ForwardBatch") -> None:
        pass

    def on_step_end(self, step: int, timestep: torch.Tensor, batch: "ForwardBatch", info: dict[str, Any]) -> None:
        pass


class HookList(PipelineHooks):
    """Fan one call out to several hooks."""

    def __init__(self, hooks: list[PipelineHooks]):
        self.hooks = [h for h in hooks if h is not None]

    def on_stage_end(self, stage, batch):
        for h in self.hooks:
            h.on_stage_end(stage, batch)

    def on_step_end(self, step, timestep, batch, info):
        for h in self.hooks:
            h.on_step_end(step, timestep, batch, info)
