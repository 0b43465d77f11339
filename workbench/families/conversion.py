"""Turning an official diffusers directory into a converted one our runtime loads.

The converted directory holds the same component files and a `model_index.json` whose
`_class_name` is the native pipeline class; the official class is kept for the record.
diffusers records a module defined inside a pipeline folder by that folder
(`["stable_audio", "StableAudioProjectionModel"]`); the converted manifest names the
library that exports it (`diffusers`), since our loader resolves classes by library only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from workbench.runtime.manifest import MANIFEST_NAME, write_manifest


def write_converted(official: Path, converted: Path, native_class: str) -> Path:
    if converted.exists():
        shutil.rmtree(converted)
    shutil.copytree(official, converted)
    manifest = json.loads((official / MANIFEST_NAME).read_text())
    official_class = manifest["_class_name"]
    manifest["_class_name"] = native_class
    manifest["_official_class_name"] = official_class
    for key, value in manifest.items():
        if isinstance(value, list) and value[0] not in (None, "diffusers", "transformers") and _exported(value[1]):
            manifest[key] = ["diffusers", value[1]]
    write_manifest(converted, manifest)
    return converted


def _exported(class_name: str) -> bool:
    import diffusers

    return isinstance(getattr(diffusers, class_name, None), type)
