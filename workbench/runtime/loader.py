"""Loading pipeline modules from a model directory.

Each module name maps to one loader, chosen first by the module's name (tokenizers,
schedulers, processors) and then by the manifest's library token. Classes are looked up
as attributes of the named library only: no arbitrary imports, no `trust_remote_code`.
Weights come from safetensors only and load strictly: missing or unexpected keys are an
error that names the file and the keys.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

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


def _read_index(index: Path) -> list[str]:
    """The shard file names of a sharded checkpoint's `*.safetensors.index.json`, each a file of
    the module folder itself (a name reaching outside it, `../x`, or an absolute path is refused)."""
    try:
        data = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ComponentLoadError(f"{index}: not a readable JSON index ({exc})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ComponentLoadError(f"{index}: expected a non-empty 'weight_map' object (tensor name -> shard file)")
    bad = [f"{k!r}: {v!r}" for k, v in weight_map.items() if not isinstance(v, str) or not v.endswith(SAFE_WEIGHT_SUFFIX)]
    if bad:
        raise ComponentLoadError(f"{index}: weight_map entries must name *{SAFE_WEIGHT_SUFFIX} shard files, "
                                 f"got {', '.join(bad[:3])}")
    shards = sorted(set(weight_map.values()))
    outside = [s for s in shards if Path(s).name != s or s in (".", "..")]
    if outside:
        raise ComponentLoadError(f"{index}: weight_map names shard(s) outside the module folder {outside[:3]}; "
                                 "expected file names in that folder")
    missing = [s for s in shards if not (index.parent / s).is_file()]
    if missing:
        raise ComponentLoadError(f"{index}: weight_map names shard(s) that do not exist: {missing[:3]}")
    return shards


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a module folder (sharded or not); refuses pickle-only folders."""
    index = sorted(folder.glob("*.safetensors.index.json"))
    if index:
        return [folder / s for s in _read_index(index[0])]
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
                rename: Callable[[str], str] | None = None, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """Copy the folder's weights into `model`, refusing missing, unexpected or mis-shaped keys.

    Copying (rather than assigning) the tensors gives freshly allocated, aligned parameters:
    memory-mapped safetensors are not 64-byte aligned, which moves CPU matmuls by ~1e-7.
    `rename` maps a file key to the model's key (a library's own checkpoint renaming).
    """
    state = read_state_dict(folder)
    if rename is not None:
        state = {rename(k): v for k, v in state.items()}
    return load_state_strict(model, state, folder, ignorable_missing, dtype=dtype)


#: Saved dtypes whose every value float32 holds exactly (an upcast on load changes no value).
EXACT_IN_FLOAT32 = (torch.bfloat16, torch.float16)
_UPCASTS: ContextVar[list | None] = ContextVar("workbench_exact_upcasts", default=None)


@contextmanager
def exact_fp32_upcast() -> Iterator[list[dict[str, Any]]]:
    """Within the block, a module declared float32 (`dtype=torch.float32`) also accepts floating
    tensors saved in bf16 or fp16 and loads them upcast: exact, every such value is a float32.
    Only the fp32 parity mode enters it (the official side's `from_pretrained(torch_dtype=float32)`
    upcasts the same files), so every other load keeps the strict dtype check. Yields the list of
    what was upcast, one {"folder", "from", "to", "tensors"} per module, for the run's record."""
    record: list[dict[str, Any]] = []
    token = _UPCASTS.set(record)
    try:
        yield record
    finally:
        _UPCASTS.reset(token)


