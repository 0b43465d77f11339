"""`ComposedPipeline`: modules from a model directory, a list of named stages over one batch.

Construction order is fixed and matters:
  read `model_index.json` -> `load_modules()` -> `initialize_pipeline()` -> `create_pipeline_stages()`.
Anything that affects loading (dtype overrides, path rewrites) happens in or before
`load_modules()`. `_required_config_modules` is a class constant and never mutated: each
instance works on its own copy, extended from the manifest where a family needs it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ManifestError, ParameterError, RegistryError
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.device import resolve_device
from workbench.runtime.hooks import PipelineHooks
from workbench.runtime.loader import load_module
from workbench.runtime.manifest import Manifest, ModuleSpec, read_manifest
from workbench.runtime.stage import Stage


def place_module(module: torch.nn.Module, device: torch.device, dtype: torch.dtype | None) -> torch.nn.Module:
    """Move a module to `device`, casting to `dtype` except the parameters the model keeps in
    fp32, by the rule of the library that defines it (as its `from_pretrained(torch_dtype=...)`
    does): diffusers keeps them for any reduced dtype, transformers only for float16.

    transformers also leaves the fp32 tables it computes at init and never saves (RoPE
    `inv_freq`) in fp32 under `from_pretrained(dtype=...)`; casting them would round the
    rotary frequencies (Gemma 3's hidden states then move by ~2e-2 in bf16)."""
    tables = {}
    if dtype is not None and type(module).__module__.startswith("transformers."):
        for name, buffer in module.named_buffers():
            owner, _, attr = name.rpartition(".")
            if buffer.dtype == torch.float32 and attr in module.get_submodule(owner)._non_persistent_buffers_set:
                tables[(owner, attr)] = buffer
    module = module.to(device=device, dtype=dtype) if dtype else module.to(device)
    for (owner, attr), buffer in tables.items():
        module.get_submodule(owner)._buffers[attr] = buffer.to(device)
    keep = getattr(module, "_keep_in_fp32_modules", None) or ()
    if type(module).__module__.startswith("transformers.") and dtype != torch.float16:
        keep = ()
    if dtype is not None and keep:
        with torch.no_grad():
            for name, param in module.named_parameters():
                if any(k in name.split(".") for k in keep):
                    param.data = param.data.float()
    return module


@contextmanager
def attention_priority(device: torch.device, backends: tuple[str, ...]):
    """On CUDA: prefer SDPA backends in this order (e.g. cudnn, flash, efficient, math), and
    let cuDNN pick the fastest convolution algorithms (the VAE's conv3d) for the run."""
    if device.type != "cuda" or not backends:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        with sdpa_kernel([names[b] for b in backends], set_priority=True):
            yield
    finally:
        torch.backends.cudnn.benchmark = benchmark


def compile_module(module: torch.nn.Module) -> None:
    """torch.compile per repeated block where the model declares them (diffusers'
    `_repeated_blocks`, the native DiT's blocks): one graph compiled once and reused."""
    if getattr(module, "_repeated_blocks", None) and hasattr(module, "compile_repeated_blocks"):
        module.compile_repeated_blocks()
    else:
        module.compile()


class ComposedPipeline:
    _required_config_modules: tuple[str, ...] = ()
    _optional_config_modules: tuple[str, ...] = ()

    def __init__(self, model_dir: str | Path, *, device: str | torch.device = "auto",
                 module_dtypes: dict[str, torch.dtype] | None = None, progress: bool = True,
                 manifest: Manifest | None = None, attention_backends: tuple[str, ...] = (),
                 module_setup: tuple[tuple[str, str], ...] = (), compile_modules: tuple[str, ...] = (),
                 module_classes: dict[str, tuple[str, str]] | None = None):
        self.model_dir = Path(model_dir)
        self.manifest = manifest or read_manifest(self.model_dir)
        self.device = resolve_device(device)
        self.module_dtypes = dict(module_dtypes or {})
        self.attention_backends = tuple(attention_backends)
        self.module_setup = tuple(module_setup)
        self.compile_modules = tuple(compile_modules)
        self.module_classes = dict(module_classes or {})
        self._progress = progress
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
            spec = specs[name]
            if name in self.module_classes:  # a native class loading the same (official) folder
                spec = ModuleSpec(name, *self.module_classes[name])
            module = load_module(self.model_dir, spec, self.device, dtype=self.module_dtypes.get(name))
            if isinstance(module, torch.nn.Module):
                module = place_module(module, self.device, self.module_dtypes.get(name))
                for method in (m for target, m in self.module_setup if target == name):
                    getattr(module, method)()
                if name in self.compile_modules:
                    compile_module(module)
            self.modules[name] = module

    def initialize_pipeline(self) -> None:
        """Hook for post-load set-up (e.g. swapping the scheduler)."""

    def create_pipeline_stages(self) -> list[Stage]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- access -------------------------------------------------------------------
    def get_module(self, name: str, default: Any = None) -> Any:
        return self.modules.get(name, default)

    def __getattr__(self, name: str) -> Any:
        modules = self.__dict__.get("modules", {})
        if name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or module {name!r}")

    @property
    def progress(self) -> bool:
        return self._progress

    @progress.setter
    def progress(self, show: bool) -> None:
        """Show or hide progress bars (stages that draw one have a `progress` setting)."""
        self._progress = show
        for stage in self.__dict__.get("stages", []):
            if hasattr(stage, "progress"):
                stage.progress = show

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    # ---- running ------------------------------------------------------------------
    def run(self, batch: ForwardBatch, hooks: PipelineHooks | None = None,
            stage_overrides: tuple[tuple[str, str, Any], ...] = ()) -> ForwardBatch:
        hooks = hooks or PipelineHooks()
        batch.device = self.device
        with self._overridden(stage_overrides), attention_priority(self.device, self.attention_backends):
            for stage in self.stages:
                batch = stage(batch, hooks)
        return batch

    @contextmanager
    def _overridden(self, overrides):
        """Apply (stage, key, value) settings for one run, then restore them."""
        saved = []
        try:
            for stage_name, key, value in overrides:
                try:
                    stage = self.stage(stage_name)
                except KeyError:
                    raise ParameterError(f"stage override {stage_name}.{key}: {type(self).__name__} has no stage "
                                         f"{stage_name!r}; stages: {self.stage_names}") from None
                if not hasattr(stage, key):
                    raise ParameterError(f"stage override {stage_name}.{key}: the stage has no setting {key!r}")
                saved.append((stage, key, getattr(stage, key)))
                setattr(stage, key, value)
            yield
        finally:
            for stage, key, value in reversed(saved):
                setattr(stage, key, value)

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
        return self.run(params.to_batch(), hooks, params.stage_overrides)
