"""Loading pipeline modules from a model directory.

Each module name maps to one loader, chosen first by the module's name (tokenizers,
schedulers, processors) and then by the manifest's library token. Classes are looked up
as attributes of the named library only: no arbitrary imports, no `trust_remote_code`.
Weights come from safetensors only and load strictly: missing or unexpected keys are an
error that names the file and the keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

from workbench.errors import ComponentLoadError
from workbench.runtime.manifest import ModuleSpec

SAFE_WEIGHT_SUFFIX = ".safetensors"
UNSAFE_WEIGHT_FILES = ("pytorch_model.bin", "diffusion_pytorch_model.bin", "model.ckpt", "model.pt")


def _library(name: str):
    if name == "diffusers":
        import diffusers

        return diffusers
    if name == "transformers":
        import transformers

        return transformers
    if name == "workbench":
        from workbench import components

        return components
    package = _diffusers_pipeline_package(name)
    if package is not None:
        return package
    raise ComponentLoadError(f"unknown library token {name!r} (expected diffusers, transformers, workbench "
                             "or a diffusers pipeline package such as ltx2)")


def _diffusers_pipeline_package(name: str):
    """diffusers records a module defined inside a pipeline package by that package's name
    (LTX-2's connectors and vocoder are `["ltx2", ...]`); only `diffusers.pipelines.*` is searched."""
    import importlib
    import importlib.util

    if not name.isidentifier():
        return None
    try:
        found = importlib.util.find_spec(f"diffusers.pipelines.{name}") is not None
    except ModuleNotFoundError:
        return None
    return importlib.import_module(f"diffusers.pipelines.{name}") if found else None


def resolve_class(spec: ModuleSpec) -> type:
    lib = _library(spec.library)
    cls = getattr(lib, spec.class_name, None)
    if not isinstance(cls, type):
        raise ComponentLoadError(f"module {spec.name!r}: {spec.library} has no class {spec.class_name!r}")
    return cls


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a module folder (sharded or not); refuses pickle-only folders."""
    index = sorted(folder.glob("*.safetensors.index.json"))
    if index:
        shards = sorted(set(json.loads(index[0].read_text())["weight_map"].values()))
        return [folder / s for s in shards]
    files = sorted(folder.glob(f"*{SAFE_WEIGHT_SUFFIX}"))
    if not files:
        unsafe = [f for f in UNSAFE_WEIGHT_FILES if (folder / f).exists()]
        if unsafe:
            raise ComponentLoadError(
                f"{folder}: only pickle weights ({', '.join(unsafe)}); convert them to safetensors")
        raise ComponentLoadError(f"{folder}: no *.safetensors weight file")
    return files


def read_state_dict(folder: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for f in weight_files(folder):
        try:
            state.update(load_file(str(f), device=str(device)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ComponentLoadError(f"{f}: unreadable safetensors file ({exc})") from None
    return state


def load_strict(model: torch.nn.Module, folder: Path, ignorable_missing: set[str] = frozenset(),
                rename: Callable[[str], str] | None = None) -> torch.nn.Module:
    """Copy the folder's weights into `model`, refusing missing, unexpected or mis-shaped keys.

    Copying (rather than assigning) the tensors gives freshly allocated, aligned parameters:
    memory-mapped safetensors are not 64-byte aligned, which moves CPU matmuls by ~1e-7.
    `rename` maps a file key to the model's key (a library's own checkpoint renaming).
    """
    state = read_state_dict(folder)
    if rename is not None:
        state = {rename(k): v for k, v in state.items()}
    return load_state_strict(model, state, folder, ignorable_missing)


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], folder: Path,
                      ignorable_missing: set[str] = frozenset()) -> torch.nn.Module:
    """The strict part of `load_strict`, for a state dict already read (and converted)."""
    expected = model.state_dict()
    wrong_shape = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                   for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if wrong_shape:
        raise ComponentLoadError(f"{folder}: weights do not fit the config: " + "; ".join(wrong_shape[:5]))
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in ignorable_missing]
    if missing or result.unexpected_keys:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:8]}" + (f" (+{len(missing) - 8} more)" if len(missing) > 8 else ""))
        if result.unexpected_keys:
            unexpected = result.unexpected_keys
            parts.append(f"unexpected keys {unexpected[:8]}" + (f" (+{len(unexpected) - 8} more)" if len(unexpected) > 8 else ""))
        raise ComponentLoadError(f"{folder}: weights do not match {type(model).__name__}: " + "; ".join(parts))
    return model.eval()


# Models are built on the target device: initialising a multi-billion-parameter encoder on
# the CPU only to overwrite it would cost minutes.
def load_diffusers_model(folder: Path, cls: type, device: torch.device) -> torch.nn.Module:
    try:
        config = cls.load_config(str(folder))
    except Exception as exc:  # diffusers raises EnvironmentError / ValueError variants
        raise ComponentLoadError(f"{folder}: cannot read the {cls.__name__} config ({exc})") from None
    with torch.device(device):
        model = cls.from_config(config)
    return load_strict(model, folder)


def load_workbench_model(folder: Path, cls: type, device: torch.device) -> torch.nn.Module:
    """A native component: its config and weights are the official ones, converted by the
    class (`read_config`, `convert_state_dict`) and then loaded strictly."""
    config = cls.read_config(folder)
    with torch.device(device):
        model = cls(config)
    state = cls.convert_state_dict(read_state_dict(folder), source=str(folder))
    return load_state_strict(model, state, folder)


def load_transformers_model(folder: Path, cls: type, device: torch.device) -> torch.nn.Module:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ComponentLoadError(f"{config_path}: missing")
    config = cls.config_class.from_pretrained(str(folder))
    with torch.device(device):
        model = cls(config)
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    return load_strict(model, folder, ignorable_missing=tied, rename=_transformers_renaming(model, folder))


def _transformers_renaming(model: torch.nn.Module, folder: Path) -> Callable[[str], str]:
    """transformers 5 saves some models under their original checkpoint names (Gemma 3 as
    `language_model.model.*`) and renames on load; apply the same renamings. A key that needs a
    tensor conversion (not just a new name) is refused rather than loaded wrong."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, rename_source_key

    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if not isinstance(t, WeightConverter)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    model_keys = model.state_dict()

    def rename(key: str) -> str:
        new_key, converter = rename_source_key(key, renamings, converters, model.base_model_prefix, model_keys)
        if converter is not None:
            raise ComponentLoadError(f"{folder}: weight {key!r} needs a tensor conversion ({converter}); "
                                     "the strict loader only renames")
        return new_key

    return rename


