"""Errors users can act on.

Every error a user can cause derives from `WorkbenchError`; the CLI prints its message on
one line and exits 2 without a traceback. The message names the file, field or stage and
what was expected.
"""


class WorkbenchError(Exception):
    """Bad input or configuration that the user can fix."""


class ManifestError(WorkbenchError):
    """A model directory's `model_index.json` is missing, invalid or inconsistent."""


class ComponentLoadError(WorkbenchError):
    """A module folder is missing, or its weights do not match the model."""


class RegistryError(WorkbenchError):
    """An unknown family, pipeline class, preset or detector."""


class ParameterError(WorkbenchError):
    """An unknown or invalid generation parameter, preset key or stage override."""


class StageVerificationError(WorkbenchError):
    """A stage's declared input or output check failed."""

    def __init__(self, stage: str, field: str, expected: str, got: str | None = None):
        self.stage, self.field, self.expected, self.got = stage, field, expected, got
        msg = f"stage {stage!r}: field {field!r} expected {expected}"
        super().__init__(msg + (f", got {got}" if got is not None else ""))

    def __reduce__(self):  # picklable with its fields (a Ray or process-pool worker raises it across processes)
        return type(self), (self.stage, self.field, self.expected, self.got)


class PerfError(WorkbenchError):
    """An invalid performance record, an unreadable perf store, or a refused reseed."""


class ParityError(WorkbenchError):
    """A capture, verdict or activation-trace file is missing, malformed or not comparable."""


class PortStateError(WorkbenchError):
    """A family's `port_state.yaml` is missing, malformed, or inconsistent (file and field named)."""


class GateError(WorkbenchError):
    """A porting gate refuses to open: an earlier gate (e.g. component parity) has not passed."""
