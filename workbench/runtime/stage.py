"""`Stage`: one named step of a pipeline, with pure declared checks around it."""

from __future__ import annotations

import time

from workbench.errors import StageVerificationError
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.device import synchronize
from workbench.runtime.hooks import PipelineHooks
from workbench.runtime.validators import Validator

_NO_HOOKS = PipelineHooks()


class Stage:
    """Base class: `__call__` runs input checks -> forward -> output checks.

    Subclasses implement `forward` and declare checks by field name. Checks only read
    the batch; a failed check raises `StageVerificationError` naming stage and field.
    """

    #: Fields a parity capture records after this stage: batch field or `extra` key -> (checkpoint, kind).
    captures: dict[str, tuple[str, str]] = {}

    @property
    def name(self) -> str:
        return type(self).__name__

    def input_checks(self, batch: ForwardBatch) -> dict[str, Validator]:
        return {}

    def output_checks(self, batch: ForwardBatch) -> dict[str, Validator]:
        return {}

    def forward(self, batch: ForwardBatch) -> ForwardBatch:  # pragma: no cover - abstract
        raise NotImplementedError

    def verify(self, batch: ForwardBatch, checks: dict[str, Validator]) -> None:
        for field_name, validator in checks.items():
            value = getattr(batch, field_name) if hasattr(batch, field_name) else batch.extra.get(field_name)
            problem = validator(value)
            if problem is not None:
                raise StageVerificationError(self.name, field_name, validator.expected, problem)

    def __call__(self, batch: ForwardBatch, hooks: PipelineHooks = _NO_HOOKS) -> ForwardBatch:
        self.verify(batch, self.input_checks(batch))
        start = time.perf_counter()
        batch = self.forward(batch)
        synchronize(batch.device)
        batch.stage_timings[self.name] = time.perf_counter() - start
        self.verify(batch, self.output_checks(batch))
        hooks.on_stage_end(self, batch)
        return batch
