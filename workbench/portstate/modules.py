"""Which modules a family's native pipeline loads from a manifest, computed without loading.

Component parity checks exactly these modules, and the component gate requires a
passing record for each of them.
"""

from __future__ import annotations

from workbench.runtime.manifest import Manifest

# Module-name stems that say what a component is; a trailing `_2` (etc.) is ignored.
COMPONENT_TYPES = ("tokenizer", "text_encoder", "transformer", "vae", "scheduler", "image_encoder",
                   "image_processor", "feature_extractor")


def component_type(name: str) -> str:
    base = name.rstrip("_0123456789")
    if base in COMPONENT_TYPES:
        return base
    return "vae" if base.endswith("vae") else "other"


def required_modules(pipeline_cls: type, manifest: Manifest) -> list[str]:
    """`required_modules_for` is an instance hook that reads only the manifest; it is called on
    an uninitialised instance so that nothing is loaded."""
    return list(pipeline_cls.required_modules_for(pipeline_cls.__new__(pipeline_cls), manifest))


def pipeline_modules(pipeline_cls: type, manifest: Manifest) -> list[str]:
    """Required modules plus the optional ones the manifest enables, in manifest order."""
    required = required_modules(pipeline_cls, manifest)
    enabled = set(manifest.enabled_modules)
    wanted = set(required) | {m for m in pipeline_cls._optional_config_modules if m in enabled}
    ordered = [n for n in manifest.modules if n in wanted]
    return ordered + [n for n in required if n not in ordered]