def load_config_only(folder: Path, cls: type, device: torch.device) -> Any:
    """Schedulers, tokenizers and processors: config or vocabulary files, no weights."""
    try:
        return cls.from_pretrained(str(folder))
    except Exception as exc:
        raise ComponentLoadError(f"{folder}: cannot load {cls.__name__} ({exc})") from None


# Loader choice: a name rule wins over the library rule.
NAME_LOADERS: dict[str, Callable[[Path, type, torch.device], Any]] = {
    "tokenizer": load_config_only,
    "scheduler": load_config_only,
    "feature_extractor": load_config_only,
    "image_processor": load_config_only,
}
LIBRARY_LOADERS: dict[str, Callable[[Path, type, torch.device], Any]] = {
    "diffusers": load_diffusers_model,
    "transformers": load_transformers_model,
    "workbench": load_workbench_model,
}


def loader_for(spec: ModuleSpec) -> Callable[[Path, type, torch.device], Any]:
    base = spec.name.rstrip("_0123456789")
    if base in NAME_LOADERS:
        return NAME_LOADERS[base]
    if spec.library in LIBRARY_LOADERS:
        return LIBRARY_LOADERS[spec.library]
    if _diffusers_pipeline_package(spec.library) is not None:
        return load_diffusers_model
    raise ComponentLoadError(f"module {spec.name!r}: no loader for library {spec.library!r}")


def load_module(model_dir: Path, spec: ModuleSpec, device: torch.device = torch.device("cpu")) -> Any:
    folder = Path(model_dir) / spec.name
    if not folder.is_dir():
        raise ComponentLoadError(f"{folder}: module folder for {spec.name!r} is missing")
    return loader_for(spec)(folder, resolve_class(spec), device)
