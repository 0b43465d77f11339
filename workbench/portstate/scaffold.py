"""`workbench new-family`: a new family's folder, stubs, port state and failing tests in one step.

Starting from the closest ported family (`--like`), it writes config, presets, a
reference builder stub, a pipeline stub (the like family's module lists), port state,
notebook parameters and tests that fail on each stub until it is filled in. Registration
is explicit: the registry lines are printed, or inserted with `--register`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from workbench.api.workload import WorkloadType
from workbench.errors import ParameterError
from workbench.portstate import templates as T

PACKAGE_ROOT = Path(__file__).resolve().parents[1]   # workbench/
FAMILIES_DIR = PACKAGE_ROOT / "families"
REGISTRY_FILE = PACKAGE_ROOT / "registry.py"
TESTS_DIR = PACKAGE_ROOT.parent / "tests" / "families"
EXAMPLES_DIR = PACKAGE_ROOT.parent / "examples"

COMMON_KEYS = ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale", "max_sequence_length")
VIDEO_KEYS = ("height", "width", "num_frames", "fps")
AUDIO_KEYS = ("audio_start_in_s", "audio_end_in_s", "sampling_rate", "channels")


@dataclass
class Scaffold:
    name: str
    package: str                 # import name of the generated family package
    folder: Path
    tests: Path
    written: list[Path] = field(default_factory=list)
    registry_lines: tuple[str, str] = ("", "")   # (imports, register call)
    modules: list = field(default_factory=list)        # OfficialModule rows (with --official)
    defaults: list = field(default_factory=list)       # OfficialDefault rows (with --official)
    next_steps: str = ""


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def media_kind(workload: WorkloadType) -> str:
    if workload.has_video and workload.has_audio:
        return "joint"
    return "audio" if workload.has_audio else "video"


def preset_defaults(like, workload: WorkloadType) -> dict:
    """The like family's default preset, restricted to the keys the new workload's media uses."""
    keys = COMMON_KEYS + (VIDEO_KEYS if workload.has_video else ()) + (AUDIO_KEYS if workload.has_audio else ())
    return {k: v for k, v in like.preset().defaults.items() if k in keys}


def format_defaults(defaults: dict) -> str:
    """A dict literal, one key per line, indented for the preset template."""
    return "{\n" + "".join(f"        {k!r}: {v!r},\n" for k, v in defaults.items()) + "    }"


def _label(path: Path) -> str:
    """A path as messages show it: relative to the repository when inside it."""
    try:
        return path.relative_to(PACKAGE_ROOT.parent).as_posix()
    except ValueError:
        return path.as_posix()


def _check_name(name: str, dest: Path) -> None:
    from workbench import registry

    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ParameterError(f"family name {name!r}: expected lower_snake_case (letters, digits, underscores)")
    if name in registry.FAMILIES:
        raise ParameterError(f"family {name!r} is already registered")
    if (dest / name).exists():
        raise ParameterError(f"{dest / name} already exists; pick another name or --dest")


def scaffold(name: str, workload: str, like_name: str, *, official: str = "TODO", dest: Path | None = None,
             tests_dest: Path | None = None, examples_dest: Path | None = None) -> Scaffold:
    """Write the family folder and its tests; nothing outside `dest` and `tests_dest` changes."""
    from workbench import registry
    from workbench.portstate.state import Decision, FamilyState, Row, dump_states

    in_package = dest is None
    dest = Path(dest or FAMILIES_DIR).resolve()
    tests_dest = Path(tests_dest or TESTS_DIR).resolve()
    # A family scaffolded outside the package keeps its example outside the checkout too.
    examples_dest = Path(examples_dest or (EXAMPLES_DIR if in_package else tests_dest.parent / "examples")).resolve()
    official_cls = official_class(official) if official != "TODO" else None
    try:
        kind = WorkloadType[workload.upper()]
    except KeyError:
        choices = ", ".join(w.name for w in WorkloadType)
        raise ParameterError(f"--workload {workload!r}: expected one of {choices}") from None
    like = registry.get_family(like_name)
    _check_name(name, dest)
    package = f"workbench.families.{name}" if dest == FAMILIES_DIR.resolve() else name
    like_cls = like.pipeline_class
    media = media_kind(kind)
    values = dict(
        name=name, workload=kind.name, like=like.name, official=official, constant=name.upper(),
        pipeline_class=f"Native{camel(name)}Pipeline", package=package, folder=_label(dest / name),
        media_class={"video": "VideoMedia", "audio": "AudioMedia", "joint": "JointMedia"}[media],
        media_function=T.MEDIA[media], output_kind={"video": "frames", "audio": "waveform", "joint": "joint"}[media],
        like_preset=like.default_preset, preset_defaults=format_defaults(preset_defaults(like, kind)),
        like_reference=like.reference_module.replace(".", "/") + ".py", like_class=like_cls.__name__,
        like_module=like_cls.__module__, required=repr(tuple(like_cls._required_config_modules)),
        optional=repr(tuple(like_cls._optional_config_modules)))
    folder, tests = dest / name, tests_dest / name
    if tests.exists():
        raise ParameterError(f"{tests} already exists; pick another name or --tests-dest")
    example = examples_dest / f"{name}.py"
    if official_cls is not None and example.exists():
        raise ParameterError(f"{example} already exists; pick another name or --examples-dest")
    values["params_import"] = ""
    values["official_output_type"] = "pt" if media == "audio" else "np"   # frames [B, F, H, W, 3] as numpy
    values["example_out"] = {"video": "clip.mp4", "audio": "clip.wav", "joint": "clip.mp4"}[media]
    out = Scaffold(name, package, folder, tests)
    state = FamilyState(
        family=name, path=folder / "port_state.yaml",
        questions=[Row("Q001", f"Which diffusers pipeline and components does {name} port, and which can be reused "
                               f"from {like.name}?")],
        decisions=[Decision("D001", f"Scaffolded like {like.name} ({kind.name})",
                            f"{like.name} is the closest ported family: its module list and preset are the start")])
    files = {
        folder / "__init__.py": T.INIT.substitute(values),
        folder / "config.py": T.CONFIG.substitute(values),
        folder / "presets.py": T.PRESETS.substitute(values),
        folder / "reference.py": T.REFERENCE.substitute(values),
        folder / "pipeline.py": T.PIPELINE.substitute(values),
        folder / "port_state.yaml": dump_states({name: state}),
        folder / "notebook_parameters.yaml": T.NOTEBOOK_PARAMETERS.substitute(values),
        tests / "__init__.py": "",
        tests / "test_port.py": T.TEST_PORT.substitute(values),
        tests / "test_components.py": T.TEST_COMPONENTS.substitute(values),
    }
    if official_cls is not None:
        out.modules = official_modules(official_cls)
        out.defaults = official_defaults(official_cls)
        values.update(official_code(official_cls, out.defaults))
        extra = [d for d in out.defaults if not d.shared]
        if extra:
            values["params_import"] = "\nfrom . import params  # noqa: F401  (declares the family's request fields first)\n"
            files[folder / "params.py"] = T.PARAMS_OFFICIAL.substitute(values, fields="\n".join(
                f"    RequestField({d.name!r}, {_field_type(official_cls, d.name)}, {d.value!r}, {d.source!r})," for d in extra))
            files[folder / "presets.py"] = T.PRESETS.substitute(values)
        files[folder / "config.py"] = T.CONFIG_OFFICIAL.substitute(values)
        files[folder / "pipeline.py"] = T.PIPELINE_OFFICIAL.substitute(values)
        files[folder / "reference.py"] = T.REFERENCE_OFFICIAL.substitute(values)
        files[folder / "component_probes.py"] = probes_file(values, values["probe_classes"])
        files[example] = T.EXAMPLE.substitute(values)
        if values["variant_rows"]:
            files[tests / "test_variants.py"] = T.TEST_VARIANTS.substitute(values)
        state.decisions[0] = Decision(
            "D001", f"Scaffolded from diffusers {official_cls.__name__} (like {like.name}, {kind.name})",
            "modules from its __init__ signature and _optional_components, defaults from its __call__ signature")
        files[folder / "port_state.yaml"] = dump_states({name: state})
    out.next_steps = T.NEXT_CHECKLIST.substitute(values, tests=_label(tests), example=_label(example))
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out.written.append(path)
    out.registry_lines = (T.REGISTRY_IMPORTS.substitute(values), T.REGISTRY_CALL.substitute(values))
    return out


def register(result: Scaffold, registry_file: Path = REGISTRY_FILE) -> Path:
    """Insert the imports after the last family import and the call after the last
    `register_family(...)` line of `registry_file`."""
    if not result.package.startswith("workbench.families."):
        raise ParameterError("--register needs the family inside workbench/families (leave --dest at its default)")
    lines = registry_file.read_text().splitlines(keepends=True)
    imports = [i for i, line in enumerate(lines) if line.startswith("from workbench.families.")]
    calls = [i for i, line in enumerate(lines) if line.startswith("register_family(")]
    if not imports or not calls:
        raise ParameterError(f"{registry_file}: no family imports or register_family calls to insert after")
    imports_text, call_text = result.registry_lines
    lines.insert(calls[-1] + 1, call_text)
    lines.insert(imports[-1] + 1, imports_text)
    from workbench.io import atomic_write_text

    return atomic_write_text(registry_file, "".join(lines))


# ---- introspection of the official pipeline class (`--official Cls`) -------------------------

# __call__ arguments that are not request fields: precomputed inputs, outputs, callbacks.
NOT_REQUEST = ("generator", "latents", "return_dict", "output_type", "attention_kwargs", "cross_attention_kwargs",
               "callback", "callback_steps", "callback_on_step_end", "callback_on_step_end_tensor_inputs",
               "num_videos_per_prompt", "num_images_per_prompt", "num_waveforms_per_prompt", "timesteps",
               "sigmas", "ip_adapter_image", "ip_adapter_image_embeds", "clip_skip")
REQUEST_TYPES = (bool, int, float, str)
# Tokenizer classes the package can build offline (workbench/families/offline.py, offline_tokenizers.py).
OFFLINE_TOKENIZERS = {"T5Tokenizer": "t5_tokenizer({length})", "T5TokenizerFast": "t5_tokenizer({length})",
                      "UMT5Tokenizer": "t5_tokenizer({length})", "GemmaTokenizer": "gemma_tokenizer({length})",
                      "GemmaTokenizerFast": "gemma_tokenizer({length})", "LlamaTokenizer": "llama_tokenizer({length})",
                      "LlamaTokenizerFast": "llama_tokenizer({length})", "CLIPTokenizer": "clip_tokenizer({length})"}


@dataclass
class OfficialModule:
    """One module of the official pipeline, as its `__init__` signature declares it."""

    name: str
    library: str                  # "diffusers" | "transformers"
    class_name: str
    alternatives: tuple[str, ...] = ()   # other classes the annotation allows (variants)
    optional: bool = False
    kind: str = "model"           # "model" | "scheduler" | "tokenizer" | "processor"

    def __post_init__(self):
        if self.kind == "model":
            if "Scheduler" in self.class_name:
                self.kind = "scheduler"
            elif "Tokenizer" in self.class_name:
                self.kind = "tokenizer"
            elif self.class_name.endswith(("Processor", "FeatureExtractor")):
                self.kind = "processor"


@dataclass
class OfficialDefault:
    name: str
    value: Any
    annotation: str
    source: str
    shared: bool                  # a SamplingParam field already; else a family-declared field


def _classes_of(annotation) -> list[type]:
    """The classes an `__init__` annotation allows: a class, a union of classes, or an enum of
    class names (diffusers' KarrasDiffusionSchedulers)."""
    import enum
    import typing

    import diffusers

    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [c for c in (getattr(diffusers, m.name, None) for m in annotation) if isinstance(c, type)]
    if isinstance(annotation, type):
        return [annotation] if annotation.__module__.split(".")[0] in ("diffusers", "transformers") else []
    args = typing.get_args(annotation)
    return [c for a in args for c in _classes_of(a)]


def official_class(official: str) -> type:
    import diffusers

    cls = getattr(diffusers, official.rpartition(".")[2], None)
    if not isinstance(cls, type) or not hasattr(cls, "__call__") or not hasattr(cls, "_optional_components"):
        raise ParameterError(f"--official {official!r}: not a diffusers pipeline class")
    return cls


def official_modules(cls: type) -> list[OfficialModule]:
    """The pipeline's modules from its `__init__` signature (non-module config arguments skipped),
    optional when listed in `_optional_components` or defaulting to None."""
    import inspect

    optional = set(getattr(cls, "_optional_components", ()) or ())
    out = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        classes = _classes_of(p.annotation)
        if not classes:
            continue   # a config value (e.g. force_zeros_for_empty_prompt), not a module
        first = classes[0]
        out.append(OfficialModule(name, first.__module__.split(".")[0], first.__name__,
                                  tuple(c.__name__ for c in classes[1:]),
                                  optional=name in optional or p.default is None))
    return out


def _source_file(cls: type) -> str:
    import inspect

    import diffusers

    path = Path(inspect.getsourcefile(cls))
    try:
        rel = path.relative_to(Path(diffusers.__file__).parent).as_posix()
    except ValueError:
        rel = path.name
    return f"diffusers {diffusers.__version__} {rel}"


def _annotation_text(annotation) -> str:
    import inspect

    if annotation is inspect.Parameter.empty:
        return ""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "")


