"""The normalized performance record: one schema for every benchmark, CI job and manual run.

A record is valid by construction: `PerfRecord(...)` checks every field and normalizes the
timestamp to UTC, so anything holding a `PerfRecord` holds a normalized record.
`PerfRecord.from_dict` adds the source (file, list index) to the error message.

Cohort — the records a baseline may be drawn from — is (model_id, workload_id,
variant_id, recipe_fingerprint, hardware_profile_id, gpu_type). The software profile is
deliberately *not* part of it: a torch/diffusers/transformers update must show up as a
regression against the existing baseline, not silently open a fresh cohort that only
says "calibration needed". The software profile id is still stored on every record so a
regression can be traced to the dependency change.

`exact` says whether the measured output is held to parity (the reference itself, or a
native mode that passes its parity check): a speed-up bought by approximation (fewer
steps, caching, quantization beyond the parity contract) is recorded with `exact=False`
and `compare` refuses to judge it against an exact baseline. Records written before the
flag existed read as exact (every one of them was held to parity), and an exact record's
key is the same as before the flag, so old JSON recorded again is still recognised.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from workbench.errors import PerfError
from workbench.io import atomic_write_text

# Every measured quantity; the unit is in the name. Only latency is required (for a
# successful run); the others are None when a benchmark does not measure them.
METRIC_FIELDS = ("latency_s", "throughput_fps", "peak_memory_mb", "text_encoder_s", "dit_s", "vae_decode_s")
IDENTITY_FIELDS = ("model_id", "commit", "gpu_type", "workload_id", "variant_id",
                   "recipe_fingerprint", "hardware_profile_id", "software_profile_id", "run_source")
SOFTWARE_PACKAGES = ("torch", "diffusers", "transformers")
OPTIONAL_FIELDS = ("extra", "exact")  # besides the metrics: fields a record may leave out
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Cohort(NamedTuple):
    """Records comparable with each other: same model, workload, variant, recipe and hardware."""

    model_id: str
    workload_id: str
    variant_id: str
    recipe_fingerprint: str
    hardware_profile_id: str
    gpu_type: str

    def describe(self) -> str:
        return (f"model={self.model_id} workload={self.workload_id} variant={self.variant_id} "
                f"recipe={self.recipe_fingerprint[:12]} hardware={self.hardware_profile_id} gpu={self.gpu_type}")


@dataclass(frozen=True)
class PerfRecord:
    """One measured run (or one failed attempt); metrics carry their unit in their name."""

    model_id: str
    timestamp: str  # ISO-8601, normalized to UTC with microseconds so text order is time order
    commit: str
    gpu_type: str  # GPU model name, or "cpu"
    workload_id: str
    variant_id: str
    recipe_fingerprint: str  # recipe_fingerprint(declared inputs)
    hardware_profile_id: str
    software_profile_id: str
    success: bool
    run_source: str  # "benchmark", "ci", "manual", ...
    baseline_eligible: bool
    latency_s: float | None = None
    throughput_fps: float | None = None
    peak_memory_mb: float | None = None
    text_encoder_s: float | None = None
    dit_s: float | None = None
    vae_decode_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    exact: bool = True  # held to parity (see the module docstring); False: an approximate speed-up

    def __post_init__(self) -> None:
        for name in IDENTITY_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise PerfError(f"field {name!r} expected a non-empty string, got {value!r}")
        if not _SHA256_HEX.fullmatch(self.recipe_fingerprint):
            raise PerfError(f"field 'recipe_fingerprint' expected 64 lowercase hex digits "
                            f"(sha256 of the declared inputs), got {self.recipe_fingerprint!r}")
        object.__setattr__(self, "timestamp", _normalize_timestamp(self.timestamp))
        for name in ("success", "baseline_eligible", "exact"):
            if not isinstance(getattr(self, name), bool):
                raise PerfError(f"field {name!r} expected true or false, got {getattr(self, name)!r}")
        for name in METRIC_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise PerfError(f"field {name!r} expected a finite number >= 0 or null, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.success and self.latency_s is None:
            raise PerfError("field 'latency_s' is required when 'success' is true")
        if not isinstance(self.extra, dict):
            raise PerfError(f"field 'extra' expected a JSON object, got {type(self.extra).__name__}")
        try:
            json.dumps(self.extra, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PerfError(f"field 'extra' expected JSON-serializable values: {exc}") from None

    @property
    def cohort(self) -> Cohort:
        return Cohort(self.model_id, self.workload_id, self.variant_id, self.recipe_fingerprint,
                      self.hardware_profile_id, self.gpu_type)

    def metrics(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in METRIC_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> PerfRecord:
        """Validate a decoded JSON object; errors name `source` and the offending field."""
        if not isinstance(data, dict):
            raise PerfError(f"{source}: expected a JSON object for a perf record, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PerfError(f"{source}: unknown field {unknown[0]!r} (put free-form data under 'extra'; "
                            f"known fields: {', '.join(sorted(known))})")
        required = [f.name for f in fields(cls) if f.name not in METRIC_FIELDS + OPTIONAL_FIELDS]
        missing = [name for name in required if name not in data]
        if missing:
            raise PerfError(f"{source}: missing required field {missing[0]!r}")
        try:
            return cls(**data)
        except PerfError as exc:
            raise PerfError(f"{source}: {exc}") from None


def _normalize_timestamp(value: Any) -> str:
    if not isinstance(value, str):
        raise PerfError(f"field 'timestamp' expected an ISO-8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PerfError(f"field 'timestamp' expected ISO-8601 (e.g. 2026-01-31T12:00:00Z), got {value!r}") from None
    if parsed.tzinfo is None:
        raise PerfError(f"field 'timestamp' expected a timezone (e.g. a trailing 'Z' for UTC), got {value!r}")
    return parsed.astimezone(timezone.utc).isoformat(timespec="microseconds")


def load_records(path: str | Path) -> list[PerfRecord]:
    """Read a JSON file holding one record object or a list of them."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PerfError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PerfError(f"{path}: not a readable JSON file ({exc})") from None
    if isinstance(data, list):
        if not data:
            raise PerfError(f"{path}: expected a record or a non-empty list of records, got an empty list")
        return [PerfRecord.from_dict(item, f"{path}[{i}]") for i, item in enumerate(data)]
    return [PerfRecord.from_dict(data, str(path))]


