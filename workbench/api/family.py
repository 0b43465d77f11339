"""What a family declares: its pipeline class, official defaults (with sources), presets,
detectors, media contract and reference builder. `workbench/registry.py` collects them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from workbench.api.params import SamplingParam
from workbench.api.presets import InferencePreset
from workbench.api.workload import WorkloadType


@dataclass(frozen=True)
class Sourced:
    """A default value and where it was read (file and line, or the call signature)."""

    value: Any
    source: str


@dataclass(frozen=True)
class Detector:
    """Chooses this family for a model directory: manifest class names, path substrings and
    manifest metadata values. It selects configs and presets, never the pipeline class."""

    class_names: tuple[str, ...] = ()
    path_substrings: tuple[str, ...] = ()
    metadata: Mapping[str, Callable[[Any], bool]] = field(default_factory=dict)

    def score(self, class_name: str, path: str, metadata: Mapping[str, Any]) -> int:
        """0 = no match; higher = more specific."""
        if self.class_names and class_name not in self.class_names:
            return 0
        if self.path_substrings and not any(s in path for s in self.path_substrings):
            return 0
        if not all(pred(metadata.get(k)) for k, pred in self.metadata.items()):
            return 0
        return 1 + len(self.path_substrings) + len(self.metadata)


@dataclass(frozen=True)
class FastMode:
    """How the native pipeline runs in fast mode (CUDA): module dtypes, attention backend
    priority, module set-up calls (e.g. fused QKV projections), compiled modules and stage
    overrides. Exact mode is always fp32 as loaded."""

    module_dtypes: Mapping[str, Any] = field(default_factory=dict)
    module_setup: tuple[tuple[str, str], ...] = ()  # (module, method) called once after loading
    # Native components that replace the manifest's class (library, class); they load the
    # official weights through their converter (e.g. the Wan DiT with fused projections).
    module_classes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    attention_backends: tuple[str, ...] = ("cudnn", "flash", "efficient", "math")
    compile_modules: tuple[str, ...] = ()
    stage_overrides: tuple[tuple[str, str, Any], ...] = ()
    reference_dtype: Any = None        # dtype the official pipeline is loaded in for fast parity
    reference_fp32_modules: tuple[str, ...] = ()  # official modules kept fp32 (e.g. the Wan VAE)


@dataclass(frozen=True)
class FamilyConfig:
    name: str
    workload: WorkloadType
    pipeline_class: type
    official_pipeline: str            # the diffusers class this family ports
    defaults: Mapping[str, Sourced]   # official call defaults
    presets: tuple[InferencePreset, ...]
    default_preset: str
    detectors: tuple[Detector, ...]
    reference_module: str             # module with build_reference() and run_reference()
    media: Callable[[Any], Any]       # finished request (ForwardBatch: request fields + model-set ones) -> media contract
    output_kind: str = "frames"       # "frames" | "waveform" | "joint"
    golden_presets: tuple[str, ...] = ("tiny-ci",)  # presets with goldens in reference_outputs/ (CPU-sized)
    fast: FastMode = field(default_factory=FastMode)
    description: str = ""

    def default_values(self) -> dict[str, Any]:
        return {k: v.value for k, v in self.defaults.items()}

    def preset(self, name: str | None = None, version: int | None = None) -> InferencePreset:
        from workbench import registry

        return registry.PRESETS.get(self.name, name or self.default_preset, version)

    def sampling_params(self, preset: str | None = None, request: Mapping[str, Any] | None = None,
                        version: int | None = None) -> SamplingParam:
        """class defaults < official defaults < preset < request."""
        p = self.preset(preset, version)
        params = SamplingParam.resolve(
            self.default_values(), dict(p.defaults), dict(request or {}),
            where=(f"{self.name} defaults", f"preset {p.name}", "request"), family=self.name)
        p.validate_overrides(params.stage_overrides)
        if params.image is not None and not self.workload.takes_image:
            from workbench.errors import ParameterError

            raise ParameterError(f"image (--image): family {self.name} is {self.workload.name} and takes no "
                                 "conditioning image; image-to-video families do (see `workbench families`)")
        if params.image is not None:
            from workbench.media import check_image

            check_image(params.image)  # from its header, before any model loads
        return params

    @property
    def reference(self):
        return importlib.import_module(self.reference_module)
