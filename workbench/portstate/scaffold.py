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
             tests_dest: Path | None = None) -> Scaffold:
    """Write the family folder and its tests; nothing outside `dest` and `tests_dest` changes."""
    from workbench import registry
    from workbench.portstate.state import Decision, FamilyState, Row, dump_states

    dest = Path(dest or FAMILIES_DIR).resolve()
    tests_dest = Path(tests_dest or TESTS_DIR).resolve()
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