def _scalar_type(annotation):
    """bool/int/float/str when the annotation is one of them (optionally `| None`), else None."""
    import typing

    if annotation in REQUEST_TYPES:
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1 and args[0] in REQUEST_TYPES:
        return args[0]
    if args and all(a in (int, float) for a in args):
        return float
    return None


def _field_type(cls: type, name: str) -> str:
    import inspect

    p = inspect.signature(cls.__call__).parameters[name]
    t = _scalar_type(p.annotation) or type(p.default)
    return t.__name__


def official_defaults(cls: type) -> list[OfficialDefault]:
    """Request defaults from the official `__call__` signature, each with its source; shared
    SamplingParam fields and scalar arguments the family must declare itself."""
    import inspect

    from workbench.api.params import SamplingParam

    shared = set(SamplingParam.field_names())
    where = f"{_source_file(cls)} {cls.__name__}.__call__ signature"
    out = []
    for name, p in inspect.signature(cls.__call__).parameters.items():
        if name == "self" or name in NOT_REQUEST or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if "embeds" in name or name.endswith("_mask"):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        ann = _annotation_text(p.annotation)
        if name in shared:
            out.append(OfficialDefault(name, default, ann, f"{where} ({name}: {ann} = {default!r})", True))
        elif _scalar_type(p.annotation) is not None or (p.annotation is inspect.Parameter.empty
                                                          and isinstance(default, REQUEST_TYPES)):
            out.append(OfficialDefault(name, default, ann, f"{where} ({name}: {ann} = {default!r})", False))
    return out


