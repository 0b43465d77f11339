"""Reading `model_index.json` by the manifest rules.

- a list value `[library, class]` is a module; anything else is metadata;
- `[null, null]` disables a module;
- keys starting with `_` are bookkeeping (`_class_name`, `_diffusers_version`, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ManifestError

MANIFEST_NAME = "model_index.json"


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    library: str | None
    class_name: str | None

    @property
    def disabled(self) -> bool:
        return self.library is None and self.class_name is None


@dataclass(frozen=True)
class Manifest:
    path: Path
    class_name: str
    modules: dict[str, ModuleSpec]
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def enabled_modules(self) -> list[str]:
        return [n for n, m in self.modules.items() if not m.disabled]


def read_manifest(model_dir: str | Path) -> Manifest:
    """Parse `<model_dir>/model_index.json`, naming the file and field on any problem."""
    path = Path(model_dir) / MANIFEST_NAME
    if not Path(model_dir).is_dir():
        raise ManifestError(f"{model_dir}: model directory does not exist")
    if not path.is_file():
        raise ManifestError(f"{path}: missing (a model directory needs a {MANIFEST_NAME})")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    class_name = raw.get("_class_name")
    if not isinstance(class_name, str) or not class_name:
        raise ManifestError(f"{path}: field '_class_name' must be a non-empty string naming the pipeline class")
    modules, metadata = {}, {}
    for key, value in raw.items():
        if key.startswith("_"):
            continue
        if isinstance(value, list):
            if len(value) != 2 or not all(v is None or isinstance(v, str) for v in value) or (
                (value[0] is None) != (value[1] is None)
            ):
                raise ManifestError(
                    f"{path}: field {key!r} must be [library, class] or [null, null], got {json.dumps(value)}")
            modules[key] = ModuleSpec(key, value[0], value[1])
        else:
            metadata[key] = value
    return Manifest(path=path, class_name=class_name, modules=modules, metadata=metadata, raw=raw)


def write_manifest(model_dir: str | Path, data: dict[str, Any]) -> Path:
    """Write a manifest atomically."""
    from workbench.io import atomic_write_text

    return atomic_write_text(Path(model_dir) / MANIFEST_NAME, json.dumps(data, indent=2, sort_keys=False) + "\n")