def write_records(path: str | Path, records: Sequence[PerfRecord]) -> Path:
    """Write records as a JSON list that `load_records` reads back (atomically)."""
    return atomic_write_text(path, json.dumps([r.to_dict() for r in records], indent=2) + "\n")


# --- fingerprints and profiles ----------------------------------------------------------

def _canonical(value: Any, where: str) -> Any:
    """JSON-ready copy where equal recipes are equal: 5.0 == 5, -0.0 == 0, tuples are lists."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PerfError(f"recipe input {where!r}: expected a finite number, got {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PerfError(f"recipe input {where!r}: expected string keys, got {key!r}")
            out[key] = _canonical(item, f"{where}.{key}" if where else key)
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise PerfError(f"recipe input {where!r}: expected a JSON value, got {type(value).__name__}")


def canonical_json(inputs: Any) -> str:
    """Sorted keys, no whitespace, floats as Python's shortest round-trip repr."""
    return json.dumps(_canonical(inputs, ""), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def recipe_fingerprint(inputs: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of the declared inputs of a run."""
    return hashlib.sha256(canonical_json(inputs).encode("utf-8")).hexdigest()


def record_key(record: PerfRecord) -> str:
    """Identity of a measurement, independent of whether it currently counts for a baseline."""
    data = record.to_dict()
    del data["baseline_eligible"]
    if data["exact"]:
        del data["exact"]  # the key of an exact record is the key it had before the flag existed
    return recipe_fingerprint(data)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_models() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def hardware_profile() -> dict[str, Any]:
    """What the hardware profile id hashes: CPU model and count, visible GPU models and count."""
    gpus = _gpu_models()
    return {"machine": platform.machine(), "cpu_model": _cpu_model(), "cpu_count": os.cpu_count() or 0,
            "gpu_models": gpus, "gpu_count": len(gpus)}


def software_profile() -> dict[str, str | None]:
    """Python and key package versions; a package that is not installed maps to None."""
    profile: dict[str, str | None] = {"python": platform.python_version()}
    for package in SOFTWARE_PACKAGES:
        try:
            profile[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            profile[package] = None
    return profile


def hardware_profile_id(profile: dict[str, Any] | None = None) -> str:
    return "hw-" + recipe_fingerprint(hardware_profile() if profile is None else profile)[:16]


def software_profile_id(profile: dict[str, Any] | None = None) -> str:
    return "sw-" + recipe_fingerprint(software_profile() if profile is None else profile)[:16]


def detect_gpu_type() -> str:
    """The `gpu_type` of a run on this machine: the first visible GPU's name, else "cpu"."""
    gpus = _gpu_models()
    return gpus[0] if gpus else "cpu"