# ---- tiny sizes: each component's default config, shrunk ----------------------------------------

_KEEP_EXACT = ("in_channels", "out_channels", "latent_channels", "audio_channels", "decoder_input_channels")
_KEEP = ("vocab", "z_dim", "num_train_timesteps", "patch",
         "sample_size", "theta", "max_position", "max_seq", "rope", "compression", "scale_factor",
         "sampling_rate", "ratio", "pad_token", "bos_token", "eos_token", "_id", "groups")


def shrink(key: str, value: Any) -> Any:
    """A tiny value for one constructor argument (unchanged when it is not a size)."""
    k = key.lower()
    if (isinstance(value, bool) or not isinstance(value, (int, list, tuple)) or k in _KEEP_EXACT
            or any(s in k for s in _KEEP)):
        return value
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value) and (
                "channels" in k or "dim" in k):
            return type(value)(min(v, 32) for v in value)
        return value
    if "layers" in k or "blocks" in k or "depth" in k:
        return min(value, 2)
    if "head_dim" in k or k.endswith("_kv"):
        return min(value, 8)
    if "heads" in k:
        return min(value, 2)
    if "intermediate" in k or "ffn" in k or "d_ff" in k:
        return min(value, 64)
    if ("dim" in k or "size" in k or "channels" in k or "d_model" in k) and value > 32:
        return 32
    return value


