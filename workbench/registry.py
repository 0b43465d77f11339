"""The one registry: pipeline classes, family configs, presets and detectors.

Registration is explicit: this module imports each family's config and `ALL_PRESETS`.
The pipeline class comes from `model_index.json["_class_name"]` by exact name (or a
declared alias); detectors then choose the family config and presets for a directory.
"""

from __future__ import annotations

from pathlib import Path

from workbench.api.family import FamilyConfig
from workbench.api.presets import PresetTable
from workbench.errors import RegistryError
from workbench.families.ltx2.config import LTX2_T2AV
from workbench.families.ltx2.presets import ALL_PRESETS as LTX2_PRESETS
from workbench.families.stable_audio.config import STABLE_AUDIO
from workbench.families.stable_audio.presets import ALL_PRESETS as STABLE_AUDIO_PRESETS
from workbench.families.wan.config import WAN_T2V
from workbench.families.wan.presets import ALL_PRESETS as WAN_PRESETS
from workbench.families.wan22.config import WAN22_T2V
from workbench.families.wan22.presets import ALL_PRESETS as WAN22_PRESETS
from workbench.families.wan_i2v.config import WAN_I2V
from workbench.families.wan_i2v.presets import ALL_PRESETS as WAN_I2V_PRESETS
from workbench.families.hunyuan_video.config import HUNYUAN_VIDEO
from workbench.families.hunyuan_video.presets import ALL_PRESETS as HUNYUAN_VIDEO_PRESETS
from workbench.runtime.manifest import Manifest

FAMILIES: dict[str, FamilyConfig] = {}
PIPELINE_CLASSES: dict[str, type] = {}
ALIASES: dict[str, str] = {}
PRESETS = PresetTable()


def register_family(config: FamilyConfig, presets) -> None:
    if config.name in FAMILIES:
        raise RegistryError(f"family {config.name!r} registered twice")
    FAMILIES[config.name] = config
    register_pipeline_class(config.pipeline_class)
    PRESETS.add_all(presets)
    if not any(p.name == config.default_preset for p in PRESETS.for_family(config.name)):
        raise RegistryError(f"family {config.name!r}: default preset {config.default_preset!r} is not registered")


def register_pipeline_class(cls: type, aliases: tuple[str, ...] = ()) -> None:
    existing = PIPELINE_CLASSES.get(cls.__name__)
    if existing is not None and existing is not cls:
        raise RegistryError(f"two pipeline classes named {cls.__name__!r}")
    PIPELINE_CLASSES[cls.__name__] = cls
    for alias in aliases:
        ALIASES[alias] = cls.__name__


def resolve_pipeline_class(manifest: Manifest) -> type:
    name = ALIASES.get(manifest.class_name, manifest.class_name)
    if name not in PIPELINE_CLASSES:
        raise RegistryError(
            f"{manifest.path}: _class_name {manifest.class_name!r} is not a registered pipeline class; "
            f"registered: {sorted(PIPELINE_CLASSES)}" + (f", aliases: {sorted(ALIASES)}" if ALIASES else ""))
    return PIPELINE_CLASSES[name]


def get_family(name: str) -> FamilyConfig:
    if name not in FAMILIES:
        raise RegistryError(f"unknown family {name!r}; registered: {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_for_manifest(manifest: Manifest, model_dir: str | Path) -> FamilyConfig:
    """Pick the family config whose detector matches the directory best."""
    path = str(Path(model_dir).resolve())
    scored = []
    for fam in FAMILIES.values():
        score = max((d.score(manifest.class_name, path, manifest.metadata) for d in fam.detectors), default=0)
        if score:
            scored.append((score, fam.name, fam))
    if not scored:
        raise RegistryError(f"{manifest.path}: no family detector matches _class_name {manifest.class_name!r}")
    scored.sort(key=lambda s: (-s[0], s[1]))
    return scored[0][2]


register_family(WAN_T2V, WAN_PRESETS)
register_family(STABLE_AUDIO, STABLE_AUDIO_PRESETS)
register_family(WAN22_T2V, WAN22_PRESETS)
register_family(WAN_I2V, WAN_I2V_PRESETS)
register_family(LTX2_T2AV, LTX2_PRESETS)
register_family(HUNYUAN_VIDEO, HUNYUAN_VIDEO_PRESETS)