def _exact_upcast(saved: torch.dtype, expected: torch.dtype, declared: torch.dtype | None) -> bool:
    return (_UPCASTS.get() is not None and declared == torch.float32 and expected == torch.float32
            and saved in EXACT_IN_FLOAT32)


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], folder: Path,
                      ignorable_missing: set[str] = frozenset(), dtype: torch.dtype | None = None) -> torch.nn.Module:
    """The strict part of `load_strict`, for a state dict already read (and converted).

    A tensor must have the dtype of the parameter it fills: loading would cast it silently
    (an int64 or float16 tensor into a float32 weight). `dtype` is the module's declared
    precision (fast mode's bf16): a floating tensor saved in that dtype is accepted too.
    Inside `exact_fp32_upcast` (fp32 parity mode only), a bf16/fp16 tensor filling a float32
    parameter of a module declared float32 is accepted and upcast (exact), and recorded.
    """
    expected = model.state_dict()
    wrong_shape = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                   for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if wrong_shape:
        raise ComponentLoadError(f"{folder}: weights do not fit the config: " + "; ".join(wrong_shape[:5]))
    upcast = [k for k, v in state.items()
              if k in expected and v.dtype != expected[k].dtype and _exact_upcast(v.dtype, expected[k].dtype, dtype)]
    wrong_dtype = [f"{k!r} is {_dtype_name(v.dtype)} in the file, {_dtype_name(expected[k].dtype)} expected"
                   for k, v in state.items()
                   if k in expected and v.dtype != expected[k].dtype
                   and not (dtype is not None and v.dtype == dtype and v.is_floating_point()
                            and expected[k].is_floating_point())
                   and not _exact_upcast(v.dtype, expected[k].dtype, dtype)]
    if wrong_dtype:
        raise ComponentLoadError(f"{folder}: weights of the wrong dtype (loading would cast them silently; save them "
                                 "in the model's dtype, or load them under a precision policy that declares theirs): "
                                 + "; ".join(wrong_dtype[:3]) + (f" (+{len(wrong_dtype) - 3} more)" if len(wrong_dtype) > 3 else ""))
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
    if upcast:  # load_state_dict copied them into the float32 parameters (copy_ casts exactly)
        saved = sorted({_dtype_name(state[k].dtype) for k in upcast})
        _UPCASTS.get().append({"folder": str(folder), "from": "+".join(saved), "to": "float32", "tensors": len(upcast)})
    return model.eval()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def read_config_json(folder: Path) -> dict[str, Any]:
    """A module's `config.json` as a JSON object, or a ComponentLoadError naming the file and
    the line and column where it stops being JSON."""
    path = folder / "config.json"
    if not path.is_file():
        raise ComponentLoadError(f"{path}: missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ComponentLoadError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ComponentLoadError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise ComponentLoadError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_config_types(path: Path, config: dict[str, Any], cls: type) -> None:
    """A config value that is text where the constructor's default is a number or a flag
    (`"num_layers": "abc"`) is refused with the field named; the constructor would fail deep
    inside with an unnamed TypeError. (Lists where a number is the default stay allowed: many
    sizes take an int or a tuple.)"""
    import inspect

    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return
    for name, value in config.items():
        param = params.get(name)
        default = None if param is None else param.default
        if not isinstance(value, (str, dict)) or isinstance(default, str) or not isinstance(default, (bool, int, float)):
            continue
        what = "true or false" if isinstance(default, bool) else "an integer" if isinstance(default, int) else "a number"
        raise ComponentLoadError(f"{path}: field {name!r} expected {what} (the default is {default!r}), got {value!r}")


def _build(folder: Path, cls: type, make: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Construct a model from its config; a constructor that rejects the config names the file."""
    try:
        return make()
    except (ComponentLoadError, MemoryError, torch.OutOfMemoryError):
        raise  # out of memory is not a config problem
    except Exception as exc:  # a config value the constructor cannot use (TypeError, ValueError, ...)
        raise ComponentLoadError(f"{folder / 'config.json'}: {cls.__name__} cannot be built from this config "
                                 f"({type(exc).__name__}: {exc})") from None


# Models are built on the target device: initialising a multi-billion-parameter encoder on
# the CPU only to overwrite it would cost minutes.
def load_diffusers_model(folder: Path, cls: type, device: torch.device,
                         dtype: torch.dtype | None = None) -> torch.nn.Module:
    check_config_types(folder / "config.json", read_config_json(folder), cls)
    try:
        config = cls.load_config(str(folder))
    except Exception as exc:  # diffusers raises EnvironmentError / ValueError variants
        raise ComponentLoadError(f"{folder}: cannot read the {cls.__name__} config ({exc})") from None

    def make():
        with torch.device(device):
            return cls.from_config(config)

    return load_strict(_build(folder, cls, make), folder, dtype=dtype)


def load_workbench_model(folder: Path, cls: type, device: torch.device,
                         dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A native component: its config and weights are the official ones, converted by the
    class (`read_config`, `convert_state_dict`) and then loaded strictly."""
    read_config_json(folder)
    config = cls.read_config(folder)

    def make():
        with torch.device(device):
            return cls(config)

    model = _build(folder, cls, make)
    state = cls.convert_state_dict(read_state_dict(folder), source=str(folder))
    return load_state_strict(model, state, folder, dtype=dtype)


def load_transformers_model(folder: Path, cls: type, device: torch.device,
                            dtype: torch.dtype | None = None) -> torch.nn.Module:
    check_config_types(folder / "config.json", read_config_json(folder), cls.config_class)
    try:
        config = cls.config_class.from_pretrained(str(folder))
    except Exception as exc:  # transformers raises OSError / ValueError variants
        raise ComponentLoadError(f"{folder / 'config.json'}: cannot read the {cls.config_class.__name__} "
                                 f"({type(exc).__name__}: {exc})") from None

    def make():
        with torch.device(device):
            return cls(config)

    model = _build(folder, cls, make)
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    return load_strict(model, folder, ignorable_missing=tied, rename=_transformers_renaming(model, folder),
                       dtype=dtype)


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


def load_config_only(folder: Path, cls: type, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """Schedulers and processors: config files, no weights."""
    try:
        return cls.from_pretrained(str(folder))
    except Exception as exc:
        raise ComponentLoadError(f"{folder}: cannot load {cls.__name__} ({exc})") from None


def vocabulary_files(cls: type) -> tuple[str, ...]:
    """The files a tokenizer class reads its vocabulary from (`tokenizer.json`, `spiece.model`, ...)."""
    names = getattr(cls, "vocab_files_names", None) or {}
    return tuple(sorted({"tokenizer.json", *(v for v in names.values() if isinstance(v, str))}))


def load_tokenizer(folder: Path, cls: type, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """A tokenizer from its folder, which must hold a vocabulary file: without one, transformers
    builds a default tokenizer (a hundred-odd tokens) and every prompt becomes unknown tokens."""
    wanted = vocabulary_files(cls)
    if not any((folder / name).is_file() for name in wanted):
        raise ComponentLoadError(f"{folder}: no vocabulary file for {cls.__name__} (expected one of "
                                 f"{', '.join(wanted)})")
    return load_config_only(folder, cls, device)


# Loader choice: a name rule wins over the library rule.
NAME_LOADERS: dict[str, Callable[[Path, type, torch.device], Any]] = {
    "tokenizer": load_tokenizer,
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


def load_module(model_dir: Path, spec: ModuleSpec, device: torch.device = torch.device("cpu"),
                dtype: torch.dtype | None = None) -> Any:
    """`dtype`: the module's declared precision (weights saved in it are accepted as well as the
    model's own dtype); None: the file's tensors must have the model's dtypes."""
    folder = Path(model_dir) / spec.name
    if not folder.is_dir():
        raise ComponentLoadError(f"{folder}: module folder for {spec.name!r} is missing")
    return loader_for(spec)(folder, resolve_class(spec), device, dtype=dtype)