def default_config(cls: type) -> tuple[str, dict]:
    """(how the class is built, its default constructor arguments): a diffusers class from its
    `__init__` defaults; a transformers model from its `config_class()` defaults."""
    import inspect

    config_class = getattr(cls, "config_class", None)
    if config_class is not None and cls.__module__.startswith("transformers"):
        base = config_class().to_dict()
        if hasattr(config_class, "sub_configs") and getattr(config_class, "sub_configs", None):
            base = {k: v for k, v in base.items() if not isinstance(v, dict)}
        return f"config:{config_class.__name__}", {k: v for k, v in base.items()
                                                  if isinstance(v, (int, float, str, bool, list, tuple))
                                                  and not k.startswith("_") and k not in (
                                                      "transformers_version", "model_type", "architectures")}
    values = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is inspect.Parameter.empty:
            continue
        if isinstance(p.default, (int, float, str, bool, list, tuple)) or p.default is None:
            values[name] = p.default
    return "kwargs", values


def tiny_sizes(cls: type) -> tuple[str, dict, dict]:
    """(how it is built, the shrunk arguments that changed, their defaults)."""
    how, values = default_config(cls)
    changed = {k: shrink(k, v) for k, v in values.items() if shrink(k, v) != v}
    return how, changed, {k: values[k] for k in changed}


# ---- code generation from the introspection ----------------------------------------------------

def _module_class(module: OfficialModule) -> type:
    import importlib

    return getattr(importlib.import_module(module.library), module.class_name)


def _literal(values: dict, defaults: dict, indent: str) -> str:
    return "".join(f"{indent}{k}={v!r},  # default {defaults[k]!r}\n" for k, v in values.items())


