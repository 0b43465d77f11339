"""`ComposedPipeline`: modules from a model directory, a list of named stages over one batch.

Construction order is fixed and matters:
  read `model_index.json` -> `load_modules()` -> `initialize_pipeline()` -> `create_pipeline_stages()`.
Anything that affects loading (dtype overrides, path rewrites) happens in or before
`load_modules()`. `_required_config_modules` is a class constant and never mutated: each
instance works on its own copy, extended from the manifest where a family needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from workbench.errors import ManifestError, RegistryError
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.device import resolve_device
from workbench.runtime.hooks import PipelineHooks
from workbench.runtime.loader import load_module
from workbench.runtime.manifest import Manifest, read_manifest
from workbench.runtime.stage import Stage


class ComposedPipeline:
    _required_config_modules: tuple[str, ...] = ()
    _optional_config_modules: tuple[str, ...] = ()

    def __init__(self, model_dir: str | Path, *, device: str | torch.device = "auto",
                 module_dtypes: dict[str, torch.dtype] | None = None, progress: bool = True,
                 manifest: Manifest | None = None):
        self.model_dir = Path(model_dir)
        self.manifest = manifest or read_manifest(self.model_dir)
        self.device = resolve_device(device)
        self.module_dtypes = dict(module_dtypes or {})
        self.progress = progress
        self.required_modules: list[str] = self.required_modules_for(self.manifest)
        self.modules: dict[str, Any] = {}
        self.load_modules()
        self.initialize_pipeline()
        self.stages: list[Stage] = self.create_pipeline_stages()

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model_dir: str | Path, **kwargs) -> "ComposedPipeline":
        """Resolve the exact class named by the manifest and build it."""
        from workbench import registry

        manifest = read_manifest(model_dir)
        pipeline_cls = registry.resolve_pipeline_class(manifest)
        if cls is not ComposedPipeline and not issubclass(pipeline_cls, cls):
            raise RegistryError(
                f"{manifest.path}: _class_name {manifest.class_name!r} is not a {cls.__name__}")
        return pipeline_cls(model_dir, manifest=manifest, **kwargs)

    def required_modules_for(self, manifest: Manifest) -> list[str]:
        """This instance's required modules: a copy of the class constant (override to extend)."""
        return list(self._required_config_modules)

    def load_modules(self) -> None:
        specs = self.manifest.modules
        missing = [n for n in self.required_modules if n not in specs]
        disabled = [n for n in self.required_modules if n in specs and specs[n].disabled]
        if missing or disabled:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if disabled:
                parts.append(f"disabled ([null, null]) {disabled}")
            raise ManifestError(
                f"{self.manifest.path}: {type(self).__name__} requires modules {self.required_modules}; "
                + " and ".join(parts))
        known = set(self.required_modules) | set(self._optional_config_modules)
        for name in self.manifest.enabled_modules:
            if name not in known:
                continue  # a module this pipeline does not use (e.g. an official extra) stays on disk
            module = load_module(self.model_dir, specs[name])
            if isinstance(module, torch.nn.Module):
                dtype = self.module_dtypes.get(name)
                module = module.to(device=self.device, dtype=dtype) if dtype else module.to(self.device)
            self.modules[name] = module

    def initialize_pipeline(self) -> None:
        """Hook for post-load set-up (e.g. swapping the scheduler)."""

    def create_pipeline_stages(self) -> list[Stage]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def progress(self) -> bool:
        return self._progress

    @progress.setter
    def progress(self, value: bool) -> None:
        """Also reaches stages built earlier (a cached pipeline reused with another setting)."""
        self._progress = value
        for stage in self.__dict__.get("stages", []):
            if hasattr(stage, "progress"):
                stage.progress = value

    # ---- access -------------------------------------------------------------------
    def get_module(self, name: str, default: Any = None) -> Any:
        return self.modules.get(name, default)

    def __getattr__(self, name: str) -> Any:
        modules = self.__dict__.get("modules", {})
        if name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or module {name!r}")

    def set_module(self, name: str, module: Any) -> None:
        self.modules[name] = module

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    # ---- running ------------------------------------------------------------------
    def run(self, batch: ForwardBatch, hooks: PipelineHooks | None = None) -> ForwardBatch:
        hooks = hooks or PipelineHooks()
        batch.device = self.device
        for stage in self.stages:
            batch = stage(batch, hooks)
        return batch

    def __call__(self, params: Any = None, *, hooks: PipelineHooks | None = None, **request: Any) -> ForwardBatch:
        """Run a `SamplingParam` (or keyword request merged over the family defaults)."""
        from workbench.api.params import SamplingParam

        if params is None:
            from workbench import registry

            family = registry.family_for_manifest(self.manifest, self.model_dir)
            params = family.sampling_params(request=request)
        elif request:
            params = params.replace(**request)
        if not isinstance(params, SamplingParam):
            raise TypeError("params must be a SamplingParam")
        return self.run(params.to_batch(), hooks)
