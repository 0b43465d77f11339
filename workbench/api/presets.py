"""`InferencePreset`: frozen, versioned sets of defaults for one family and workload.

`stage_schemas` only validate user-facing stage overrides (`--override Stage.key=value`);
they never build the stage chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from workbench.api.params import SamplingParam
from workbench.api.workload import WorkloadType
from workbench.errors import ParameterError, RegistryError


@dataclass(frozen=True)
class InferencePreset:
    model_family: str
    name: str
    version: int
    workload_type: WorkloadType
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # stage name -> {key: allowed values (tuple) or a type}
    stage_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "stage_schemas",
                           MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.stage_schemas.items()}))

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.model_family, self.name, self.version)

    def lint(self) -> None:
        """A default that is not a declared SamplingParam field is an error (never dropped)."""
        SamplingParam.check_keys(self.defaults.keys(), f"preset {self.model_family}/{self.name}@v{self.version}")

    def validate_overrides(self, overrides: Iterable[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
        """Check (stage, key, value) overrides against the schemas; return them grouped by stage."""
        grouped: dict[str, dict[str, Any]] = {}
        where = f"preset {self.model_family}/{self.name}"
        for stage, key, value in overrides:
            if stage not in self.stage_schemas:
                raise ParameterError(
                    f"stage override {stage}.{key}: unknown stage {stage!r} for {where}; "
                    f"overridable stages: {sorted(self.stage_schemas) or 'none'}")
            schema = self.stage_schemas[stage]
            if key not in schema:
                raise ParameterError(
                    f"stage override {stage}.{key}: unknown key {key!r}; {stage} accepts {sorted(schema)}")
            allowed = schema[key]
            ok = value in allowed if isinstance(allowed, tuple) else isinstance(value, allowed)
            if not ok:
                raise ParameterError(f"stage override {stage}.{key}={value!r}: expected {allowed!r}")
            previous = grouped.setdefault(stage, {})
            if key in previous and previous[key] != value:
                raise ParameterError(
                    f"stage override {stage}.{key}: conflicting values {previous[key]!r} and {value!r}")
            previous[key] = value
        return grouped


def parse_overrides(items: list[str] | None) -> tuple[tuple[str, str, Any], ...]:
    """`["DenoisingStage.cfg=batched"]` -> (("DenoisingStage", "cfg", "batched"),)."""
    from workbench.api.params import parse_value

    out = []
    for item in items or []:
        target, sep, value = item.partition("=")
        stage, dot, key = target.partition(".")
        if not sep or not dot or not stage or not key:
            raise ParameterError(f"--override {item!r}: expected Stage.key=VALUE")
        out.append((stage, key, parse_value(value)))
    return tuple(out)


class PresetTable:
    """The presets of all families: unique keys, lint at registration, highest version by default."""

    def __init__(self):
        self._presets: dict[tuple[str, str, int], InferencePreset] = {}

    def add_all(self, presets: Iterable[InferencePreset]) -> None:
        for preset in presets:
            preset.lint()
            if preset.key in self._presets:
                raise RegistryError(f"duplicate preset {preset.model_family}/{preset.name}@v{preset.version}")
            self._presets[preset.key] = preset

    def get(self, family: str, name: str, version: int | None = None) -> InferencePreset:
        matches = [p for (f, n, _), p in self._presets.items() if f == family and n == name]
        if version is not None:
            matches = [p for p in matches if p.version == version]
        if not matches:
            known = sorted({n for (f, n, _) in self._presets if f == family})
            raise RegistryError(f"no preset {name!r}" + (f" version {version}" if version is not None else "")
                                + f" for family {family!r}; known: {known}")
        return max(matches, key=lambda p: p.version)

    def for_family(self, family: str) -> list[InferencePreset]:
        return sorted((p for p in self._presets.values() if p.model_family == family), key=lambda p: (p.name, p.version))