def official_code(cls: type, defaults: list[OfficialDefault]) -> dict[str, str]:
    """Template values generated from the official class: sizes, builder, call, module lists."""
    modules = official_modules(cls)
    libraries: dict[str, set[str]] = {"diffusers": {cls.__name__}, "transformers": set()}
    sizes, builds, offline, tokenizers = [], [], set(), []
    for seed, m in enumerate(modules):
        libraries.setdefault(m.library, set()).add(m.class_name)
        if m.kind == "tokenizer":
            recipe = OFFLINE_TOKENIZERS.get(m.class_name)
            if recipe:
                libraries[m.library].discard(m.class_name)
                offline.add(recipe.partition("(")[0])
                tokenizers.append(f"    {m.name} = {recipe.format(length=77 if 'CLIP' in m.class_name else 32)}")
            else:
                tokenizers.append(f"    raise NotImplementedError(\"reference.py: build_official: no offline recipe "
                                  f"for {m.class_name} ({m.name}): train one in memory (workbench/families/offline.py)\")")
                tokenizers.append(f"    {m.name} = None")
            continue
        if m.kind == "scheduler":
            alt = f"  # the annotation also allows {', '.join(m.alternatives)} (a variant)" if m.alternatives else ""
            builds.append(f"    {m.name} = {m.class_name}(**sizes.get({m.name!r}, {{}})){alt}")
            continue
        if m.kind == "processor":
            builds.append(f"    {m.name} = {m.class_name}()")
            continue
        how, changed, was = tiny_sizes(_module_class(m))
        sizes.append(f"        {m.name!r}: dict(\n{_literal(changed, was, ' ' * 12)}        ),")
        builds.append(f"    seeded({seed})")
        if how.startswith("config:"):
            config = how.partition(":")[2]
            libraries[m.library].add(config)
            tok = m.name.replace("text_encoder", "tokenizer")
            vocab = (f"vocab_size=len({tok}), " if tok != m.name and any(t.name == tok for t in modules)
                     and "vocab_size" in default_config(_module_class(m))[1] else "")
            builds.append(f"    {m.name} = {m.class_name}({config}({vocab}**sizes[{m.name!r}])).to(dtype).eval()")
        else:
            builds.append(f"    {m.name} = {m.class_name}(**sizes[{m.name!r}]).to(dtype).eval()")
    imports = "".join(f"    from {lib} import {', '.join(sorted(names))}\n" for lib, names in libraries.items() if names)
    if offline:
        for module in ("offline", "offline_tokenizers"):
            names = sorted(n for n in offline if (n in ("llama_tokenizer", "clip_tokenizer")) == (module != "offline"))
            if names:
                imports += f"    from workbench.families.{module} import {', '.join(names)}\n"
    call = ", ".join(f"{m.name}={m.name}" for m in modules)
    request = "".join(f"{d.name}=params.{d.name}, " for d in defaults)
    variants = tuple((m.name, alt) for m in modules if m.kind == "scheduler" for alt in m.alternatives)
    required = tuple(m.name for m in modules if not m.optional)
    optional = tuple(m.name for m in modules if m.optional)
    table = "\n".join(f"  {m.name:16s} {m.library}.{m.class_name}" + (" (optional)" if m.optional else "")
                      + (f" | {' | '.join(m.alternatives)}" if m.alternatives else "") for m in modules)
    shared = {d.name: d for d in defaults if d.shared}
    extra = [d for d in defaults if not d.shared]
    return dict(
        variants=repr(variants), variant_rows=variants,
        sizes="\n".join(sizes), imports=imports.rstrip("\n"), builds="\n".join(tokenizers + builds), call_args=call,
        call_request=request, required=repr(required), optional=repr(optional), module_table=table,
        model_modules=repr(tuple(m.name for m in modules if m.kind == "model")),
        defaults="{\n" + "".join(f"    {k!r}: Sourced({d.value!r}, {d.source!r}),\n" for k, d in shared.items()) + "}",
        extra_fields_comment=("\n# Official request arguments that are not SamplingParam fields (declared in params.py):\n# "
                              + ", ".join(f"{d.name} ({d.annotation or type(d.value).__name__} = {d.value!r})"
                                          for d in extra)) if extra else "",
        probe_classes=(tuple(m.class_name for m in modules if m.kind == "model"
                                 and re.sub(r"_\d+$", "", m.name) not in ("text_encoder", "image_encoder"))),
    )


def probes_file(values: dict, classes: tuple[str, ...]) -> str:
    stubs = "".join(T.PROBE_STUB.substitute(values, slug=c.lower(), cls=c) for c in classes)
    entries = "".join(f'    "{c}": Probe("{c}: TODO describe the seeded inputs", _{c.lower()}_inputs, '
                      f'_{c.lower()}_run),\n' for c in classes)
    return T.PROBES_OFFICIAL.substitute(values, stubs=stubs, entries=entries.rstrip("\n"))
